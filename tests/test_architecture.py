"""The flow goes one way (docs/architecture.md): monitor/ knows nothing of alerts/ except in
the two places that assemble the program, the CLI and the daemon. alerts/ reads monitor's
model, config and clock, never its fetching."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ASSEMBLERS = {"monitor/cli.py", "monitor/daemon.py"}


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_monitor_imports_alerts_only_where_the_program_is_assembled():
    offenders = {str(p.relative_to(ROOT)): sorted(n for n in imports(p) if n.split(".")[0] == "alerts")
                 for p in modules("monitor")}
    offenders = {path: names for path, names in offenders.items() if names and path not in ASSEMBLERS}
    assert offenders == {}
    assert any(n.startswith("alerts") for n in imports(ROOT / "monitor/cli.py"))   # the check sees imports


def test_alerting_does_not_reach_into_fetching_sources_or_detectors():
    upstream = ("monitor.fetch", "monitor.sources", "monitor.detectors", "monitor.walker", "monitor.poll")
    offenders = {str(p.relative_to(ROOT)): sorted(n for n in imports(p) if n.startswith(upstream))
                 for p in modules("alerts")}
    assert {path: names for path, names in offenders.items() if names} == {}


def test_a_receiver_kind_is_one_entry_in_the_notifiers_table(monkeypatch):
    from alerts.notifiers import KINDS, ReceiverKind, build_notifier
    from monitor.cli import parse_config
    from monitor.configtools import ConfigError

    class Pager:
        kind = "pager"

        def __init__(self, receiver):
            self.name, self.url = receiver.name, receiver.url.reveal()

        def notify(self, notification):
            return None

    monkeypatch.setitem(KINDS, "pager", ReceiverKind(lambda receiver, clock: Pager(receiver), keys=("url",),
                                                     required=("url",)))
    sources = [{"name": "kpu", "kind": "sirekap", "url": "https://sirekap.example/ppwp.json"}]
    config = parse_config({"sources": sources, "receivers": [
        {"name": "duty", "kind": "pager", "url": "https://pager.example/hook"}]}, environ={})
    notifier = build_notifier(config.alerting.receiver("duty"), clock=None)
    assert isinstance(notifier, Pager) and notifier.url == "https://pager.example/hook"

    with pytest.raises(ConfigError) as error:
        parse_config({"sources": sources, "receivers": [{"name": "duty", "kind": "pager", "token": "t"}]},
                     environ={})
    assert error.value.problems == ["receivers[0] (duty).token: not used by kind = 'pager'",
                                    "receivers[0] (duty).url: is required"]


def test_a_rule_is_one_registration_with_its_family():
    """register() is the only line a rule needs: the Judge runs it, `[detection] disable`
    accepts its name, and its events carry its family (model.family_of knows it too)."""
    from monitor.cli import parse_config
    from monitor.configtools import ConfigError
    from monitor.detectors import Judge, RULE_CLASSES, register, unregister
    from monitor.detectors.base import Rule, event
    from monitor.evaluation.builders import T0, drive, ok
    from monitor.model import RULE_FAMILIES, family_of

    class SevenRule(Rule):
        name = "seven"

        def __call__(self, h, now):
            if h.current is None or h.current.stations_reported != 7:
                return []
            return [event(h, now, self.name, "observed", "info", "seven stations reported", None, {})]

    def config(disable=()):
        return parse_config({"sources": [{"name": "kpu", "kind": "sirekap", "url": "https://sirekap.example/ppwp.json"}],
                             "detection": {"disable": list(disable)}}, environ={})

    def sevens(judge):
        _, _, events = drive([ok(T0, 7, source="kpu")], judge=judge)
        return [(e.rule, e.state, e.details["family"], e.details["cause"]) for e in events if e.rule == "seven"]

    builtin = (list(RULE_CLASSES), dict(RULE_FAMILIES))
    register(SevenRule, "numerology")
    try:
        assert sevens(Judge(config())) == [("seven", "observed", "numerology", "seven")]
        assert sevens(Judge(config(disable=["seven"]))) == []
        assert family_of("seven") == "numerology"
        with pytest.raises(ValueError, match="registered already"):
            register(SevenRule, "numerology")
    finally:
        unregister(SevenRule)

    assert (list(RULE_CLASSES), dict(RULE_FAMILIES)) == builtin
    assert sevens(Judge(config())) == []
    with pytest.raises(ConfigError) as error:
        config(disable=["seven"])
    assert error.value.problems[0].startswith("detection.disable: unknown rule(s) 'seven' (known: stall, ")


def test_a_source_kind_is_one_entry_in_the_kinds_table():
    """One entry in monitor.sources.KINDS and the kind is known everywhere: config accepts it
    and takes its defaults, parse_document parses with it under its limits, and the walker
    descends its tree by its child URLs (here on a real server on loopback)."""
    from datetime import datetime, timezone

    from monitor.cli import parse_config
    from monitor.clock import ManualClock
    from monitor.configtools import ConfigError
    from monitor.detectors import Judge
    from monitor.model import RegionCount
    from monitor.sources import KINDS, DocumentError, SourceKind, child_url, level_of, parse_document
    from monitor.sources.common import ParseLimits, count
    from monitor.walker import TreeWalker
    from tests.feed import Feed, Reply

    def parse(doc, source, region):
        kids = doc.get("kids", {})
        return {"published_at": None, "stations": count(doc["n"], "n"), "stations_reported": count(doc["in"], "in"),
                "children": {code: RegionCount(stations=n) for code, n in kids.items()}}

    def toy_child_url(parent_url, parent_region, child_code):
        if not child_code.isdigit():
            raise ValueError(f"{child_code!r} is not a ward number")
        return f"{parent_url.rsplit('/', 1)[0]}/{parent_region}-{child_code}.json"

    toy = SourceKind(parse, ParseLimits(values=20, containers=4), level_of=lambda code: 0 if code == "0" else 1,
                     child_url=toy_child_url, units="wards", station_limit=True)
    start = datetime(2026, 11, 3, 20, 0, tzinfo=timezone.utc)

    def config(url):
        return parse_config({"sources": [{"name": "county", "kind": "toy", "url": url, "depth": 1,
                                          "rate_limit": 0, "retries": 0, "timeout": "5s"}]}, environ={})

    with Feed() as feed, pytest.MonkeyPatch.context() as patch:
        patch.setitem(KINDS, "toy", toy)
        feed.set("/county.json", Reply(body=b'{"n": 4, "in": 3, "kids": {"1": 1, "2": 3}}'))
        feed.set("/0-1.json", Reply(body=b'{"n": 1, "in": 1}'))
        feed.set("/0-2.json", Reply(body=b'{"n": 3, "in": 2}'))
        cfg = config(feed.url("/county.json"))
        source = cfg.sources[0]
        assert (source.kind, source.units) == ("toy", "wards")
        assert Judge(cfg).options("county").max_votes_per_station == 300      # station_limit kept it

        snapshot = parse_document(source, "0", b'{"n": 4, "in": 3}', start)
        assert (snapshot.source, snapshot.stations, snapshot.stations_reported) == ("county", 4, 3)
        with pytest.raises(DocumentError) as refused:
            parse_document(source, "0", b'{"n": 4, "in": 3, "kids": {"1": 1, "2": 1, "3": 1, "4": 1, "5": [[[1]]]}}',
                           start)
        assert refused.value.result == "too_large"                             # its own limits
        assert level_of("toy", "0") == 0 and level_of("toy", "7") == 1
        assert child_url(source, source.url, "0", "7") == feed.url("/0-7.json")
        with pytest.raises(ValueError, match="ward number"):
            child_url(source, source.url, "0", "../x")

        walker = TreeWalker(source, ManualClock(start))
        try:
            visits = list(walker.walk(lambda region: False))
        finally:
            walker.close()
        assert [(v.target.region, v.poll.result, v.poll.snapshot.stations_reported) for v in visits] == [
            ("0", "ok", 3), ("1", "ok", 1), ("2", "ok", 2)]

    assert "toy" not in KINDS and level_of("toy", "0") is None
    with pytest.raises(ConfigError) as error:
        config("https://results.example/county.json")
    assert error.value.problems == ["sources[0] (county).kind: must be one of sirekap, situng2019, json, got 'toy'"]
