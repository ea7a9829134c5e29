"""prometheus.yml, the alert rules and the example alertmanager.yml, checked by the real tools
(promtool, amtool, a real Alertmanager) and held to monitor/metrics.py's metric table."""
from __future__ import annotations

import json
import re
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.servers import amtool, have_binary, promql_metric_names, promtool, start_alertmanager, wait_until
from tests.test_grafana_dashboards import PROMETHEUS_BUILTINS, known_metric_names

yaml = pytest.importorskip("yaml", reason="PyYAML (the [test] extra) reads the YAML configs")

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS_YML = ROOT / "prometheus.yml"
RULES_DIR = ROOT / "alerts" / "rules"
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
RULE_TESTS = sorted((RULES_DIR / "tests").glob("*.yml"))
ALERTMANAGER_YML = ROOT / "alerts" / "alertmanager.yml"

needs_promtool = pytest.mark.skipif(not have_binary("promtool"), reason="promtool not installed (make servers)")
needs_amtool = pytest.mark.skipif(not have_binary("amtool"), reason="amtool not installed (make servers)")
needs_alertmanager = pytest.mark.skipif(not have_binary("prometheus-alertmanager"),
                                        reason="prometheus-alertmanager not installed (make servers)")


def unknown_metrics(expr: str) -> set[str]:
    return {name for name in promql_metric_names(expr)
            if name not in known_metric_names() and name not in PROMETHEUS_BUILTINS}


def all_rules() -> list[dict]:
    rules = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend(group["rules"])
    return rules


def test_there_are_rule_files_and_unit_tests():
    assert RULE_FILES, "no rule files under alerts/rules/"
    assert RULE_TESTS, "no promtool unit tests under alerts/rules/tests/"


@needs_promtool
def test_promtool_check_config_passes_and_loads_every_rule_file():
    result = promtool("check", "config", str(PROMETHEUS_YML))
    assert result.returncode == 0, result.stdout + result.stderr
    # prometheus.yml's rule_files glob must reach the shipped rule files, all of them.
    for path in RULE_FILES:
        assert f"Checking {path.relative_to(ROOT)}" in result.stdout or str(path) in result.stdout, result.stdout
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in result.stdout


@needs_promtool
def test_promtool_check_rules_passes():
    result = promtool("check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
def test_promtool_unit_tests_pass():
    result = promtool("test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
def test_promtool_unit_tests_can_fail(tmp_path):
    # Guard against a test file that checks nothing: change one expected number, expect failure.
    # The copy keeps the layout (tests/ beside the rules) because rule_files is relative.
    original = RULE_TESTS[0].read_text()
    mutated = original.replace("for 10m 30s (stall threshold 10m 0s)", "for 10m 31s (stall threshold 10m 0s)", 1)
    assert mutated != original
    (tmp_path / "tests").mkdir()
    for path in RULE_FILES:
        (tmp_path / path.name).write_text(path.read_text())
    copy = tmp_path / "tests" / RULE_TESTS[0].name
    copy.write_text(mutated)
    result = promtool("test", "rules", str(copy))
    assert result.returncode != 0
    assert "10m 31s" in result.stdout + result.stderr


def test_every_rule_reads_only_metrics_countwatch_exports():
    for rule in all_rules():
        assert not unknown_metrics(rule["expr"]), f"{rule['alert']}: {unknown_metrics(rule['expr'])}"
    # The annotations' own queries ({{ ... | query }}) too: any countwatch_* name in the files.
    for path in RULE_FILES:
        for name in set(re.findall(r"countwatch_\w+", path.read_text())):
            assert name in known_metric_names(), f"{path.name}: {name} is not in monitor/metrics.py"


def test_every_alert_has_for_severity_rule_and_a_summary():
    rules = all_rules()
    names = {rule["alert"] for rule in rules}
    # The kinds the issue asks for, by name (dashboards and alertmanager.yml refer to them).
    assert {"CountwatchCountStalled", "CountwatchSourceStale", "CountwatchSourceDown", "CountwatchDown",
            "CountwatchAbsent", "CountwatchOutboxBacklog"} <= names
    for rule in rules:
        assert "for" in rule, rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["labels"].get("rule"), rule["alert"]
        assert "{{" in rule["annotations"]["summary"] or rule["alert"] == "CountwatchAbsent", \
            f"{rule['alert']}: the summary should carry the numbers"


def test_stall_rule_compares_against_the_daemons_threshold():
    stalled = [r for r in all_rules() if r["alert"] == "CountwatchCountStalled"]
    assert {r["labels"]["severity"] for r in stalled} == {"warning", "critical"}
    for rule in stalled:
        expr = " ".join(rule["expr"].split())
        assert "time() - countwatch_last_advance_timestamp_seconds >" in expr
        assert "countwatch_stall_threshold_seconds" in expr


def test_prometheus_yml_scrapes_countwatch_and_itself_and_points_at_alertmanager():
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert {"countwatch", "prometheus"} <= set(jobs)
    assert config["rule_files"] == ["alerts/rules/*.yml"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]


@needs_amtool
def test_amtool_check_config_passes():
    result = amtool("check-config", str(ALERTMANAGER_YML))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_alertmanager_reads_the_slack_webhook_from_a_file():
    config = yaml.safe_load(ALERTMANAGER_YML.read_text())
    assert "slack_api_url" not in config.get("global", {})
    slack = [c for r in config["receivers"] for c in r.get("slack_configs", [])]
    assert slack, "no Slack receiver"
    for entry in slack:
        assert "api_url" not in entry
        assert entry["api_url_file"].startswith("/")
    assert "hooks.slack.com" not in ALERTMANAGER_YML.read_text()


class FakeSlack:
    """A Slack incoming webhook on loopback: records every POSTed JSON body, answers "ok"."""

    def __init__(self):
        self.posts: list[dict] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer._lock:
                    outer.posts.append(json.loads(body or b"{}"))
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):   # Alertmanager's requests are not test output
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T000/B000/XXXX"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def received(self) -> list[dict]:
        with self._lock:
            return list(self.posts)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()


def alertmanager_config_for_test(url_file: Path, webhook_url: str = "http://127.0.0.1:9/unused") -> str:
    """The shipped config as it is, except: the webhook file is `url_file` (written here with
    `webhook_url`; the default is a closed port) and the grouping waits are 1 s, not 30 s / 5 m."""
    url_file.write_text(webhook_url + "\n")
    config = yaml.safe_load(ALERTMANAGER_YML.read_text())
    config["route"].update(group_wait="1s", group_interval="1s")
    for receiver in config["receivers"]:
        for entry in receiver.get("slack_configs", []):
            entry["api_url_file"] = str(url_file)
    return yaml.safe_dump(config)


def _alert(name: str, severity: str, **labels: str) -> dict:
    return {"labels": {"alertname": name, "severity": severity, "job": "countwatch",
                       "instance": "127.0.0.1:9477", **labels},
            "annotations": {"summary": f"{name} test"}}


@needs_alertmanager
def test_source_down_inhibits_stall_and_stale_alerts_of_that_source_only(tmp_path):
    with start_alertmanager(alertmanager_config_for_test(tmp_path / "slack_webhook_url")) as am:
        am.post_alerts([
            _alert("CountwatchSourceDown", "critical", source="kpu-a"),
            _alert("CountwatchCountStalled", "warning", source="kpu-a", region="32", rule="stall"),
            _alert("CountwatchSourceStale", "warning", source="kpu-a", region="32", rule="stale_source"),
            _alert("CountwatchCountStalled", "warning", source="kpu-b", region="32", rule="stall"),
        ])
        alerts = am.wait_until(lambda: (found := am.alerts()) and len(found) == 4 and found,
                               what="the four alerts in Alertmanager")
        state = {(a["labels"]["alertname"], a["labels"]["source"]): a["status"] for a in alerts}
        assert state[("CountwatchCountStalled", "kpu-a")]["state"] == "suppressed"
        assert state[("CountwatchCountStalled", "kpu-a")]["inhibitedBy"]
        assert state[("CountwatchSourceStale", "kpu-a")]["state"] == "suppressed"
        # Another source's stall is not the down source's business.
        assert state[("CountwatchCountStalled", "kpu-b")] == {"state": "active", "inhibitedBy": [], "silencedBy": []}
        assert state[("CountwatchSourceDown", "kpu-a")]["state"] == "active"


@needs_alertmanager
def test_critical_stall_inhibits_the_warning_of_the_same_region(tmp_path):
    with start_alertmanager(alertmanager_config_for_test(tmp_path / "slack_webhook_url")) as am:
        am.post_alerts([
            _alert("CountwatchCountStalled", "critical", source="kpu-a", region="32", rule="stall"),
            _alert("CountwatchCountStalled", "warning", source="kpu-a", region="32", rule="stall"),
            _alert("CountwatchCountStalled", "warning", source="kpu-a", region="33", rule="stall"),
        ])
        alerts = am.wait_until(lambda: (found := am.alerts()) and len(found) == 3 and found,
                               what="the three alerts in Alertmanager")
        state = {(a["labels"]["severity"], a["labels"]["region"]): a["status"]["state"] for a in alerts}
        assert state == {("critical", "32"): "active", ("warning", "32"): "suppressed",
                         ("warning", "33"): "active"}


@needs_alertmanager
def test_an_alert_reaches_slack_through_the_url_file_and_its_resolution_too(tmp_path):
    with FakeSlack() as slack, start_alertmanager(
            alertmanager_config_for_test(tmp_path / "slack_webhook_url", slack.url)) as am:
        stalled = _alert("CountwatchCountStalled", "warning", source="kpu-a", region="32", rule="stall")
        stalled["annotations"]["summary"] = "kpu-a region 32: no stations reported for 2h 5m (stall threshold 2h 0m 0s)"
        am.post_alerts([stalled])
        (post,) = am.wait_until(slack.received, what="the firing notification at the fake Slack")
        attachment = post["attachments"][0]
        assert attachment["title"] == "[FIRING:1] CountwatchCountStalled kpu-a"
        assert attachment["text"].rstrip("\n") == f"*warning* {stalled['annotations']['summary']}"

        # send_resolved: ops hear when the count moves again.
        stalled["endsAt"] = (datetime.now(timezone.utc) - timedelta(seconds=1)).isoformat()
        am.post_alerts([stalled])
        posts = am.wait_until(lambda: len(slack.received()) >= 2 and slack.received(),
                              what="the resolved notification")
        assert posts[1]["attachments"][0]["title"] == "[RESOLVED] CountwatchCountStalled kpu-a"


def test_wait_until_is_bounded():
    # The helper every server test relies on must give up, and say what it waited for.
    with pytest.raises(TimeoutError, match="the impossible"):
        wait_until(lambda: False, timeout=0.3, interval=0.05, what="the impossible")
