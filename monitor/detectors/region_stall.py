"""`region_stall`: a child region (a row of the parent document's table) below 100% that stopped
while its siblings advance.

Time is the wrong yardstick here: at night the whole count slows, and a province known only by
`persen` to two decimals shows no change until 0.01% of its stations (14 TPS in West Java) come
in. So a child's pace is measured in the parent's stations: how many stations the parent gains
between two visible changes of the child (an EWMA the Judge keeps per child). A child is stalled
when the parent has since gained enough stations that so many changes of the child were due that
standing still that long happens by chance once in the false-alarm budget: a child's changes
are a Poisson process in the parent's stations at rate lambda = 1 / spacing, the budget is
ARL0 = the parent's stations over `false_alarm_budget` at its recent pace, and the CUSUM for a
rate falling to zero alarms once ln(1 + lambda * ARL0) changes were due (a child changing twice
a minute needs ~11, one changing hourly ~7), never fewer than `region_min_expected`.
A national freeze moves no stations, so it raises the parent's `stall`, not 39 of these.
"""
from __future__ import annotations

from datetime import datetime, timezone

import math
from statistics import median

from ..model import Event
from .base import Rule, label, lifecycle
from .history import History
from .text import count, duration, when
from .thresholds import WINSOR

# Changes seen before a child's pace is known well enough to judge. With three, the demo's
# kecamatan that start late (the simulator skews some) looked stalled in the first hour.
MIN_CHANGES = 6
PACE_WINDOW = 24       # recent advances that give the parent's pace


def parent_pace(state) -> float | None:
    """The parent's stations per second over its recent advances (None: too few to tell)."""
    n = min(len(state.steps), len(state.advance_gaps), PACE_WINDOW)
    if n < 3:
        return None
    seconds = sum(state.advance_gaps[-n:])
    steps = state.steps[-n:]
    cap = WINSOR * median(steps)          # one region's backlog is not the parent's pace
    return sum(min(step, cap) for step in steps) / seconds if seconds > 0 else None


def changes_due(spacing: float, pace: float, budget: float, floor: float) -> float:
    """Expected changes of a child (spacing: parent stations per change) after which its
    silence is as rare as one false alarm per `budget` seconds."""
    return max(floor, math.log1p(pace * budget / spacing))


class RegionStallRule(Rule):
    name = "region_stall"

    def __call__(self, h: History, now: datetime) -> list[Event]:
        state = h.state
        if not h.changed or state.paced is None or not state.children:
            return []
        events: list[Event] = []
        pace = parent_pace(state)
        for code, track in state.children.items():
            key = f"region_stall/{code}"
            opened = h.open_alerts.get(key)
            due = needed = None
            if track.spacing and track.changes >= MIN_CHANGES and not track.complete and pace:
                due = (state.paced - track.parent_mark) / track.spacing
                needed = changes_due(track.spacing, pace, self.options.false_alarm_budget,
                                     self.options.region_min_expected)
            stalled = due is not None and due >= needed
            if not stalled and opened is None:
                continue
            changed_at = datetime.fromtimestamp(track.changed_at, timezone.utc)
            if not stalled and opened.since is not None:
                changed_at = opened.since      # the stall being resolved began then
            quiet = (now - changed_at).total_seconds()
            details = {"child": code, "child_percent": track.percent,
                       "parent_advance": round(state.paced - track.parent_mark, 3),
                       "expected_changes": None if due is None else round(due, 1),
                       "changes_needed": None if needed is None else round(needed, 2),
                       "usual_parent_advance_per_change": None if not track.spacing else round(track.spacing, 1),
                       "stalled_seconds": round(quiet, 3), "cause": "region_stalled"}
            pct = f" at {track.percent:.2f}%" if track.percent is not None else ""
            firing = (f"Region {code} of {label(h)} stands still{pct} since {when(changed_at, h.zone)} "
                      f"({duration(quiet)}) while the rest gained {count(details['parent_advance'])} {h.units}, "
                      f"enough for about {details['expected_changes']} of its usual changes.")
            resolved = (f"Region {code} of {label(h)} moves again{pct} after {duration(quiet)}."
                        if not track.complete else f"Region {code} of {label(h)} is complete.")
            events += lifecycle(h, now, key, "region_stall", "warning" if stalled else None, changed_at,
                                details, {"firing": firing, "resolved": resolved}, region=code)
        return events
