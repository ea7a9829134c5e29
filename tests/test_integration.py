"""End to end, as a user runs it: the simulator and the daemon as separate processes on
loopback; /metrics must equal the numbers in the documents the simulator serves."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import free_port
from tests.feed import wait_until

PROVINCE = "/pemilu/hhcw/pkwkp/32.json"


def _get(url: str) -> bytes:
    return urllib.request.urlopen(url, timeout=5).read()


def _metric(text: str, name: str, **labels) -> float | None:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        have = ",".join(sorted((match.group(2) or "").split(","))) if match.group(2) else ""
        if have == wanted:
            return float(match.group(3))
    return None


@pytest.fixture
def processes(tmp_path):
    started: list[subprocess.Popen] = []

    def start(*args) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-m", "monitor", *args], cwd=tmp_path,
                                   stdout=open(tmp_path / f"p{len(started)}.out", "w"),
                                   stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_metrics_equal_served_documents_and_sigterm_stops(tmp_path, processes):
    sim_port, metrics_port = free_port(), free_port()
    processes("simulate", "--scenario", "steady", "--speed", "1", "--port", str(sim_port))
    base = f"http://127.0.0.1:{sim_port}"
    assert wait_until(lambda: _try(lambda: _get(base + PROVINCE)), timeout=20), "simulator did not start"
    config = tmp_path / "countwatch.toml"
    config.write_text(f"""
[daemon]
state_dir = "{tmp_path / 'state'}"
[metrics]
listen = "127.0.0.1:{metrics_port}"
[log]
format = "json"
file = "{tmp_path / 'countwatch.log'}"
[[sources]]
name = "jabar"
kind = "sirekap"
url = "{base}{PROVINCE}"
region = "32"
interval = "1s"
timeout = "2s"
depth = 1
""")
    daemon = processes("run", "-c", str(config))
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"

    def settled() -> bool:
        text = _try(lambda: _get(metrics_url).decode())
        return bool(text) and _metric(text, "countwatch_stations_reported", source="jabar", region="3201") is not None

    assert wait_until(settled, timeout=30), (tmp_path / "p1.out").read_text()[-2000:]
    # the steady scenario republishes every few scenario minutes: compare within one publication
    for _ in range(5):
        before = json.loads(_get(base + PROVINCE))
        text = _get(metrics_url).decode()
        after = json.loads(_get(base + PROVINCE))
        if before == after:
            break
        time.sleep(0.5)
    document = after
    assert _metric(text, "countwatch_up", source="jabar") == 1
    assert _metric(text, "countwatch_stations", source="jabar", region="32") == document["progres"]["total"]
    assert _metric(text, "countwatch_stations_reported", source="jabar", region="32") == document["progres"]["progres"]
    for candidate, votes in document["chart"].items():
        if candidate != "persen":
            assert _metric(text, "countwatch_votes", source="jabar", region="32", candidate=candidate) == votes
    kab = json.loads(_get(base + PROVINCE.replace(".json", "/3201.json")))
    assert _metric(text, "countwatch_stations_reported", source="jabar", region="3201") == kab["progres"]["progres"]
    health = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/healthz", timeout=5)
    assert health.status == 200

    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(15) == 0
    log_lines = [json.loads(line) for line in (tmp_path / "countwatch.log").read_text().splitlines()]
    polls = [line for line in log_lines if line["event"] == "poll"]
    assert polls and {"source", "region", "result", "latency", "stations_reported", "stations", "changed",
                      "timestamp", "level", "instance"} <= set(polls[0])
    assert any(line["event"] == "daemon.stopped" for line in log_lines)


def _try(action):
    try:
        return action()
    except Exception:  # noqa: BLE001 - "not up yet" in any form
        return None
