"""What /metrics shows equals the table in monitor/metrics.py, and the known label sets
exist at start-up (before any poll)."""
from __future__ import annotations

import urllib.request

from prometheus_client import generate_latest

from monitor.metrics import METRICS, PREFIX, Metrics, exposition_names, metrics_app, serve_metrics
from monitor.model import POLL_RESULTS

DESIGN_CORE = {  # DESIGN.md's core metric names: dashboards and rules depend on them
    "up", "polls_total", "poll_duration_seconds", "last_success_timestamp_seconds", "stations",
    "stations_reported", "progress_ratio", "votes", "source_published_timestamp_seconds",
    "last_advance_timestamp_seconds", "stall_threshold_seconds", "alert_active", "anomalies_total",
    "notifications_total", "outbox_pending",
}


def test_exposition_equals_table(registry):
    metrics = Metrics(registry)
    metrics.init_source("kpu")
    declared = {family.name + ("_total" if family.type == "counter" else "") for family in registry.collect()}
    assert declared == exposition_names()
    assert {PREFIX + n for n in DESIGN_CORE} <= declared
    # every sample /metrics shows belongs to a declared family (no stray or _created series)
    text = generate_latest(registry).decode()
    samples = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    allowed = declared | {n + suffix for n in declared for suffix in ("_bucket", "_count", "_sum")}
    assert samples and samples <= allowed


def test_every_metric_has_help_and_unit_conventions():
    for spec in METRICS:
        assert spec.help and spec.help.endswith(".")
        assert not spec.name.endswith("_total"), "client_python adds _total to counters"
        if "timestamp" in spec.name or "duration" in spec.name or spec.name.endswith("age"):
            assert spec.name.endswith("_seconds"), spec.name


def test_known_label_sets_created_at_start(registry):
    metrics = Metrics(registry)
    metrics.init_source("kpu")
    for result in POLL_RESULTS:
        assert registry.get_sample_value("countwatch_polls_total", {"source": "kpu", "result": result}) == 0
    assert registry.get_sample_value("countwatch_up", {"source": "kpu"}) == 0


def test_http_endpoint_serves_metrics_healthz_and_basic_auth(registry):
    metrics = Metrics(registry)
    metrics.init_source("kpu")
    health = {"ok": (True, "ok")}
    server, _ = serve_metrics("127.0.0.1:0", metrics_app(registry, lambda: health["ok"]))
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        text = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
        assert 'countwatch_up{source="kpu"} 0.0' in text
        assert urllib.request.urlopen(base + "/healthz", timeout=5).status == 200
        health["ok"] = (False, "late sources: kpu")
        try:
            urllib.request.urlopen(base + "/healthz", timeout=5)
            raise AssertionError("expected 503")
        except urllib.error.HTTPError as error:
            assert error.code == 503 and b"late sources" in error.read()
    finally:
        server.shutdown()
        server.server_close()
    server, _ = serve_metrics("127.0.0.1:0", metrics_app(registry, lambda: (True, "ok"), ("prom", "s3cret")))
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        try:
            urllib.request.urlopen(base + "/metrics", timeout=5)
            raise AssertionError("expected 401")
        except urllib.error.HTTPError as error:
            assert error.code == 401
        request = urllib.request.Request(base + "/metrics", headers={"Authorization": "Basic cHJvbTpzM2NyZXQ="})
        assert b"countwatch_up" in urllib.request.urlopen(request, timeout=5).read()
    finally:
        server.shutdown()
        server.server_close()
