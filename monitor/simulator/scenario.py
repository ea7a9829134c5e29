"""What a scenario is to the server: which publication is out at a moment, whether the site is
down at that moment, and the ground truth of what it scripted.

A publication is one run of the site's publishing job: every document is rewritten with the
run's time as `ts`, and the data in it is what had been keyed in by then. Between runs the
documents do not change (so conditional GETs get 304); during a freeze no run happens.
"""
from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from ..model import iso_utc
from .count import WIB, CountModel, RegionState, kpu_ts
from .geography import PROVINCE_CODE

OUTAGE_MODES = ("502", "503", "timeout")


@dataclass(frozen=True)
class GroundTruth:
    """Ground truth: what the scenario did, when (aware UTC), and what a watcher should say."""

    kind: str                       # freeze | outage | jump | over_capacity
    start: datetime
    end: datetime | None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "start": iso_utc(self.start), "end": iso_utc(self.end),
                "details": dict(self.details)}


@dataclass(frozen=True)
class Publication:
    index: int
    at: float                       # Unix time: when it went out, its data cutoff and its `ts`

    @property
    def published_at(self) -> datetime:
        return datetime.fromtimestamp(self.at, timezone.utc)

    @property
    def ts(self) -> str:
        return kpu_ts(self.at)


@dataclass(frozen=True)
class Outage:
    mode: str                       # 502 | 503 | timeout
    until: datetime | None          # when this mode ends, if scripted


class Scenario:
    """Base of every scenario; subclasses say when publications and outages happen."""

    controllable = False            # True: /_control endpoints switch freeze and outage

    # model, start and end are None only for a live scenario that has not begun.
    def __init__(self, name: str, description: str, model: CountModel | None, start: datetime | None,
                 end: datetime | None, default_speed: float, sources: list[dict[str, Any]]):
        self.name = name
        self.description = description
        self.model = model
        self.start = start
        self.end = end
        self.default_speed = default_speed
        self.sources = sources

    @property
    def incidents(self) -> list[GroundTruth]:
        return []

    def begin(self, now: datetime) -> None:
        """Called when a server starts serving the scenario (live scenarios anchor here)."""

    def publication_at(self, now: datetime) -> Publication | None:
        raise NotImplementedError

    def outage_at(self, now: datetime) -> Outage | None:
        raise NotImplementedError

    def control(self, action: str, params: Mapping[str, str], now: datetime) -> dict[str, Any]:
        raise LookupError(f"scenario {self.name} has no control endpoints")

    def state_at(self, now: datetime, region: str = PROVINCE_CODE) -> RegionState | None:
        """The region's count as the site shows it at `now` (None before the first publication
        or for an unknown region). An outage does not change it: it hides it."""
        publication = self.publication_at(now)
        if publication is None:
            return None
        return self.model.state(region, publication.at)


class ScriptedScenario(Scenario):
    """A fixed script: a list of publication times and a list of outage phases."""

    def __init__(self, *, publications: list[float], outages: list[tuple[datetime, datetime, str]],
                 incidents: list[GroundTruth], decoys: list[dict[str, Any]] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.publications = publications
        for _, _, mode in outages:
            if mode not in OUTAGE_MODES:
                raise ValueError(f"unknown outage mode {mode!r}")
        self.outages = sorted(outages)
        self._incidents = incidents
        self.decoys = decoys or []   # scripted oddities that must NOT raise an alert

    @property
    def incidents(self) -> list[GroundTruth]:
        return list(self._incidents)

    def publication_at(self, now: datetime) -> Publication | None:
        index = bisect_right(self.publications, now.timestamp()) - 1
        return Publication(index, self.publications[index]) if index >= 0 else None

    def outage_at(self, now: datetime) -> Outage | None:
        for start, end, mode in self.outages:
            if start <= now < end:
                return Outage(mode, end)
        return None


def schedule(first: datetime, last: datetime, *, step: timedelta = timedelta(minutes=5),
             night_step: timedelta = timedelta(minutes=15), night_hours: tuple[int, int] = (0, 6),
             offset: timedelta = timedelta(seconds=15),
             pauses: tuple[tuple[datetime, datetime], ...] = ()) -> list[float]:
    """Publication times: on the `step` grid plus `offset` (Sirekap published at HH:00:15),
    on the coarser `night_step` grid between `night_hours` WIB, and none strictly between
    the two ends of a pause (a freeze: the publication at its start stays up until the one at
    its end)."""
    times = []
    moment = first
    while moment <= last:
        local = moment.astimezone(WIB)
        night = night_hours[0] <= local.hour < night_hours[1]
        on_grid = not night or (local.hour * 3600 + local.minute * 60) % night_step.total_seconds() == 0
        at = moment + offset
        if on_grid and not any(a < at < b for a, b in pauses):
            times.append(at.timestamp())
        moment += step
    return times
