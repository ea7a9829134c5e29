"""The Daemon on its own: it builds one watcher per source and one scheduler job per watcher
(in one place, at start-up and on reload), says which sources are late, and a reload keeps
the states of the sources that stay and drops the series of those that leave. A small
generated tree on loopback; the alert pipeline is a recording stand-in (alerting has its own
tests)."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from prometheus_client import CollectorRegistry

from bench.tree import Tree, TreeServer
from monitor.clock import ManualClock
from monitor.cli import parse_config
from monitor.daemon import Daemon
from monitor.metrics import Metrics

START = datetime(2024, 2, 14, 13, 0, tzinfo=timezone.utc)


class Alerts:
    def __init__(self):
        self.handled, self.started, self.stopped = [], 0, 0

    def handle(self, events):
        self.handled.extend(events)

    def start(self):
        self.started += 1

    def stop(self, timeout=None):
        self.stopped += 1


def _config(tmp_path, *sources):
    return parse_config({"daemon": {"state_dir": str(tmp_path / "state"), "instance": "t"},
                         "metrics": {"listen": "127.0.0.1:0"},
                         "sources": [{"kind": "sirekap", "rate_limit": 0, "retries": 0, "timeout": "5s",
                                      **source} for source in sources]})


@pytest.fixture
def server():
    with TreeServer(Tree.generate(shape=(2, 2, 2, 2, 20), progress=0.4)) as served:
        yield served


def test_one_watcher_and_one_job_per_source(tmp_path, server):
    config = _config(tmp_path, {"name": "a", "url": server.url("0"), "interval": "60s", "depth": 1},
                     {"name": "b", "url": server.url("11"), "region": "11", "interval": "5m"})
    registry = CollectorRegistry()
    daemon = Daemon(config, ManualClock(START), Metrics(registry), serve_http=False, alerts=Alerts())
    try:
        assert [w.source.name for w in daemon.watchers] == ["a", "b"]
        assert all(w.stop is daemon.stop_event and w.store is daemon.store for w in daemon.watchers)
        daemon.start()
        jobs = {job.id: job.trigger.interval.total_seconds() for job in daemon.scheduler.get_jobs()}
        assert jobs == {"poll:a": 60.0, "poll:b": 300.0}
        assert daemon.alerts.started == 1
    finally:
        daemon.stop()
    assert daemon.alerts.stopped == 1


def test_health_names_the_sources_that_are_late(tmp_path, server):
    config = _config(tmp_path, {"name": "a", "url": server.url("0"), "interval": "60s"},
                     {"name": "b", "url": server.url("11"), "region": "11", "interval": "10m"})
    clock = ManualClock(START)
    daemon = Daemon(config, clock, Metrics(CollectorRegistry()), serve_http=False, alerts=Alerts())
    try:
        daemon.start()
        for watcher in daemon.watchers:       # the first passes, on our clock
            watcher.poll_once()
        assert daemon.health() == (True, "ok")
        clock.advance(3 * 60 + 3 * 10 + 1)     # a's three intervals and its fetch budget
        assert daemon.health() == (False, "late sources: a")
    finally:
        daemon.stop()
    assert daemon.health() == (False, "scheduler not running")


def test_a_reload_rebuilds_watchers_and_jobs_keeping_states(tmp_path, server):
    config = _config(tmp_path, {"name": "a", "url": server.url("0"), "depth": 1},
                     {"name": "b", "url": server.url("11"), "region": "11"})
    registry = CollectorRegistry()
    daemon = Daemon(config, ManualClock(START), Metrics(registry), serve_http=False, alerts=Alerts())
    try:
        for watcher in daemon.watchers:
            watcher.poll_once()
        kept = {region: state.last_at for region, state in daemon.watchers[0].states.items()}
        assert registry.get_sample_value("countwatch_up", {"source": "b"}) == 1
        daemon.reload(_config(tmp_path, {"name": "a", "url": server.url("0"), "depth": 1, "interval": "2m"},
                              {"name": "c", "url": server.url("12"), "region": "12"}))
        assert [w.source.name for w in daemon.watchers] == ["a", "c"]
        assert daemon.watchers[0].source.interval == 120.0
        assert {r: s.last_at for r, s in daemon.watchers[0].states.items()} == kept
        assert daemon.watchers[1].states == {}
        assert registry.get_sample_value("countwatch_up", {"source": "b"}) is None     # b's series left
        daemon.start()
        assert {job.id for job in daemon.scheduler.get_jobs()} == {"poll:a", "poll:c"}
    finally:
        daemon.stop()
