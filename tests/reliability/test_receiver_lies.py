"""Receivers that lie or redirect (issue 14, items 5 and 7): a Slack webhook's 200 is a send
only when its body says `ok`; a 3xx from any receiver is refused (RedirectRefused: the receiver
is disabled, loudly), and nothing, credentials least of all, reaches the redirect's target."""
from __future__ import annotations

import json

import pytest
from prometheus_client import CollectorRegistry

from alerts.pipeline import AlertPipeline
from monitor.clock import ManualClock
from monitor.metrics import Metrics
from tests.fakes.events import NIGHT, config, stall
from tests.reliability.hostile import ScriptedReceiver

TOKEN = "xoxb-1234-secret-bot-token"
API_KEY = "k3y-secret-value"


def _run(tmp_path, receivers, environ=None):
    cfg = config(receivers=receivers, state_dir=str(tmp_path), environ=environ or {})
    registry = CollectorRegistry()
    pipeline = AlertPipeline(cfg, Metrics(registry), ManualClock(NIGHT), tmp_path / "countwatch.db")
    pipeline.handle([stall()])
    pipeline.tick()
    pipeline.tick()
    return registry


def _count(registry, receiver, result):
    return registry.get_sample_value("countwatch_notifications_total", {"receiver": receiver, "result": result})


@pytest.mark.parametrize("answer, result", [
    (b"invalid_token", "disabled"), (b"no_service", "disabled"), (b"channel_not_found", "disabled"),
    (b"action_prohibited", "disabled"), (b"rollup_error", "retry"), (b"invalid_payload", "failed"),
    (b"<html><body>Welcome to the hotel wifi</body></html>", "failed"), (b"", "failed"), (b"ok", "sent"),
])
def test_a_slack_webhook_200_is_sent_only_when_the_body_is_ok(tmp_path, logs, answer, result):
    with ScriptedReceiver((200, {"Content-Type": "text/plain"}, answer)) as slack:
        registry = _run(tmp_path, [{"name": "oncall", "kind": "slack_webhook",
                                    "url": slack.url("/services/T0/B0/s3cret-path")}])
    assert _count(registry, "oncall", result) >= 1
    assert _count(registry, "oncall", "sent") == (1 if result == "sent" else 0)
    if result != "sent":
        failure = [line for line in logs() if line["event"] in ("notification.failed", "notification.retry")][0]
        code = answer.decode() if answer.isalpha() or b"_" in answer else "unexpected_body"
        said = failure.get("error") or failure.get("detail")
        assert f"HTTP 200 {code}" in said and "hotel" not in said


def _redirecting(kind: str, primary: ScriptedReceiver):
    if kind == "slack_bot":
        return {"name": "r", "kind": "slack_bot", "token": "${BOT_TOKEN}", "channel": "#ops",
                "api_url": primary.url("/api/")}
    if kind == "slack_webhook":
        return {"name": "r", "kind": "slack_webhook", "url": primary.url("/services/T0/B0/s3cret-path")}
    if kind == "webhook":
        return {"name": "r", "kind": "webhook", "url": primary.url("/hook"), "headers": {"X-Api-Key": "${API_KEY}"}}
    return {"name": "r", "kind": "alertmanager", "url": primary.url("")}


@pytest.mark.parametrize("status", [302, 307, 308])
@pytest.mark.parametrize("kind", ["slack_bot", "slack_webhook", "webhook", "alertmanager"])
def test_receivers_never_follow_a_redirect_nor_send_credentials_to_it(tmp_path, logs, kind, status):
    with ScriptedReceiver() as elsewhere:
        with ScriptedReceiver((status, {"Location": elsewhere.url("/collect")}, b"")) as primary:
            registry = _run(tmp_path, [_redirecting(kind, primary)], {"BOT_TOKEN": TOKEN, "API_KEY": API_KEY})
        assert len(primary.requests) == 1
        assert elsewhere.requests == []          # nothing reached the redirect's target
    sent_headers = json.dumps(primary.requests[0][2])
    assert TOKEN in sent_headers or API_KEY in sent_headers or kind in ("slack_webhook", "alertmanager")
    assert _count(registry, "r", "sent") == 0 and _count(registry, "r", "disabled") == 1
    assert registry.get_sample_value("countwatch_receiver_disabled", {"receiver": "r"}) == 1
    failed = [line for line in logs() if line["event"] == "notification.failed"]
    assert failed and f"HTTP {status} redirect refused" in failed[0]["error"]
    assert not [line for line in logs() if line["event"] == "notification.sent"]
    assert TOKEN not in str(logs()) and API_KEY not in str(logs()) and "s3cret-path" not in str(logs())
