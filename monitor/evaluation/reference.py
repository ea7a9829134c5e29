"""The detectors countwatch is measured against, run over the same polls:

- the **oracle**, which knows the profile's true rate at every moment (and, for a cadence,
  the publication schedule) and alarms once the run without progress has become as improbable
  as the false-alarm budget allows: once H(last advance, now) >= ln(1 + T / mean gap), H being
  the expected number of advances (Poisson: the integrated event rate; cadence: the summed
  expected stations of the scheduled publications, whose chance of bringing none is e^-mean);
- **fixed thresholds** as uptime tools configure them: "no change for 15 min / 60 min / 3 h".

Each returns the times of its first alarm in every episode without progress; like the Judge it
looks only at polls that worked (a failed poll says nothing about progress).
"""
from __future__ import annotations

import bisect
import math
from datetime import datetime, timedelta
from typing import Callable

from .scenarios import START, Profile, Series

FIXED = {"fixed 15 min": 15 * 60.0, "fixed 60 min": 3600.0, "fixed 3 h": 3 * 3600.0}
STEP = 60.0                         # resolution of the integrated rate (seconds)


class Hazard:
    """Expected advances between two moments, from the profile alone."""

    def __init__(self, profile: Profile, end: datetime, what: str = "advance"):
        self.profile = profile
        self.what = what
        if profile.kind == "cadence":
            count = int((end - START).total_seconds() // profile.cadence) + 2
            self.instants = [START.timestamp() + j * profile.cadence + 15 for j in range(count)]
            cumulative, total = [], 0.0
            for instant in self.instants:
                if what == "advance":
                    total += profile.stations_per_second(_at(instant)) * profile.cadence
                else:
                    total += 50.0            # a cadenced publisher never skips: one miss is decisive
                cumulative.append(total)
            self.cumulative = cumulative
        else:
            steps = int((end - START).total_seconds() // STEP) + 2
            total, cumulative = 0.0, []
            for k in range(steps):
                cumulative.append(total)
                total += profile.events / 3600 * profile.rhythm(_at(START.timestamp() + k * STEP)) * STEP
            self.cumulative = cumulative

    def at(self, moment: float) -> float:
        if self.profile.kind == "cadence":
            k = bisect.bisect_right(self.instants, moment) - 1
            return self.cumulative[k] if k >= 0 else 0.0
        position = (moment - START.timestamp()) / STEP
        k = min(int(position), len(self.cumulative) - 2)
        return self.cumulative[k] + (self.cumulative[k + 1] - self.cumulative[k]) * (position - k)

    def level(self, budget_seconds: float) -> float:
        """ln(1 + T / mean gap): the CUSUM threshold at one false alarm per T."""
        span = self.at(START.timestamp() + 7 * 86400) - self.at(START.timestamp() + 86400)
        if self.profile.kind == "cadence" and self.what == "advance":
            advances = sum(1 - math.exp(-(self.cumulative[k + 1] - self.cumulative[k]))
                           for k in range(len(self.instants) - 1)
                           if START.timestamp() + 86400 <= self.instants[k] < START.timestamp() + 7 * 86400)
        else:
            advances = span if self.profile.kind == "poisson" else 6 * 86400 / self.profile.cadence
        mean_gap = 6 * 86400 / advances
        return math.log1p(budget_seconds / mean_gap)


def _at(epoch: float) -> datetime:
    return START + timedelta(seconds=epoch - START.timestamp())


def episodes(series: Series, fires: Callable[[float, float, float], bool], what: str = "advance") -> list[datetime]:
    """First alarm per episode without progress (`what`: advance or publication).
    fires(now, seen_at, published_at) -> bool, epochs in seconds."""
    alarms, seen_at, published_at, armed, best, last_pub = [], None, None, True, None, None
    for poll in series.polls:
        if not poll.ok:
            continue
        now = poll.at.timestamp()
        snap = poll.snapshot
        if snap is not None:
            if what == "advance":
                moved = best is None or snap.stations_reported > best
                if moved:
                    best = snap.stations_reported
            else:
                moved = last_pub is None or snap.published_at > last_pub
                if moved:
                    last_pub = snap.published_at
            if moved:
                seen_at, published_at, armed = now, snap.published_at.timestamp(), True
                continue
        if seen_at is not None and armed and fires(now, seen_at, published_at):
            alarms.append(poll.at)
            armed = False
    return alarms


def oracle_alarms(series: Series, budget: float, what: str = "advance") -> list[datetime]:
    hazard = Hazard(series.profile, series.end, what)
    level = hazard.level(budget)
    return episodes(series, lambda now, seen, published: hazard.at(now) - hazard.at(published) >= level, what)


def fixed_alarms(series: Series, seconds: float) -> list[datetime]:
    return episodes(series, lambda now, seen, published: now - seen >= seconds)
