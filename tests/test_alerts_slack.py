"""Alerting against a fake Slack (a real HTTP server on loopback): lifecycle, threads, grouping,
content, rate limits, broken receivers, and a Slack outage of ten simulated minutes."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from alerts.pipeline import AlertPipeline
from monitor.clock import ManualClock
from monitor.metrics import Metrics
from tests.fakes.events import NIGHT, config, event, stall


def webhook_receiver(slack, name="oncall"):
    return {"name": name, "kind": "slack_webhook", "url": "${HOOK_URL}"}


def bot_receiver(slack, name="bot"):
    return {"name": name, "kind": "slack_bot", "token": "${BOT_TOKEN}", "channel": "#pemilu-ops",
            "api_url": slack.api_url}


def make(tmp_path, registry, slack, receivers, clock=None, **kwargs):
    environ = {"HOOK_URL": slack.webhook_url, "BOT_TOKEN": slack.token}
    cfg = config(receivers=receivers, state_dir=str(tmp_path), environ=environ, **kwargs)
    clock = clock or ManualClock(NIGHT)
    metrics = Metrics(registry)
    return AlertPipeline(cfg, metrics, clock, tmp_path / "countwatch.db"), clock, metrics


def sample(registry, name, **labels):
    return registry.get_sample_value(name, labels)


def test_one_stall_gives_exactly_one_firing_message_and_one_resolution(tmp_path, registry, slack):
    pipeline, clock, _ = make(tmp_path, registry, slack, [webhook_receiver(slack)])
    pipeline.handle([stall()])
    pipeline.tick()
    for _ in range(5):   # a detector that re-announced the stall every poll would change nothing
        clock.advance(60)
        pipeline.handle([stall(at=clock.now())])
        pipeline.tick()
    clock.advance(60)
    pipeline.handle([stall(state="resolved", at=clock.now())])
    pipeline.tick()
    clock.advance(6 * 3600)   # long after: nothing repeats for a resolved alert
    pipeline.tick()

    sent = slack.accepted("webhook")
    assert len(slack.requests) == len(sent) == 2
    assert sent[0].text.startswith("WARNING: Count in region 32 has not advanced")
    assert sent[1].text.startswith("RESOLVED: Resolved after")
    assert sample(registry, "countwatch_notifications_total", receiver="oncall", result="sent") == 2
    assert sample(registry, "countwatch_outbox_pending") == 0


def test_bot_token_one_message_its_thread_and_one_update(tmp_path, registry, slack):
    pipeline, clock, _ = make(tmp_path, registry, slack, [bot_receiver(slack)])
    pipeline.handle([stall()])
    pipeline.tick()
    clock.advance(1800)
    pipeline.handle([stall(state="resolved", at=clock.now())])
    pipeline.tick()

    posts = slack.accepted("chat.postMessage")
    updates = slack.accepted("chat.update")
    assert len(posts) == 2 and len(updates) == 1 and len(slack.requests) == 3
    root_ts = posts[0].response["ts"]
    assert posts[0].payload.get("thread_ts") is None
    assert posts[1].payload["thread_ts"] == root_ts
    assert updates[0].payload["ts"] == root_ts and updates[0].payload["channel"] == slack.channel_id
    # the channel's one line for the incident now says it is resolved
    assert slack.message(slack.channel_id, root_ts)["text"].startswith("RESOLVED")
    assert all(r.headers["Authorization"] == f"Bearer {slack.token}" for r in slack.requests)


def test_bot_repeats_and_escalation_go_to_the_thread(tmp_path, registry, slack):
    pipeline, clock, _ = make(tmp_path, registry, slack, [bot_receiver(slack)],
                              alerting={"repeat_interval": "1h"})
    pipeline.handle([stall()])
    pipeline.tick()
    clock.advance(3600)          # repeat_interval: one reminder in the thread
    pipeline.tick()
    clock.advance(60)
    pipeline.handle([stall(at=clock.now(), state="escalated", severity="critical")])
    pipeline.tick()

    posts = slack.accepted("chat.postMessage")
    updates = slack.accepted("chat.update")
    root_ts = posts[0].response["ts"]
    assert [p.payload.get("thread_ts") for p in posts] == [None, root_ts, root_ts]
    assert "repeat" in json.dumps(posts[1].payload["blocks"])
    assert posts[2].text.startswith("CRITICAL")
    assert len(updates) == 1 and updates[0].text.startswith("CRITICAL")   # the channel line rose too


def test_stopped_publisher_gives_one_grouped_notification(tmp_path, registry, slack):
    pipeline, clock, _ = make(tmp_path, registry, slack, [webhook_receiver(slack)])
    pipeline.handle([stall(region="0", cause="publisher_stopped"),
                     event("stale_source", region="0", cause="publisher_stopped",
                           summary="KPU's timestamp has not moved since 21:00 WIB")])
    pipeline.tick()
    sent = slack.accepted("webhook")
    assert len(sent) == 1
    assert "the publisher appears to have stopped (stale_source, stall)" in sent[0].text
    blocks = json.dumps(sent[0].payload["blocks"])
    assert "stale_source 0" in blocks and "stall 0" in blocks


def test_four_regions_stalling_in_one_poll_give_one_notification(tmp_path, registry, slack, logs):
    pipeline, clock, _ = make(tmp_path, registry, slack, [webhook_receiver(slack)])
    papua = ["91", "92", "93", "94"]
    pipeline.handle([stall(region=r) for r in papua])      # no `cause`: inferred from the rule
    pipeline.tick()
    sent = slack.accepted("webhook")
    assert len(sent) == 1
    assert "the count stopped advancing in 4 regions: 91, 92, 93, 94" in sent[0].text
    grouped = [line for line in logs() if line["event"] == "notification.grouped"]
    assert sorted(line["alert_key"] for line in grouped) == ["stall/kpu-jabar/92", "stall/kpu-jabar/93",
                                                             "stall/kpu-jabar/94"]
    assert sample(registry, "countwatch_notifications_total", receiver="oncall", result="grouped") == 3
    clock.advance(600)
    pipeline.handle([stall(region=r, state="resolved", at=clock.now()) for r in papua])
    pipeline.tick()
    assert len(slack.accepted("webhook")) == 2
    assert slack.accepted("webhook")[1].text.startswith("RESOLVED")


def test_group_wait_collects_alerts_of_later_polls(tmp_path, registry, slack):
    pipeline, clock, _ = make(tmp_path, registry, slack, [webhook_receiver(slack)],
                              alerting={"group_wait": "30s"})
    pipeline.handle([stall(region="91")])
    pipeline.tick()
    assert slack.requests == []                      # waiting for the rest of the group
    clock.advance(20)
    pipeline.handle([stall(region="92", at=clock.now())])
    pipeline.tick()
    assert slack.requests == []
    clock.advance(10)                                # 30 s after the group opened
    pipeline.tick()
    assert len(slack.accepted("webhook")) == 1
    assert "2 regions: 91, 92" in slack.accepted("webhook")[0].text


def test_message_content_local_time_beside_utc_progress_threshold_links(tmp_path, registry, slack):
    pipeline, clock, _ = make(tmp_path, registry, slack, [webhook_receiver(slack)],
                              alerting={"links": {"grafana": "http://grafana.local/d/cw?var-source={source}&var-region={region}",
                                                  "runbook": "https://wiki.example/runbooks/{rule}"}})
    pipeline.handle([stall()])
    pipeline.tick()
    blocks = json.dumps(slack.accepted("webhook")[0].payload["blocks"])
    assert "66.86% (50,123 of 74,962 TPS reported)" in blocks
    assert "27 Jun 21:00 WIB (14:00 UTC)" in blocks            # last advance
    assert "warning after 45m, critical after 3h (3x the usual gap between updates)" in blocks
    assert "http://grafana.local/d/cw?var-source=kpu-jabar&amp;var-region=32|Grafana" in blocks
    assert "https://wiki.example/runbooks/stall|Runbook" in blocks
    assert "https://pilkada.example/jabar.json|Source document" in blocks
    assert "user:pw" not in blocks and "key=k" not in blocks        # the source URL's credentials


def test_source_text_cannot_inject_mentions_or_links(tmp_path, registry, slack):
    pipeline, clock, _ = make(tmp_path, registry, slack, [webhook_receiver(slack)])
    pipeline.handle([stall(summary="Region <!channel> & <http://evil.example|click me>", region_name="<@U0ADMIN>")])
    pipeline.tick()
    payload = json.dumps(slack.accepted("webhook")[0].payload)
    for raw in ("<!channel>", "<@U0ADMIN>", "<http://evil"):
        assert raw not in payload
    assert "&lt;!channel&gt; &amp; &lt;http://evil.example|click me&gt;" in payload


def test_rate_limit_waits_for_retry_after(tmp_path, registry, slack, logs):
    pipeline, clock, _ = make(tmp_path, registry, slack, [webhook_receiver(slack)])
    slack.fail_next("429", retry_after=30)
    pipeline.handle([stall()])
    pipeline.tick()
    assert [r.status for r in slack.requests] == [429]
    clock.advance(29)
    pipeline.tick()
    assert len(slack.requests) == 1                   # still inside Retry-After
    clock.advance(1)
    pipeline.tick()
    assert [r.status for r in slack.requests] == [429, 200]
    retry = [line for line in logs() if line["event"] == "notification.retry"]
    assert len(retry) == 1 and retry[0]["retry_after"] == 30 and retry[0]["reason"] == "first"
    assert sample(registry, "countwatch_notifications_total", receiver="oncall", result="retry") == 1


@pytest.mark.parametrize("receiver_kind,failure", [("webhook", "invalid_token"), ("webhook", "404"),
                                                   ("webhook", "channel_not_found"), ("bot", "invalid_token"),
                                                   ("bot", "channel_not_found")])
def test_permanent_receiver_errors_disable_it_loudly(tmp_path, registry, slack, logs, receiver_kind, failure):
    receiver = webhook_receiver(slack) if receiver_kind == "webhook" else bot_receiver(slack)
    name = receiver["name"]
    pipeline, clock, _ = make(tmp_path, registry, slack, [receiver])
    slack.fail_next(failure)
    pipeline.handle([stall()])
    pipeline.tick()
    for minute in range(1, 4):                         # no retrying forever
        clock.advance(600)
        pipeline.handle([stall(region=f"9{minute}", at=clock.now())])
        pipeline.tick()
    assert len(slack.requests) == 1
    assert sample(registry, "countwatch_receiver_disabled", receiver=name) == 1
    assert sample(registry, "countwatch_notifications_total", receiver=name, result="disabled") == 1
    assert sample(registry, "countwatch_outbox_pending") == 4      # kept for after the fix
    disabled = [line for line in logs() if line["event"] == "receiver.disabled"]
    assert len(disabled) == 1 and disabled[0]["level"] == "error" and disabled[0]["receiver"] == name


def test_a_bad_payload_fails_that_notification_only(tmp_path, registry, slack):
    pipeline, clock, _ = make(tmp_path, registry, slack, [webhook_receiver(slack)])
    slack.fail_next("invalid_payload")
    pipeline.handle([stall()])
    pipeline.tick()
    clock.advance(120)
    pipeline.handle([stall(state="resolved", at=clock.now())])
    pipeline.tick()
    assert [r.status for r in slack.requests] == [400, 200]
    assert sample(registry, "countwatch_notifications_total", receiver="oncall", result="failed") == 1
    assert sample(registry, "countwatch_receiver_disabled", receiver="oncall") == 0


def test_slack_down_for_ten_minutes_everything_arrives_after_recovery_in_order_exactly_once(
        tmp_path, registry, slack):
    pipeline, clock, _ = make(tmp_path, registry, slack, [webhook_receiver(slack), bot_receiver(slack)],
                              routes=[{"receiver": "oncall"}, {"receiver": "bot"}])
    slack.fail_next("500", times=None)
    script = {0: [stall(region="32")],
              120: [stall(region="91")],                                   # joins the incident
              240: [stall(region="32", state="escalated", severity="critical")],
              360: [event("outage", source="kpu-ppwp", region="0", summary="KPU unreachable", failures=5)],
              480: [stall(region="32", state="resolved"), stall(region="91", state="resolved")]}
    for second in range(0, 600, 30):
        pipeline.handle([replace(ev, at=clock.now()) for ev in script.get(second, [])])   # one poll
        pipeline.tick()
        clock.advance(30)
    assert slack.requests and slack.accepted() == []            # ten minutes of 500s
    slack.recover()
    for _ in range(12):
        pipeline.tick()
        clock.advance(30)
    assert sample(registry, "countwatch_outbox_pending") == 0

    rows = pipeline.records()["outbox"]
    # every notification is one webhook message, or one chat.postMessage (plus an update) for the bot
    for receiver, endpoint in (("oncall", "webhook"), ("bot", "chat.postMessage")):
        queued = [row["id"] for row in rows if row["receiver"] == receiver]
        delivered = [r.notification_id for r in slack.accepted(endpoint)]
        assert len(queued) == 5
        assert delivered == queued                                  # in order, each exactly once
    reasons = [json.loads(row["notification"])["reason"] for row in rows if row["receiver"] == "oncall"]
    assert reasons == ["first", "first", "escalated", "first", "resolved"]
    posts = slack.accepted("chat.postMessage")
    stall_root = posts[0].response["ts"]
    assert [p.payload.get("thread_ts") for p in posts] == [None, stall_root, stall_root, None, stall_root]
    assert [u.payload["ts"] for u in slack.accepted("chat.update")] == [stall_root, stall_root]


def test_correction_is_info_and_pages_nobody_by_default(tmp_path, registry, slack, capsys):
    pipeline, clock, _ = make(tmp_path, registry, slack,
                              [webhook_receiver(slack), {"name": "console", "kind": "console"}])
    pipeline.handle([event("correction", state="observed", severity="info", summary="votes for 01 fell by 12")])
    pipeline.tick()
    assert slack.requests == []
    assert "votes for 01 fell by 12" in capsys.readouterr().out       # the console still shows it


def test_observed_events_are_told_once_each(tmp_path, registry, slack):
    pipeline, clock, _ = make(tmp_path, registry, slack, [webhook_receiver(slack)],
                              alerting={"repeat_interval": "1h"})
    pipeline.handle([event("jump", state="observed", summary="+10,553 stations in one update")])
    pipeline.tick()
    clock.advance(3 * 3600)
    pipeline.tick()
    pipeline.handle([event("jump", state="observed", at=clock.now(), summary="+20 stations")])
    pipeline.tick()
    texts = [r.text for r in slack.accepted("webhook")]
    assert len(texts) == 2 and "+10,553" in texts[0] and "+20 stations" in texts[1]


def test_outage_inhibits_the_stalls_of_its_source_until_it_ends(tmp_path, registry, slack, logs):
    pipeline, clock, _ = make(tmp_path, registry, slack, [webhook_receiver(slack)])
    pipeline.handle([event("outage", region="32", summary="KPU unreachable")])
    pipeline.tick()
    clock.advance(60)
    pipeline.handle([stall(at=clock.now())])
    pipeline.tick()
    assert len(slack.accepted("webhook")) == 1                     # the outage only
    assert any(line["event"] == "notification.silenced" and line["reason"] == "inhibited"
               and line["alert_key"] == "stall/kpu-jabar/32" for line in logs())
    clock.advance(600)
    pipeline.handle([event("outage", state="resolved", region="32", at=clock.now())])
    pipeline.tick()
    clock.advance(60)
    pipeline.tick()
    texts = [r.text for r in slack.accepted("webhook")]
    # the outage's resolution, and the stall that outlived it is finally told
    assert len(texts) == 3 and any(t.startswith("WARNING: Count in region 32") for t in texts[1:])
    assert sample(registry, "countwatch_alert_active", source="kpu-jabar", region="32", rule="stall",
                  severity="warning") == 1
