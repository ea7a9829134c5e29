"""Hangs in the TCP connect and the TLS handshake (issue 14, item 1): a loopback port that takes
the connection and the ClientHello, then drips a ServerHello one byte every 0.5 s for a minute
(or answers nothing). The request's wall-clock deadline covers the handshake as a whole, and
the deadline's watchdog holds the socket from its creation, so a stop cuts a request stuck in
its connect or handshake at once instead of after its timeout.

The bounds below are generous (5x the timeout or more, and far below the server's minute of
dripping): they say that the request ended, not how fast."""
from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest
from prometheus_client import CollectorRegistry

from alerts.pipeline import AlertPipeline
from monitor.clock import WallClock
from monitor.deadline import Deadline
from monitor.fetch import FetchError
from monitor.metrics import Metrics
from tests.fakes.events import config as alerts_config, stall
from tests.feed import Feed, wait_until
from tests.reliability.hostile import HandshakeDripServer, SilentPort
from tests.reliability.test_hangs import (daemon_beside_a_good_source, fetch_in_thread, receiver_retries,
                                          stuck_fetcher)

DRIP_SECONDS = 60.0


@pytest.mark.parametrize("mode", ["drip", "mute"])
def test_a_source_stuck_in_its_tls_handshake_fails_at_its_timeout(mode):
    with HandshakeDripServer(0.5, DRIP_SECONDS, mode) as server:
        fetcher = stuck_fetcher(server.url(), "1s")
        try:
            outcome = fetch_in_thread(fetcher, server.url())
            # 5x the timeout, a twelfth of the drip: only the deadline can have ended it
            assert wait_until(lambda: outcome, timeout=5), "the poll is still held in the TLS handshake"
            assert server.hellos == 1
            # the client left the handshake (closed, not merely timed out in its own head)
            assert wait_until(lambda: server.hung_up == 1, timeout=10)
        finally:
            fetcher.close()
    error = outcome[0]
    assert isinstance(error, FetchError) and error.result == "timeout", error
    assert error.detail == "no complete answer within the timeout (1s)"


@pytest.mark.parametrize("mode", ["drip", "mute"])
def test_a_stop_cuts_a_request_stuck_in_its_tls_handshake_at_once(mode):
    """A source with a long timeout (120 s) stuck in its handshake: closing the fetcher (what
    the daemon does on SIGTERM and on a reload that drops the source) ends the request now."""
    with HandshakeDripServer(0.5, DRIP_SECONDS, mode) as server:
        fetcher = stuck_fetcher(server.url(), "120s")
        outcome = fetch_in_thread(fetcher, server.url())
        assert wait_until(lambda: server.hellos == 1, timeout=10)
        assert not outcome
        fetcher.close()
        assert wait_until(lambda: outcome, timeout=10), "the cut did not reach the TLS handshake"
        assert wait_until(lambda: server.hung_up == 1, timeout=10)
    error = outcome[0]
    assert isinstance(error, FetchError) and error.result == "timeout", error


def test_a_stop_cuts_a_request_stuck_in_its_tcp_connect_at_once():
    """A port whose accept queue is full never completes the connect: a stop ends it, and
    the deadline's watchdog (not only the socket's connect timeout) bounds it."""
    with SilentPort() as port:
        fetcher = stuck_fetcher(port.url(), "120s")
        outcome = fetch_in_thread(fetcher, port.url())
        assert not wait_until(lambda: outcome, timeout=1)
        fetcher.close()
        assert wait_until(lambda: outcome, timeout=10), "the cut did not reach the TCP connect"
    error = outcome[0]
    assert isinstance(error, FetchError) and error.result == "timeout", error


def test_a_deadline_already_passed_never_lets_a_connection_start():
    with HandshakeDripServer(0.5, DRIP_SECONDS) as server:
        fetcher = stuck_fetcher(server.url(), "120s")
        try:
            with Deadline(120) as deadline:
                deadline.cut()
                with pytest.raises(Exception):
                    fetcher.session.get(server.url(), timeout=(120, 120))
            assert server.hellos == 0
        finally:
            fetcher.close()


def test_the_daemon_stops_while_a_source_is_stuck_in_its_tls_handshake(tmp_path):
    with HandshakeDripServer(0.5, DRIP_SECONDS) as server, Feed() as feed:
        daemon = daemon_beside_a_good_source(tmp_path, feed, "stuck", server.url(), "120s")
        try:
            daemon.start()
            daemon.wait_for(lambda: server.hellos >= 1 and daemon.events("poll", source="good", result="ok"),
                            what="stuck's handshake in flight, good polled")
            # SIGTERM with the handshake a minute from its end and the timeout two: the process ends
            assert daemon.stop(timeout=20) == 0
            assert daemon.events("daemon.stopped")
            assert wait_until(lambda: server.hung_up >= 1, timeout=10)
            # the stop cut the request: that is not an answer of the source, so no poll line
            assert not daemon.events("poll", source="stuck")
            assert not daemon.events("job.error")
        finally:
            daemon.close()


@pytest.mark.parametrize("kind", ["slack_webhook", "webhook"])
def test_a_receiver_stuck_in_its_tls_handshake_times_out_and_is_retried(tmp_path, logs, kind):
    with HandshakeDripServer(0.5, DRIP_SECONDS) as server:
        receiver = {"name": "oncall", "kind": kind, "url": server.url("/services/T0/B0/secret"), "timeout": "2s"}
        retries, registry = receiver_retries(tmp_path, logs, receiver)
    assert all("timeout" in line["error"] for line in retries), retries
    assert "secret" not in str(retries)
    assert server.hellos >= 2
    assert not [line for line in logs() if line["event"] == "notification.sent"]
    assert registry.get_sample_value("countwatch_notifications_total", {"receiver": "oncall", "result": "retry"}) >= 2


@pytest.mark.parametrize("kind", ["slack_webhook", "webhook"])
def test_the_alert_pipelines_stop_cuts_a_receiver_stuck_in_its_handshake(tmp_path, kind):
    """The receiver's timeout is a minute; the pipeline's stop gives its senders 30 s. Without
    the cut the sender would still be in the handshake when stop() gave up on it; with it the
    sender has left, the server saw the client hang up, and the notification is still in the
    outbox for the next start (delayed, not dropped)."""
    with HandshakeDripServer(0.5, DRIP_SECONDS) as server:
        receiver = {"name": "oncall", "kind": kind, "url": server.url("/services/T0/B0/secret"), "timeout": "60s"}
        cfg = alerts_config(receivers=[receiver], state_dir=str(tmp_path))
        pipeline = AlertPipeline(cfg, Metrics(CollectorRegistry()), WallClock(), tmp_path / "countwatch.db")
        pipeline.start()
        try:
            pipeline.handle([stall(at=datetime.now(timezone.utc))])
            assert wait_until(lambda: server.hellos == 1, timeout=30)
        finally:
            pipeline.stop(timeout_seconds=30)
        assert not [t for t in threading.enumerate() if t.name == "alerts-send-oncall" and t.is_alive()]
        assert wait_until(lambda: server.hung_up == 1, timeout=10)
    again = AlertPipeline(cfg, Metrics(CollectorRegistry()), WallClock(), tmp_path / "countwatch.db")
    try:
        pending = [row for row in again.records()["outbox"] if row["receiver"] == "oncall"]
        assert len(pending) == 1 and pending[0]["status"] != "sent", pending
    finally:
        again.stop()
