"""Matching alarms to the ground truth: recall, false alarms per series-day, delays.

An incident's window runs from its start to the moment the count visibly moves again (for a
stall: the first publication after it that brings stations). The first alarm inside a window
detects it, its delay counted from the incident's start; any alarm outside every window of its
kind is a false alarm. Days of normal counting are the series' days minus its incident windows.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from statistics import median

from .scenarios import Injected, Series


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    incident: Injected

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def stall_windows(series: Series) -> list[Window]:
    out = []
    for incident in series.incidents:
        if incident.kind != "stall":
            continue
        before = [r for t, r in series.publications if t < incident.start]
        level = before[-1] if before else 0
        resumed = next((t for t, r in series.publications if t >= incident.end and r > level), series.end)
        out.append(Window(incident.start, resumed, incident))
    return out


def stale_windows(series: Series) -> list[Window]:
    out = []
    for incident in series.incidents:
        if incident.kind == "stall" and incident.ts_frozen:
            resumed = next((t for t, _ in series.publications if t >= incident.end), series.end)
            out.append(Window(incident.start, resumed, incident))
    return out


def plain_windows(series: Series, kind: str, grace: float = 0.0) -> list[Window]:
    from datetime import timedelta
    return [Window(i.start, i.end + timedelta(seconds=grace), i) for i in series.incidents if i.kind == kind]


def normal_days(series: Series) -> float:
    busy = sum(w.seconds for w in stall_windows(series) + plain_windows(series, "outage"))
    return max(series.days - busy / 86400, 0.0)


@dataclass
class Tally:
    """Accumulated over series: per-window delays (None: missed) and false alarms."""

    delays: list[float | None] = field(default_factory=list)
    lengths: list[float] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    false_alarms: int = 0
    alarms_per_window: list[int] = field(default_factory=list)
    days: float = 0.0

    def merge(self, other: "Tally") -> None:
        """Add another series' tally to this one."""
        self.delays += other.delays
        self.lengths += other.lengths
        self.windows += other.windows
        self.false_alarms += other.false_alarms
        self.alarms_per_window += other.alarms_per_window
        self.days += other.days

    def add(self, alarms: list[datetime], windows: list[Window], days: float) -> None:
        self.days += days
        inside = [0] * len(windows)
        first: list[float | None] = [None] * len(windows)
        for alarm in alarms:
            hit = next((k for k, w in enumerate(windows) if w.start <= alarm < w.end), None)
            if hit is None:
                self.false_alarms += 1
                continue
            inside[hit] += 1
            if first[hit] is None:
                first[hit] = (alarm - windows[hit].start).total_seconds()
        self.delays += first
        self.lengths += [w.seconds for w in windows]
        self.windows += windows
        self.alarms_per_window += inside

    @property
    def recall(self) -> float | None:
        return None if not self.delays else sum(d is not None for d in self.delays) / len(self.delays)

    @property
    def fa_per_day(self) -> float | None:
        return None if self.days <= 0 else self.false_alarms / self.days

    def detected(self, mask: list[bool] | None = None) -> list[float]:
        return [d for k, d in enumerate(self.delays) if d is not None and (mask is None or mask[k])]


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def med(values: list[float]) -> float | None:
    return median(values) if values else None
