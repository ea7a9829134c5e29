"""Two smaller scenario families with ground truth, for the rules that look inside documents.

- `tps_family`: TPS documents as Sirekap publishes them. Most are ordinary; some carry an OCR
  misread of the candidates' votes (the real 3101011003008: 1,223 votes on 213 registered
  voters, `suara_sah` 185), some candidates do not add up to the valid votes, and some have an
  unread form (registered voters 0 next to real votes: unknown, not over capacity).
- `region_family`: a national table of provinces known by `persen` (two decimals) and votes,
  published hourly. Now and then one province stops while the others go on (Papua in 2024);
  once the whole count freezes, which is the parent's stall and no province's.
"""
from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..model import Poll, RegionCount, Snapshot
from .builders import WIB
from .scenarios import START, Profile, poisson


@dataclass(frozen=True)
class TpsCase:
    region: str
    kind: str                       # ordinary | inflated | mismatch | unread
    polls: tuple[Poll, ...]


def tps_family(count: int = 400, seed: int = 1) -> list[TpsCase]:
    rng = random.Random(seed)
    cases = []
    for index in range(count):
        region = f"31010110{index:05d}"
        registered = rng.randint(150, 300)
        valid = int(registered * rng.uniform(0.6, 0.9))
        shares = [rng.random() for _ in range(3)]
        votes = [int(valid * s / sum(shares)) for s in shares]
        votes[0] += valid - sum(votes)
        kind = rng.choices(["ordinary", "inflated", "mismatch", "unread"], [88, 4, 4, 4])[0]
        suara_sah = valid
        if kind == "inflated":          # a digit too many for one candidate, suara_sah read right
            votes[0] = votes[0] * 10 + rng.randint(0, 9)
        elif kind == "mismatch":        # one digit misread, still below capacity
            votes[1] += rng.randint(5, 40)
        registered_seen = None if kind == "unread" else registered
        valid_seen = None if kind == "unread" else suara_sah
        first = _tps(region, START, {}, None, None)
        second = _tps(region, START + timedelta(hours=6),
                      {str(100025 + c): v for c, v in enumerate(votes)}, registered_seen, valid_seen)
        cases.append(TpsCase(region, kind, (first, second)))
    return cases


def _tps(region: str, at: datetime, votes: dict, registered: int | None, valid: int | None) -> Poll:
    snapshot = Snapshot(source="tps", region=region, at=at, published_at=at.astimezone(WIB), stations=1,
                        stations_reported=1 if votes else 0, votes=votes, registered_voters=registered,
                        valid_votes=valid, level=5)
    return Poll(source="tps", region=region, at=at, result="ok", snapshot=snapshot)


@dataclass(frozen=True)
class ChildStall:
    child: str
    start: datetime
    end: datetime


@dataclass
class RegionSeries:
    index: int
    polls: list[Poll]
    child_stalls: list[ChildStall]
    freeze: tuple[datetime, datetime]
    end: datetime


NATIONAL = Profile("national", "cadence", peak=900, night=0.03, stations=823_236, cadence=3600)
PROVINCES = 12
CHILD_STALLS = (4 * 3600, 8 * 3600, 24 * 3600, 72 * 3600)


def region_family(index: int, days: float = 20.0, poll: float = 300.0) -> RegionSeries:
    rng = random.Random(zlib.crc32(f"regions:{index}".encode()))
    weights = [rng.uniform(0.3, 3.0) for _ in range(PROVINCES)]
    total_weight = sum(weights)
    codes = [str(11 + k) for k in range(PROVINCES)]
    sizes = [int(NATIONAL.stations * w / total_weight) for w in weights]
    reported = [int(size * 0.3) for size in sizes]
    end = START + timedelta(days=days)
    stalls, t = [], START + timedelta(days=2, hours=rng.uniform(0, 24))
    lengths = list(CHILD_STALLS)
    rng.shuffle(lengths)
    for length in lengths:
        child = codes[rng.randrange(PROVINCES)]
        stalls.append(ChildStall(child, t, t + timedelta(seconds=length)))
        t += timedelta(seconds=length) + timedelta(hours=rng.uniform(24, 48))
    freeze_start = t + timedelta(hours=rng.uniform(12, 24))
    freeze = (freeze_start, freeze_start + timedelta(hours=30))
    backlog = [0] * PROVINCES
    polls, moment = [], START + timedelta(seconds=15)
    published, table, total = None, None, None
    clock = START + timedelta(seconds=rng.uniform(0, poll))
    while moment < end:
        frozen = freeze[0] <= moment < freeze[1]
        if not frozen:
            mean = NATIONAL.stations_per_second(moment) * NATIONAL.cadence
            for k, code in enumerate(codes):
                gain = poisson(rng, mean * weights[k] / total_weight)
                if any(s.child == code and s.start <= moment < s.end for s in stalls):
                    backlog[k] += gain
                    continue
                reported[k] = min(sizes[k], reported[k] + gain + backlog[k])
                backlog[k] = 0
            table = {code: RegionCount(percent=round(100 * reported[k] / sizes[k], 2),
                                       votes={"100025": reported[k] * 50, "100026": reported[k] * 116,
                                              "100027": reported[k] * 34})
                     for k, code in enumerate(codes)}
            total = sum(reported)
            published = moment
        # Polls until the next publication (a frozen hour publishes nothing).
        while clock < moment + timedelta(seconds=NATIONAL.cadence) and clock < end:
            if published is not None and clock >= published:
                polls.append(_national(clock, published, total, table, polls))
            clock += timedelta(seconds=poll)
        moment += timedelta(seconds=NATIONAL.cadence)
    return RegionSeries(index, polls, stalls, freeze, end)


def _national(at: datetime, published: datetime, reported: int, table: dict, polls: list[Poll]) -> Poll:
    last = next((p for p in reversed(polls) if p.snapshot is not None), None)
    if last is not None and last.snapshot.published_at == published.astimezone(WIB):
        return Poll(source="regions", region="0", at=at, result="not_modified")
    votes = {c: sum(row.votes[c] for row in table.values()) for c in ("100025", "100026", "100027")}
    snapshot = Snapshot(source="regions", region="0", at=at, published_at=published.astimezone(WIB),
                        stations=NATIONAL.stations, stations_reported=reported, votes=votes,
                        children=table, level=0)
    return Poll(source="regions", region="0", at=at, result="ok", snapshot=snapshot)
