"""The pipeline's stages without Slack's peculiarities: silences, restarts, a failing state
database, metrics, the worker threads on an accelerated clock. Deliveries go to the fake
Slack's webhook or to the console."""
from __future__ import annotations

import json
import sqlite3
import time
from datetime import timedelta


from monitor.wording import duration
from alerts.pipeline import AlertPipeline
from monitor.clock import ManualClock, ScenarioClock
from monitor.metrics import Metrics
from tests.fakes.events import NIGHT, config, event, stall

WEBHOOK = [{"name": "oncall", "kind": "slack_webhook", "url": "${HOOK_URL}"}]


def build(tmp_path, registry, slack, clock=None, db=None, uri=False, receivers=WEBHOOK, **kwargs):
    cfg = config(receivers=receivers, state_dir=str(tmp_path), environ={"HOOK_URL": slack.webhook_url}, **kwargs)
    clock = clock or ManualClock(NIGHT)
    return AlertPipeline(cfg, Metrics(registry), clock, db or tmp_path / "countwatch.db", uri=uri), clock


def value(registry, name, **labels):
    return registry.get_sample_value(name, labels)


def test_a_silence_suppresses_sends_but_not_the_record(tmp_path, registry, slack, logs):
    silences = [{"name": "kpu-maintenance", "match": {"region": "32*"}, "starts": "2018-06-27T21:00:00+07:00",
                 "ends": "2018-06-28T00:00:00+07:00", "comment": "KPU moving data to the central site"}]
    pipeline, clock = build(tmp_path, registry, slack, silences=silences)
    pipeline.handle([stall(region="32"), stall(region="3201"), stall(region="33")])
    pipeline.tick()

    sent = slack.accepted("webhook")
    assert len(sent) == 1 and "Count in region 33" in sent[0].text
    assert "3201" not in json.dumps(sent[0].payload)
    silenced = [d for d in pipeline.records()["decisions"] if d["action"] == "silenced"]
    assert sorted(d["alert_key"] for d in silenced) == ["stall/kpu-jabar/32", "stall/kpu-jabar/3201"]
    assert all("silence kpu-maintenance: KPU moving data" in d["detail"] for d in silenced)
    assert [line["alert_key"] for line in logs() if line["event"] == "notification.silenced"] == [
        "stall/kpu-jabar/32", "stall/kpu-jabar/3201"]
    assert value(registry, "countwatch_notifications_total", receiver="oncall", result="silenced") == 2
    assert value(registry, "countwatch_alert_active", source="kpu-jabar", region="32", rule="stall",
                 severity="warning") == 1

    clock.set(NIGHT + timedelta(hours=2, seconds=-1))   # 23:59:59 WIB: still silenced
    pipeline.tick()
    assert len(slack.accepted("webhook")) == 1
    clock.set(NIGHT + timedelta(hours=2))               # the window ends: still open, so now told
    pipeline.tick()
    assert len(slack.accepted("webhook")) == 2
    update = slack.accepted("webhook")[1]
    assert "3 regions: 32, 3201, 33" in update.text
    blocks = json.dumps(update.payload["blocks"])
    assert "stall 32 [warning, new]" in blocks and "stall 33 [warning, still open]" in blocks


def test_an_alert_that_resolves_while_silenced_is_never_sent(tmp_path, registry, slack):
    silences = [{"match": {"rule": "stall"}, "ends": "2018-06-28T06:00:00+07:00", "comment": "planned pause"}]
    pipeline, clock = build(tmp_path, registry, slack, silences=silences)
    pipeline.handle([stall()])
    clock.advance(600)
    pipeline.handle([stall(state="resolved", at=clock.now())])
    clock.advance(12 * 3600)
    pipeline.tick()
    assert slack.requests == []
    assert not pipeline.incidents
    actions = [(d["action"], d["reason"]) for d in pipeline.records()["decisions"]]
    assert actions == [("silenced", "silenced"), ("skipped", "resolved_before_notified")]


def test_repeat_after_repeat_interval_and_not_before(tmp_path, registry, slack):
    pipeline, clock = build(tmp_path, registry, slack, alerting={"repeat_interval": "2h"})
    pipeline.handle([stall()])
    pipeline.tick()
    clock.advance(7199)
    pipeline.tick()
    assert len(slack.accepted("webhook")) == 1
    clock.advance(1)
    pipeline.tick()
    assert len(slack.accepted("webhook")) == 2
    reasons = [json.loads(r["notification"])["reason"] for r in pipeline.records()["outbox"]]
    assert reasons == ["first", "repeat"]
    # The reminder says how long it has really been, with figures as of now, not the news of
    # two hours ago ("has not advanced for 1h").
    first, reminder = (m.text for m in slack.accepted("webhook"))
    assert first.startswith("WARNING") and "Still open" not in first
    since = stall().since
    assert reminder.startswith("WARNING"), reminder
    assert f"Still open after {duration((NIGHT + timedelta(hours=2) - since).total_seconds())}: " \
           "no new polling stations at kpu-jabar/32 for 3h (since 27 Jun 21:00 WIB (14:00 UTC))" in reminder
    assert "for 1h" not in reminder


def test_one_site_down_is_one_notification_whatever_it_serves(tmp_path, registry, slack):
    """Two contests on KPU's host (ppwp, dpd) lose the site at once: one message naming both;
    a source on another host is its own incident."""
    dpd = {"name": "kpu-dpd", "kind": "sirekap", "url": "https://SIREKAP.example/dpd.json"}
    pipeline, clock = build(tmp_path, registry, slack, more_sources=[dpd])

    def down(source, region="0"):
        return event("outage", "firing", "critical", region, source=source, summary=f"{source} unreachable",
                     cause="outage", failures=3)
    pipeline.handle([down("kpu-ppwp"), down("kpu-dpd"), down("kpu-jabar", "32")])
    pipeline.tick()
    texts = sorted(m.text for m in slack.accepted("webhook"))
    assert len(texts) == 2, texts
    assert texts[0].startswith("CRITICAL: kpu-jabar unreachable"), texts
    assert texts[1].startswith("CRITICAL: kpu-ppwp, kpu-dpd: the source cannot be reached "
                               "(2 series: kpu-ppwp/0, kpu-dpd/0)"), texts


def test_escalation_does_not_wait_for_group_interval(tmp_path, registry, slack):
    pipeline, clock = build(tmp_path, registry, slack, alerting={"group_interval": "10m"})
    pipeline.handle([stall()])
    pipeline.tick()
    clock.advance(30)
    pipeline.handle([stall(region="91", at=clock.now())])      # a new member waits for group_interval
    pipeline.tick()
    assert len(slack.accepted("webhook")) == 1
    pipeline.handle([stall(at=clock.now(), state="escalated", severity="critical")])   # this does not
    pipeline.tick()
    assert len(slack.accepted("webhook")) == 2
    assert slack.accepted("webhook")[1].text.startswith("CRITICAL")
    assert value(registry, "countwatch_alert_active", source="kpu-jabar", region="32", rule="stall",
                 severity="critical") == 1
    assert value(registry, "countwatch_alert_active", source="kpu-jabar", region="32", rule="stall",
                 severity="warning") is None


def test_routes_send_critical_to_oncall_and_everything_to_the_console(tmp_path, registry, slack, capsys):
    receivers = WEBHOOK + [{"name": "console", "kind": "console"}]
    routes = [{"match": {"severity": "critical"}, "receiver": "oncall"}, {"match": {}, "receiver": "console"}]
    pipeline, clock = build(tmp_path, registry, slack, receivers=receivers, routes=routes)
    pipeline.handle([stall()])
    pipeline.tick()
    assert slack.requests == []
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert "[27 Jun 22:00 WIB (15:00 UTC)] WARNING  first" in out
    assert "progress 66.86% (50,123 of 74,962 TPS reported)" in out
    pipeline.handle([stall(state="escalated", severity="critical")])
    pipeline.tick()
    assert len(slack.accepted("webhook")) == 1


def test_restart_keeps_the_incident_the_thread_and_alert_active(tmp_path, slack):
    from prometheus_client import CollectorRegistry
    bot = [{"name": "bot", "kind": "slack_bot", "token": "${HOOK_URL}", "channel": "#ops", "api_url": slack.api_url}]
    slack.token = slack.webhook_url          # the bot's token comes from the same env var here
    first, clock = build(tmp_path, CollectorRegistry(), slack, receivers=bot)
    first.handle([stall()])
    first.tick()
    first.stop()

    registry = CollectorRegistry()
    second, clock = build(tmp_path, registry, slack, receivers=bot, clock=ManualClock(NIGHT + timedelta(minutes=30)))
    assert value(registry, "countwatch_alert_active", source="kpu-jabar", region="32", rule="stall",
                 severity="warning") == 1
    second.handle([stall(at=clock.now())])          # a detector re-announcing after its own restart
    second.tick()
    assert len(slack.requests) == 1
    second.handle([stall(state="resolved", at=clock.now())])
    second.tick()
    posts, updates = slack.accepted("chat.postMessage"), slack.accepted("chat.update")
    root = posts[0].response["ts"]
    assert len(posts) == 2 and posts[1].payload["thread_ts"] == root
    assert len(updates) == 1 and updates[0].payload["ts"] == root
    assert value(registry, "countwatch_alert_active", source="kpu-jabar", region="32", rule="stall",
                 severity="warning") is None


def test_read_only_database_alerting_goes_on_in_memory(tmp_path, registry, slack, logs):
    setup, _ = build(tmp_path, registry, slack)          # creates the tables
    setup.stop()
    from prometheus_client import CollectorRegistry
    registry = CollectorRegistry()
    db = f"file:{tmp_path / 'countwatch.db'}?mode=ro"
    pipeline, clock = build(tmp_path, registry, slack, db=db, uri=True)
    pipeline.handle([stall()])
    pipeline.tick()
    clock.advance(600)
    pipeline.handle([stall(state="resolved", at=clock.now())])
    pipeline.tick()
    assert len(slack.accepted("webhook")) == 2
    assert value(registry, "countwatch_state_errors_total", operation="alerts.write") >= 1
    errors = [line for line in logs() if line["event"] == "state.error"]
    assert len(errors) == 1 and errors[0]["level"] == "error"      # once, not once per write


def test_full_database_then_recovery_catches_the_record_up(tmp_path, registry, slack):
    pipeline, clock = build(tmp_path, registry, slack)
    db = pipeline.writethrough.db
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")
    pipeline.handle([stall(region=str(r), summary="x" * 3000) for r in range(40)])
    pipeline.tick()
    assert len(slack.accepted("webhook")) == 1
    assert value(registry, "countwatch_state_errors_total", operation="alerts.write") >= 1
    assert pipeline.writethrough.dirty
    db.execute("PRAGMA max_page_count = 1073741823")
    pipeline.writethrough.resync_if_due(force=True)
    assert not pipeline.writethrough.dirty
    rows = pipeline.records()["outbox"]
    assert [(r["status"], r["reason"]) for r in rows] == [("sent", "first")]
    assert len(sqlite3.connect(tmp_path / "countwatch.db").execute("SELECT * FROM alert_incidents").fetchall()) == 1


def test_database_that_cannot_be_opened(tmp_path, registry, slack):
    (tmp_path / "not-a-dir").write_text("a file where the state directory should be")
    pipeline, clock = build(tmp_path, registry, slack, db=tmp_path / "not-a-dir" / "countwatch.db")
    pipeline.handle([stall()])
    pipeline.tick()
    assert len(slack.accepted("webhook")) == 1
    assert value(registry, "countwatch_state_errors_total", operation="alerts.open") == 1


def test_workers_deliver_on_an_accelerated_clock(tmp_path, registry, slack):
    """group_wait 30 s of scenario time at speed 720 is ~40 ms of wall time."""
    clock = ScenarioClock(NIGHT, speed=720)
    pipeline, _ = build(tmp_path, registry, slack, clock=clock, alerting={"group_wait": "30s"})
    pipeline.start()
    try:
        pipeline.handle([stall(at=clock.now())])
        deadline = time.monotonic() + 10
        while not slack.accepted("webhook") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(slack.accepted("webhook")) == 1
        pipeline.handle([stall(state="resolved", at=clock.now())])
        assert pipeline.drain(5.0)
    finally:
        pipeline.stop()
    assert [r.text.split(":")[0] for r in slack.accepted("webhook")] == ["WARNING", "RESOLVED"]
    assert value(registry, "countwatch_outbox_pending") == 0


def test_drain_flushes_groups_still_waiting(tmp_path, registry, slack):
    pipeline, clock = build(tmp_path, registry, slack, alerting={"group_wait": "5m"})
    pipeline.handle([stall()])
    assert pipeline.drain(5.0) is True
    assert len(slack.accepted("webhook")) == 1


def test_outbox_age_metric_counts_the_oldest_pending(tmp_path, registry, slack):
    pipeline, clock = build(tmp_path, registry, slack)
    slack.fail_next("500", times=None)
    pipeline.handle([stall()])
    pipeline.tick()
    clock.advance(90)
    pipeline.tick()
    assert value(registry, "countwatch_outbox_pending") == 1
    assert value(registry, "countwatch_outbox_oldest_pending_age_seconds") == 90
    slack.recover()
    clock.advance(60)
    pipeline.tick()
    assert value(registry, "countwatch_outbox_pending") == 0
    assert value(registry, "countwatch_outbox_oldest_pending_age_seconds") == 0


def test_by_default_slack_down_for_two_days_delays_the_alert_and_loses_nothing(tmp_path, registry, slack):
    pipeline, clock = build(tmp_path, registry, slack)
    slack.fail_next("500", times=None)
    pipeline.handle([stall()])
    for _ in range(48 * 6):                      # 48 hours, a tick every 10 minutes (retry_max)
        pipeline.tick()
        clock.advance(600)
    assert slack.accepted("webhook") == []
    # One row: the 4-hourly reminders do not pile up behind a message not yet delivered.
    assert value(registry, "countwatch_outbox_pending") == 1
    # queued at the first tick after group_wait (600 s in), waiting ever since
    assert value(registry, "countwatch_outbox_oldest_pending_age_seconds") == 48 * 3600 - 600
    slack.recover()
    clock.advance(600)
    pipeline.tick()
    (sent,) = slack.accepted("webhook")
    assert sent.text.startswith("WARNING")
    assert value(registry, "countwatch_outbox_pending") == 0
    assert not value(registry, "countwatch_notifications_total", receiver="oncall", result="expired")


def test_unsent_notifications_expire_after_give_up_after(tmp_path, registry, slack, logs):
    pipeline, clock = build(tmp_path, registry, slack, alerting={"give_up_after": "1h"})
    slack.fail_next("500", times=None)
    pipeline.handle([stall()])
    for _ in range(61):
        pipeline.tick()
        clock.advance(60)
    pipeline.tick()
    assert value(registry, "countwatch_notifications_total", receiver="oncall", result="expired") == 1
    assert value(registry, "countwatch_outbox_pending") == 0
    assert [r["status"] for r in pipeline.records()["outbox"]] == ["expired"]
    assert any(line["event"] == "notification.failed" and line["reason"] == "expired" for line in logs())


def test_event_for_an_unknown_source_and_unrouted_info_do_not_break_handle(tmp_path, registry, slack):
    pipeline, clock = build(tmp_path, registry, slack)
    pipeline.handle([event("jump", state="observed", severity="info"),
                     stall(state="resolved"),                                   # never opened
                     event("stall", source="elsewhere", summary="unknown source")])
    pipeline.tick()
    assert len(slack.accepted("webhook")) == 1
    assert "unknown source" in slack.accepted("webhook")[0].text


def test_backoff_is_clock_time_but_retry_after_is_wall_time():
    from alerts.outbox import backoff
    # on wall time: 10 s, 20 s, 40 s, ... capped
    assert [backoff(n, 10, 60, 1.0, None).total_seconds() for n in (1, 2, 3, 4, 5)] == [10, 20, 40, 60, 60]
    # at speed 720 Slack's "Retry-After: 30" is still 30 s of Slack's (wall) time: 6 h of scenario time
    assert backoff(1, 10, 60, 720.0, 30).total_seconds() == 30 * 720
    # and an accelerated clock never retries a real receiver sooner than once a wall second
    assert backoff(1, 10, 60, 720.0, None).total_seconds() == 720


def test_only_an_escalation_that_raises_the_incident_skips_group_interval(tmp_path, registry, slack):
    pipeline, clock = build(tmp_path, registry, slack, alerting={"group_interval": "5m"})
    pipeline.handle([stall(region="91"), stall(region="92")])
    pipeline.tick()
    clock.advance(60)
    pipeline.handle([stall(region="91", at=clock.now(), state="escalated", severity="critical")])
    pipeline.tick()
    assert len(slack.accepted("webhook")) == 2                   # warning -> critical: at once
    clock.advance(60)
    pipeline.handle([stall(region="92", at=clock.now(), state="escalated", severity="critical")])
    pipeline.tick()
    assert len(slack.accepted("webhook")) == 2                   # already told critical: it waits
    clock.advance(239)
    pipeline.tick()
    assert len(slack.accepted("webhook")) == 2
    clock.advance(1)                                             # 5 min after the last message
    pipeline.tick()
    assert len(slack.accepted("webhook")) == 3
    assert [json.loads(r["notification"])["reason"] for r in pipeline.records()["outbox"]] == [
        "first", "escalated", "escalated"]


def test_a_partial_resolution_names_what_is_still_wrong_first(tmp_path, registry, slack):
    pipeline, clock = build(tmp_path, registry, slack)
    pipeline.handle([stall(region="91"), stall(region="92"), stall(region="93")])
    pipeline.tick()
    clock.advance(120)
    pipeline.handle([stall(region="92", state="resolved", at=clock.now())])
    pipeline.tick()
    update = slack.accepted("webhook")[1].text
    assert update.startswith("WARNING: kpu-jabar: the count stopped advancing in 2 regions: 91, 93; resolved: 92")
