"""Two `countwatch run` on one state_dir (issue #14, item 14): both used to poll and both
delivered every notification, each with its own id. Now the second refuses at once, exit 2,
naming the pid that holds the state directory. The lock is an flock that dies with its
process: after kill -9 of the holder a new instance starts without anyone cleaning up."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.feed import Feed, Reply
from tests.reliability.procs import ROOT, DaemonProcess, daemon_toml

PPWP = ROOT / "tests" / "fixtures" / "kpu" / "sirekap2024" / "pemilu" / "hhcw" / "ppwp.json"


def _config(tmp_path, url: str, log: str) -> str:
    return f"""{daemon_toml(tmp_path / 'state', 'lock-test', tmp_path / log)}
[[sources]]
name = "kpu-ppwp"
kind = "sirekap"
url = "{url}"
interval = "1s"
timeout = "1s"

[[receivers]]
name = "console"
kind = "console"
"""


@pytest.fixture
def feed():
    with Feed() as server:
        server.set("/ppwp.json", Reply(200, PPWP.read_bytes()))
        yield server


def test_a_second_instance_on_the_same_state_dir_refuses_naming_the_holder(tmp_path, feed):
    config = tmp_path / "countwatch.toml"
    config.write_text(_config(tmp_path, feed.url("/ppwp.json"), "first.log"))
    first = DaemonProcess(config, tmp_path / "first.log").start()
    third = None
    try:
        first.wait_for(lambda: first.events("poll"), what="the first instance's first poll")
        # the same state_dir under another config file and log: still the same instance's state
        other = tmp_path / "other.toml"
        other.write_text(_config(tmp_path, feed.url("/ppwp.json"), "second.log"))
        second = subprocess.run([sys.executable, "-m", "monitor", "run", "-c", str(other)], cwd=ROOT,
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 2, second.stderr
        assert f"is in use by process {first.process.pid}" in second.stderr
        assert str(tmp_path / "state") in second.stderr
        assert "Traceback" not in second.stderr
        refused = [line for line in DaemonProcess(other, tmp_path / "second.log").lines()
                   if line.get("event") == "daemon.refused"]
        assert len(refused) == 1 and str(first.process.pid) in refused[0]["reason"]
        assert first.running                                   # the holder is untouched

        first.kill9()                                          # no clean-up of any kind
        third = DaemonProcess(config, tmp_path / "first.log").start()
        third.wait_for(lambda: len(third.events("daemon.started")) == 2, what="a new instance after kill -9")
        assert third.stop() == 0
        assert (tmp_path / "state" / "countwatch.lock").read_text().split()[0] == str(third.process.pid)
    finally:
        first.close()
        if third is not None:
            third.close()
