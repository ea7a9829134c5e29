"""Clocks. Only the scheduler and the CLI read wall time; everything else is handed a clock.

`ScenarioClock` runs the simulator's or a demo's accelerated time: scenario time advances
`speed` times faster than the wall clock from a fixed pair of origins, so two objects built
from the same origins (the simulator and the daemon in `countwatch demo`) agree on the time.
"""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    speed: float

    def now(self) -> datetime: ...


class WallClock:
    speed = 1.0

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class ScenarioClock:
    """Scenario time = scenario_start + (monotonic now - wall origin) * speed."""

    def __init__(self, scenario_start: datetime, speed: float, wall_origin: float | None = None):
        if scenario_start.tzinfo is None:
            raise ValueError("scenario_start must be aware")
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.scenario_start = scenario_start.astimezone(timezone.utc)
        self.speed = float(speed)
        self.wall_origin = time.monotonic() if wall_origin is None else wall_origin

    def now(self) -> datetime:
        elapsed = (time.monotonic() - self.wall_origin) * self.speed
        return self.scenario_start + timedelta(seconds=elapsed)

    def wall_seconds_until(self, moment: datetime) -> float:
        """How long to sleep on the wall clock until the scenario reaches `moment`."""
        return max(0.0, (moment - self.now()).total_seconds() / self.speed)


class ManualClock:
    """A clock tests move by hand (`advance`, `set`)."""

    speed = 1.0

    def __init__(self, start: datetime):
        if start.tzinfo is None:
            raise ValueError("start must be aware")
        self._now = start.astimezone(timezone.utc)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = moment.astimezone(timezone.utc)
