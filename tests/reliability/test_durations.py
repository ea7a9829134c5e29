"""Every duration is bounded when the config is read (issue #14, item 6): "3000000d" used to
pass check-config and then overflow a datetime or the scheduler at run time (one overflow
lost a resolution). Now the config is refused, exit 2, naming the key; so is `silence add
--for` with such a value."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.reliability.procs import ROOT

BASE = """
[daemon]
state_dir = "{state}"

[[sources]]
name = "kpu"
kind = "sirekap"
url = "http://127.0.0.1:9/ppwp.json"
interval = "{interval}"

[[receivers]]
name = "console"
kind = "console"

[alerting]
repeat_interval = "{repeat}"

[detection]
stall_ceiling = "{ceiling}"
"""


def _countwatch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "monitor", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def _write(tmp_path, interval="60s", repeat="4h", ceiling="12h"):
    path = tmp_path / "countwatch.toml"
    path.write_text(BASE.format(state=tmp_path / "state", interval=interval, repeat=repeat, ceiling=ceiling))
    return path


@pytest.mark.parametrize("field, value, key", [
    ("repeat", "3000000d", "alerting.repeat_interval"),
    ("interval", "99999999999d", "sources[0] (kpu).interval"),
    ("ceiling", "366d", "detection.stall_ceiling"),
    ("interval", "9" * 400 + "d", "sources[0] (kpu).interval"),      # float('9'*400) is inf
])
def test_an_absurd_duration_is_refused_at_parse_time_naming_its_key(tmp_path, field, value, key):
    config = _write(tmp_path, **{field: value})
    for verb in ("check-config", "run"):
        args = (verb, str(config)) if verb == "check-config" else (verb, "-c", str(config))
        result = _countwatch(*args)
        assert result.returncode == 2, (verb, result.stdout, result.stderr)
        assert f"{key}: must be at most 365d" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_a_year_is_still_accepted(tmp_path):
    result = _countwatch("check-config", str(_write(tmp_path, interval="365d", repeat="365d")))
    assert result.returncode == 0, result.stderr


def test_silence_for_an_absurd_duration_exits_2_naming_the_option(tmp_path):
    config = _write(tmp_path)
    result = _countwatch("silence", "add", "--match", "rule=stall", "--for", "3000000d", "--comment", "x",
                         "-c", str(config))
    assert result.returncode == 2, result.stderr
    assert "--for: must be at most 365d" in result.stderr and "Traceback" not in result.stderr
    listed = _countwatch("silence", "list", "-c", str(config))
    assert listed.returncode == 0 and "rule=stall" not in listed.stdout
