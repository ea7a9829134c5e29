"""Credentials never leak: the bot token, the webhook URLs and webhook header secrets appear in
no log line (at debug level, through failures, rate limits and a disabled receiver), no
metric, no outbox or decision row (the raw database files), and nothing printed."""
from __future__ import annotations

import io
from prometheus_client import generate_latest

from alerts.pipeline import AlertPipeline
from monitor.clock import ManualClock
from monitor.logs import configure_logging
from monitor.metrics import Metrics
from tests.conftest import free_port
from tests.fakes import FakeSlack
from tests.fakes.events import NIGHT, config, stall
from tests.fakes.webhook import FakeWebhook

HOOK_SECRET = "hk-5ecret-path-0f-the-hook"
HEADER_SECRET = "hdr-5ecret-bearer-value"
DEAD_SECRET = "dead-5ecret-in-a-refused-url"


def test_token_and_webhook_urls_appear_in_no_log_metric_outbox_or_output(tmp_path, registry, capsys):
    log_buffer = io.StringIO()
    configure_logging("json", stream=log_buffer, level="debug", instance="test")
    with FakeSlack() as slack, FakeWebhook(path=f"/hooks/{HOOK_SECRET}") as hook:
        environ = {"SLACK_WEBHOOK_URL": slack.webhook_url, "SLACK_BOT_TOKEN": slack.token,
                   "HOOK_URL": hook.url, "HOOK_TOKEN": HEADER_SECRET,
                   "DEAD_URL": f"http://127.0.0.1:{free_port()}/{DEAD_SECRET}"}
        receivers = [
            {"name": "oncall", "kind": "slack_webhook", "url": "${SLACK_WEBHOOK_URL}"},
            {"name": "bot", "kind": "slack_bot", "token": "${SLACK_BOT_TOKEN}", "channel": "#ops",
             "api_url": slack.api_url},
            {"name": "hook", "kind": "webhook", "url": "${HOOK_URL}",
             "headers": {"Authorization": "Bearer ${HOOK_TOKEN}"}},
            {"name": "dead", "kind": "webhook", "url": "${DEAD_URL}"},
            {"name": "console", "kind": "console"},
        ]
        cfg = config(receivers=receivers, state_dir=str(tmp_path), environ=environ)
        clock = ManualClock(NIGHT)
        pipeline = AlertPipeline(cfg, Metrics(registry), clock, tmp_path / "countwatch.db")
        slack.fail_next("500", times=2)
        slack.fail_next("429", retry_after=5)
        hook.answer(503)
        pipeline.handle([stall()])
        for _ in range(6):
            pipeline.tick()
            clock.advance(30)
        slack.fail_next("invalid_token", endpoint="chat.postMessage")
        pipeline.handle([stall(region="91", at=clock.now()), stall(state="resolved", at=clock.now())])
        for _ in range(6):
            pipeline.tick()
            clock.advance(30)
        pipeline.drain(0.5)
        assert hook.requests[-1].headers["Authorization"] == f"Bearer {HEADER_SECRET}"   # it was used
        assert any(r.status == 200 for r in slack.requests if r.endpoint == "webhook")
        secrets = [slack.webhook_url, slack.webhook_secret, slack.token, hook.url, HOOK_SECRET,
                   HEADER_SECRET, DEAD_SECRET]
        records = repr(pipeline.records())
        pipeline.stop()

    logs = log_buffer.getvalue()
    assert '"event": "receiver.disabled"' in logs and '"event": "notification.retry"' in logs
    assert "ConnectionError" in logs                        # the dead hook failed, and said how
    metrics = generate_latest(registry).decode()
    printed = capsys.readouterr()
    database = b"".join(p.read_bytes() for p in tmp_path.glob("countwatch.db*"))
    shown = repr(cfg) + str(cfg.alerting.receivers)
    for secret in secrets:
        for where, text in (("logs", logs), ("metrics", metrics), ("outbox/decisions", records),
                            ("stdout", printed.out), ("stderr", printed.err), ("config repr", shown)):
            assert secret not in text, f"a secret leaked into {where}"
        assert secret.encode() not in database, "a secret leaked into the state database"
