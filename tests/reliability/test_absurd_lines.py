"""One absurd line does not end `countwatch timeline` or `countwatch replay` (issue #14, item
17): JSON nested 100,000 deep (RecursionError), a year of 9999 or 0001 and a `since` of 0001
(OverflowError), a recording line with "stations": "x" or "level": "tps" (a TypeError in
every rule). The line is skipped and counted, one stderr line says so, and the rest of the
night is reviewed or replayed: exit 0, the same result as without the line."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.evaluation.builders import T0, at, ok
from monitor.recording import poll_to_record
from tests.reliability.procs import ROOT

NIGHT = ROOT / "tests" / "fixtures" / "logs" / "night-a.log"
NESTED = "[" * 100_000 + "]" * 100_000


def _countwatch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "monitor", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def _log_lines() -> list[str]:
    return NIGHT.read_text(encoding="utf-8").splitlines()


def _first(event: str) -> dict:
    return next(json.loads(l) for l in _log_lines() if f'"{event}"' in l)


LOG_LINES = {
    "nested": lambda: ('{"event": "poll", "level": "info", "instance": "cw-a", '
                       f'"timestamp": "2018-06-27T12:00:00Z", "x": {NESTED}}}'),
    "year 9999": lambda: json.dumps({**_first("poll"), "timestamp": "9999-12-31T23:59:59Z"}),
    "year 0001": lambda: json.dumps({**_first("poll"), "timestamp": "0001-01-01T00:00:00+07:00"}),
    "event_at 9999": lambda: json.dumps({**_first("detector.event"), "event_at": "9999-12-31T23:59:59-07:00"}),
    "since 0001": lambda: json.dumps({**_first("detector.event"), "since": "0001-01-01T00:00:00+07:00"}),
    "object for a name": lambda: json.dumps({**_first("poll"), "source": {"a": 1}}),
    "array for a notification id": lambda: json.dumps({**_first("notification.sent"), "notification": [1]}),
}


@pytest.mark.parametrize("case", sorted(LOG_LINES))
def test_timeline_skips_an_absurd_log_line(tmp_path, case):
    clean = _countwatch("timeline", str(NIGHT), "--format", "json")
    assert clean.returncode == 0, clean.stderr
    log = tmp_path / "countwatch.log"
    lines = _log_lines()
    log.write_text("\n".join(lines[:40] + [LOG_LINES[case]()] + lines[40:]) + "\n", encoding="utf-8")
    for fmt in ("md", "html", "json"):
        result = _countwatch("timeline", str(log), "--format", fmt)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "Traceback" not in result.stderr
        assert result.stderr.count("skipped 1 line(s) with an impossible value") == 1, result.stderr
        assert f"{log}:41" in result.stderr
    report, before = json.loads(result.stdout), json.loads(clean.stdout)
    assert report["read"]["absurd"] == 1
    assert report["incidents"] == before["incidents"]       # the night is the same without it


def _recording(tmp_path: Path, bad: str) -> Path:
    good = [json.dumps(poll_to_record(ok(at(60 * i), 100 + (i if i < 20 else 20)))) for i in range(60)]
    path = tmp_path / "rec.jsonl"
    path.write_text("\n".join(good[:30] + [bad] + good[30:]) + "\n", encoding="utf-8")
    return path


RECORDING_LINES = {
    "nested": lambda line: '{"v": 1, "x": ' + NESTED + "}",
    "stations x": lambda line: json.dumps({**line, "stations": "x"}),
    "level tps": lambda line: json.dumps({**line, "level": "tps"}),
    "vote a string": lambda line: json.dumps({**line, "votes": {"1": "many"}}),
    "child stations a list": lambda line: json.dumps({**line, "children": {"11": {"stations": [1]}}}),
    "year 9999": lambda line: json.dumps({**line, "at": "9999-12-31T23:59:59Z"}),
    "year 0001": lambda line: json.dumps({**line, "at": "0001-01-01T00:00:00Z"}),
    "published 0001": lambda line: json.dumps({**line, "published_at": "0001-01-01T00:00:00+07:00"}),
    "stations 10**400": lambda line: json.dumps({**line, "stations": 10 ** 400}),
}


@pytest.mark.parametrize("case", sorted(RECORDING_LINES))
def test_replay_skips_an_absurd_recording_line(tmp_path, case):
    clean = _countwatch("replay", str(_recording(tmp_path, "")))
    assert clean.returncode == 0 and clean.stderr == "", clean.stderr
    line = poll_to_record(ok(T0, 5))
    result = _countwatch("replay", str(_recording(tmp_path, RECORDING_LINES[case](line))))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "TypeError" not in result.stderr
    assert result.stderr.count("skipped 1 bad recording line(s) of 61") == 1, result.stderr
    assert "rec.jsonl:31" in result.stderr
    assert result.stdout == clean.stdout and '"rule":"stall"' in result.stdout
