"""The log file's disk fills up (issue #14, item 15): a real full disk, a 1 MiB tmpfs holding
the log file, filled by another file. Each lost line used to print a ~3 KB '--- Logging error
---' traceback on stderr. Now lost lines are counted in countwatch_log_lines_lost_total, one
`log.lines_lost` console line a minute says so, polling goes on, and when space returns the
file takes lines again with a `log.recovered` line saying how many are missing."""
from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest

from tests.feed import Feed, Reply
from tests.reliability.procs import ROOT, DaemonProcess, daemon_toml

PPWP = ROOT / "tests" / "fixtures" / "kpu" / "sirekap2024" / "pemilu" / "hhcw" / "ppwp.json"


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB filesystem of its own (tmpfs): filling it fills nothing else."""
    mountpoint = tmp_path / "logs"
    mountpoint.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mountpoint)], check=True)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def _fill(path) -> None:
    with open(path, "wb", buffering=0) as filler:
        try:
            while True:
                filler.write(b"\0" * 4096)
        except OSError:        # ENOSPC: the disk is full
            pass


def _console(process: DaemonProcess) -> list[dict]:
    out = []
    for text in process.output.read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(text))
        except json.JSONDecodeError:
            pass
    return out


def _lost(port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return next(float(line.split()[-1]) for line in text.splitlines()
                if line.startswith("countwatch_log_lines_lost_total "))


def test_a_full_disk_loses_log_lines_quietly_and_counted_then_recovers(tmp_path, small_disk):
    log_file = small_disk / "countwatch.log"
    config = tmp_path / "countwatch.toml"
    with Feed() as feed:
        feed.set("/ppwp.json", Reply(200, PPWP.read_bytes()))
        config.write_text(f"""{daemon_toml(tmp_path / 'state', 'full-disk', log_file)}
[[sources]]
name = "kpu-ppwp"
kind = "sirekap"
url = "{feed.url('/ppwp.json')}"
interval = "1s"
timeout = "1s"

[[receivers]]
name = "console"
kind = "console"
""")
        filler = small_disk / "filler"
        _fill(filler)                     # full before the daemon writes its first line
        daemon = DaemonProcess(config, log_file)
        daemon.output = tmp_path / "daemon.out"      # stderr on a disk with room, to be read
        daemon.start()
        try:
            daemon.wait_for(lambda: [l for l in _console(daemon) if l.get("event") == "daemon.started"],
                            what="the daemon started (on the console: the file takes nothing)")
            started = next(l for l in _console(daemon) if l.get("event") == "daemon.started")
            port = int(started["metrics"].rsplit(":", 1)[1].split("/")[0])
            daemon.wait_for(lambda: _lost(port) >= 8, what="log lines lost on the full disk")
            assert log_file.stat().st_size == 0
            polls_while_full = [line for line in _console(daemon) if line.get("event") == "poll"]
            daemon.wait_for(lambda: len([l for l in _console(daemon) if l.get("event") == "poll"])
                            >= len(polls_while_full) + 3, what="polling going on while the disk is full")
            filler.unlink()
            daemon.wait_for(lambda: daemon.events("log.recovered"), what="the log file taking lines again")
            lost_at_recovery = _lost(port)
            back = daemon.events("log.recovered")[0]["timestamp"]
            daemon.wait_for(lambda: [l for l in daemon.events("poll") if l["timestamp"] > back],
                            what="poll lines in the file after the recovery")
            assert _lost(port) == lost_at_recovery
            assert daemon.stop() == 0
        finally:
            daemon.close()
    output = daemon.output.read_text(errors="replace")
    assert "Logging error" not in output and "Traceback" not in output
    notices = [line for line in _console(daemon) if line.get("event") == "log.lines_lost"]
    assert len(notices) == 1, notices                    # the test lasts well under a minute
    assert notices[0]["lost"] >= 1 and "No space left on device" in notices[0]["error"]
    recovered = daemon.events("log.recovered")
    assert len(recovered) == 1 and recovered[0]["lost_total"] == lost_at_recovery >= 8
    # the file holds whole lines only: the first line that fit, the recovery line, the rest
    lines = [json.loads(text) for text in log_file.read_text(encoding="utf-8").splitlines()]
    assert lines[1]["event"] == "log.recovered" and len(lines) > 2
