"""SIGHUP reloads the config file of a running `countwatch run`: an invalid file changes
nothing and the log says every problem; a valid one adds, changes and removes sources while
the others keep their detector state and open alerts (no second `firing`); settings that need
a restart (the metrics port) keep their running value and the log says so."""
from __future__ import annotations

import signal
import urllib.request

import pytest

from tests.conftest import free_port
from tests.feed import Feed, Reply
from tests.reliability.hostile import body, province_doc
from tests.reliability.procs import DaemonProcess, daemon_toml

CLOSE = {"Connection": "close"}


def _config(tmp_path, metrics_port: int, sources: str, extra: str = "") -> str:
    return f"""{daemon_toml(tmp_path / 'state', 'reload-test', tmp_path / 'countwatch.log', f'127.0.0.1:{metrics_port}')}{extra}
{sources}
"""


def _source(name: str, url: str, interval: str = "500ms") -> str:
    return f"""
[[sources]]
name = "{name}"
kind = "sirekap"
url = "{url}"
region = "32"
interval = "{interval}"
timeout = "1s"
retries = 0
"""


@pytest.fixture
def feed():
    with Feed() as served:
        served.set("/a.json", Reply(503, b"down", CLOSE))           # source a: an open outage
        served.set("/b.json", Reply(200, body(province_doc(400)), CLOSE))
        yield served


def test_sighup_reload(tmp_path, feed):
    port = free_port()
    config = tmp_path / "countwatch.toml"
    config.write_text(_config(tmp_path, port, _source("a", feed.url("/a.json"))))
    daemon = DaemonProcess(config, tmp_path / "countwatch.log")
    try:
        daemon.start()
        daemon.wait_for(lambda: daemon.events("detector.event", rule="outage", state="firing"), what="outage of a")

        # an invalid file: every problem named, the running config kept, a still polled
        config.write_text(_config(tmp_path, port, _source("a", "file:///etc/passwd", interval="-1s")
                                  + _source("b", feed.url("/b.json"))))
        daemon.signal(signal.SIGHUP)
        daemon.wait_for(lambda: daemon.events("config.reload_failed"), what="config.reload_failed")
        failed = daemon.events("config.reload_failed")[0]
        assert any("sources[0] (a).url: must be an http:// or https:// URL" in p for p in failed["problems"])
        assert any("sources[0] (a).interval" in p for p in failed["problems"])
        polls_before = len(daemon.events("poll", source="a"))
        daemon.wait_for(lambda: len(daemon.events("poll", source="a")) >= polls_before + 2, what="a polled on")
        assert not daemon.events("poll", source="b")

        # valid: b added, a's interval changed, a new metrics port (needs a restart)
        config.write_text(_config(tmp_path, free_port(), _source("a", feed.url("/a.json"), interval="300ms")
                                  + _source("b", feed.url("/b.json"))))
        daemon.signal(signal.SIGHUP)
        daemon.wait_for(lambda: daemon.events("config.reloaded"), what="config.reloaded")
        reloaded = daemon.events("config.reloaded")[0]
        assert reloaded["added"] == ["b"] and reloaded["removed"] == [] and reloaded["sources"] == ["a", "b"]
        assert daemon.events("config.reload_partial")[0]["keys"] == ["metrics_listen"]
        daemon.wait_for(lambda: daemon.events("poll", source="b", result="ok"), what="b polled")
        a_polls = len(daemon.events("poll", source="a"))
        daemon.wait_for(lambda: len(daemon.events("poll", source="a")) >= a_polls + 5, what="a polled after reload")
        # a's outage is the same open alert: no second firing, no resolve
        outage = [(e["state"]) for e in daemon.events("detector.event", rule="outage", source="a")]
        assert outage[0] == "firing" and "resolved" not in outage and outage.count("firing") == 1, outage
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert 'countwatch_up{source="b"} 1.0' in metrics

        # a removed: its series leave /metrics, b goes on
        config.write_text(_config(tmp_path, port, _source("b", feed.url("/b.json"))))
        daemon.signal(signal.SIGHUP)
        daemon.wait_for(lambda: len(daemon.events("config.reloaded")) == 2, what="second reload")
        assert daemon.events("config.reloaded")[1]["removed"] == ["a"]
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert 'source="a"' not in metrics and 'countwatch_up{source="b"} 1.0' in metrics
        b_polls = len(daemon.events("poll", source="b"))
        daemon.wait_for(lambda: len(daemon.events("poll", source="b")) >= b_polls + 2, what="b polled on")

        assert daemon.stop() == 0
        assert daemon.events("daemon.stopped")
        assert not daemon.events("job.error")
    finally:
        daemon.close()
