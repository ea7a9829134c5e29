"""Links from the shipped config open shipped dashboards (issue 13): every link template of
countwatch.example.toml, rendered for a real alert, that points at Grafana names a dashboard uid
in grafana/dashboards and only variables that dashboard defines."""
from __future__ import annotations

import json
import tomllib
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from alerts.links import render_links
from monitor.cli import parse_config
from tests.fakes.events import stall
from tests.test_alerts_config import ENV

ROOT = Path(__file__).resolve().parent.parent


def dashboards() -> dict[str, set[str]]:
    out = {}
    for path in (ROOT / "grafana" / "dashboards").glob("*.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        out[data["uid"]] = {v["name"] for v in data.get("templating", {}).get("list", [])}
    return out


class _Incident:
    id = "d15ef6aa1503"


def test_every_grafana_link_of_the_example_opens_a_shipped_dashboard_with_its_variables():
    config = parse_config(tomllib.loads((ROOT / "countwatch.example.toml").read_text()), environ=ENV)
    event = stall(source=config.sources[0].name, region="3204")
    links = render_links(config.alerting.links, config, event, _Incident())
    grafana = {name: url for name, url in links.items() if "/d/" in urlsplit(url).path}
    assert grafana, links                      # the example does link to Grafana
    known = dashboards()
    assert set(known) >= {"countwatch-overview", "countwatch-regions", "countwatch-incident"}
    for name, url in grafana.items():
        parts = urlsplit(url)
        uid = parts.path.split("/d/", 1)[1].split("/")[0]
        assert uid in known, f"link {name} opens /d/{uid}, not a shipped dashboard ({sorted(known)})"
        variables = {key[len("var-"):] for key in parse_qs(parts.query) if key.startswith("var-")}
        assert variables <= known[uid], f"link {name} sets {variables - known[uid]} that {uid} does not define"
        assert parse_qs(parts.query)["var-region"] == ["3204"]
