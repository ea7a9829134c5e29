"""`countwatch demo`: the simulator and the daemon together, in one process, on the
scenario's accelerated clock (the 2018 West Java night), no network and no account needed.

Alerts go to the console (and to Slack when SLACK_WEBHOOK_URL is set); the run ends with a
summary of what was detected when, in WIB and UTC, and the review report of the run.
"""
from __future__ import annotations

import os
import shutil
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from .clock import ScenarioClock
from .cli import parse_config
from .daemon import Daemon
from .logs import configure_logging
from .model import Event
from .wording import WIB, when



def demo_config(scenario, simulator, out_dir: Path, metrics_listen: str,
                environ: dict[str, str] | None = None) -> dict[str, Any]:
    """The raw config of the demo: the scenario's suggested sources pointed at the local
    simulator, state and log under `out_dir`."""
    environ = os.environ if environ is None else environ
    sources = []
    for spec in scenario.sources:
        source = {key: value for key, value in spec.items() if key != "path"}
        source["url"] = simulator.url_for(spec["path"])
        # The polite per-host rate limit is wall time; at 720x it would stretch one pass
        # over many scenario minutes. The simulator is ours, on loopback: no limit.
        source.setdefault("rate_limit", 0)
        sources.append(source)
    raw: dict[str, Any] = {
        "daemon": {"state_dir": str(out_dir / "state"), "timezone": "Asia/Jakarta", "instance": "demo"},
        "metrics": {"listen": metrics_listen},
        "log": {"format": "json", "file": str(out_dir / "countwatch.log")},
        "sources": sources,
        "receivers": [{"name": "console", "kind": "console"}],
        "routes": [{"match": {}, "receiver": "console"}],
    }
    if environ.get("SLACK_WEBHOOK_URL"):
        raw["receivers"].append({"name": "slack", "kind": "slack_webhook", "url": "${SLACK_WEBHOOK_URL}"})
        raw["routes"].append({"match": {}, "receiver": "slack"})
    return raw


def _both(moment: datetime | None) -> str:
    return when(moment, WIB, missing="-")


GROUP_AT = 4          # this many like events in one minute are one summary line


def summarize(events: list[Event], incidents) -> str:
    """What was detected when, next to what the scenario scripted. Like events of one minute
    (the 27 kabupaten catching up with their province at 08:30) are one line, not 27."""
    lines = ["", "What the scenario did (ground truth):"]
    for incident in incidents:
        lines.append(f"  {incident.kind:<14} {_both(incident.start)} -> {_both(incident.end)}")
    lines.append("")
    lines.append("What countwatch said:")
    shown = sorted((e for e in events if e.state != "observed" or e.rule in ("jump", "over_capacity", "regression")),
                   key=lambda e: e.at)
    groups: dict[tuple, list[Event]] = {}
    for event in shown:
        key = (event.at.replace(second=0, microsecond=0), event.state, event.severity, event.rule, event.source)
        groups.setdefault(key, []).append(event)
    for (minute, state, severity, rule, source), members in groups.items():
        head = f"  {_both(minute if len(members) >= GROUP_AT else members[0].at)}  {state:<9} {severity:<8} {rule:<13} "
        if len(members) >= GROUP_AT:
            regions = [_place(e) for e in members]
            listed = ", ".join(regions[:6]) + (f" and {len(regions) - 6} more" if len(regions) > 6 else "")
            lines.append(f"{head}{source}: {len(members)} regions ({listed}); first: {members[0].summary}")
        else:
            lines.extend(f"{head}{e.source}/{_place(e)}: {e.summary}" for e in members)
    if not shown:
        lines.append("  (nothing)")
    return "\n".join(lines)


def _place(event: Event) -> str:
    """`Jawa Barat (32)` when the daemon named the region, else the code."""
    name = event.details.get("region_name")
    return f"{name} ({event.region})" if name else event.region


def run_demo(speed: float | None = None, out_dir: str | Path = "var/demo", metrics_listen: str = "127.0.0.1:9477",
             scenario_name: str = "jabar-2018", stream=None) -> int:
    from .simulator import SimulatorServer, get_scenario

    stream = stream or sys.stdout
    scenario = get_scenario(scenario_name)
    speed = speed or scenario.default_speed
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)   # each demo starts from a clean state: it replays a fixed night
    out.mkdir(parents=True)
    clock = ScenarioClock(scenario.start, speed)
    simulator = SimulatorServer(scenario, clock)
    simulator.start()
    try:
        config = parse_config(demo_config(scenario, simulator, out, metrics_listen))
    except Exception:
        simulator.stop()
        raise
    configure_logging("json", config.log_file, "info", config.instance, clock, stream=open(os.devnull, "w"))
    daemon = Daemon(config, clock)
    wall = (scenario.end - scenario.start).total_seconds() / speed
    print(f"countwatch demo: scenario {scenario_name}, {_both(scenario.start)} -> {_both(scenario.end)}, "
          f"speed {speed:g}x (~{wall:.0f} s)", file=stream)
    print(f"  simulator: {simulator.base_url}", file=stream)
    try:
        daemon.start()
        print(f"  metrics:   http://{metrics_listen.rpartition(':')[0]}:{daemon.metrics_port}/metrics", file=stream)
        print(f"  log:       {config.log_file}", file=stream)
        receivers = [r.name for r in config.alerting.receivers]
        where = ("the console (below) and Slack (the incoming webhook in SLACK_WEBHOOK_URL)" if "slack" in receivers
                 else "the console only (below); Slack is off: set SLACK_WEBHOOK_URL to send there too")
        print(f"  alerts:    {where}", file=stream)
        print("  alerts follow on the console as they are sent:\n", file=stream, flush=True)
        while clock.now() < scenario.end:
            daemon.stop_event.wait(0.1)
        daemon.alerts.drain(5.0)
    finally:
        daemon.stop()
        simulator.stop()
    print(summarize(daemon.events, scenario.incidents), file=stream)
    report = _write_report(config.log_file, out)
    if report:
        print(f"\nReview report: {report}", file=stream)
    return 0


def _write_report(log_file: Path, out: Path) -> str | None:
    """The post-incident report of the run."""
    from .timeline import write_report

    return write_report([log_file], out)
