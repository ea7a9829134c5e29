"""The README's "Running it" block runs as written (issue 13): the live simulator and the daemon
on deploy/countwatch-live.toml stay quiet while the count moves, a freeze fires a stall, and the
other commands of the block (check-config, silence, test-alert, timeline, replay) succeed. Only
the port and the state directory differ from the README, so tests can run beside each other."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.conftest import free_port
from tests.feed import wait_until

ROOT = Path(__file__).resolve().parent.parent


def countwatch(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, **kwargs)


def test_the_readme_block_runs_as_written(tmp_path):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme[readme.index("## Running it"):].split("```sh\n", 1)[1].split("```", 1)[0]
    assert "simulate --scenario live --port 8077" in block and "run -c deploy/countwatch-live.toml" in block
    port = free_port()
    config = tmp_path / "live.toml"
    config.write_text((ROOT / "deploy" / "countwatch-live.toml").read_text(encoding="utf-8")
                      .replace("127.0.0.1:8077", f"127.0.0.1:{port}").replace("127.0.0.1:9477", "127.0.0.1:0")
                      .replace('"var/live', f'"{tmp_path}/live'), encoding="utf-8")
    log = tmp_path / "live" / "countwatch.log"
    simulator = subprocess.Popen([sys.executable, "-m", "monitor", "simulate", "--scenario", "live", "--port", str(port)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    daemon = None
    try:
        assert countwatch("check-config", str(config)).returncode == 0
        assert wait_until(lambda: _get(f"http://127.0.0.1:{port}/_control/status"), 15), "the simulator"
        daemon = subprocess.Popen([sys.executable, "-m", "monitor", "run", "-c", str(config)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        assert wait_until(lambda: log.exists() and log.read_text().count('"event": "poll"') >= 12, 60), "a dozen polls"
        assert _events(log) == [], "alerts while the count moves"
        urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/_control/freeze", method="POST"),
                               timeout=5).read()
        assert wait_until(lambda: any(e["rule"] == "stall" for e in _events(log)), 60), "the stall after the freeze"
        assert countwatch("silence", "add", "-c", str(config), "--match", "region=32", "--for", "2h",
                          "--comment", "planned pause").returncode == 0
        test = countwatch("test-alert", "-c", str(config), "--receiver", "console")
        assert test.returncode == 0 and "TEST" in test.stdout
    finally:
        for process in (daemon, simulator):
            if process is not None:
                process.send_signal(signal.SIGTERM)
                process.wait(30)
    timeline = countwatch("timeline", str(log), "--format", "md", "--chart", str(tmp_path / "night.png"))
    assert timeline.returncode == 0 and "stall" in timeline.stdout
    incident = re.search(r"\| #1 \| ([0-9a-f]{12})", timeline.stdout)
    assert incident and countwatch("timeline", str(log), "--incident", incident.group(1)).returncode == 0
    assert countwatch("replay", "tests/fixtures/external/mn2020/mn2020_sos_uspres.jsonl").returncode == 0


def _get(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2).read()
        return True
    except OSError:
        return False


def _events(log: Path) -> list[dict]:
    out = []
    for line in log.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == "detector.event" and record.get("state") != "resolved":
            out.append(record)
    return out
