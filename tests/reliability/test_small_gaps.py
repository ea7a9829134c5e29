"""The smaller gaps of issue 14, item 18: /metrics serves /metrics and /healthz only (404
otherwise) and at most MAX_HTTP_CLIENTS connections at once (688 threads under a slow-client
flood before); a json feed that lists a candidate (or a child) twice is a schema failure, not
a silent last-wins; a child code has a length cap."""
from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from monitor.clock import WallClock
from monitor.config import parse_config
from monitor.detectors import Judge
from monitor.metrics import MAX_HTTP_CLIENTS, Metrics, metrics_app, serve_metrics
from monitor.poll import SourceWatcher
from tests.feed import Feed, Reply, wait_until

FLOOD = 200


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_metrics_serves_two_paths_and_a_bounded_number_of_clients(registry):
    metrics = Metrics(registry)
    metrics.up.labels(source="kpu").set(1)
    server, _ = serve_metrics("127.0.0.1:0", metrics_app(registry, lambda: (True, "ok")))
    base = f"http://127.0.0.1:{server.server_port}"
    flood: list[socket.socket] = []
    try:
        assert _get(base + "/metrics")[0] == 200 and 'countwatch_up{source="kpu"} 1.0' in _get(base + "/metrics")[1]
        assert _get(base + "/healthz") == (200, "ok\n")
        for path in ("/", "/metrics/../etc/passwd", "/admin", "/favicon.ico", "/healthz/x", "/metricsx"):
            status, text = _get(base + path)
            assert status == 404 and "countwatch_" not in text, (path, status)

        threads_before = threading.active_count()
        for _ in range(FLOOD):                  # slow clients: connect, say nothing
            client = socket.create_connection(("127.0.0.1", server.server_port), timeout=5)
            flood.append(client)
        wait_until(lambda: threading.active_count() - threads_before >= MAX_HTTP_CLIENTS, timeout=10)
        time.sleep(1)                           # room for more threads to show themselves
        assert threading.active_count() - threads_before <= MAX_HTTP_CLIENTS
        # the connections beyond the cap were closed at once, not queued
        refused = 0
        for client in flood:
            client.settimeout(0.05)
            try:
                refused += client.recv(1) == b""
            except (socket.timeout, OSError):
                pass
        assert refused >= FLOOD - MAX_HTTP_CLIENTS - 5, refused
    finally:
        for client in flood:
            client.close()
    try:
        # the flood gone, scrapes work again
        assert wait_until(lambda: _get(base + "/metrics")[0] == 200, timeout=20)
    finally:
        server.shutdown()
        server.server_close()


MAPPING = {"reported": "progress.in", "total": "progress.of", "votes": "candidates",
           "children": "regions", "child_votes": "tally"}


def _poll(feed_doc: dict) -> dict[str, float]:
    with Feed() as feed:
        feed.set("/feed.json", Reply(200, json.dumps(feed_doc).encode()))
        config = parse_config({"sources": [{"name": "feed", "kind": "json", "url": feed.url("/feed.json"),
                                            "mapping": MAPPING, "retries": 0}]})
        metrics = Metrics()
        watcher = SourceWatcher(config.sources[0], Judge(config), metrics, WallClock())
        watcher.poll_once()
        watcher.close()
    results = {}
    for family in metrics.registry.collect():
        if family.name == "countwatch_polls":
            results = {s.labels["result"]: s.value for s in family.samples if s.name.endswith("_total") and s.value}
    return results


@pytest.mark.parametrize("doc", [
    {"progress": {"in": 5, "of": 10}, "candidates": [["A", 10], ["B", 7], ["A", 99]]},
    {"progress": {"in": 5, "of": 10}, "candidates": [["A", 10]], "regions": [["11", {"tally": [["A", 1]]}],
                                                                              ["11", {"tally": [["A", 2]]}]]},
    {"progress": {"in": 5, "of": 10}, "candidates": [["A", 10]], "regions": [["11", {"tally": [["A", 1], ["A", 5]]}]]},
])
def test_a_json_feed_listing_a_key_twice_is_a_schema_failure(doc):
    assert _poll(doc) == {"schema": 1.0}


def test_a_json_feed_child_code_has_a_length_cap():
    ok = {"progress": {"in": 5, "of": 10}, "candidates": [["A", 10]], "regions": [["x" * 64, {"tally": [["A", 1]]}]]}
    assert _poll(ok) == {"ok": 1.0}
    long = {"progress": {"in": 5, "of": 10}, "candidates": [["A", 10]], "regions": [["x" * 65, {"tally": [["A", 1]]}]]}
    assert _poll(long) == {"schema": 1.0}
    huge = {"progress": {"in": 5, "of": 10}, "candidates": [["A", 10]], "regions": {"7" * 100_000: {"tally": None}}}
    assert _poll(huge) == {"schema": 1.0}
