"""End to end with the real servers: the simulator's live feed, `countwatch run` on wall time,
Prometheus (1 s scrapes) with the shipped rules, Alertmanager with the shipped example config,
and a fake Slack webhook (a real HTTP server on loopback).

One stack serves the module: a healthy spell, then a freeze held until the stall alert has
reached Slack. Then every dashboard query must return data, and the alert path is checked.
The shipped files are used as they are except for addresses, the scrape/evaluation interval
(1 s instead of 15 s) and Alertmanager's grouping waits (1 s instead of 30 s / 5 m).
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.servers import (free_port, have_binary, http_json, promql_metric_names, start_alertmanager,
                           start_prometheus, terminate, wait_until)
from tests.test_prometheus_rules import FakeSlack, alertmanager_config_for_test
from tests.test_grafana_dashboards import (DASHBOARDS, dashboard_queries, fill_query, known_metric_names,
                                           resolve_variables)

yaml = pytest.importorskip("yaml", reason="PyYAML (the [test] extra) reads the YAML configs")

pytestmark = [
    pytest.mark.servers,
    pytest.mark.skipif(not (have_binary("prometheus") and have_binary("prometheus-alertmanager")),
                       reason="prometheus / prometheus-alertmanager not installed (make servers)"),
]

ROOT = Path(__file__).resolve().parent.parent
SOURCE = "live-jabar"
PROVINCE_PATH = "/pemilu/hhcw/pkwkp/32.json"
SCRAPE_INTERVAL = 1.0
# Stall thresholds of seconds for a feed that publishes every second: countwatch exports them,
# the rules compare against them, so nothing in the rules changes for the test. The budget is
# one false alarm per hour instead of per 30 days, and the prior covers the kabupaten (depth 1)
# while they learn: the smallest get a new TPS only every few seconds, and their learned
# thresholds (up to the ceiling) are what they should be at that pace. The province, which
# moves every second, learns a threshold of about ten seconds.
DETECTION = """
[detection]
false_alarm_budget = "1h"
stall_prior = "20s"
stall_floor = "3s"
stall_ceiling = "30s"
critical_ceiling = "60s"
"""
HEALTHY_SECONDS = 8          # scrapes of a moving count before the freeze
STALL_DEADLINE = 90.0        # threshold (<= 6 s) + the rule's `for: 15s` + scrapes, with room


class Process:
    """A countwatch subprocess (`python -m monitor ...`) with its output in a file."""

    def __init__(self, args: list[str], log_path: Path):
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "monitor", *args], cwd=ROOT,
                                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

    def log_text(self, tail: int = 30) -> str:
        lines = self.log_path.read_text(errors="replace").splitlines()
        return f"--- {self.log_path.name} ---\n" + "\n".join(lines[-tail:])

    def alive(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"exited with {self.process.returncode}\n{self.log_text()}")
        return True

    def stop(self) -> None:
        terminate(self.process)


def _get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=3) as response:
        return response.read().decode()


def countwatch_config(state_dir: Path, metrics_port: int, feed_port: int) -> str:
    return f"""
[daemon]
state_dir = "{state_dir}"
instance = "e2e"

[metrics]
listen = "127.0.0.1:{metrics_port}"

[log]
format = "json"
file = "{state_dir / 'countwatch.log'}"

[[sources]]
name = "{SOURCE}"
kind = "sirekap"
url = "http://127.0.0.1:{feed_port}{PROVINCE_PATH}"
region = "32"
interval = "1s"
timeout = "1s"
retries = 0
depth = 1
export_depth = 1
{DETECTION}
"""


def prometheus_config(countwatch_address: str, alertmanager_address: str) -> str:
    """prometheus.yml with test addresses and 1 s intervals; rules are passed separately."""
    config = yaml.safe_load((ROOT / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = config["global"]["evaluation_interval"] = f"{SCRAPE_INTERVAL:g}s"
    config.pop("rule_files")
    config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [alertmanager_address]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    jobs["countwatch"]["static_configs"][0]["targets"] = [countwatch_address]
    # Prometheus's self-scrape needs its own port, unknown before it starts; no query uses it.
    config["scrape_configs"] = [jobs["countwatch"]]
    return yaml.safe_dump(config)


class Stack:
    """Everything started for the module, stopped in reverse order by `close()`."""

    def __init__(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="countwatch-e2e-"))
        self._closers = []
        self.start_time = time.time()

    def later(self, closer) -> None:
        self._closers.append(closer)

    def close(self) -> None:
        for closer in reversed(self._closers):
            try:
                closer()
            except Exception:  # keep stopping the rest; a leak is worse than a lost error
                pass

    def diagnostics(self) -> str:
        parts = [p.log_text() for p in (getattr(self, "feed", None), getattr(self, "countwatch", None)) if p]
        parts += [s.log_text(15) for s in (getattr(self, "prometheus", None), getattr(self, "alertmanager", None)) if s]
        return "\n".join(parts)

    def wait(self, predicate, timeout: float, what: str):
        return wait_until(predicate, timeout, 0.25, what, diagnostics=self.diagnostics)


def _firing(prometheus, alertname: str) -> list[dict]:
    return [a for a in prometheus.alerts() if a["labels"]["alertname"] == alertname and a["state"] == "firing"]


@pytest.fixture(scope="module")
def stack():
    stack = Stack()
    try:
        stack.slack = FakeSlack()
        stack.later(stack.slack.stop)

        feed_port = free_port()
        stack.feed = Process(["simulate", "--scenario", "live", "--speed", "1", "--host", "127.0.0.1",
                              "--port", str(feed_port)], stack.tmp / "feed.log")
        stack.later(stack.feed.stop)
        stack.feed_url = f"http://127.0.0.1:{feed_port}"
        stack.wait(lambda: stack.feed.alive() and http_json("GET", f"{stack.feed_url}/_control/status")["ok"],
                   20, "the simulator's live feed")

        metrics_port = free_port()
        config_path = stack.tmp / "countwatch.toml"
        (stack.tmp / "state").mkdir()
        config_path.write_text(countwatch_config(stack.tmp / "state", metrics_port, feed_port))
        stack.countwatch = Process(["run", "-c", str(config_path)], stack.tmp / "countwatch.out")
        stack.later(stack.countwatch.stop)
        stack.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        stack.wait(lambda: stack.countwatch.alive()
                   and f'countwatch_up{{source="{SOURCE}"}} 1.0' in _get_text(stack.metrics_url),
                   30, "countwatch to poll the feed")

        stack.alertmanager = start_alertmanager(
            alertmanager_config_for_test(stack.tmp / "slack_webhook_url", stack.slack.url))
        stack.later(stack.alertmanager.stop)
        stack.prometheus = start_prometheus(
            prometheus_config(f"127.0.0.1:{metrics_port}", stack.alertmanager.url.removeprefix("http://")),
            rule_files=sorted((ROOT / "alerts" / "rules").glob("*.yml")))
        stack.later(stack.prometheus.stop)
        stack.start_time = time.time()
        prom = stack.prometheus

        # A healthy spell: the count advancing under Prometheus's eyes, no stall alert.
        stack.wait(lambda: prom.query(f'count_over_time(countwatch_up{{source="{SOURCE}"}}[1m]) >= {HEALTHY_SECONDS}'
                                      f' and on (job, instance, source) changes(countwatch_stations_reported{{source="{SOURCE}", region="32"}}[1m]) >= 3'),
                   HEALTHY_SECONDS + 30, "a healthy spell of scrapes with the count advancing")
        assert prom.query(f'countwatch_stall_threshold_seconds{{source="{SOURCE}", region="32"}}'), \
            "countwatch exports no stall threshold for the province"
        stack.healthy_alerts = [a["labels"]["alertname"] for a in prom.alerts()]

        # The freeze, held until the stall alert has gone all the way to Slack.
        http_json("POST", f"{stack.feed_url}/_control/freeze")
        stack.frozen_at = time.time()
        # the province's own alert (a fast child may fire first: the tests judge the province's)
        stack.wait(lambda: [a for a in _firing(prom, "CountwatchCountStalled") if a["labels"]["region"] == "32"],
                   STALL_DEADLINE, "CountwatchCountStalled to fire in Prometheus for region 32")
        stack.wait(lambda: any("CountwatchCountStalled" in json.dumps(p) for p in stack.slack.received()),
                   30, "the stall alert to reach the fake Slack through Alertmanager")
        # The daemon's own alert and event counters, drawn by the dashboards, are scraped too.
        stack.wait(lambda: prom.query(f'countwatch_alert_active{{source="{SOURCE}", rule="stall"}} == 1')
                   and prom.query(f'countwatch_anomalies_total{{source="{SOURCE}", rule="stall"}}'),
                   30, "countwatch's own stall alert in Prometheus")
        stack.wait(lambda: prom.query('ALERTS{alertname="CountwatchCountStalled", alertstate="firing"}'),
                   10, "the ALERTS series")
        stack.end_time = time.time()
        yield stack
    finally:
        stack.close()


def test_no_stall_alert_while_the_count_advances(stack):
    assert "CountwatchCountStalled" not in stack.healthy_alerts
    assert "CountwatchSourceDown" not in stack.healthy_alerts


def test_freeze_fires_the_stall_rule_and_reaches_slack_through_alertmanager(stack):
    (alert,) = [a for a in _firing(stack.prometheus, "CountwatchCountStalled")
                if a["labels"]["region"] == "32" and a["labels"]["severity"] == "warning"] or [None]
    assert alert is not None, stack.prometheus.alerts()
    assert alert["labels"]["source"] == SOURCE and alert["labels"]["rule"] == "stall"
    assert re.search(r"no stations reported for [\d.]+s? ?.*\(stall threshold [\d.]+s\)", alert["annotations"]["summary"]), \
        alert["annotations"]["summary"]

    posts = [p for p in stack.slack.received() if "CountwatchCountStalled" in json.dumps(p)]
    assert posts, stack.slack.received()
    attachment = posts[0]["attachments"][0]
    assert attachment["title"].startswith("[FIRING:")
    assert f"CountwatchCountStalled {SOURCE}" in attachment["title"]
    assert f"{SOURCE} region 32: no stations reported for" in attachment["text"]

    # Alertmanager holds it as an active, un-inhibited alert (the source is up, not down).
    in_am = [a for a in stack.alertmanager.alerts() if a["labels"]["alertname"] == "CountwatchCountStalled"]
    assert in_am and all(a["status"]["state"] == "active" for a in in_am)


def test_every_rule_loaded_and_evaluates_without_error(stack):
    rules = [rule for group in stack.prometheus.rules() for rule in group["rules"]]
    assert len(rules) == sum(len(g["rules"]) for path in (ROOT / "alerts" / "rules").glob("*.yml")
                             for g in yaml.safe_load(path.read_text())["groups"])
    for rule in rules:
        assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))


def _label_values(prometheus):
    def ask(selector: str | None, label: str) -> list[str]:
        params = {"match[]": selector} if selector else {}
        payload = prometheus.get(f"/api/v1/label/{label}/values", **params)
        return payload["data"]
    return ask


@pytest.mark.parametrize("uid", sorted(d["uid"] for d in DASHBOARDS.values()))
def test_every_dashboard_query_returns_data(stack, uid):
    (dashboard,) = [d for d in DASHBOARDS.values() if d["uid"] == uid]
    prom = stack.prometheus
    start, end = stack.start_time, time.time()
    range_seconds = end - start
    values = resolve_variables(dashboard, _label_values(prom), SCRAPE_INTERVAL, range_seconds)
    assert SOURCE in values["source"]
    empty, unexported = [], []
    for query in dashboard_queries(dashboard):
        expr = fill_query(query.expr, values, SCRAPE_INTERVAL, range_seconds)
        result = prom.query(expr, at=end) if query.instant else prom.query_range(expr, start, end, SCRAPE_INTERVAL)
        if not result:
            empty.append(f"{query}\n    ran: {expr}")
        for name in promql_metric_names(expr) & known_metric_names():
            if not prom.query(f"count({name})"):
                unexported.append(f"{query}: countwatch exports no {name}")
    assert not unexported, "\n".join(unexported)
    assert not empty, f"{len(empty)} queries returned nothing:\n" + "\n".join(empty)
