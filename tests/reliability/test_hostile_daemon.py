"""Hostile sources inside a running daemon: each source has its own scheduler worker, so a
source that hangs, drips or floods never delays the others. Every source, hostile or not,
keeps completing passes; the healthy one completes several for each pass of one that holds
a request for its whole time budget; resident memory stays bounded."""
from __future__ import annotations

import io
from collections import Counter

from monitor.clock import WallClock
from monitor.cli import parse_config
from monitor.daemon import Daemon
from monitor.logs import configure_logging
from monitor.metrics import Metrics
from tests.feed import Feed, Reply, wait_until
from tests.reliability.hostile import SilentPort, StreamServer, body, log_lines, province_doc, rss_bytes

GOOD = body(province_doc(400))
RSS_GROWTH_BOUND = 150 * 1000**2     # generous: four 4 MB bodies a pass, freed each time


def test_every_source_keeps_being_polled_while_others_misbehave(tmp_path, registry):
    logs = io.StringIO()
    configure_logging("json", stream=logs, level="info", instance="reliability")
    with Feed() as feed, StreamServer() as streams, SilentPort() as silent:
        feed.set("/good.json", Reply(200, GOOD))
        feed.set("/hang.json", Reply(200, GOOD, delay=30))
        feed.set("/drip.json", Reply(200, GOOD, drip=0.05))
        feed.set("/loop.json", Reply(302, b"", {"Location": "/loop.json"}))
        feed.set("/503.json", Reply(503, b"<html>down</html>", {"Content-Type": "text/html"}))
        urls = {"healthy": feed.url("/good.json"), "hang": feed.url("/hang.json"), "drip": feed.url("/drip.json"),
                "loop": feed.url("/loop.json"), "down": feed.url("/503.json"), "silent": silent.url(),
                "endless": streams.url("/endless"), "bomb": streams.url("/gzip-bomb")}
        config = parse_config({
            "daemon": {"state_dir": str(tmp_path / "state")},
            "sources": [{"name": name, "kind": "sirekap", "url": url, "region": "32",
                         "interval": "200ms", "timeout": "500ms", "retries": 0, "max_body": "4MB", "rate_limit": 0}
                        for name, url in urls.items()],
        })
        daemon = Daemon(config, WallClock(), Metrics(registry), serve_http=False)
        passes = {w.source.name: w for w in daemon.watchers}
        rss_before = rss_bytes()
        daemon.start()
        try:
            assert wait_until(lambda: all(w.passes >= 3 for w in passes.values()), timeout=60), \
                {name: w.passes for name, w in passes.items()}
            rss_after = rss_bytes()
            healthy, hang = passes["healthy"].passes, passes["hang"].passes
        finally:
            daemon.stop()

    # one hanging pass holds its worker for the whole 0.5 s budget; the healthy source's
    # worker meanwhile runs every 0.2 s
    assert healthy >= 2 * hang, (healthy, hang)
    assert rss_after - rss_before < RSS_GROWTH_BOUND, (rss_before, rss_after)
    results = Counter((line["source"], line["result"]) for line in log_lines(logs) if line["event"] == "poll")
    expected = {"healthy": "ok", "hang": "timeout", "drip": "timeout", "loop": "http_4xx", "down": "http_5xx",
                "silent": "timeout", "endless": "too_large", "bomb": "too_large"}
    for name, result in expected.items():
        assert results[(name, result)] >= 3, (name, results)
        assert sum(n for (source, _), n in results.items() if source == name) == results[(name, result)], results
        assert registry.get_sample_value("countwatch_polls_total", {"source": name, "result": result}) >= 3
    assert not [line for line in log_lines(logs) if line["event"] == "job.error"]
