"""Operator slips get a clear error or just work (issue 13): a busy metrics port, commands
that send nothing run without receiver secrets, a silence matcher is checked against the
config, an empty secret is caught by check-config, and the build_info label survives scraping."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

CONFIG = """
[daemon]
state_dir = "{state}"
instance = "slips"
[metrics]
listen = "127.0.0.1:{port}"
[log]
format = "json"
[[sources]]
name = "kpu-jabar"
kind = "sirekap"
url = "http://127.0.0.1:9/pilkada/hhcw/pkwkp/32.json"
[[receivers]]
name = "oncall"
kind = "slack_webhook"
url = "${{SLACK_WEBHOOK_URL}}"
"""


def countwatch(*args: str, env: dict | None = None, cwd=None, timeout: float = 60) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k != "SLACK_WEBHOOK_URL"}
    return subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True, text=True,
                          timeout=timeout, env={**base, **(env or {})}, cwd=cwd)


def write_config(tmp_path: Path, port: int = 0) -> Path:
    path = tmp_path / "countwatch.toml"
    path.write_text(CONFIG.format(state=tmp_path / "state", port=port), encoding="utf-8")
    return path


def test_a_busy_metrics_port_exits_2_naming_the_key(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = countwatch("run", "-c", str(write_config(tmp_path, port)),
                            env={"SLACK_WEBHOOK_URL": "https://hooks.slack.example/services/T/B/x"})
    assert result.returncode == 2, result.stderr
    assert f'[metrics] listen = "127.0.0.1:{port}"' in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_silence_and_replay_need_no_receiver_secrets_but_test_alert_does(tmp_path):
    config = str(write_config(tmp_path))
    added = countwatch("silence", "add", "-c", config, "--match", "source=kpu-jabar", "--for", "1h",
                       "--comment", "planned pause")
    assert added.returncode == 0, added.stderr
    listed = countwatch("silence", "list", "-c", config)
    assert listed.returncode == 0 and "source=kpu-jabar" in listed.stdout
    recording = tmp_path / "polls.jsonl"
    recording.write_text('{"v": 1, "at": "2024-02-22T16:06:14Z", "source": "kpu-jabar", "region": "32", '
                         '"ok": true, "stations": 10, "stations_reported": 5}\n', encoding="utf-8")
    assert countwatch("replay", str(recording), "-c", config).returncode == 0
    test = countwatch("test-alert", "-c", config, "--receiver", "oncall")
    assert test.returncode == 2 and "SLACK_WEBHOOK_URL is not set" in test.stderr


def test_a_silence_matcher_is_checked_against_the_config(tmp_path):
    result = countwatch("silence", "add", "-c", str(write_config(tmp_path)), "--match", "source=kpu-jabr",
                        "--for", "1h", "--comment", "typo")
    assert result.returncode == 2
    assert "no source named 'kpu-jabr' (sources: kpu-jabar)" in result.stderr


def test_an_empty_secret_is_an_error_at_check_config(tmp_path):
    result = countwatch("check-config", str(write_config(tmp_path)), env={"SLACK_WEBHOOK_URL": ""})
    assert result.returncode == 2
    assert "environment variable SLACK_WEBHOOK_URL is empty" in result.stderr


def test_build_info_does_not_use_prometheus_instance_label(registry):
    from monitor.metrics import Metrics

    metrics = Metrics(registry)
    metrics.build_info.labels(version="1", countwatch_instance="cw-a").set(1)
    assert registry.get_sample_value("countwatch_build_info", {"version": "1", "countwatch_instance": "cw-a"}) == 1
