"""Publishers as real ones behave, each from a true law the oracle knows and countwatch must learn.

A `Law` says when a publisher publishes (slots on a cadence with jitter, a drifting minute,
skipped and late slots; or arrivals as data comes; or one or two batches a day once the count
settles), how many units a publication brings (Poisson, or a mixed Poisson whose multiplier is
lognormal or Pareto: batch sizes with a coefficient of variation from 0.3 to 3), how the pace
follows the local day (shape, steepness, floor, time zone), and the count's life: starting hours
after the daemon, test data published then cleared to zero, a tail whose pace falls with what
remains, completion. A tree publishes children whose speeds differ by up to 100x.

`publish(law, seed, days)` draws one series: its polls (every `poll` seconds, 304 when nothing
changed), its ground truth (stalls with frozen or moving timestamps, outsized batches, the
clearing of test data, per-child stalls), and the slot table the oracle reads the true gap law
from. Everything is seeded: the same law and seed give the same series.
"""
from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache

from ..model import Poll, RegionCount, Snapshot
from .scenarios import START, poisson

SHARES = (0.52, 0.45, 0.03)
VOTES_PER_UNIT = 200
Q_RARE = 1e-4            # an injected outsized batch is 5x the batch the law brings once in 10^4


@dataclass(frozen=True)
class Law:
    name: str
    stations: int = 300_000
    peak: float = 900.0             # units per hour at the busiest local hour
    night: float = 0.05             # the rate's share left at the quietest hour
    shape: float = 2.0              # exponent of the day's bump: 1 gentle, 8 a steep working day
    busiest: float = 16.0           # local hour of the peak
    utc_offset: float = 7.0         # the publisher's time zone, hours east of UTC
    cadence: float | None = 900.0   # seconds between publication slots; None: arrivals as data comes
    arrivals: float = 60.0          # publications per hour at the peak (cadence None; thinned by the day)
    daily: tuple[float, ...] = ()   # local hours of the day's batches once the count settles
    settle_after: float | None = None   # days after which only the `daily` batches are published
    daily_jitter: float = 600.0     # a daily batch comes within ± this many seconds of its hour
    jitter: float = 0.0             # a slot is published uniformly within ± this many seconds
    drift: float = 0.0              # the publication minute moves this many seconds a day
    skip: float = 0.0               # chance a slot publishes nothing
    late: float = 0.0               # chance a slot is late ...
    late_by: float = 0.0            # ... by up to this many seconds (uniform)
    batch: str = "poisson"          # poisson | lognormal | pareto
    cv: float = 0.0                 # coefficient of variation of the batch multiplier
    start_ratio: float = 0.3        # share reported when the daemon starts (counting)
    tail: float = 0.0               # pace in proportion to what remains once below tail x stations
    starts_after: float = 0.0       # hours at zero before counting starts
    test_data: bool = False         # test data on show when the daemon starts, cleared after 1-2 h
    children: int = 0               # a tree of this many children ...
    spread: float = 1.0             # ... whose speeds span this factor
    lagging: bool = False           # one child left behind: at 0.06% and 500x slower than its size says
    timestamp: bool = True          # the source dates its publications
    moving_share: float = 0.5       # share of stalls with a moving timestamp (pipeline stuck)
    stall_lengths: tuple[float, ...] = (1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 16 * 3600)
    poll: float = 60.0

    def rhythm(self, epoch: float) -> float:
        hour = (epoch / 3600 + self.utc_offset) % 24
        bump = ((1 + math.cos(2 * math.pi * (hour - self.busiest) / 24)) / 2) ** self.shape
        return self.night + (1 - self.night) * bump

    def pace(self, epoch: float, remaining: int) -> float:
        """Units per second the law expects at `epoch` with `remaining` units not yet in."""
        factor = 1.0 if self.tail <= 0 else min(1.0, remaining / (self.tail * self.stations))
        return self.peak / 3600 * self.rhythm(epoch) * factor


# -- batch sizes ------------------------------------------------------------------------------

def multiplier(law: Law, rng: random.Random) -> float:
    """A mean-1 multiplier of the expected batch (the publisher's batchiness)."""
    if law.batch == "lognormal" and law.cv > 0:
        sigma2 = math.log(1 + law.cv ** 2)
        return rng.lognormvariate(-sigma2 / 2, math.sqrt(sigma2))
    if law.batch == "pareto" and law.cv > 0:
        alpha = 1 + math.sqrt(1 + 1 / law.cv ** 2)
        return (alpha - 1) / alpha * rng.paretovariate(alpha)
    return 1.0


@lru_cache(maxsize=64)
def _sample(batch: str, cv: float) -> tuple[float, ...]:
    rng = random.Random(zlib.crc32(f"{batch}:{cv:.4f}".encode()))
    law = Law("sample", batch=batch, cv=cv)
    return tuple(multiplier(law, rng) for _ in range(4000))


@lru_cache(maxsize=200_000)
def _empty(batch: str, cv: float, mean: float) -> float:
    if batch == "poisson" or cv <= 0:
        return math.exp(-mean)
    sample = _sample(batch, cv)
    return sum(math.exp(-mean * g) for g in sample) / len(sample)


def empty_chance(law: Law, mean: float) -> float:
    """P(a publication expected to bring `mean` units brings none), under the true law."""
    if mean <= 0:
        return 1.0
    return _empty(law.batch, round(law.cv, 4), float(f"{mean:.3g}"))


def rare_multiplier(law: Law) -> float:
    if law.batch == "lognormal" and law.cv > 0:
        sigma = math.sqrt(math.log(1 + law.cv ** 2))
        return math.exp(-sigma ** 2 / 2 + 3.719 * sigma)
    if law.batch == "pareto" and law.cv > 0:
        alpha = 1 + math.sqrt(1 + 1 / law.cv ** 2)
        return (alpha - 1) / alpha * Q_RARE ** (-1 / alpha)
    return 1.0


def outsized(law: Law, mean: float) -> int:
    """Units an injected outsized batch adds: 5x the law's 1-in-10^4 batch, at least 0.2% of all."""
    rare = mean * rare_multiplier(law) + 3.719 * math.sqrt(max(mean, 1.0))
    return max(math.ceil(5 * rare), math.ceil(0.002 * law.stations))


# -- ground truth -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Truth:
    kind: str                       # stall | jump | clear | child_stall
    start: datetime
    end: datetime
    ts_frozen: bool = False
    region: str = "0"


@dataclass(frozen=True)
class Slot:
    """One publication the law schedules: the oracle's unit of expectation."""

    nominal: float                  # epoch seconds, drift included
    gap: float                      # seconds of counting it carries (from the slot before)
    jitter: float                   # it appears uniformly within ± this many seconds


@dataclass
class Published:
    at: float                       # epoch seconds the publication appeared
    slot: int                       # its slot (-1: arrivals, -2: not the law's: test data / clear)
    reported: int
    votes: tuple[int, ...]
    children: tuple[int, ...] = ()


@dataclass
class Generated:
    law: Law
    seed: int
    days: float
    polls: list[Poll]
    truth: list[Truth]
    slots: list[Slot]
    publications: list[Published]
    shown: list[int]                # per poll: the publication it shows (-1: none yet)
    hazard: list[float] = field(default_factory=list)   # arrivals: cumulative expected advances per minute
    pub_hazard: list[float] = field(default_factory=list)
    child_names: tuple[str, ...] = ()
    weights: tuple[float, ...] = ()
    counting_from: float = 0.0      # epoch seconds counting began
    complete_at: float | None = None
    stations: int = 0

    def expected(self, epoch: float, seconds: float, remaining: int) -> float:
        """Units the law expects over `seconds` of counting at `epoch` with `remaining` to go."""
        if epoch < self.counting_from or remaining <= 0:
            return 0.0
        mean = self.law.pace(epoch, remaining) * seconds
        if self.law.starts_after > 0 and epoch < self.counting_from + 3600:
            mean *= 3                                  # the first hour after polls close
        return mean

    @property
    def source(self) -> str:
        return f"{self.law.name}-{self.seed:02d}"

    @property
    def end(self) -> datetime:
        return START + timedelta(days=self.days)


def _epoch(moment: datetime) -> float:
    return moment.timestamp()


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(round(epoch, 3), tz=timezone.utc)


def _child_weights(law: Law, rng: random.Random) -> list[float]:
    if not law.children:
        return []
    # Log-spaced over the spread, shuffled: the slowest child is `spread` times slower.
    weights = [law.spread ** (k / max(law.children - 1, 1)) for k in range(law.children)]
    rng.shuffle(weights)
    return weights


def _plan(law: Law, rng: random.Random, begin: float, end: float, behind: str | None = None) -> list[Truth]:
    lengths = list(law.stall_lengths)
    rng.shuffle(lengths)
    out, t = [], begin + rng.uniform(30, 40) * 3600
    children = [str(11 + k) for k in range(law.children) if str(11 + k) != behind]
    for k, length in enumerate(lengths):
        if t + length + 6 * 3600 > end:
            break
        if children and k % 2 == 1:
            out.append(Truth("child_stall", _at(t), _at(t + length), region=rng.choice(children)))
        else:
            out.append(Truth("stall", _at(t), _at(t + length), ts_frozen=rng.random() >= law.moving_share
                             if law.timestamp else False))
        t += length + rng.uniform(20, 36) * 3600
    return out


def _slots(law: Law, phase: float, begin: float, end: float) -> list[Slot]:
    """Every slot the law schedules, in order, the first `phase` seconds after `begin`."""
    out = []
    settle = begin + law.settle_after * 86400 if law.settle_after is not None else None
    j = 0
    previous = begin + phase - (law.cadence or 0.0)
    while law.cadence:
        nominal = begin + phase + j * law.cadence
        j += 1
        if settle is not None and nominal >= settle:
            break
        nominal += law.drift * (nominal - begin) / 86400
        if nominal >= end:
            return out
        out.append(Slot(nominal, nominal - previous, law.jitter))
        previous = nominal
    if settle is not None:
        day = math.floor((settle + law.utc_offset * 3600) / 86400) * 86400 - law.utc_offset * 3600
        while day < end:
            for hour in law.daily:
                nominal = day + hour * 3600
                if settle <= nominal < end:
                    out.append(Slot(nominal, nominal - previous, law.daily_jitter))
                    previous = nominal
            day += 86400
    return out


def publish(law: Law, seed: int, days: float = 8.0) -> Generated:
    rng = random.Random(zlib.crc32(f"{law.name}:{seed}".encode()))
    begin, end = _epoch(START), _epoch(START) + days * 86400
    weights = _child_weights(law, rng)                 # each child's share of the pace
    sizes = list(weights)                              # ... and of the units: the same, but for
    behind = rng.randrange(len(weights)) if law.lagging and weights else None   # a child left behind
    if behind is not None:
        sizes[behind] = sum(weights) / len(weights)
        weights[behind] = sizes[behind] / 500
    names = tuple(str(11 + k) for k in range(law.children))
    counting_from = begin + law.starts_after * 3600
    planned = _plan(law, rng, counting_from, end, None if behind is None else names[behind])
    truth: list[Truth] = []
    if behind is not None:
        truth.append(Truth("lagging", START, _at(end), region=names[behind]))
    stations = law.stations
    reported = 0 if law.starts_after > 0 else int(stations * law.start_ratio)
    child_sizes = [int(stations * w / sum(sizes)) for w in sizes] if weights else []
    child_reported = [int(size * (0 if law.starts_after > 0 else law.start_ratio)) for size in child_sizes]
    if behind is not None:
        child_reported[behind] = int(child_sizes[behind] * 0.0006)
    if child_sizes:
        stations = sum(child_sizes)
        reported = sum(child_reported)
    votes = [int(reported * VOTES_PER_UNIT * s) for s in SHARES]
    publications: list[Published] = []
    slots: list[Slot] = []
    phase = rng.uniform(0, law.cadence) if law.cadence else 0.0
    # What is on show when the daemon starts was published one slot before the first it will see.
    shown_since = begin + phase - law.cadence if law.cadence else begin - rng.uniform(60, 600)
    if law.test_data:
        shown = int(0.024 * stations)
        publications.append(Published(shown_since, -2, shown, tuple(int(shown * 70 * s) for s in SHARES),
                                      tuple(int(shown * w / sum(weights)) for w in weights)))
        cleared = begin + rng.uniform(1, 2) * 3600
        publications.append(Published(cleared, -2, 0, (0, 0, 0), tuple(0 for _ in weights)))
        truth.append(Truth("clear", _at(cleared), _at(cleared + 3 * law.poll)))
    else:
        publications.append(Published(shown_since, -2, reported, tuple(votes),
                                      tuple(child_reported)))

    backlog = 0
    child_backlog = [0] * len(weights)
    if law.cadence:
        schedule = _slots(law, phase, begin, end)
    else:
        schedule = []
    times: list[tuple[float, int]] = []       # (realized time, slot index or -1)
    for index, slot in enumerate(schedule):
        slots.append(slot)
        if rng.random() < law.skip:
            continue
        realized = slot.nominal + rng.uniform(-slot.jitter, slot.jitter)
        if law.late and rng.random() < law.late:
            realized += rng.uniform(0, law.late_by)
        times.append((realized, index))
    if not law.cadence:
        t = begin
        while True:
            t += rng.expovariate(law.arrivals / 3600)
            if t >= end:
                break
            if rng.random() < law.rhythm(t):
                times.append((float(int(t)), -1))
    gaps = {index: slot.gap for index, slot in enumerate(schedule)}
    complete_at = None
    generated = Generated(law, seed, days, [], truth, slots, publications, [], child_names=names,
                          weights=tuple(weights), counting_from=counting_from, stations=stations)
    for realized, index in times:
        if publications[-1].at >= realized:
            continue                                   # before the test data was cleared
        remaining = stations - reported
        counting = realized >= counting_from and remaining > 0
        seconds = gaps[index] if index >= 0 else 1 / (law.arrivals / 3600 * law.rhythm(realized))
        mean = generated.expected(realized, seconds, remaining)
        shares = [mean * w / sum(weights) for w in weights]
        g = multiplier(law, rng)
        stall = next((s for s in planned if s.kind == "stall" and _epoch(s.start) <= realized < _epoch(s.end)), None)
        if weights:
            gains = [poisson(rng, m * g) for m in shares]
        else:
            gains = [poisson(rng, mean * g)]
        if stall is not None:
            backlog += sum(gains)
            child_backlog = [b + x for b, x in zip(child_backlog, gains)] if weights else child_backlog
            if not stall.ts_frozen:
                last = publications[-1]
                publications.append(Published(realized, index, last.reported, last.votes, last.children))
            continue
        if weights:
            for k, gain in enumerate(gains):
                child_stall = any(s.kind == "child_stall" and s.region == names[k]
                                  and _epoch(s.start) <= realized < _epoch(s.end) for s in planned)
                if child_stall:
                    child_backlog[k] += gain
                    gains[k] = 0
                    continue
                gains[k] = min(gain + child_backlog[k], child_sizes[k] - child_reported[k])
                child_backlog[k] = 0
                child_reported[k] += gains[k]
            increment = sum(gains)
        else:
            increment = gains[0] + backlog
        backlog = 0
        quiet = not any(_epoch(s.start) - 6 * 3600 <= realized <= _epoch(s.end) + 6 * 3600 for s in planned)
        if (counting and increment and quiet and law.rhythm(realized) > 0.5 and realized > counting_from + 12 * 3600
                and not weights and rng.random() < (gaps.get(index) or mean / max(law.pace(realized, remaining), 1e-9))
                / (3 * 86400) / 0.5):
            increment += outsized(law, mean)
            truth.append(Truth("jump", _at(realized), _at(realized)))
        increment = min(increment, stations - reported)
        reported += increment
        for c, share in enumerate(SHARES):
            votes[c] += poisson(rng, increment * VOTES_PER_UNIT * share)
        if counting and rng.random() < 0.02:         # a small correction now and then: info, not news
            c = rng.randrange(len(SHARES))
            votes[c] = max(0, votes[c] - rng.randint(1, 50))
        publications.append(Published(realized, index, reported, tuple(votes), tuple(child_reported)))
        if reported >= stations and complete_at is None:
            complete_at = realized
    # A stall or a child's stall after the count completed is no stall: drop it from the truth.
    for s in planned:
        if complete_at is None or _epoch(s.start) < complete_at:
            truth.append(s)
    truth.sort(key=lambda x: x.start)
    generated.complete_at = complete_at
    _poll(generated, rng, stations, child_sizes)
    if not law.cadence:
        generated.hazard, generated.pub_hazard = _arrival_hazard(law, generated, begin, end)
    return generated


def _arrival_hazard(law: Law, g: Generated, begin: float, end: float) -> tuple[list[float], list[float]]:
    """Cumulative expected advances (and publications) per minute from `begin`, under the law,
    at the pace the count stood at (what remains changes slowly)."""
    advances, pubs, a, p = [0.0], [0.0], 0.0, 0.0
    k, t = 0, begin
    while t < end + 60:
        while k + 1 < len(g.publications) and g.publications[k + 1].at <= t:
            k += 1
        remaining = g.stations - g.publications[k].reported
        rate = law.arrivals / 3600 * law.rhythm(t)
        mean = g.expected(t, 1 / rate, remaining)
        a += 60 * rate * (1 - empty_chance(law, mean)) if mean > 0 else 0.0
        p += 60 * rate
        advances.append(a)
        pubs.append(p)
        t += 60
    return advances, pubs


def _poll(g: Generated, rng: random.Random, stations: int, child_sizes: list[int]) -> None:
    law = g.law
    t = _epoch(START) + rng.uniform(0, law.poll)
    end = _epoch(g.end)
    index, last = -1, None
    shown_content = None
    while t < end:
        while index + 1 < len(g.publications) and g.publications[index + 1].at <= t:
            index += 1
        at = _at(t)
        if index < 0:
            t += law.poll
            continue
        pub = g.publications[index]
        content = (pub.reported, pub.votes, pub.children, pub.at if law.timestamp else None)
        if index == last or content == shown_content:
            g.polls.append(Poll(source=g.source, region="0", at=at, result="not_modified", latency_seconds=0.3))
        else:
            children = {name: RegionCount(stations=size, stations_reported=r,
                                          votes={str(100 + c): int(r * VOTES_PER_UNIT * s) for c, s in enumerate(SHARES)})
                        for name, size, r in zip(g.child_names, child_sizes, pub.children)}
            published = _at(pub.at).astimezone(timezone(timedelta(hours=law.utc_offset))) if law.timestamp else None
            snapshot = Snapshot(source=g.source, region="0", at=at, published_at=published, stations=stations,
                                stations_reported=pub.reported,
                                votes={str(100 + c): v for c, v in enumerate(pub.votes)},
                                children=children, level=0 if children else None)
            g.polls.append(Poll(source=g.source, region="0", at=at, result="ok", snapshot=snapshot, latency_seconds=0.3))
            shown_content = content
        last = index
        g.shown.append(index)
        t += law.poll
