"""Scenario generator with ground truth: synthetic recordings whose incidents are known.

A series is a publisher (on a cadence, or Poisson-like) counting stations through days with a
daily rhythm (slowest around 04:00 WIB), polled by us every minute. Into it go, at known times:
stalls from 15 minutes to 48 hours (timestamp frozen: the publisher stopped; or timestamp
moving with counts frozen: a stuck pipeline) that end in a catch-up, outages (hard, classified,
and flapping), a latency spell, vote corrections and outsized batches. The publisher's own
randomness (how many stations a publication brings) is what the detectors must not mistake
for an incident; the profile's rates are what the oracle knows and the detectors must learn.

Everything is seeded: the same profile and index give the same series, byte for byte.
"""
from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Iterator

from ..model import Poll, Snapshot
from .builders import WIB

START = datetime(2024, 2, 15, 0, 0, tzinfo=timezone.utc)     # 07:00 WIB, the morning after voting
SHARES = (0.25, 0.58, 0.17)                                  # 2024's three candidates, roughly
VOTES_PER_STATION = 200
STALL_LENGTHS = (15 * 60, 30 * 60, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 16 * 3600, 48 * 3600)
OUTAGES = ((2 * 60, "timeout"), (5 * 60, "http_5xx"), (12 * 60, "connect"), (30 * 60, "dns"),
           (3600, "http_403"), (3 * 3600, "http_5xx"), (3600, "flapping"))


@dataclass(frozen=True)
class Profile:
    """How a publisher behaves. `peak` is stations per hour at the day's busiest."""

    name: str
    kind: str                      # "cadence" | "poisson"
    peak: float
    night: float                   # the rate's share left at the quietest hour (04:00 WIB)
    stations: int
    cadence: float | None = None   # seconds between publications (cadence)
    events: float | None = None    # publications per hour at the peak (poisson)
    poll: float = 60.0
    description: str = ""

    def rhythm(self, moment: datetime) -> float:
        """Share of the peak rate at `moment`: 1 at 16:00 WIB, `night` at 04:00 WIB."""
        hour = (moment.timestamp() / 3600 + 7) % 24
        bump = (1 - math.cos(2 * math.pi * (hour - 4) / 24)) / 2
        return self.night + (1 - self.night) * bump ** 2

    def stations_per_second(self, moment: datetime) -> float:
        return self.peak * self.rhythm(moment) / 3600


PROFILES = {
    "hourly": Profile("hourly", "cadence", peak=900, night=0.03, stations=823_236, cadence=3600,
                      description="Sirekap 2024 national: hourly at HH:00:15 WIB, ~900 TPS/h by day, ~30 at night"),
    "quarter": Profile("quarter", "cadence", peak=1200, night=0.03, stations=813_350, cadence=900,
                       description="Situng 2019 national: every 15 min, ~300 TPS per publication by day"),
    "poisson": Profile("poisson", "poisson", peak=150, night=0.05, stations=74_962, events=60,
                       description="a provincial feed updating as data arrives: ~60 updates/h by day, ~3 at night"),
    "sparse": Profile("sparse", "cadence", peak=12, night=0.05, stations=20_000, cadence=3600,
                      description="a small province of an hourly source: ~12 TPS/h by day, often none at night"),
}


@dataclass(frozen=True)
class Injected:
    """Ground truth of the evaluation: one trouble the generator put into a series, and when."""
    kind: str                      # stall | outage | latency | correction | jump
    start: datetime
    end: datetime
    ts_frozen: bool = False        # stall: the publisher stopped (True) or the pipeline is stuck
    detail: str = ""


@dataclass
class Series:
    profile: Profile
    index: int
    polls: list[Poll]
    incidents: list[Injected]
    publications: list[tuple[datetime, int]]    # (time, stations reported) of every publication
    expected: list[float] = field(default_factory=list)   # stations a publication should bring (cadence)
    end: datetime = START

    @property
    def name(self) -> str:
        return f"{self.profile.name}-{self.index:02d}"

    @property
    def days(self) -> float:
        return (self.end - START).total_seconds() / 86400


def poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean > 40:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, product, count = math.exp(-mean), rng.random(), 0
    while product > limit:
        product *= rng.random()
        count += 1
    return count


def _plan(rng: random.Random, days: float) -> list[Injected]:
    """Stalls and outages in random order, a day or more of normal counting between them."""
    kinds = [("stall", length, i % 2 == 0) for i, length in enumerate(STALL_LENGTHS)]
    kinds += [("outage", length, what) for length, what in OUTAGES]
    kinds.append(("latency", 3600, ""))
    rng.shuffle(kinds)
    incidents, t = [], START + timedelta(hours=rng.uniform(30, 40))   # time to learn first
    horizon = START + timedelta(days=days)
    for kind, length, extra in kinds:
        end = t + timedelta(seconds=length)
        if end + timedelta(hours=6) > horizon:
            break
        if kind == "stall":
            incidents.append(Injected("stall", t, end, ts_frozen=bool(extra)))
        elif kind == "outage":
            incidents.append(Injected("outage", t, end, detail=str(extra)))
        else:
            incidents.append(Injected("latency", t, end))
        t = end + timedelta(hours=rng.uniform(24, 40))
    return incidents


def generate(profile: Profile, index: int, days: float = 30.0) -> Series:
    rng = random.Random(zlib.crc32(f"{profile.name}:{index}".encode()))
    planned = _plan(rng, days)
    end = START + timedelta(days=days)
    stalls = [i for i in planned if i.kind == "stall"]
    publications, expected, injected = _publish(profile, rng, stalls, end)
    polls = list(_poll(profile, rng, publications, planned, end, rng.uniform(0, profile.poll)))
    incidents = sorted(planned + injected, key=lambda i: i.start)
    return Series(profile, index, polls, incidents, [(p[0], p[1]) for p in publications], expected, end)


def _publish(profile: Profile, rng: random.Random, stalls: list[Injected], end: datetime):
    """Publications as (published_at, reported, votes) and the injected corrections/jumps."""
    times = _publication_times(profile, rng, end)
    reported = int(profile.stations * 0.3)         # far enough from the end for 30 days of counting
    votes = [int(reported * VOTES_PER_STATION * s) for s in SHARES]
    backlog, out, expected, injected = 0, [], [], []
    previous = START
    for moment in times:
        spacing = (moment - previous).total_seconds()
        mean = (profile.stations_per_second(moment) * (moment - previous).total_seconds()
                if profile.kind == "cadence" else
                profile.stations_per_second(moment) / (profile.events * profile.rhythm(moment) / 3600))
        previous = moment
        increment = poisson(rng, mean) if profile.kind == "cadence" else 1 + poisson(rng, max(mean - 1, 0))
        stall = next((s for s in stalls if s.start <= moment < s.end), None)
        if stall is not None:
            backlog += increment
            if not stall.ts_frozen:
                out.append((moment, reported, tuple(votes)))     # the timestamp moves, the count does not
                expected.append(mean)
            continue
        increment += backlog
        backlog = 0
        # About one outsized batch per three days and one correction a day, whatever the pace.
        if increment and rng.random() < spacing / (3 * 86400) / 0.5 and profile.rhythm(moment) > 0.5 \
                and not _near(stalls, moment):
            # An outsized batch: thirty times the hour's usual, at least 0.3% of all stations.
            increment += max(30 * round(mean), int(0.003 * profile.stations))
            injected.append(Injected("jump", moment, moment, detail="batch"))
        increment = min(increment, profile.stations - reported)
        reported += increment
        for c, share in enumerate(SHARES):
            votes[c] += poisson(rng, increment * VOTES_PER_STATION * share)
        if rng.random() < spacing / 86400 and not _near(stalls, moment):
            c = rng.randrange(len(SHARES))
            votes[c] -= rng.randint(1, 300)
            injected.append(Injected("correction", moment, moment, detail=str(c)))
        out.append((moment, reported, tuple(votes)))
        expected.append(mean)
    return out, expected, injected


def _near(stalls: list[Injected], moment: datetime) -> bool:
    return any(s.start - timedelta(hours=6) <= moment <= s.end + timedelta(hours=6) for s in stalls)


def _publication_times(profile: Profile, rng: random.Random, end: datetime) -> list[datetime]:
    if profile.kind == "cadence":
        count = int((end - START).total_seconds() // profile.cadence)
        return [START + timedelta(seconds=j * profile.cadence + 15) for j in range(1, count)]
    # Poisson by thinning: candidate events at the peak rate, kept with the rhythm's share.
    times, t, peak = [], START, profile.events / 3600
    while True:
        t += timedelta(seconds=rng.expovariate(peak))
        if t >= end:
            return times
        if rng.random() < profile.rhythm(t):
            times.append(t.replace(microsecond=0))


def _poll(profile: Profile, rng: random.Random, publications, planned: list[Injected], end: datetime,
          phase: float) -> Iterator[Poll]:
    name = f"{profile.name}"
    outages = [i for i in planned if i.kind == "outage"]
    slow = [i for i in planned if i.kind == "latency"]
    t = START + timedelta(seconds=phase)
    step = timedelta(seconds=profile.poll)
    index, last_seen = -1, None
    flap = 0
    while t < end:
        while index + 1 < len(publications) and publications[index + 1][0] <= t:
            index += 1
        outage = next((o for o in outages if o.start <= t < o.end), None)
        if outage is not None and (outage.detail != "flapping" or (flap := flap + 1) % 5 < 3):
            result = "timeout" if outage.detail == "flapping" else outage.detail
            yield Poll(source=name, region="0", at=t, result=result, detail="simulated")
        elif index < 0:
            pass
        else:
            latency = 8.0 if any(s.start <= t < s.end for s in slow) else round(rng.uniform(0.2, 0.4), 3)
            if index == last_seen:
                yield Poll(source=name, region="0", at=t, result="not_modified", latency_seconds=latency)
            else:
                moment, reported, votes = publications[index]
                snapshot = Snapshot(source=name, region="0", at=t, published_at=moment.astimezone(WIB),
                                    stations=profile.stations, stations_reported=reported,
                                    votes={str(100025 + c): v for c, v in enumerate(votes)},
                                    percent=round(100 * reported / profile.stations, 2))
                yield Poll(source=name, region="0", at=t, result="ok", snapshot=snapshot, latency_seconds=latency)
                last_seen = index
        t += step
