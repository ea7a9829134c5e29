"""The built-in simulator: a KPU-format feed on loopback, played from a scripted scenario.

    scenario = get_scenario("jabar-2018")
    clock = ScenarioClock(scenario.start, scenario.default_speed)
    with SimulatorServer(scenario, clock) as server:
        server.url_for(scenario.sources[0]["path"])

`countwatch simulate` is `run_simulator`; `countwatch demo` runs a SimulatorServer and the
daemon on one ScenarioClock. docs/simulator.md has the scenarios and the URL layout.
"""
from __future__ import annotations

import signal
import sys
import threading
from datetime import datetime, timezone
from typing import Callable, TextIO

from ..clock import ScenarioClock
from ..logs import configure_logging
from .count import WIB, RegionState
from .live import LiveScenario
from ..wording import when
from .scenario import GroundTruth, Outage, Publication, Scenario
from .scenarios import jabar_2018, steady
from .server import SimulatorServer

_FACTORIES: dict[str, Callable[[], Scenario]] = {
    "jabar-2018": jabar_2018,
    "steady": steady,
    "live": LiveScenario,
}
SCENARIOS: tuple[str, ...] = tuple(_FACTORIES)

__all__ = ["SCENARIOS", "GroundTruth", "Outage", "Publication", "RegionState", "Scenario", "SimulatorServer",
           "get_scenario", "run_simulator"]


def get_scenario(name: str) -> Scenario:
    """A fresh scenario object (the electorate behind it is shared and built once)."""
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; known scenarios: {', '.join(SCENARIOS)}") from None
    return factory()


def _both(moment: datetime) -> str:
    return when(moment, WIB, year=True, seconds=True)


def run_simulator(scenario_name: str, speed: float | None, host: str, port: int,
                  start: datetime | None = None, stream: TextIO | None = None,
                  stop_event: threading.Event | None = None, setup_logging: bool = True) -> int:
    """Serve a scenario until SIGINT/SIGTERM (or `stop_event`). Exit codes: 0 after a clean
    stop, 1 when the port cannot be bound, 2 for a bad scenario, speed or host.

    `speed` None: the scenario's default. `start`: where the scenario clock begins (default
    the scenario's start; for `live`, now). `setup_logging`: route the log (info and up, on
    stderr, stamped with scenario time) through monitor.logs; tests that own the logging
    configuration pass False."""
    stream = stream or sys.stdout
    try:
        scenario = get_scenario(scenario_name)
    except ValueError as exc:
        print(f"countwatch simulate: {exc}", file=sys.stderr)
        return 2
    speed = scenario.default_speed if speed is None else speed
    if speed <= 0:
        print("countwatch simulate: --speed must be positive", file=sys.stderr)
        return 2
    if start is not None and start.tzinfo is None:
        print("countwatch simulate: the start time needs a zone", file=sys.stderr)
        return 2
    # The CLI may read wall time: the live scenario begins now.
    origin = start or scenario.start or datetime.now(timezone.utc)
    clock = ScenarioClock(origin, speed)
    if setup_logging:
        configure_logging("auto", level="info", instance="simulator", clock=clock)
    try:
        server = SimulatorServer(scenario, clock, host=host, port=port)
        server.start()
    except ValueError as exc:
        print(f"countwatch simulate: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"countwatch simulate: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    _announce(scenario, server, clock, stream)
    stop = stop_event or threading.Event()
    restore = _on_signals(lambda *_: stop.set())
    try:
        while not stop.wait(0.2):
            pass
    finally:
        restore()
        server.stop()
    print("simulator stopped", file=stream, flush=True)
    return 0


def _announce(scenario: Scenario, server: SimulatorServer, clock: ScenarioClock, stream: TextIO) -> None:
    lines = [f"countwatch simulator: scenario {scenario.name} — {scenario.description}",
             f"  serving   {server.base_url}",
             f"  clock     {_both(clock.scenario_start)} at {clock.speed:g}x"]
    if scenario.end is not None and scenario.end > clock.scenario_start:
        wall = (scenario.end - clock.scenario_start).total_seconds() / clock.speed
        lines.append(f"  ends      {_both(scenario.end)} (~{wall:.0f} s of wall time; the feed stays up after)")
    for source in scenario.sources:
        lines.append(f"  source    {source['name']}: {server.url_for(source['path'])} (depth {source['depth']})")
    if scenario.controllable:
        lines.append(f"  control   POST {server.url_for('/_control/')}freeze | resume | outage?mode=503|502|timeout"
                     f" | ok; GET {server.url_for('/_control/status')}")
    lines.append("  Ctrl-C stops it.")
    print("\n".join(lines), file=stream, flush=True)


def _on_signals(handler) -> Callable[[], None]:
    """Install `handler` for SIGINT and SIGTERM (main thread only); returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    return lambda: [signal.signal(sig, old) for sig, old in previous.items()]
