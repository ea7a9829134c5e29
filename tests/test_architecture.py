"""The flow goes one way (docs/architecture.md): monitor/ knows nothing of alerts/ except in
the two places that assemble the program, the CLI and the daemon. alerts/ reads monitor's
model, config and clock, never its fetching."""
from __future__ import annotations

import ast
from pathlib import Path

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
