"""The generic webhook and Alertmanager receivers: a recording loopback endpoint, and the real
Alertmanager (Debian's binary) for the API v2 path."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from prometheus_client import CollectorRegistry

from alerts.pipeline import AlertPipeline
from monitor.clock import ManualClock
from monitor.metrics import Metrics
from tests.fakes.events import NIGHT, config, stall
from tests.fakes.webhook import FakeWebhook
from tests.servers import have_binary, start_alertmanager


def pipeline_for(tmp_path, receivers, clock):
    cfg = config(receivers=receivers, state_dir=str(tmp_path), environ={"TOKEN": "t0ken"})
    registry = CollectorRegistry()
    return AlertPipeline(cfg, Metrics(registry), clock, tmp_path / "countwatch.db"), registry


def test_generic_webhook_posts_the_notification_with_its_idempotency_key(tmp_path):
    with FakeWebhook() as hook:
        receivers = [{"name": "hook", "kind": "webhook", "url": hook.url,
                      "headers": {"Authorization": "Bearer ${TOKEN}"}}]
        clock = ManualClock(NIGHT)
        pipeline, registry = pipeline_for(tmp_path, receivers, clock)
        hook.answer(503)
        pipeline.handle([stall(), stall(region="91")])
        pipeline.tick()
        clock.advance(10)
        pipeline.tick()
    assert len(hook.requests) == 2                        # a 503, then the retry
    body = hook.requests[1].json
    assert hook.requests[1].headers["Idempotency-Key"] == body["idempotency_key"] == body["id"]
    assert hook.requests[0].json["id"] == body["id"]      # the same notification, retried
    assert hook.requests[1].headers["Authorization"] == "Bearer t0ken"
    assert body["reason"] == "first" and body["status"] == "firing" and body["cause"] == "count_stopped"
    assert [m["key"] for m in body["members"]] == ["stall/kpu-jabar/32", "stall/kpu-jabar/91"]
    assert body["members"][0]["event"]["details"]["stations_reported"] == 50123
    assert "2 regions" in body["headline"]
    assert registry.get_sample_value("countwatch_notifications_total", {"receiver": "hook", "result": "retry"}) == 1


def test_generic_webhook_404_disables_it(tmp_path):
    with FakeWebhook() as hook:
        pipeline, registry = pipeline_for(tmp_path, [{"name": "hook", "kind": "webhook", "url": hook.url}],
                                          ManualClock(NIGHT))
        hook.answer(404)
        pipeline.handle([stall()])
        pipeline.tick()
        pipeline.tick()
    assert len(hook.requests) == 1
    assert registry.get_sample_value("countwatch_receiver_disabled", {"receiver": "hook"}) == 1


@pytest.mark.servers
@pytest.mark.skipif(not have_binary("prometheus-alertmanager"), reason="Alertmanager not installed (make servers)")
def test_alertmanager_receives_firing_then_resolved(tmp_path):
    am_config = "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n"
    with start_alertmanager(am_config) as am:
        clock = ManualClock(datetime.now(timezone.utc))   # Alertmanager judges endsAt on wall time
        receivers = [{"name": "am", "kind": "alertmanager", "url": f"http://127.0.0.1:{am.port}"}]
        pipeline, _ = pipeline_for(tmp_path, receivers, clock)
        pipeline.handle([stall(at=clock.now())])
        pipeline.tick()
        alerts = am.wait_until(lambda: am.alerts(active=True), what="the stall alert in Alertmanager")
        assert len(alerts) == 1
        labels = alerts[0]["labels"]
        assert labels["alertname"] == "stall" and labels["source"] == "kpu-jabar" and labels["region"] == "32"
        assert labels["severity"] == "warning" and labels["cause"] == "count_stopped"
        assert "50,123 of 74,962" in alerts[0]["annotations"]["description"]
        pipeline.handle([stall(state="resolved", at=clock.now())])
        clock.advance(60)
        pipeline.tick()
        am.wait_until(lambda: not am.alerts(active=True), what="the alert resolved")
