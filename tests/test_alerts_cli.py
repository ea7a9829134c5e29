"""`countwatch silence add|list|expire` and `countwatch test-alert`, through their handlers
and argparse wiring, against a real state database and the fake Slack."""
from __future__ import annotations

import argparse
from datetime import datetime, timezone

import pytest
from prometheus_client import CollectorRegistry

from alerts import cli
from alerts.pipeline import AlertPipeline
from monitor.clock import ManualClock
from monitor.cli import load_config
from monitor.metrics import Metrics
from tests.fakes import FakeSlack
from tests.fakes.events import stall

CONFIG = """
[daemon]
state_dir = "{state}"
instance = "cli-test"

[[sources]]
name = "kpu-jabar"
kind = "sirekap"
url = "https://pilkada.example/jabar.json"

[[receivers]]
name = "oncall"
kind = "slack_webhook"
url = "${{CW_TEST_HOOK}}"

[[receivers]]
name = "console"
kind = "console"

[[silences]]
name = "overnight"
match = {{ rule = "stale_source" }}
daily = "01:00-05:00"
comment = "KPU pauses publishing overnight"

[alerting]
group_wait = "0s"
"""


@pytest.fixture
def slack(monkeypatch):
    with FakeSlack() as fake:
        monkeypatch.setenv("CW_TEST_HOOK", fake.webhook_url)
        yield fake


@pytest.fixture
def config_path(tmp_path, slack):
    path = tmp_path / "countwatch.toml"
    path.write_text(CONFIG.format(state=tmp_path / "state"))
    return str(path)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="countwatch")
    cli.add_parsers(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def run(*argv: str) -> int:
    args = parse(*argv)
    return args.func(args)


def test_silence_add_list_expire(config_path, capsys):
    assert run("silence", "add", "--match", "region=32*", "--match", "rule=stall", "--for", "2h",
               "--comment", "KPU moving data", "--author", "ops", "-c", config_path) == 0
    added = capsys.readouterr().out
    silence_id = added.split()[1]
    assert "region=32*, rule=stall" in added and "WIB" in added and "UTC" in added

    assert run("silence", "list", "-c", config_path) == 0
    listing = capsys.readouterr().out
    assert f"{silence_id}" in listing and "active" in listing and "by ops" in listing
    assert "overnight" in listing and "daily 01:00-05:00 Asia/Jakarta" in listing

    assert run("silence", "expire", silence_id, "-c", config_path) == 0
    capsys.readouterr()
    assert run("silence", "list", "-c", config_path) == 0
    assert silence_id not in capsys.readouterr().out
    assert run("silence", "list", "--all", "-c", config_path) == 0
    assert f"{silence_id}" in capsys.readouterr().out


def test_a_runtime_silence_reaches_the_running_pipeline(config_path, slack, capsys):
    assert run("silence", "add", "--match", "region=32", "--for", "2h", "--comment", "maintenance",
               "-c", config_path) == 0
    config = load_config(config_path)
    # the CLI stamps silences with wall time; the pipeline's clock starts there too
    clock = ManualClock(datetime.now(timezone.utc))
    pipeline = AlertPipeline(config, Metrics(CollectorRegistry()), clock, config.state_dir / "countwatch.db")
    pipeline.handle([stall(region="32", at=clock.now()), stall(region="33", at=clock.now())])
    pipeline.tick()
    texts = [r.text for r in slack.accepted("webhook")]
    assert len(texts) == 1 and "region 33" in texts[0] and "region 32" not in texts[0]
    silenced = [(d["receiver"], d["alert_key"]) for d in pipeline.records()["decisions"] if d["action"] == "silenced"]
    assert sorted(silenced) == [("console", "stall/kpu-jabar/32"), ("oncall", "stall/kpu-jabar/32")]
    pipeline.stop()


def test_silence_usage_errors_exit_2(config_path, tmp_path, capsys):
    assert run("silence", "add", "--match", "region", "--for", "2h", "--comment", "x", "-c", config_path) == 2
    assert run("silence", "add", "--match", "colour=red", "--for", "2h", "--comment", "x", "-c", config_path) == 2
    assert run("silence", "add", "--match", "region=32", "--for", "2", "--comment", "x", "-c", config_path) == 2
    assert run("silence", "expire", "nope", "-c", config_path) == 2
    assert run("silence", "expire", "overnight", "-c", config_path) == 2     # lives in the config
    assert run("silence", "list", "-c", str(tmp_path / "missing.toml")) == 2
    err = capsys.readouterr().err
    assert "expected LABEL=VALUE" in err and "unknown label" in err and "defined in the config" in err


def test_test_alert_sends_a_marked_message(config_path, slack, capsys):
    assert run("test-alert", "--receiver", "oncall", "-c", config_path) == 0
    sent = slack.accepted("webhook")
    assert len(sent) == 1 and sent[0].text.startswith("TEST: Test notification from countwatch (cli-test)")
    assert ":test_tube: *TEST*" in sent[0].payload["blocks"][0]["text"]["text"]
    assert "sent to oncall" in capsys.readouterr().out


def test_test_alert_failures(config_path, slack, capsys):
    assert run("test-alert", "--receiver", "nobody", "-c", config_path) == 2
    slack.fail_next("invalid_token")
    assert run("test-alert", "--receiver", "oncall", "-c", config_path) == 1
    err = capsys.readouterr().err
    assert "no receiver named 'nobody'" in err and "HTTP 403 invalid_token" in err
    assert slack.webhook_secret not in err


def test_test_alert_to_the_console(config_path, capsys):
    assert run("test-alert", "--receiver", "console", "-c", config_path) == 0
    out = capsys.readouterr().out
    assert "TEST" in out and "no action needed" in out
