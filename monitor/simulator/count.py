"""The state of the count as a closed-form function of the data cutoff.

`CountModel` joins the electorate (who votes what, in which order data comes in) with an
entry curve (how fast data comes in) and a few scripted TPS patches (an OCR-inflated form, a
form whose administrasi is missing). Asking for a region at a cutoff is a bisection per
kab/kota plus a correction per patch, so a scenario can be asked hundreds of times a second.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Mapping

from ..wording import WIB
from .curve import EntryCurve
from .electorate import Electorate, Region
from .geography import CANDIDATE_IDS

# WIB has had no daylight saving since 1964: a fixed offset needs no tz database.


def kpu_ts(unix: float) -> str:
    """KPU's `ts`: WIB wall time without a zone marker, whole seconds."""
    return datetime.fromtimestamp(int(unix), WIB).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class TpsPatch:
    """A scripted TPS. `votes` is what the published chart says (and what flows into every
    sum above it); `true_votes`, `registered` and `invalid` feed its administrasi."""

    code: str
    report_at: datetime | None = None
    votes: tuple[int, ...] | None = None
    true_votes: tuple[int, ...] | None = None
    registered: int | None = None
    invalid: int | None = None
    admin: str = "normal"          # normal | null (form not read) | zero_registered (DPT read as 0)


@dataclass(frozen=True)
class RegionState:
    """One region's count as published at one publication."""

    code: str
    level: int
    published_at: datetime          # aware UTC; the document's `ts` is this in WIB
    stations: int
    stations_reported: int
    votes: Mapping[str, int] = field(default_factory=dict)

    @property
    def percent(self) -> float:
        return round(100.0 * self.stations_reported / self.stations, 2) if self.stations else 0.0


class CountModel:
    def __init__(self, electorate: Electorate, curve: EntryCurve, patches: tuple[TpsPatch, ...] = ()):
        self.electorate = electorate
        self.curve = curve
        self.patches: dict[int, TpsPatch] = {}
        for patch in patches:
            index = electorate.tps_index(patch.code)
            if index is None:
                raise ValueError(f"patch for unknown TPS {patch.code}")
            self.patches[index] = patch

    @property
    def count_start(self) -> float:
        return self.curve.times[0]

    def threshold(self, kab: str, cutoff: float) -> float:
        """Rank below which a TPS of `kab` is in by `cutoff`."""
        return min(1.0, self.curve.share_at(cutoff) * self.electorate.kab_speed[kab])

    def entered_at(self, index: int, kab: str) -> float | None:
        """Unix time the TPS's data came in (None: not within the curve)."""
        patch = self.patches.get(index)
        if patch is not None and patch.report_at is not None:
            return patch.report_at.timestamp()
        return self.curve.time_of(self.electorate.rank[index] / self.electorate.kab_speed[kab])

    def tps_in(self, index: int, kab: str, cutoff: float) -> bool:
        patch = self.patches.get(index)
        if patch is not None and patch.report_at is not None:
            return patch.report_at.timestamp() <= cutoff
        return self.electorate.rank[index] <= self.threshold(kab, cutoff)

    def tps_votes(self, index: int) -> tuple[int, ...]:
        patch = self.patches.get(index)
        if patch is not None and patch.votes is not None:
            return patch.votes
        return self.electorate.tps_votes(index)

    def count(self, region: Region, cutoff: float) -> tuple[int, list[int]]:
        """(stations reported, votes per candidate) of a region, patches applied."""
        if region.level == 1:
            reported, votes = 0, [0] * len(CANDIDATE_IDS)
            for kab in region.children:
                n, v = self.count(self.electorate.regions[kab], cutoff)
                reported += n
                votes = [a + b for a, b in zip(votes, v)]
            return reported, votes
        n, base = self.electorate.ranked(region.code).count(self.threshold(region.kab, cutoff))
        votes = list(base)
        for index, patch in self.patches.items():
            if not region.lo <= index < region.hi:
                continue
            was_in = self.electorate.rank[index] <= self.threshold(region.kab, cutoff)
            now_in = self.tps_in(index, region.kab, cutoff)
            if was_in:
                n -= 1
                votes = [a - b for a, b in zip(votes, self.electorate.tps_votes(index))]
            if now_in:
                n += 1
                votes = [a + b for a, b in zip(votes, self.tps_votes(index))]
        return n, votes

    def state(self, code: str, published_at: float) -> RegionState | None:
        region = self.electorate.region(code)
        if region is None:
            return None
        reported, votes = self.count(region, published_at)
        return RegionState(code, region.level, datetime.fromtimestamp(published_at, timezone.utc),
                           region.stations, reported, dict(zip(CANDIDATE_IDS, votes)))

