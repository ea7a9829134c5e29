"""Each alert stage on its own, built from only what it depends on (alerts/pipeline.py wires
them): route, group, suppress (silences and inhibition rules), the lifecycle, the outbox
stage and delivery. Receivers are the fake Slack on loopback; the record is a real SQLite
database."""
from __future__ import annotations

import threading
from datetime import timedelta

from alerts.delivery import Delivery
from alerts.flush import Flusher
from alerts.grouping import Grouper
from alerts.lifecycle import ESCALATED, NEW, RESOLVED, UNKNOWN_RESOLVED, Lifecycle
from alerts.notifiers import build_notifier
from alerts.outbox import Outbox
from alerts.record import DecisionRecord
from alerts.routing import Router
from alerts.silences import Silence
from alerts.suppression import OUTAGE_HOLDS_STOPPAGE, InhibitRule, Suppressor, inhibit_rules
from alerts.matching import Matcher
from alerts.writethrough import WriteThrough
from monitor.clock import ManualClock
from monitor.metrics import Metrics
from tests.fakes.events import NIGHT, SOURCE, config, event, stall

WEBHOOK = [{"name": "oncall", "kind": "slack_webhook", "url": "${HOOK_URL}"}]
TWO = [{"name": "oncall", "kind": "console"}, {"name": "ops", "kind": "console"}]


def grouper_of(cfg) -> Grouper:
    alerting = cfg.alerting
    return Grouper({r.name: r for r in alerting.receivers}, {s.name: s.host for s in cfg.sources},
                   group_by=alerting.group_by, group_wait=alerting.group_wait,
                   group_interval=alerting.group_interval, repeat_interval=alerting.repeat_interval)


# --- route ------------------------------------------------------------------------------------
def test_the_router_names_each_receiver_once_on_the_first_matching_route():
    cfg = config(receivers=TWO, routes=[
        {"match": {"region": "32*"}, "receiver": "oncall", "repeat_interval": "2h"},
        {"match": {}, "receiver": "oncall", "repeat_interval": "8h"},
        {"match": {"severity": "critical"}, "receiver": "ops"},
    ])
    router = Router(cfg.alerting.effective_routes())

    routed = router.route(stall(region="3201"))
    assert [(name, route.repeat_interval) for name, route in routed] == [("oncall", 7200)]
    routed = router.route(stall(region="33", severity="critical"))
    assert [(name, route.repeat_interval) for name, route in routed] == [("oncall", 8 * 3600), ("ops", None)]
    # info pages nobody unless a route names a severity
    assert router.route(event("correction", "observed", "info")) == []


# --- group ------------------------------------------------------------------------------------
def test_stoppage_rules_of_one_source_are_one_incident_per_receiver():
    cfg = config(receivers=TWO)
    grouper = grouper_of(cfg)
    route = cfg.alerting.effective_routes()[0]
    first = grouper.join("oncall", route, stall(region="32"), "firing", False, NIGHT)
    second = grouper.join("oncall", route, event("stale_source", region="0"), "firing", False, NIGHT)
    other = grouper.join("ops", route, stall(region="33"), "firing", False, NIGHT)

    assert first is second and len(first.members) == 2
    assert other is not first and other.id == first.id          # one id on every receiver
    assert grouper.holding("stall/kpu-jabar/32") == [first]


def test_outages_of_one_host_are_one_incident_whatever_the_host_serves():
    same_host = {"name": "kpu-jabar-2", "kind": "sirekap", "url": "https://pilkada.example/other.json"}
    cfg = config(receivers=TWO, more_sources=[same_host])
    grouper = grouper_of(cfg)
    route = cfg.alerting.effective_routes()[0]
    a = grouper.join("oncall", route, event("outage", region="0"), "firing", False, NIGHT)
    b = grouper.join("oncall", route, event("outage", region="0", source="kpu-jabar-2"), "firing", False, NIGHT)
    c = grouper.join("oncall", route, event("outage", region="0", source="kpu-ppwp"), "firing", False, NIGHT)

    assert a is b and a.group[0] == "host pilkada.example"
    assert c is not a and c.group[0] == "host sirekap.example"


def test_an_escalation_is_told_at_once_only_when_it_raises_what_the_receiver_was_told():
    cfg = config(receivers=TWO, alerting={"group_interval": "5m"})
    grouper = grouper_of(cfg)
    route = cfg.alerting.effective_routes()[0]
    incident = grouper.join("oncall", route, stall(), "firing", False, NIGHT)
    incident.mark_told([(incident.members["stall/kpu-jabar/32"], "first")], NIGHT)
    incident.due_at = None

    later = NIGHT + timedelta(minutes=1)
    grouper.join("oncall", route, stall(severity="critical", at=later), "firing", True, later)
    assert incident.due_at == later                              # warning -> critical: now
    incident.mark_told([(incident.members["stall/kpu-jabar/32"], "escalated")], later)
    incident.due_at = None
    grouper.join("oncall", route, stall(region="33", severity="critical", at=later), "firing", True, later)
    assert incident.due_at == later + timedelta(minutes=5)       # critical was told already: wait


# --- suppress ---------------------------------------------------------------------------------
def suppressor(open_events=(), silences=(), rules=(OUTAGE_HOLDS_STOPPAGE,), runtime=lambda: []):
    return Suppressor(tuple(silences), rules, lambda: iter(open_events), runtime)


def test_an_open_outage_holds_back_the_stoppage_alerts_of_its_own_source_only():
    outage = event("outage", region="0")
    stage = suppressor(open_events=[outage])

    assert stage.suppressed(stall(), NIGHT) == ("inhibited", f"outage of source {SOURCE} is open")
    assert stage.suppressed(event("stale_source", region="0"), NIGHT)[0] == "inhibited"
    assert stage.suppressed(stall(source="kpu-ppwp"), NIGHT) is None
    assert stage.suppressed(event("jump"), NIGHT) is None
    assert suppressor().suppressed(stall(), NIGHT) is None        # no outage open
    off = inhibit_rules(config(alerting={"inhibit_stall_during_outage": False}).alerting)
    assert off == () and suppressor(open_events=[outage], rules=off).suppressed(stall(), NIGHT) is None


def test_an_inhibition_rule_is_data():
    province_stall_holds_regencies = InhibitRule(
        source={"rule": ("stall",), "region": ("32",)}, target={"rule": ("region_stall",)},
        equal=("source",), detail="the province of {region} is stalled")
    stage = suppressor(open_events=[stall(region="32")], rules=(province_stall_holds_regencies,))

    assert stage.suppressed(event("region_stall", region="3201"), NIGHT) == (
        "inhibited", "the province of 3201 is stalled")
    assert stage.suppressed(event("region_stall", region="3201", source="kpu-ppwp"), NIGHT) is None


def test_silences_are_read_again_and_a_failed_read_keeps_the_last():
    configured = Silence(id="night", matcher=Matcher({"region": ("33",)}), comment="planned pause",
                         starts_at=NIGHT - timedelta(hours=1), ends_at=NIGHT + timedelta(hours=1))
    stored: list[list[Silence] | None] = [[Silence(id="cli", matcher=Matcher({"region": ("32",)}),
                                                   ends_at=NIGHT + timedelta(hours=1), origin="runtime")]]
    stage = suppressor(silences=[configured], runtime=lambda: stored[0])

    assert stage.suppressed(stall(region="33"), NIGHT) == ("silenced", "silence night: planned pause")
    assert stage.suppressed(stall(region="32"), NIGHT) is None    # not read yet
    stage.refresh(force=True)
    assert stage.suppressed(stall(region="32"), NIGHT) == ("silenced", "silence cli")
    stored[0] = None                                              # the database cannot be read
    stage.refresh(force=True)
    assert stage.suppressed(stall(region="32"), NIGHT) == ("silenced", "silence cli")


# --- lifecycle --------------------------------------------------------------------------------
def test_the_lifecycle_exports_what_is_open_and_writes_it_through(registry):
    stage = Lifecycle(Metrics(registry))
    ops: list = []
    active = lambda severity: registry.get_sample_value(  # noqa: E731
        "countwatch_alert_active", {"source": SOURCE, "region": "32", "rule": "stall", "severity": severity})

    assert stage.apply(stall(), NIGHT, ops) == NEW and active("warning") == 1
    assert stage.apply(stall(state="escalated", severity="critical"), NIGHT, ops) == ESCALATED
    assert active("warning") is None and active("critical") == 1
    assert [e.severity for e in stage.open_events()] == ["critical"]
    assert stage.apply(stall(state="resolved"), NIGHT, ops) == RESOLVED and active("critical") is None
    assert stage.apply(stall(state="resolved"), NIGHT, ops) == UNKNOWN_RESOLVED
    assert [sql.split()[0] for sql, _ in ops] == ["INSERT", "INSERT", "DELETE"]


# --- outbox and deliver -----------------------------------------------------------------------
class Stages:
    """The stages after grouping, on a real database and the fake Slack."""

    def __init__(self, tmp_path, registry, slack, **alerting):
        self.cfg = config(receivers=WEBHOOK, state_dir=str(tmp_path), environ={"HOOK_URL": slack.webhook_url},
                          alerting=alerting)
        self.metrics = Metrics(registry)
        self.clock = ManualClock(NIGHT)
        self.outbox = Outbox()
        self.writethrough = WriteThrough(tmp_path / "countwatch.db", False, self.metrics, lambda: [])
        self.record = DecisionRecord(self.metrics)
        self.grouper = grouper_of(self.cfg)
        self.open_events: list = []
        self.suppressor = Suppressor(self.cfg.alerting.silences, inhibit_rules(self.cfg.alerting),
                                     lambda: iter(self.open_events), lambda: [])
        self.flusher = Flusher(self.grouper, self.suppressor, self.outbox, self.record, self.metrics, self.cfg)
        notifiers = {r.name: build_notifier(r, self.clock) for r in self.cfg.alerting.receivers}
        alerting = self.cfg.alerting
        self.delivery = Delivery(notifiers, self.outbox, threading.RLock(), self.writethrough, self.record,
                                 self.metrics, self.clock, retry_initial=alerting.retry_initial,
                                 retry_max=alerting.retry_max, give_up_after=alerting.give_up_after)

    def queue(self, *events) -> None:
        route = self.cfg.alerting.effective_routes()[0]
        for e in events:
            self.grouper.join("oncall", route, e, "firing", False, self.clock.now())
        ops: list = []
        self.flusher.flush_due(self.clock.now(), ops, set())
        self.writethrough.commit(ops, "alerts.write")

    def decisions(self) -> list[tuple[str, str, str]]:
        return [(d["action"], d["alert_key"], d["reason"]) for d in self.writethrough.records()["decisions"]]


def test_a_due_incident_is_one_notification_in_the_outbox_and_the_held_back_are_recorded(
        tmp_path, registry, slack):
    stages = Stages(tmp_path, registry, slack)
    stages.open_events.append(event("outage", region="0", source="kpu-ppwp"))
    stages.queue(stall(region="32"), stall(region="33"), stall(region="0", source="kpu-ppwp"))

    rows = stages.outbox.pending()
    assert len(rows) == 1 and [m.key for m in rows[0].notification.members] == [
        "stall/kpu-jabar/32", "stall/kpu-jabar/33"]
    assert stages.decisions() == [
        ("queued", "stall/kpu-jabar/32", "first"), ("grouped", "stall/kpu-jabar/33", "first"),
        ("silenced", "stall/kpu-ppwp/0", "inhibited")]
    assert registry.get_sample_value("countwatch_notifications_total",
                                     {"receiver": "oncall", "result": "grouped"}) == 1


def test_delivery_sends_in_order_and_records_each_send(tmp_path, registry, slack):
    stages = Stages(tmp_path, registry, slack)
    stages.queue(stall(region="32"))
    stages.queue(event("outage", region="0", source="kpu-ppwp", summary="KPU ppwp unreachable"))
    assert [r.notification.cause for r in stages.outbox.pending()] == ["count_stopped", "outage"]

    assert stages.delivery.deliver_next("oncall") == ("acted", None)
    assert stages.delivery.deliver_next("oncall") == ("acted", None)
    assert stages.delivery.deliver_next("oncall") == ("idle", None)
    sent = slack.accepted("webhook")
    assert len(sent) == 2 and "Count in region 32" in sent[0].text and "KPU ppwp unreachable" in sent[1].text
    assert not stages.outbox.pending()
    assert [r["status"] for r in stages.writethrough.records()["outbox"]] == ["sent", "sent"]
    assert stages.decisions()[-2:] == [("sent", "stall/kpu-jabar/32", "first"), ("sent", "outage/kpu-ppwp/0", "first")]


def test_delivery_retries_after_a_transient_failure_and_disables_a_broken_receiver(tmp_path, registry, slack):
    stages = Stages(tmp_path, registry, slack)
    stages.queue(stall(region="32"))
    slack.fail_next("500")

    assert stages.delivery.deliver_next("oncall") == ("acted", None)
    row = stages.outbox.head("oncall")
    assert row.attempts == 1 and row.due_at == NIGHT + timedelta(seconds=10)    # retry_initial
    assert stages.delivery.deliver_next("oncall") == ("wait", row.due_at)

    stages.clock.advance(10)
    slack.fail_next("404")
    assert stages.delivery.deliver_next("oncall") == ("acted", None)
    assert "oncall" in stages.delivery.disabled and stages.outbox.head("oncall") is row   # kept for later
    assert stages.delivery.deliver_next("oncall") == ("idle", None)
    assert registry.get_sample_value("countwatch_receiver_disabled", {"receiver": "oncall"}) == 1
    assert len(slack.requests) == 2


def test_delivery_gives_up_on_a_notification_older_than_give_up_after(tmp_path, registry, slack):
    stages = Stages(tmp_path, registry, slack, give_up_after="1h")
    stages.queue(stall(region="32"))
    stages.clock.advance(3600)

    assert stages.delivery.deliver_next("oncall") == ("acted", None)
    assert slack.requests == [] and not stages.outbox.pending()
    assert [r["status"] for r in stages.writethrough.records()["outbox"]] == ["expired"]
    assert stages.decisions()[-1] == ("failed", "stall/kpu-jabar/32", "expired")
