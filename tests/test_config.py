"""Config validation: every problem in one message naming its key; exit code 2 from the CLI;
secrets from the environment, never printed."""
from __future__ import annotations

import subprocess
import sys

import pytest

from monitor.cli import load_config, parse_config
from monitor.config import ConfigError
from monitor.configtools import parse_duration, parse_size
from monitor.secret import Secret

GOOD = """
[daemon]
state_dir = "{state}"
timezone = "Asia/Jakarta"

[metrics]
listen = "127.0.0.1:9477"

[[sources]]
name = "kpu-ppwp"
kind = "sirekap"
url = "https://sirekap-obj-data.kpu.go.id/pemilu/hhcw/ppwp.json"
interval = "60s"
timeout = "10s"
depth = 1
"""


def test_good_config_loads_into_frozen_objects(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(GOOD.format(state=tmp_path / "state"))
    config = load_config(path)
    source = config.source("kpu-ppwp")
    assert (source.interval, source.timeout, source.depth, source.export_depth) == (60.0, 10.0, 1, 2)
    assert source.zone.key == "Asia/Jakarta"
    with pytest.raises(AttributeError):
        source.interval = 5  # frozen


def test_every_problem_is_reported_at_once():
    raw = {
        "daemon": {"timezone": "Mars/Olympus", "colour": "red"},
        "metrics": {"listen": "nowhere"},
        "log": {"format": "xml"},
        "sources": [
            {"name": "a", "kind": "rss", "url": "ftp://example/x", "interval": 60},
            {"name": "a", "kind": "sirekap", "url": "http://x/ppwp.json", "depth": -1, "timeout": "0s"},
        ],
    }
    with pytest.raises(ConfigError) as error:
        parse_config(raw)
    message = str(error.value)
    for key in ("daemon.timezone", "daemon.colour", "metrics.listen", "log.format", "sources[0] (a).kind",
                "sources[0] (a).url", "sources[0] (a).interval", "duplicate source name 'a'",
                "sources[1] (a).depth", "sources[1] (a).timeout"):
        assert key in message, key
    assert len(error.value.problems) == 10


def test_missing_sources_and_required_keys():
    with pytest.raises(ConfigError) as error:
        parse_config({"sources": [{"kind": "sirekap"}]})
    assert "sources[0].name: is required" in str(error.value)
    assert "url: is required" in str(error.value)
    with pytest.raises(ConfigError, match="at least one"):
        parse_config({})


def test_json_source_needs_valid_jmespath():
    raw = {"sources": [{"name": "j", "kind": "json", "url": "http://x/feed", "mapping": {"reported": "a.[b"}}]}
    with pytest.raises(ConfigError) as error:
        parse_config(raw)
    assert "mapping.reported: invalid JMESPath" in str(error.value)
    assert "mapping.total: is required" in str(error.value)


def test_env_secret_is_expanded_and_masked():
    raw = {"sources": [{"name": "s", "kind": "sirekap", "url": "http://x/ppwp.json",
                        "headers": {"Authorization": "Bearer ${FEED_TOKEN}"}}]}
    config = parse_config(raw, environ={"FEED_TOKEN": "tok-123"})
    header = config.sources[0].headers["Authorization"]
    assert isinstance(header, Secret) and header.reveal() == "Bearer tok-123"
    assert "tok-123" not in repr(config) and "tok-123" not in str(header) and "tok-123" not in f"{header}"


def test_missing_env_var_names_key_and_variable():
    raw = {"sources": [{"name": "s", "kind": "sirekap", "url": "http://x/ppwp.json",
                        "headers": {"X-Token": "${NOPE_NOT_SET}"}}]}
    with pytest.raises(ConfigError) as error:
        parse_config(raw, environ={})
    assert "headers.X-Token: environment variable NOPE_NOT_SET is not set" in str(error.value)


@pytest.mark.parametrize("text,seconds", [("500ms", 0.5), ("60s", 60), ("5m", 300), ("2h", 7200), ("1d", 86400)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", [60, "60", "5 minutes", "-1s", None])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_sizes():
    assert parse_size("20MB") == 20_000_000 and parse_size("1KiB") == 1024 and parse_size(10) == 10


def _countwatch(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True, text=True,
                          timeout=60, cwd=cwd)


def test_check_config_cli_exit_codes(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text(GOOD.format(state=tmp_path / "state"))
    result = _countwatch("check-config", str(good))
    assert result.returncode == 0, result.stderr
    assert "kpu-ppwp" in result.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.format(state=tmp_path / "state").replace('interval = "60s"', 'interval = 60'))
    result = _countwatch("check-config", str(bad))
    assert result.returncode == 2
    assert "interval" in result.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text("[daemon\n")
    result = _countwatch("check-config", str(broken))
    assert result.returncode == 2 and "invalid TOML" in result.stderr
    assert _countwatch("no-such-verb").returncode == 2


EXAMPLE_ENV = {"SLACK_WEBHOOK_URL": "https://hooks.slack.example/services/T1/B2/s3cr3tpath",
               "SLACK_BOT_TOKEN": "xoxb-s3cr3t-token", "INCIDENT_WEBHOOK_URL": "https://incidents.example/hook",
               "INCIDENT_WEBHOOK_TOKEN": "s3cr3t-bearer"}


def test_the_annotated_example_checks_and_states_the_real_defaults(tmp_path):
    """countwatch.example.toml is what users start from: check-config accepts it once its
    secrets are set, names the first missing one otherwise, and its [detection] values are
    the defaults the code really has (the file and the code cannot drift apart)."""
    import dataclasses
    import os
    import tomllib
    from pathlib import Path

    from monitor.detectors.options import DetectionOptions

    example = Path(__file__).resolve().parent.parent / "countwatch.example.toml"
    raw = tomllib.loads(example.read_text())
    defaults = DetectionOptions()
    unset = {f.name for f in dataclasses.fields(DetectionOptions) if getattr(defaults, f.name) is None}
    listed = {f.name for f in dataclasses.fields(DetectionOptions)} - {"explicit"} - unset
    assert set(raw["detection"]) == listed
    assert all(f"# {name} = " in example.read_text() for name in unset)   # TOML has no null: shown commented
    parsed = parse_config(raw, environ=EXAMPLE_ENV).detection
    assert all(getattr(parsed, name) == getattr(defaults, name) for name in listed)

    env = {k: v for k, v in os.environ.items() if k not in EXAMPLE_ENV}
    run = lambda environ: subprocess.run([sys.executable, "-m", "monitor", "check-config", str(example)],  # noqa: E731
                                         capture_output=True, text=True, timeout=60, cwd=tmp_path, env=environ)
    result = run({**env, **EXAMPLE_ENV})
    assert result.returncode == 0, result.stderr
    result = run(env)
    assert result.returncode == 2 and "SLACK_WEBHOOK_URL is not set" in result.stderr
    assert "s3cr3t" not in result.stdout + result.stderr
