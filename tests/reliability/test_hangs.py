"""Hangs (issue 14, items 1 to 3): a server that drips its status line and headers one byte
every 0.5 s, forever. Per-read timeouts never fire on it; the wall-clock deadline of
monitor/deadline.py must. The source's poll fails as `timeout` and the outage is told; SIGHUP
during such a poll reloads without waiting for it (the other sources keep being polled);
SIGTERM ends the process while the request is still stuck; a receiver (Slack webhook or bot,
webhook, Alertmanager) that drips is a timed-out notification, retried and logged."""
from __future__ import annotations

import signal
import threading
from datetime import datetime, timezone

import pytest
from prometheus_client import CollectorRegistry

from alerts.pipeline import AlertPipeline
from monitor.clock import WallClock
from monitor.config import parse_config
from monitor.fetch import Fetcher, FetchError
from monitor.metrics import Metrics
from tests.fakes.events import config as alerts_config, stall
from tests.feed import Feed, Reply, wait_until
from tests.reliability.hostile import DripServer, body, province_doc, self_signed
from tests.reliability.procs import DaemonProcess, daemon_toml

CLOSE = {"Connection": "close"}


def _source(name: str, url: str, interval: str, timeout: str) -> str:
    return f"""
[[sources]]
name = "{name}"
kind = "sirekap"
url = "{url}"
region = "32"
interval = "{interval}"
timeout = "{timeout}"
retries = 0
"""


def _config(tmp_path, sources: str) -> str:
    return f"""{daemon_toml(tmp_path / 'state', 'hang-test', tmp_path / 'countwatch.log')}{sources}
"""


def daemon_beside_a_good_source(tmp_path, feed: Feed, name: str, url: str, timeout: str) -> DaemonProcess:
    """A daemon (not started) polling `name` at `url` every second with `timeout`, and a good
    source on `feed` every 500 ms that shows the daemon goes on meanwhile."""
    feed.set("/good.json", Reply(200, body(province_doc(400)), CLOSE))
    config = tmp_path / "countwatch.toml"
    config.write_text(_config(tmp_path, _source(name, url, "1s", timeout)
                              + _source("good", feed.url("/good.json"), "500ms", "1s")))
    return DaemonProcess(config, tmp_path / "countwatch.log")


def stuck_fetcher(url: str, timeout: str) -> Fetcher:
    return Fetcher(parse_config({"sources": [{"name": "stuck", "kind": "sirekap", "url": url, "timeout": timeout,
                                              "retries": 0}]}).sources[0])


def fetch_in_thread(fetcher: Fetcher, url: str) -> list:
    """The fetch runs on; the list gets its result or FetchError when it ends."""
    outcome: list = []

    def fetch():
        try:
            outcome.append(fetcher.fetch(url))
        except FetchError as error:
            outcome.append(error)

    threading.Thread(target=fetch, daemon=True).start()
    return outcome


def receiver_retries(tmp_path, logs, receiver: dict) -> tuple[list[dict], CollectorRegistry]:
    """One stall sent to a receiver that never answers in time: its `notification.retry` lines
    once two timed-out attempts were logged, and the metrics registry."""
    cfg = alerts_config(receivers=[receiver], state_dir=str(tmp_path),
                        alerting={"retry_initial": "1s", "retry_max": "1s"})
    registry = CollectorRegistry()
    pipeline = AlertPipeline(cfg, Metrics(registry), WallClock(), tmp_path / "countwatch.db")
    pipeline.start()
    try:
        pipeline.handle([stall(at=datetime.now(timezone.utc))])
        assert wait_until(lambda: len([line for line in logs() if line["event"] == "notification.retry"]) >= 2,
                          timeout=30), [line["event"] for line in logs()]
    finally:
        pipeline.stop()
    return [line for line in logs() if line["event"] == "notification.retry"], registry


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_source_dripping_its_headers_fails_at_its_timeout(scheme, tmp_path):
    tls = self_signed(tmp_path) if scheme == "https" else None
    with DripServer(0.5, tls=tls) as drip:
        fetcher = stuck_fetcher(drip.url(), "1s")
        if tls is not None:
            fetcher.session.verify = tls[0]      # trust the test's certificate
        outcome = fetch_in_thread(fetcher, drip.url())
        # the drip never ends: only the deadline can end the request
        assert wait_until(lambda: outcome, timeout=30), "the request is still held by the dripping server"
        assert wait_until(lambda: drip.hung_up == 1, timeout=10)
        fetcher.close()
    error = outcome[0]
    assert isinstance(error, FetchError) and error.result == "timeout", error
    assert "no complete answer within the timeout (1s)" in error.detail


def test_the_daemon_reports_the_outage_of_a_dripping_source_and_stops_on_sigterm(tmp_path):
    with DripServer(0.5) as drip, Feed() as feed:
        daemon = daemon_beside_a_good_source(tmp_path, feed, "drip", drip.url(), "1s")
        try:
            daemon.start()
            daemon.wait_for(lambda: daemon.events("poll", source="drip", result="timeout"), what="drip's poll line")
            daemon.wait_for(lambda: daemon.events("detector.event", source="drip", rule="outage", state="firing"),
                            what="drip's outage")
            assert drip.hung_up >= 1
            # SIGTERM while a request to the dripping server is in flight: the process ends
            count = len(drip.requests)
            daemon.wait_for(lambda: len(drip.requests) > count, what="a new request to drip")
            assert daemon.stop(timeout=20) == 0
            assert daemon.events("daemon.stopped")
            assert daemon.events("poll", source="good", result="ok")
            assert not daemon.events("job.error")
        finally:
            daemon.close()


def test_sighup_during_a_stuck_poll_reloads_without_waiting_and_sigterm_still_works(tmp_path):
    with DripServer(0.5) as drip, Feed() as feed:
        feed.set("/good.json", Reply(200, body(province_doc(400)), CLOSE))
        config = tmp_path / "countwatch.toml"
        sources = _source("drip", drip.url(), "1s", "120s") + _source("good", feed.url("/good.json"), "300ms", "1s")
        config.write_text(_config(tmp_path, sources))
        daemon = DaemonProcess(config, tmp_path / "countwatch.log")
        try:
            daemon.start()
            daemon.wait_for(lambda: drip.requests and daemon.events("poll", source="good", result="ok"),
                            what="drip's request in flight, good polled")
            config.write_text(_config(tmp_path, sources + _source("extra", feed.url("/good.json"), "300ms", "1s")))
            daemon.signal(signal.SIGHUP)
            daemon.wait_for(lambda: daemon.events("config.reloaded"), what="config.reloaded")
            assert daemon.events("config.reloaded")[0]["added"] == ["extra"]
            good = len(daemon.events("poll", source="good"))
            daemon.wait_for(lambda: len(daemon.events("poll", source="good")) >= good + 3
                            and daemon.events("poll", source="extra", result="ok"), what="polling after the reload")
            # drip's first request is still held (its 120 s timeout is far off): nothing waited for it
            assert not daemon.events("poll", source="drip") and len(drip.requests) == 1 and drip.hung_up == 0
            assert daemon.stop(timeout=20) == 0
            assert daemon.events("daemon.stopped")
            # the stop cut drip's request: that is not an answer of the source, so no poll line
            assert not daemon.events("poll", source="drip")
            assert not daemon.events("job.error")
        finally:
            daemon.close()


def _dripping(kind: str, drip: DripServer) -> dict:
    if kind == "slack_webhook":
        return {"name": "oncall", "kind": kind, "url": drip.url("/services/T0/B0/secret"), "timeout": "2s"}
    if kind == "slack_bot":
        return {"name": "oncall", "kind": kind, "token": "xoxb-secret", "channel": "#ops", "api_url": drip.url("/api/"),
                "timeout": "2s"}
    return {"name": "oncall", "kind": kind, "url": drip.url("/secret"), "timeout": "2s"}


@pytest.mark.parametrize("kind", ["slack_webhook", "slack_bot", "webhook", "alertmanager"])
def test_a_dripping_receiver_times_out_and_is_retried(tmp_path, logs, kind):
    with DripServer(0.5) as drip:
        retries, registry = receiver_retries(tmp_path, logs, _dripping(kind, drip))
    assert all("timeout" in line["error"] for line in retries), retries
    assert "secret" not in str(retries)
    assert len(drip.requests) >= 2 and drip.hung_up >= 1
    assert registry.get_sample_value("countwatch_notifications_total", {"receiver": "oncall", "result": "retry"}) >= 2


def test_reloads_during_an_elections_passes_cut_nothing(tmp_path, logs):
    """The races of an election share one fetcher and pool: a reload must not close them under
    a race whose pass is still running (every poll stays ok, no job error)."""
    from bench.tree import Election, TreeServer
    from monitor.cli import load_config
    from monitor.daemon import Daemon
    from tests.test_races import _election_toml

    tree = Election.generate_election(shape=(1, 4, 8, 16, 2000), provinces=["32"], progress=0.2)
    # 1 s a document: the job's pass over the five races takes 5 s, a reload's discovery of the
    # races less, and a reload restarts the job at once: each reload lands in a race's pass
    with TreeServer(tree, advance_every=1.0, advance_fraction=0.005, delay=1.0) as server:
        path = tmp_path / "election.toml"
        path.write_text(_election_toml(tmp_path, server.base_url + "/pilkada", *["http://127.0.0.1:9/x"] * 3, depth=1))
        daemon = Daemon(load_config(path, {}), serve_http=False)
        try:
            daemon.start()
            assert wait_until(lambda: all(w.passes >= 1 for w in daemon.watchers), 30)
            for _ in range(2):
                daemon.reload(load_config(path, {}))
            assert wait_until(lambda: all(w.passes >= 2 for w in daemon.watchers), 30)
            before_stop = len(logs())
        finally:
            daemon.stop()
    # (stopping cuts the pass in flight: its polls are the stop's, not the reloads')
    polls = [line for line in logs()[:before_stop] if line["event"] == "poll"]
    assert polls and {line["result"] for line in polls} <= {"ok", "not_modified"}, \
        {(line["result"], line.get("detail")) for line in polls if line["result"] not in ("ok", "not_modified")}
    assert not [line for line in logs() if line["event"] in ("job.error", "config.reload_failed")]
    assert len([line for line in logs() if line["event"] == "config.reloaded"]) == 2
