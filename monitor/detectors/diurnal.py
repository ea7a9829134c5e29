"""A series' daily rhythm: how fast it advances at each hour of the source's day.

A count slows down every night (the real 2024 count went from ~900 TPS/h by day to ~20 at
04:00 WIB), so "a gap this long has become improbable" depends on when the gap began. The
rhythm keeps, per local hour, the advances seen and the time observed (exponentially forgotten,
half-life two days), fed only from gaps that were watched throughout and were not incidents.
Once it has seen every hour, the stall threshold walks forward from the last advance through
the hours ahead, summing the expected advances until the budget's level is reached: the
evening's slow-down is anticipated instead of discovered one false alarm at a time. A level
factor (recent advances over what the rhythm expected for them) follows a count that slows
from day to day.
"""
from __future__ import annotations

import math
from typing import Sequence

BINS = 24
HALF_LIFE = 4 * 86400.0
MATURE_SECONDS = 1.5 * 86400      # total time observed before the rhythm is trusted
MATURE_BIN = 900.0                # ...and at least this much in every hour of the day
PRIOR_WEIGHT = 600.0              # seconds of "the recent average" each hour starts from
PRIOR_PUBLICATIONS = 0.2          # ...or publications, for a cadenced source
WALK_LIMIT = 14 * 86400.0


class Rhythm:
    """Per-hour advances and what they are counted against: seconds watched (a Poisson-like
    source, `cadence` 0) or publications (a cadenced one, `cadence` its period). Counting a
    cadenced source in publications keeps "every publication brought stations" exactly 1: at
    a budget of 1 in 720, a rate off by 1% would already ask for a second missed publication."""

    __slots__ = ("advances", "exposure", "stations", "cadence")

    def __init__(self, advances: Sequence[float] | None = None, exposure: Sequence[float] | None = None,
                 stations: Sequence[float] | None = None, cadence: float = 0.0):
        self.advances = list(advances) if advances else [0.0] * BINS
        self.exposure = list(exposure) if exposure else [0.0] * BINS
        self.stations = list(stations) if stations else [0.0] * BINS
        self.cadence = cadence

    def to_json(self) -> list:
        # Values are rounded when they enter, so this is exact; whole numbers are written as ints.
        return [[_whole(v) for v in row] for row in (self.advances, self.exposure, self.stations)] + [self.cadence]

    @classmethod
    def from_json(cls, data: list) -> "Rhythm":
        return cls(data[0], data[1], data[2], data[3])

    @property
    def mature(self) -> bool:
        if self.cadence:
            return sum(self.exposure) * self.cadence >= MATURE_SECONDS and min(self.exposure) * self.cadence >= MATURE_BIN
        return sum(self.exposure) >= MATURE_SECONDS and min(self.exposure) >= MATURE_BIN

    def record(self, start: float, end: float, offset: float, cadence: float | None, stations: float) -> None:
        """A watched gap from `start` to `end` (epoch seconds) that ended in one advance of
        `stations`; `offset` is the source's UTC offset in seconds, `cadence` its period if it
        has one."""
        if end <= start:
            return
        cadence = cadence or 0.0
        if abs(cadence - self.cadence) > 0.1 * max(cadence, self.cadence):
            self.advances, self.exposure, self.stations = [0.0] * BINS, [0.0] * BINS, [0.0] * BINS
            self.cadence = cadence
        keep = 0.5 ** ((end - start) / HALF_LIFE)
        for b in range(BINS):
            self.advances[b] = round(self.advances[b] * keep, 4)
            self.stations[b] = round(self.stations[b] * keep, 3)
            self.exposure[b] = round(self.exposure[b] * keep, 4 if cadence else 1)
        if cadence:
            count = max(1, round((end - start) / cadence))
            for j in range(count):
                b, _ = hour_of(end - j * cadence, offset)
                self.exposure[b] = round(self.exposure[b] + 1, 4)
        else:
            t = start
            while t < end:
                b, until = hour_of(t, offset)
                step = min(until, end) - t
                self.exposure[b] = round(self.exposure[b] + step, 1)
                t += step
        b, _ = hour_of(end, offset)
        self.advances[b] = round(self.advances[b] + 1, 4)
        self.stations[b] = round(self.stations[b] + stations, 3)

    def expected_stations(self, start: float, end: float, offset: float) -> float:
        """Stations the rhythm expects between two moments (what a freeze leaves as backlog)."""
        per = self.cadence or 1.0
        rates = [n / (e * per) if e > 0 else 0.0 for n, e in zip(self.stations, self.exposure)]
        return expected(rates, start, end, offset)

    def rates(self, prior: float, poll: float | None = None) -> list[float]:
        """Per hour: advances per second (Poisson-like) or the chance that a publication
        brings stations (cadenced), each shrunk towards `prior` (the same, from recent gaps).

        A Poisson-like source polled every `poll` seconds shows at most one advance per poll,
        however many updates came in between: the share p of polls with an advance gives the
        update rate -ln(1 - p) / poll, which is what the chance of a silent gap depends on."""
        if self.cadence:
            return [(n + PRIOR_PUBLICATIONS * prior) / (e + PRIOR_PUBLICATIONS)
                    for n, e in zip(self.advances, self.exposure)]
        rates = [(n + PRIOR_WEIGHT * prior) / (e + PRIOR_WEIGHT) for n, e in zip(self.advances, self.exposure)]
        return [unmerged(r, poll) for r in rates]

    def mean_gap(self) -> float:
        return sum(self.exposure) * (self.cadence or 1.0) / max(sum(self.advances), 1e-9)


def unmerged(rate: float, poll: float | None) -> float:
    """The update rate behind an observed rate of advances, when each poll can show one."""
    if not poll or rate <= 0:
        return rate
    share = min(rate * poll, 0.95)
    return -math.log(1.0 - share) / poll


def _whole(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def hour_of(epoch: float, offset: float) -> tuple[int, float]:
    """The local hour of `epoch` and the epoch at which that hour ends."""
    local = epoch + offset
    hour_start = math.floor(local / 3600) * 3600
    return int(hour_start // 3600) % BINS, hour_start + 3600 - offset


def expected(rates: list[float], start: float, end: float, offset: float) -> float:
    """Expected advances between two moments."""
    total, t = 0.0, start
    while t < end:
        b, until = hour_of(t, offset)
        step = min(until, end) - t
        total += rates[b] * step
        t += step
    return total


def time_to(rates: list[float], start: float, level: float, offset: float) -> float:
    """Seconds from `start` until the expected advances reach `level` (Poisson-like)."""
    remaining, t = level, start
    while t - start < WALK_LIMIT:
        b, until = hour_of(t, offset)
        step = until - t
        gain = rates[b] * step
        if gain >= remaining:
            return t - start + remaining / max(rates[b], 1e-12)
        remaining -= gain
        t = until
    return WALK_LIMIT


def publications_to(chances: list[float], start: float, cadence: float, level: float, offset: float,
                    floor_skip: float) -> int:
    """Publications after `start` until a run that brought nothing has become as improbable
    as e**-level: each one adds -ln(chance that it brings no stations) at its hour."""
    total, j = 0.0, 0
    while j * cadence < WALK_LIMIT:
        j += 1
        b, _ = hour_of(start + j * cadence, offset)
        total += -math.log(max(1.0 - min(chances[b], 1.0), floor_skip))
        if total >= level:
            return j
    return j
