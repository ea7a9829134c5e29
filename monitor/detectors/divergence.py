"""`divergence`: two sources configured as mirrors of one contest (`mirror_of`, say a provincial
site and the central one, as in 2018) disagree, or one trails the other for too long.

At equal stations reported their votes must agree within `divergence_tolerance`; at unequal
ones the trailing side must reach the other's progress within `divergence_max_lag`. The rule
runs on the series of the source that names `mirror_of`, so one disagreement is one alert.
The same region code is compared on both sides.
"""
from __future__ import annotations

from datetime import datetime, timezone

from ..model import Event
from .base import Rule, label, lifecycle
from .history import History
from .text import count, duration, when


def reached_at(advances: tuple[tuple[float, float], ...], progress: float) -> float | None:
    """Epoch seconds when a series first showed more than `progress` (None: not seen)."""
    for at, value in advances:
        if value > progress:
            return at
    return None


class DivergenceRule(Rule):
    name = "divergence"

    def __call__(self, h: History, now: datetime) -> list[Event]:
        mirror, ours = h.mirror, h.current
        if mirror is None or ours is None or not h.poll.ok:
            return []
        theirs = mirror.reading
        o = self.options
        details: dict = {"mirror": mirror.source, "mirror_stations_reported": theirs.stations_reported,
                         "mirror_votes": dict(theirs.votes)}
        problem = None
        if ours.progress is not None and theirs.progress is not None:
            if ours.progress == theirs.progress:
                worst, relative = self._vote_difference(ours.votes, theirs.votes)
                if relative > o.divergence_tolerance:
                    details |= {"kind": "disagree", "candidate": worst, "relative_difference": round(relative, 6)}
                    problem = (f"{label(h)} and its mirror {mirror.source} both show {count(ours.progress)} "
                               f"stations but disagree on candidate {worst}: {count(ours.votes.get(worst))} vs "
                               f"{count(theirs.votes.get(worst))} votes ({100 * relative:.2f}%)")
            else:
                behind, ahead = ((h.source, mirror.source) if ours.progress < theirs.progress
                                 else (mirror.source, h.source))
                trailing = min(ours.progress, theirs.progress)
                leader_advances = mirror.advances if behind == h.source else mirror.own_advances
                since = reached_at(leader_advances, trailing)
                if since is not None:
                    lag = now.timestamp() - since
                    if lag > o.divergence_max_lag:
                        details |= {"kind": "lag", "behind": behind, "ahead": ahead, "lag_seconds": round(lag, 3)}
                        problem = (f"{behind} trails {ahead} for {label(h)}: {ahead} passed "
                                   f"{count(trailing)} stations at {when(datetime.fromtimestamp(since, timezone.utc), h.zone)}, "
                                   f"{duration(lag)} ago")
        resolved = f"{label(h)} and its mirror {mirror.source} agree again."
        return lifecycle(h, now, "divergence", "divergence", "warning" if problem else None, now, details,
                         {"firing": (problem or "") + ".", "resolved": resolved})

    @staticmethod
    def _vote_difference(ours: dict, theirs: dict) -> tuple[str | None, float]:
        worst, relative = None, 0.0
        for candidate in set(ours) | set(theirs):
            a, b = ours.get(candidate, 0), theirs.get(candidate, 0)
            diff = abs(a - b) / max(a, b, 1)
            if diff > relative:
                worst, relative = candidate, diff
        return worst, relative
