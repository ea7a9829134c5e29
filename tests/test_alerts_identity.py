"""One incident identity from the first event to every receiver (issue 13): the id is derived
from the group and when the incident began, so two replicas with their own databases, the
Slack webhook, the Slack bot, the console, the generic webhook and Alertmanager all carry the
same 12 characters, and anyone holding the first detector.event line can recompute it."""
from __future__ import annotations

import json
from datetime import timedelta

from alerts.matching import cause_of
from alerts.notification import incident_id
from alerts.notifiers.alertmanager import AlertmanagerNotifier
from alerts.pipeline import AlertPipeline
from monitor.clock import ManualClock
from monitor.metrics import Metrics
from prometheus_client import CollectorRegistry
from tests.fakes.events import NIGHT, config, event, stall
from tests.fakes.webhook import FakeWebhook


def _pipeline(tmp_path, name, slack, hook):
    receivers = [{"name": "oncall", "kind": "slack_webhook", "url": "${HOOK_URL}"},
                 {"name": "bot", "kind": "slack_bot", "token": "${BOT_TOKEN}", "channel": "#ops",
                  "api_url": slack.api_url},
                 {"name": "console", "kind": "console"},
                 {"name": "hook", "kind": "webhook", "url": hook.url}]
    routes = [{"match": {}, "receiver": r["name"]} for r in receivers]
    cfg = config(receivers=receivers, routes=routes, state_dir=str(tmp_path / name),
                 environ={"HOOK_URL": slack.webhook_url, "BOT_TOKEN": slack.token})
    return AlertPipeline(cfg, Metrics(CollectorRegistry()), ManualClock(NIGHT), tmp_path / f"{name}.db")


def test_every_receiver_and_every_replica_carry_the_same_derived_id(tmp_path, slack, logs, capsys):
    first = stall()
    with FakeWebhook() as hook:
        replicas = [_pipeline(tmp_path, name, slack, hook) for name in ("a", "b")]
        for pipeline in replicas:
            pipeline.handle([first, stall(region="3204")])
            pipeline.tick()
        expected = incident_id((first.source, cause_of(first)), first.since)
        assert len(expected) == 12

        webhook = slack.accepted("webhook")
        assert len(webhook) == 2
        for request in webhook:
            assert f"(incident {expected})" in request.payload["text"]
            assert f"incident {expected}" in json.dumps(request.payload["blocks"])
        posted = slack.accepted("chat.postMessage")
        assert len(posted) == 2
        assert all(p.payload["metadata"]["event_payload"]["incident"] == expected for p in posted)
        assert [r.json["incident"] for r in hook.requests] == [expected, expected]
        assert capsys.readouterr().out.count(f"| incident {expected}") == 2
        lines = [line for line in logs() if line["event"].startswith("notification.")]
        assert lines and {line["incident"] for line in lines} == {expected}
        # one incident.opened line per replica (the other receivers share the id), next to the
        # alert that opened it, with what the id is derived from
        opened = [line for line in logs() if line["event"] == "incident.opened"]
        assert [(o["incident"], o["alert_key"], o["group"]) for o in opened] == [
            (expected, "stall/kpu-jabar/32", ["kpu-jabar", cause_of(first)])] * 2
        assert opened[0]["began"] == "2018-06-27T14:00:00Z"

        notification = replicas[0].records()["outbox"][0]
        assert notification["incident"] == expected


def test_the_alertmanager_id_is_an_annotation_so_replicas_still_dedup_on_labels(tmp_path):
    from alerts.notification import Member, Notification
    cfg = config(receivers=[{"name": "am", "kind": "alertmanager", "url": "http://127.0.0.1:9"}],
                 routes=[{"match": {}, "receiver": "am"}])
    notifier = AlertmanagerNotifier(cfg.alerting.receivers[0], ManualClock(NIGHT))
    member = Member(stall(), "first")
    notification = Notification(id="n1", receiver="am", reason="first", status="firing", severity="warning",
                                source="kpu-jabar", cause=cause_of(member.event), incident="abc123def456",
                                members=(member,), created_at=NIGHT, opened_at=NIGHT)
    alert = notifier.alerts(notification)[0]
    assert alert["annotations"]["incident"] == "abc123def456"
    assert alert["annotations"]["region_name"] == "32"             # the code when no name is known
    assert "incident" not in alert["labels"]


def test_a_refired_alert_opens_a_new_incident_with_a_new_id(tmp_path, slack):
    cfg = config(receivers=[{"name": "oncall", "kind": "slack_webhook", "url": "${HOOK_URL}"}],
                 state_dir=str(tmp_path), environ={"HOOK_URL": slack.webhook_url})
    clock = ManualClock(NIGHT)
    pipeline = AlertPipeline(cfg, Metrics(CollectorRegistry()), clock, tmp_path / "cw.db")
    pipeline.handle([stall()])
    pipeline.tick()
    clock.advance(600)
    pipeline.handle([stall(state="resolved", at=clock.now())])
    pipeline.tick()
    clock.advance(3600)
    again = event("stall", at=clock.now(), since=clock.now() - timedelta(minutes=50))
    pipeline.handle([again])
    pipeline.tick()
    ids = [json.loads(json.dumps(r.payload))["text"].rsplit("(incident ", 1)[1].rstrip(")")
           for r in slack.accepted("webhook")]
    assert len(ids) == 3 and ids[0] == ids[1] != ids[2]
    assert ids[2] == incident_id(("kpu-jabar", cause_of(again)), again.since)
