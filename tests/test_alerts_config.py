"""The alerting config: the annotated example parses, defaults, secrets, every problem at
once, silence windows at their boundaries, matchers."""
from __future__ import annotations

import tomllib
from datetime import datetime, timezone
from pathlib import Path

import pytest

from alerts.config import default_receivers
from alerts.matching import Matcher, parse_match_args
from monitor.cli import parse_config
from monitor.configtools import ConfigError
from monitor.secret import Secret

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [{"name": "kpu-ppwp", "kind": "sirekap", "url": "https://sirekap.example/ppwp.json"}]
ENV = {"SLACK_WEBHOOK_URL": "https://hooks.slack.example/services/T1/B2/s3cr3tpath",
       "SLACK_BOT_TOKEN": "xoxb-s3cr3t-token", "INCIDENT_WEBHOOK_URL": "https://incidents.example/hook",
       "INCIDENT_WEBHOOK_TOKEN": "s3cr3t-bearer"}


def parse(raw: dict, environ=None):
    return parse_config({"sources": SOURCES, **raw}, environ=ENV if environ is None else environ)


def wib(*args) -> datetime:
    from zoneinfo import ZoneInfo
    return datetime(*args, tzinfo=ZoneInfo("Asia/Jakarta"))


def test_the_annotated_example_parses():
    raw = tomllib.loads((ROOT / "countwatch.example.toml").read_text())
    alerting = parse_config(raw, environ=ENV).alerting
    assert [r.name for r in alerting.receivers] == ["oncall", "ops-channel", "log", "incident-tool",
                                                    "team-alertmanager"]
    assert alerting.group_wait == 30 and alerting.group_interval == 300 and alerting.repeat_interval == 4 * 3600
    bot = alerting.receiver("ops-channel")
    assert isinstance(bot.token, Secret) and bot.token.reveal() == "xoxb-s3cr3t-token"
    assert alerting.receiver("oncall").url.reveal() == ENV["SLACK_WEBHOOK_URL"]
    assert alerting.receiver("incident-tool").headers["Authorization"].reveal() == "Bearer s3cr3t-bearer"
    assert [r.min_severity for r in alerting.routes] == ["info", "warning", "info"]
    assert alerting.routes[1].repeat_interval == 7200
    assert [s.id for s in alerting.silences] == ["sirekap-maintenance", "overnight-pause"]
    for secret in ("s3cr3tpath", "xoxb-s3cr3t-token", "s3cr3t-bearer"):
        assert secret not in repr(alerting)


def test_no_receivers_means_the_console_only():
    alerting = parse({}).alerting
    assert [(r.name, r.kind) for r in alerting.receivers] == [("console", "console")]
    assert [(r.receiver, r.min_severity) for r in alerting.effective_routes()] == [("console", "info")]
    assert not alerting.receivers_configured


def test_default_receivers_add_slack_when_the_webhook_url_is_set():
    assert [r.kind for r in default_receivers({})] == ["console"]
    alerting = parse({}).alerting.with_default_receivers({"SLACK_WEBHOOK_URL": ENV["SLACK_WEBHOOK_URL"]})
    assert [(r.name, r.kind) for r in alerting.receivers] == [("console", "console"), ("slack", "slack_webhook")]
    assert [(r.receiver, r.min_severity) for r in alerting.effective_routes()] == [
        ("console", "info"), ("slack", "warning")]
    configured = parse({"receivers": [{"name": "x", "kind": "console"}]}).alerting
    assert configured.with_default_receivers({"SLACK_WEBHOOK_URL": "https://h.example/x"}) is configured


def test_every_problem_in_one_message_and_no_secret_in_it():
    raw = {
        "receivers": [{"name": "a", "kind": "pager"},
                      {"name": "b", "kind": "slack_webhook", "url": "${SLACK_WEBHOOK_URL}"},
                      {"name": "c", "kind": "slack_bot", "channel": "#x"},
                      {"name": "d", "kind": "slack_webhook", "url": "${NOT_SET}"},
                      {"name": "b", "kind": "console"}],
        "routes": [{"receiver": "nobody"}, {"receiver": "b", "match": {"severity": "urgent", "colour": "red"}},
                   {"receiver": "b", "match": {"source": "kpu-typo"}, "repeat_interval": "10"}],
        "silences": [{"match": {"region": "32"}}, {"match": {"rule": "stall"}, "daily": "25:00-26:00"}],
        "alerting": {"group_wait": "soon", "group_by": ["colour"], "links": {"x": "http://g/{panel}"}},
    }
    with pytest.raises(ConfigError) as error:
        parse(raw, environ={"SLACK_WEBHOOK_URL": "ftp://hooks.example/s3cr3tpath"})
    message = str(error.value)
    for expected in ("receivers[0] (a).kind: must be one of", "receivers[1] (b).url: must be an http:// or https:// URL",
                     "receivers[2] (c).token: is required", "NOT_SET is not set", "duplicate receiver name 'b'",
                     "routes[0].receiver: no receiver named 'nobody'", "routes[1].match.severity",
                     "routes[1].match.colour: unknown label", "no source named 'kpu-typo'",
                     "routes[2].repeat_interval", "silences[0]: needs `ends`", "silences[1].daily",
                     "alerting.group_wait", "alerting.group_by", "unknown placeholder(s) panel"):
        assert expected in message, expected
    assert "s3cr3tpath" not in message


@pytest.mark.parametrize("moment,active", [
    (wib(2024, 2, 17, 19, 29, 59), False), (wib(2024, 2, 17, 19, 30), True),
    (wib(2024, 2, 19, 6, 59, 59), True), (wib(2024, 2, 19, 7, 0), False)])
def test_one_off_silence_boundaries(moment, active):
    silence = parse({"silences": [{"match": {"region": "32"}, "starts": "2024-02-17T19:30:00",
                                   "ends": datetime(2024, 2, 19, 0, 0, tzinfo=timezone.utc)}]}).alerting.silences[0]
    assert silence.active(moment.astimezone(timezone.utc)) is active


@pytest.mark.parametrize("moment,active", [
    (wib(2024, 2, 17, 22, 59), False), (wib(2024, 2, 17, 23, 0), True),     # Saturday evening
    (wib(2024, 2, 18, 5, 59), True), (wib(2024, 2, 18, 6, 0), False),       # Sunday morning: Saturday's window
    (wib(2024, 2, 18, 23, 30), False), (wib(2024, 2, 19, 2, 0), False)])    # Sunday's window: not listed
def test_recurring_silence_crossing_midnight_on_some_weekdays(moment, active):
    raw = {"silences": [{"match": {"rule": "stall"}, "daily": "23:00-06:00", "weekdays": ["sat"]}]}
    silence = parse(raw).alerting.silences[0]
    assert silence.active(moment.astimezone(timezone.utc)) is active


def test_matchers_are_globs_over_event_labels():
    matcher = parse_match_args(["region=32*", "severity=warning", "severity=critical"])
    assert matcher.matches({"region": "3201", "severity": "critical"})
    assert matcher.matches({"region": "32", "severity": "warning"})
    assert not matcher.matches({"region": "132", "severity": "warning"})
    assert not matcher.matches({"region": "32", "severity": "info"})
    assert Matcher().matches({"region": "anything"})
    with pytest.raises(ValueError, match="unknown label"):
        parse_match_args(["colour=red"])
