"""A count's phase per series (DESIGN.md): `not_started`, `counting`, `tail`, `complete`.

- **not_started**: nothing counted yet (the feed reports zero, or test data was cleared to
  zero), or before the configured `counting_starts`. Nothing can stall or go stale: the
  stoppage rules stay quiet, and an open stall closes. Once `counting_starts` has passed by
  `start_grace` with nothing counted, `not_started` is its own alert. A feed already counting on
  our first poll is counting (the real 2024 recording starts at 66%).
- **counting**: the stoppage rules judge it against its learned rhythm.
- **tail**: from `tail_ratio` on, what is left comes in at a pace in proportion to what remains
  (a count at 99.76% with its last 10 of 4,110 units trickling in is not stalled): the learned
  rates are scaled by `tail_pace()`.
- **complete**: at or above `complete_ratio`; no stoppage alerts.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from ..model import Event, iso_utc
from .base import Rule, label, lifecycle
from .history import History
from .options import DetectionOptions
from .series import SeriesState, tail_weight
from .text import duration, when

NOT_STARTED, COUNTING, TAIL, COMPLETE = "not_started", "counting", "tail", "complete"
TAIL_WINDOW = 24          # recent advances whose pace is compared with what remains now
PATIENCE_LIMIT = 14 * 86400.0   # the tail's stretched ceilings never exceed two weeks


def phase_of(state: SeriesState, o: DetectionOptions, now: datetime) -> str:
    current = state.current
    if o.counting_starts is not None and now < o.counting_starts:
        return NOT_STARTED
    if current is None or current.progress is None:
        return COUNTING
    if current.progress <= 0:
        return NOT_STARTED
    ratio = current.progress_ratio
    if ratio is not None and ratio >= o.complete_ratio:
        return COMPLETE
    if ratio is not None and ratio >= o.tail_ratio:
        return TAIL
    return COUNTING


def tail_pace(state: SeriesState) -> float:
    """In the tail, how fast the count should go now relative to the recent advances' pace
    (<= 1): with each remaining unit coming in at a constant hazard, the rate now is in
    proportion to what remains now against what remained, gap-weighted, while the recent
    advances came. 1.0 when the count does not say what remains."""
    current = state.current
    if current is None or current.progress is None:
        return 1.0
    total = current.stations if current.stations_reported is not None else (100.0 if current.percent is not None else None)
    if not total:
        return 1.0
    remaining_now = max(total - current.progress, 0.0)
    steps, gaps = state.steps[-TAIL_WINDOW:], state.advance_gaps[-TAIL_WINDOW:]
    n = min(len(steps), len(gaps))
    if n == 0:
        return 1.0
    steps, gaps = steps[-n:], gaps[-n:]
    remaining, weighted, covered = remaining_now, 0.0, 0.0
    for step, gap in zip(reversed(steps), reversed(gaps)):
        remaining += step                 # what remained before that advance, during its gap
        weighted += gap * remaining
        covered += gap
    if weighted <= 0:
        return 1.0
    return max(min(remaining_now * covered / weighted, 1.0), 1e-3)


def advancing(state: SeriesState) -> float:
    """The share of the recent publications that brought an advance (<= 1): the advances among
    the last gaps that fit in the span of the recent publication gaps, against those
    publications. 1 when every publication is an advance (or none is known)."""
    pubs = state.pub_gaps
    if not pubs:
        return 1.0
    span, covered, advances = sum(pubs), 0.0, 0
    for gap in reversed(state.advance_gaps):
        covered += gap
        if covered > span:
            break
        advances += 1
    return min(advances / len(pubs), 1.0)


def in_tail(state: SeriesState, o: DetectionOptions) -> bool:
    ratio = state.progress_ratio
    return ratio is not None and o.tail_ratio <= ratio < o.complete_ratio


def _weight_now(state: SeriesState, o: DetectionOptions) -> float:
    current = state.current
    if current is None or current.progress is None:
        return 1.0
    whole = current.stations_reported is not None
    return tail_weight(current.stations if whole else 100.0, current.progress, o, whole)


def rhythm_level(state: SeriesState, o: DetectionOptions) -> float | None:
    """In the tail, the factor on a cadenced daily rhythm's hourly rates that gives the pace
    expected now (<= 1), or None outside the tail or without such a rhythm. The rhythm learned
    a tail's stations per unit still to come (series.tail_weight), so the pace now is its
    hours' times what remains now over what remained when the tail began: a 15-minute
    publisher that brought 60 units at its busiest hour with 2,000 to go brings about 3 of
    the last 100."""
    if not in_tail(state, o):
        return None
    return max(1.0 / _weight_now(state, o), 1e-4)


def tail_options(state: SeriesState, o: DetectionOptions) -> DetectionOptions:
    """In the tail the patience stretches with the pace: the stall and critical ceilings ("never
    warn later than this, however slow the source") grow by what remained when the tail began
    over what remains now (a count with 2 of 20,000 units to go brings one a day, and a 12-hour
    ceiling would page on every one of them), never beyond PATIENCE_LIMIT."""
    if not in_tail(state, o):
        return o
    stretch = _weight_now(state, o)
    if stretch <= 1.0:
        return o
    ceiling = min(o.stall_ceiling * stretch, max(PATIENCE_LIMIT, o.stall_ceiling))
    return replace(o, stall_ceiling=ceiling,
                   critical_ceiling=max(min(o.critical_ceiling * stretch, max(PATIENCE_LIMIT, o.critical_ceiling)), ceiling))




class NotStartedRule(Rule):
    """`not_started`: `counting_starts` passed `start_grace` ago and nothing is counted yet.
    Only a source that configures counting_starts can know the count is late; a child of a
    series with this alert open is part of its incident."""

    name = "not_started"

    def __call__(self, h: History, now: datetime) -> list[Event]:
        o = self.options
        current = h.current
        if o.counting_starts is None or not h.poll.ok or current is None or current.progress is None:
            return []
        opened = h.open_alerts.get("not_started")
        late = (now - o.counting_starts).total_seconds()
        waiting = current.progress <= 0 and late >= o.start_grace
        if opened is None and (not waiting or h.ancestor_stalled):
            return []
        details = {"counting_starts": iso_utc(o.counting_starts), "late_seconds": round(late, 3),
                   "cause": "count_not_started"}
        firing = (f"The count at {label(h)} has not started: counting was to start at "
                  f"{when(o.counting_starts, h.zone)}, {duration(late)} ago, and nothing is counted yet.")
        resolved = f"The count at {label(h)} has started, {duration(late)} after {when(o.counting_starts, h.zone)}."
        return lifecycle(h, now, "not_started", "not_started", "warning" if waiting else None, o.counting_starts,
                         details, {"firing": firing, "resolved": resolved})


__all__ = ["COMPLETE", "COUNTING", "NOT_STARTED", "NotStartedRule", "TAIL", "advancing", "in_tail", "phase_of", "rhythm_level",
           "tail_options", "tail_pace"]
