"""The Grafana dashboards (grafana/dashboards/*.json), checked statically: essentials Grafana
needs, the datasource they use, the variables they name, the metrics they read (all in
monitor/metrics.py's table), and every query parsed by a real Prometheus.

The helpers at the top (`dashboard_queries`, `fill_query`, `resolve_variables`) are the
documented rule for turning a panel's PromQL into a query Prometheus can run; the end-to-end
test (tests/test_prometheus_e2e.py) uses them against live data. docs/dashboards.md explains.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import pytest

from tests.servers import have_binary, promql_metric_names, start_prometheus
from monitor.metrics import METRICS, exposition_names

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS_DIR = ROOT / "grafana" / "dashboards"
DATASOURCE_UID = "countwatch-prometheus"       # grafana/provisioning/datasources/countwatch.yml
PANEL_DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GRAFANA_MACROS = {"__interval", "__interval_ms", "__rate_interval", "__range", "__range_s", "__range_ms"}
GRID_WIDTH = 24

# Series Prometheus makes itself: scrape health and the alert state of rules.
PROMETHEUS_BUILTINS = {"up", "ALERTS", "ALERTS_FOR_STATE"}

needs_prometheus = pytest.mark.skipif(not have_binary("prometheus"), reason="prometheus not installed (make servers)")


# --- helpers (reused by the end-to-end test and the rule tests) ------------------------------

def known_metric_names() -> set[str]:
    """Everything /metrics can show for the table: counters with `_total`, histograms' series."""
    names = set(exposition_names())
    for spec in METRICS:
        if spec.kind == "histogram":
            base = "countwatch_" + spec.name
            names |= {base + "_bucket", base + "_sum", base + "_count"}
    return names


@dataclass(frozen=True)
class Query:
    dashboard: str       # dashboard uid
    where: str           # panel title or "annotation <name>"
    ref: str             # target refId
    expr: str
    instant: bool        # an instant query (stat, table) rather than a range (time series)

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.where} / {self.ref}: {self.expr}"


def load_dashboards() -> dict[str, dict]:
    """{file name: dashboard JSON} for every dashboard in grafana/dashboards/."""
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS_DIR.glob("*.json"))}


def panels(dashboard: Mapping) -> list[dict]:
    """All panels, including those folded inside rows."""
    found = []
    for panel in dashboard.get("panels", []):
        found.append(panel)
        found.extend(panel.get("panels", []))
    return [p for p in found if p.get("type") != "row"]


def dashboard_queries(dashboard: Mapping) -> list[Query]:
    """Every PromQL expression the dashboard runs: panel targets and annotation queries."""
    uid = dashboard["uid"]
    queries = []
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            queries.append(Query(uid, panel["title"], target["refId"], target["expr"],
                                 bool(target.get("instant")) and not target.get("range", False)))
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if annotation.get("expr"):
            queries.append(Query(uid, f"annotation {annotation['name']}", "-", annotation["expr"], False))
    return queries


def variables(dashboard: Mapping) -> list[dict]:
    return dashboard.get("templating", {}).get("list", [])


def variable_query(variable: Mapping) -> str:
    query = variable.get("query")
    return query.get("query", "") if isinstance(query, Mapping) else str(query or "")


_VARIABLE_REF = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(?P<selector>.+?)\s*,\s*)?(?P<label>\w+)\s*\)\s*$")


def referenced_variables(text: str) -> set[str]:
    return {next(g for g in m.groups() if g) for m in _VARIABLE_REF.finditer(text)}


def format_values(values: list[str], variable: Mapping) -> str:
    """As Grafana renders a variable into a Prometheus query: a multi-value or "All" selection
    becomes a regex alternation of the regex-escaped values; a single value stays as it is."""
    if variable.get("multi") or variable.get("includeAll"):
        escaped = [re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\\\1", v) for v in values]
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
    return values[0]


def fill_query(expr: str, values: Mapping[str, str], scrape_interval: float, range_seconds: float) -> str:
    """Fill Grafana macros and template variables (already formatted, see `format_values`).

    The macros follow Grafana's own definitions for a panel about 1000 px wide:
    $__interval = max(scrape interval, range / 1000), $__rate_interval = max($__interval +
    scrape interval, 4 x scrape interval), $__range = the dashboard's time range.
    """
    interval = max(scrape_interval, range_seconds / 1000)
    rate_interval = max(interval + scrape_interval, 4 * scrape_interval)
    macros = {"__rate_interval": f"{rate_interval:.0f}s", "__interval": f"{interval:.0f}s",
              "__interval_ms": f"{interval * 1000:.0f}", "__range": f"{range_seconds:.0f}s",
              "__range_s": f"{range_seconds:.0f}", "__range_ms": f"{range_seconds * 1000:.0f}"}

    def replace(match: re.Match) -> str:
        name = next(g for g in match.groups() if g)
        if name in macros:
            return macros[name]
        if name in values:
            return values[name]
        raise KeyError(f"no value for ${name} in {expr!r}")

    return _VARIABLE_REF.sub(replace, expr)


def resolve_variables(dashboard: Mapping, label_values: Callable[[str | None, str], list[str]],
                      scrape_interval: float = 15.0, range_seconds: float = 3600.0) -> dict[str, str]:
    """Value of every query variable, in order (later ones may use earlier ones), as Grafana
    would pick them with "All" selected: `label_values(selector, label)` is answered by
    `label_values(filled selector, label)` (the caller asks Prometheus)."""
    values: dict[str, str] = {}
    for variable in variables(dashboard):
        if variable.get("type") != "query":
            continue
        match = _LABEL_VALUES.match(variable_query(variable))
        assert match, f"{variable['name']}: only label_values(...) variable queries are supported here"
        selector = match.group("selector")
        if selector:
            selector = fill_query(selector, values, scrape_interval, range_seconds)
        found = sorted(set(label_values(selector, match.group("label"))))
        if not found:
            raise LookupError(f"variable ${variable['name']} has no values: {variable_query(variable)}")
        values[variable["name"]] = format_values(found, variable)
    return values


# --- the dashboards --------------------------------------------------------------------------

DASHBOARDS = load_dashboards()
ALL_QUERIES = [q for d in DASHBOARDS.values() for q in dashboard_queries(d)]


def test_the_three_dashboards_exist_with_unique_uids_and_titles():
    uids = [d["uid"] for d in DASHBOARDS.values()]
    assert sorted(uids) == ["countwatch-incident", "countwatch-overview", "countwatch-regions"]
    titles = [d["title"] for d in DASHBOARDS.values()]
    assert len(set(titles)) == len(titles)
    for name, dashboard in DASHBOARDS.items():
        assert len(dashboard["uid"]) <= 40, name          # Grafana's limit for a uid
        assert dashboard.get("id") is None, f"{name}: a provisioned dashboard must not pin a database id"
        assert isinstance(dashboard["schemaVersion"], int), name
        assert "countwatch" in dashboard["tags"], name
        assert dashboard["time"]["from"] and dashboard["time"]["to"], name
        assert panels(dashboard), name


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_datasource_variable_defaults_to_the_provisioned_prometheus(name):
    dashboard = DASHBOARDS[name]
    by_name = {v["name"]: v for v in variables(dashboard)}
    datasource = by_name["datasource"]
    assert datasource["type"] == "datasource"
    assert datasource["query"] == "prometheus"
    assert datasource["current"]["value"] == DATASOURCE_UID
    for variable in variables(dashboard):
        if variable["type"] == "query":
            assert variable["datasource"] == PANEL_DATASOURCE, f"{name}: ${variable['name']}"
            assert _LABEL_VALUES.match(variable_query(variable)), f"{name}: ${variable['name']}"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_panel_has_a_datasource_and_targets_with_expressions(name):
    dashboard = DASHBOARDS[name]
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
    for panel in panels(dashboard):
        where = f"{name}: {panel['title']!r}"
        assert panel["datasource"] == PANEL_DATASOURCE, where
        assert panel.get("description"), f"{where}: say what the panel shows"
        targets = panel["targets"]
        assert targets, where
        refs = [t["refId"] for t in targets]
        assert len(refs) == len(set(refs)), where
        for target in targets:
            assert target["expr"].strip(), where
            assert target["datasource"] == PANEL_DATASOURCE, where


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_panels_fit_the_grid_without_overlapping(name):
    occupied: dict[tuple[int, int], str] = {}
    for panel in panels(DASHBOARDS[name]):
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= GRID_WIDTH, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in occupied, f"{panel['title']!r} overlaps {occupied[(x, y)]!r}"
                occupied[(x, y)] = panel["title"]


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_queries_name_only_defined_variables_and_known_macros(name):
    dashboard = DASHBOARDS[name]
    defined = {v["name"] for v in variables(dashboard)}
    texts = [q.expr for q in dashboard_queries(dashboard)] + [variable_query(v) for v in variables(dashboard)]
    for text in texts:
        unknown = referenced_variables(text) - defined - GRAFANA_MACROS
        assert not unknown, f"{name}: {text!r} uses undefined {unknown}"


def test_every_query_reads_only_metrics_countwatch_exports():
    known = known_metric_names() | PROMETHEUS_BUILTINS
    texts = [(str(q), q.expr) for q in ALL_QUERIES]
    texts += [(f"{d['uid']} ${v['name']}", variable_query(v)) for d in DASHBOARDS.values()
              for v in variables(d) if v["type"] == "query"]
    for where, text in texts:
        match = _LABEL_VALUES.match(text)
        expr = (match.group("selector") or "") if match else text
        unknown = promql_metric_names(expr) - known
        assert not unknown, f"{where}: {unknown} not in monitor/metrics.py"


def test_the_overview_shows_what_ops_asked_for():
    overview = DASHBOARDS["countwatch-overview.json"]
    exprs = " ".join(q.expr for q in dashboard_queries(overview))
    for metric in ("countwatch_progress_ratio", "countwatch_stations_reported", "countwatch_stations{",
                   "countwatch_last_advance_timestamp_seconds", "countwatch_stall_threshold_seconds",
                   "countwatch_source_published_timestamp_seconds", "countwatch_polls_total",
                   "countwatch_poll_duration_seconds_bucket", "countwatch_alert_active"):
        assert metric in exprs, metric
    assert {v["name"] for v in variables(overview)} >= {"datasource", "source"}


def test_the_regions_dashboard_has_source_and_region_variables_and_a_stall_table():
    regions = DASHBOARDS["countwatch-regions.json"]
    by_name = {v["name"]: v for v in variables(regions)}
    assert "$source" in variable_query(by_name["region"]), "region choices should follow the source"
    tables = [p for p in panels(regions) if p["type"] == "table"]
    assert tables and any("stall" in p["title"].lower() for p in tables)
    table_exprs = " ".join(t["expr"] for p in tables for t in p["targets"])
    assert "countwatch_stall_threshold_seconds" in table_exprs
    assert 'region=~"$region"' in table_exprs


def test_the_incident_review_draws_alerts_as_annotations_over_progress():
    incident = DASHBOARDS["countwatch-incident.json"]
    annotations = [a for a in incident["annotations"]["list"] if a.get("expr")]
    assert any("countwatch_alert_active" in a["expr"] for a in annotations)
    assert any(a["expr"].startswith("ALERTS{") for a in annotations)
    for annotation in annotations:
        assert annotation["datasource"] == PANEL_DATASOURCE and annotation["enable"]
        assert annotation["titleFormat"] and annotation["tagKeys"]
    assert any("countwatch_progress_ratio" in t["expr"] for p in panels(incident) for t in p["targets"])


def test_fill_query_follows_grafanas_macro_rules():
    values = {"source": "(a|b)", "region": "32"}
    filled = fill_query('rate(x{source=~"$source", region=~"${region}"}[$__rate_interval]) [$__range] $__interval',
                        values, scrape_interval=15, range_seconds=6 * 3600)
    # 6 h / 1000 = 21.6 s > 15 s scrape; rate interval = max(21.6 + 15, 60) = 60 s
    assert filled == 'rate(x{source=~"(a|b)", region=~"32"}[60s]) [21600s] 22s'
    assert fill_query("[$__rate_interval]", {}, scrape_interval=1, range_seconds=60) == "[4s]"
    with pytest.raises(KeyError):
        fill_query("$nope", {}, 1, 60)


def test_multi_value_variables_render_as_an_escaped_alternation():
    multi = {"multi": True, "includeAll": True}
    assert format_values(["kpu-ppwp", "sim.jabar"], multi) == r"(kpu-ppwp|sim\\.jabar)"
    assert format_values(["32"], multi) == "32"
    assert format_values(["32", "33"], {"multi": False}) == "32"


@needs_prometheus
def test_every_query_parses_in_a_real_prometheus():
    # An empty Prometheus answers every valid query with an empty result and refuses invalid
    # ones with HTTP 400: this catches syntax errors before the end-to-end test runs.
    import urllib.error

    with start_prometheus("global:\n  scrape_interval: 15s\nscrape_configs: []\n") as prom:
        failures = []
        for dashboard in DASHBOARDS.values():
            values = {v["name"]: "x" for v in variables(dashboard)}
            for query in dashboard_queries(dashboard):
                try:
                    prom.query(fill_query(query.expr, values, 15, 3600))
                except urllib.error.HTTPError as exc:
                    failures.append(f"{query}\n    {exc.read().decode(errors='replace')}")
            for variable in variables(dashboard):
                match = _LABEL_VALUES.match(variable_query(variable))
                selector = match.group("selector") if match else None
                if selector:
                    try:
                        prom.get("/api/v1/series", **{"match[]": fill_query(selector, values, 15, 3600)})
                    except urllib.error.HTTPError as exc:
                        failures.append(f"${variable['name']}: {exc.read().decode(errors='replace')}")
        assert not failures, "\n".join(failures)
