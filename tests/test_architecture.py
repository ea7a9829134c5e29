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
