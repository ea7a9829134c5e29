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


class SteadyClock:
    """`countwatch run`'s clock: the wall time read once at start-up, advanced by the monotonic
    clock. A step of the system clock (NTP correcting it, `date -s`, a VM restored) is not
    followed while the daemon runs: jumped forward it would fake a stall and a stale source
    (hours "without an advance" in one poll), jumped back it would make the detectors ignore
    every poll until the clock caught up with the last one they judged. NTP's slewing changes
    the rate of both clocks alike, so this clock keeps in step with it. `offset()` is how far
    the system clock has stepped away since start-up (the daemon logs it); a restart adopts
    the system clock again. `wall` and `monotonic` are injectable for tests."""

    speed = 1.0

    def __init__(self, wall=time.time, monotonic=time.monotonic):
        self._wall = wall
        self._monotonic = monotonic
        self._origin_wall = wall()
        self._origin_monotonic = monotonic()

    def _seconds(self) -> float:
        return self._origin_wall + (self._monotonic() - self._origin_monotonic)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._seconds(), timezone.utc)

    def offset(self) -> float:
        """System wall clock minus this clock, in seconds (0 until the system clock steps)."""
        return self._wall() - self._seconds()
