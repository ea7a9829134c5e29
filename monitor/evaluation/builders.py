"""Small constructors of polls for scenarios and tests: a series of polls reads like the story
it tells (`ok(at, reported=..., published=...)`, `failed(at, "timeout")`)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Mapping

from ..model import Poll, RegionCount, Snapshot
from ..wording import WIB

T0 = datetime(2024, 2, 20, 0, 0, 0, tzinfo=timezone.utc)     # 07:00 WIB, a count's busy morning


def at(seconds: float, origin: datetime = T0) -> datetime:
    return origin + timedelta(seconds=seconds)


def ok(when: datetime, reported: int | None, stations: int | None = 1000, *, published: datetime | None = None,
       votes: Mapping[str, int] | None = None, percent: float | None = None, source: str = "src",
       region: str = "0", children: Mapping[str, RegionCount] | None = None, registered: int | None = None,
       valid: int | None = None, latency: float | None = None, level: int | None = None) -> Poll:
    snapshot = Snapshot(source=source, region=region, at=when, published_at=published, stations=stations,
                        stations_reported=reported, votes=votes or {}, percent=percent,
                        children=children or {}, registered_voters=registered, valid_votes=valid, level=level)
    return Poll(source=source, region=region, at=when, result="ok", snapshot=snapshot, latency_seconds=latency)


def not_modified(when: datetime, source: str = "src", region: str = "0", latency: float | None = None) -> Poll:
    return Poll(source=source, region=region, at=when, result="not_modified", latency_seconds=latency)


def failed(when: datetime, result: str = "timeout", detail: str | None = None, source: str = "src",
           region: str = "0") -> Poll:
    return Poll(source=source, region=region, at=when, result=result, detail=detail)


def cadenced(count: int, *, cadence: float = 3600.0, origin: datetime = T0, reported: int = 500,
             step: int = 10, delay: float = 45.0, phase: float = 15.0, stations: int = 100_000,
             source: str = "src", region: str = "0") -> list[Poll]:
    """A publisher on a cadence (Sirekap: HH:00:15), each publication `step` stations more,
    each seen by one poll `delay` seconds after it was published."""
    polls = []
    for j in range(count):
        published = origin + timedelta(seconds=j * cadence + phase)
        polls.append(ok(published + timedelta(seconds=delay), reported + j * step, stations,
                        published=published.astimezone(WIB), source=source, region=region))
    return polls


def drive(polls, judge=None, state=None):
    """Run polls through a Judge (one series); returns (judge, state, events)."""
    from ..detectors import Judge

    polls = list(polls)
    judge = judge or Judge(None)
    if state is None:
        state = judge.restore(polls[0].source, polls[0].region, None)
    events = []
    for poll in polls:
        events += judge.observe(state, poll)
    return judge, state, events
