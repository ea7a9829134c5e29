"""Storms and lies (issue 14, items 4 and 5): a receiver's Retry-After is read robustly and
clamped to RETRY_AFTER_MAX_SECONDS, so no answer can leave a notification due now (69 POSTs in
33 s before); a Slack webhook's 200 counts as sent only when its body is `ok`."""
from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
from prometheus_client import CollectorRegistry

from alerts.notifiers.http_errors import RETRY_AFTER_MAX_SECONDS, parse_retry_after
from alerts.pipeline import AlertPipeline
from monitor.clock import WallClock
from monitor.metrics import Metrics
from tests.fakes.events import config, stall
from tests.fakes.webhook import FakeWebhook
from tests.feed import wait_until

NOW = datetime(2024, 2, 22, 16, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("value, seconds", [
    ("30", 30.0), ("0", 0.0), ("1.5", 1.5), ("-5", 0.0), ("1e12", RETRY_AFTER_MAX_SECONDS),
    ("inf", RETRY_AFTER_MAX_SECONDS), ("9" * 400, RETRY_AFTER_MAX_SECONDS), ("nan", None), ("-inf", None),
    ("soon", None), ("", None), ("Thu, 22 Feb 2024 16:00:30 GMT", 30.0),
    ("Wed, 21 Oct 2099 07:28:00 GMT", RETRY_AFTER_MAX_SECONDS), ("Mon, 01 Jan 2001 00:00:00 GMT", 0.0),
    ("Thu, 99 Foo 2024 99:99:99 GMT", None),
])
def test_retry_after_is_read_robustly_and_clamped(value, seconds):
    assert parse_retry_after(value, now=NOW) == seconds


@pytest.mark.parametrize("retry_after", ["1e12", "Wed, 21 Oct 2099 07:28:00 GMT", "99999999999999999999999"])
def test_an_absurd_retry_after_is_one_retry_an_hour_later_not_a_storm(tmp_path, retry_after, logs):
    with FakeWebhook() as hook:
        hook.answer(429, times=1000, headers={"Retry-After": retry_after})
        cfg = config(receivers=[{"name": "hook", "kind": "webhook", "url": hook.url}], state_dir=str(tmp_path))
        registry = CollectorRegistry()
        pipeline = AlertPipeline(cfg, Metrics(registry), WallClock(), tmp_path / "countwatch.db")
        pipeline.start()
        try:
            pipeline.handle([stall(at=datetime.now(timezone.utc))])
            assert wait_until(lambda: [line for line in logs() if line["event"] == "notification.retry"]
                              or len(hook.requests) >= 3, timeout=20)
            time.sleep(2)          # room for a storm to show itself (it sent ~2 a second)
            posts = len(hook.requests)
        finally:
            pipeline.stop()
    assert posts == 1
    retry = [line for line in logs() if line["event"] == "notification.retry"]
    assert len(retry) == 1 and retry[0]["retry_after"] == RETRY_AFTER_MAX_SECONDS
    due = datetime.fromisoformat(retry[0]["retry_at"].replace("Z", "+00:00"))
    assert 3500 < (due - datetime.now(timezone.utc)).total_seconds() <= RETRY_AFTER_MAX_SECONDS
    assert not [line for line in logs() if line["event"] == "alerts.error"]
    assert registry.get_sample_value("countwatch_notifications_total", {"receiver": "hook", "result": "retry"}) == 1
