"""What the `poll` lines say: the count over time, runs of failed polls, and the two moments a
stall review hangs on — the last poll that saw the count advance, and the catch-up when it
moved again."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from statistics import median

from ..model import progress_ratio
from .records import LogRecord

OK_RESULTS = ("ok", "not_modified")


@dataclass(frozen=True)
class PollPoint:
    at: datetime
    instance: str
    source: str
    region: str
    result: str
    stations_reported: int | None
    stations: int | None
    poll_id: str | None = None
    detail: str | None = None

    @property
    def ok(self) -> bool:
        return self.result in OK_RESULTS

    @property
    def ratio(self) -> float | None:
        return progress_ratio(self.stations, self.stations_reported)


@dataclass
class OutageSpan:
    """A run of failed polls of one (source, region) seen by one instance."""

    source: str
    region: str
    instance: str
    start: datetime                     # the first failed poll
    last_failed: datetime
    recovered: datetime | None = None   # the first ok poll after it; None: still failing at the end
    results: dict[str, int] = field(default_factory=dict)

    @property
    def end(self) -> datetime:
        return self.recovered or self.last_failed

    @property
    def polls(self) -> int:
        return sum(self.results.values())

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return self.start <= end and self.end >= start


def poll_points(records: list[LogRecord]) -> list[PollPoint]:
    points = []
    for record in records:
        if record.event != "poll" or not isinstance(record.get("source"), str):
            continue
        reported, stations = record.get("stations_reported"), record.get("stations")
        points.append(PollPoint(
            record.at, record.instance, record.get("source"), str(record.get("region", "")),
            str(record.get("result", "")),
            reported if isinstance(reported, int) else None,
            stations if isinstance(stations, int) else None,
            record.get("poll_id"), record.get("detail")))
    return points


def by_series(points: list[PollPoint]) -> dict[tuple[str, str, str], list[PollPoint]]:
    """(instance, source, region) -> its polls in order."""
    out: dict[tuple[str, str, str], list[PollPoint]] = {}
    for point in points:
        out.setdefault((point.instance, point.source, point.region), []).append(point)
    return out


def outage_spans(points: list[PollPoint]) -> list[OutageSpan]:
    spans = []
    for polls in by_series(points).values():
        current: OutageSpan | None = None
        for point in polls:
            if not point.ok:
                if current is None:
                    current = OutageSpan(point.source, point.region, point.instance, point.at, point.at)
                current.last_failed = point.at
                current.results[point.result] = current.results.get(point.result, 0) + 1
            elif current is not None:
                current.recovered = point.at
                spans.append(current)
                current = None
        if current is not None:
            spans.append(current)
    return sorted(spans, key=lambda s: (s.start, s.instance))


def poll_intervals(series_polls: dict[tuple[str, str, str], list[PollPoint]]) -> dict[tuple[str, str], timedelta]:
    """(source, region) -> the usual gap between two polls of the series (median over every
    instance's own gaps); zero when there are too few polls to tell. One walk over by_series():
    asking per series, each asking regrouped every poll of the log (quadratic in a tree's)."""
    gaps: dict[tuple[str, str], list[float]] = {}
    for (_, source, region), polls in series_polls.items():
        gaps.setdefault((source, region), []).extend((b.at - a.at).total_seconds() for a, b in zip(polls, polls[1:]))
    return {key: timedelta(seconds=median(found)) if found else timedelta(0) for key, found in gaps.items()}


def last_advance(polls: list[PollPoint], before: datetime) -> PollPoint | None:
    """The last poll at or before `before` whose stations_reported rose over the previous ok
    poll's. The first poll of a log is not an advance: nobody saw the value arrive."""
    previous: int | None = None
    found = None
    for point in polls:
        if point.at > before:
            break
        if point.stations_reported is None:
            continue
        if previous is not None and point.stations_reported > previous:
            found = point
        previous = point.stations_reported
    return found


def catch_up(polls: list[PollPoint], after: datetime) -> tuple[PollPoint, int, PollPoint] | None:
    """The first poll after `after` whose stations_reported exceeds the last value seen at or
    before `after`: (that poll, stations it added, the poll before it with the old value)."""
    base: PollPoint | None = None
    for point in polls:
        if point.stations_reported is None:
            continue
        if point.at <= after:
            base = point
            continue
        if base is None:
            base = point
            continue
        if point.stations_reported > base.stations_reported:
            return point, point.stations_reported - base.stations_reported, base
    return None
