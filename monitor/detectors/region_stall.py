"""`region_stall`: a child region (a row of the parent document's table) below 100% that stopped
while its siblings advance.

Time is the wrong yardstick here: at night the whole count slows, and a province known only by
`persen` to two decimals shows no change until 0.01% of its stations (14 TPS in West Java) come
in. So a child's pace is measured in the parent's stations: how many stations the parent gains
between two visible changes of the child (an EWMA the Judge keeps per child). A child is stalled
when the parent has since gained enough stations that `region_min_expected` changes of the child
were due. A national freeze moves no stations, so it raises the parent's `stall`, not 39 of these.
"""
from __future__ import annotations

from datetime import datetime, timezone

from ..model import Event
from .base import Rule, label, lifecycle
from .history import History
from .text import count, duration, when

# Changes seen before a child's pace is known well enough to judge. With three, the demo's
# kecamatan that start late (the simulator skews some) looked stalled in the first hour.
MIN_CHANGES = 6


class RegionStallRule(Rule):
    name = "region_stall"

    def __call__(self, h: History, now: datetime) -> list[Event]:
        state = h.state
        if not h.changed or state.paced is None or not state.children:
            return []
        events: list[Event] = []
        for code, track in state.children.items():
            key = f"region_stall/{code}"
            opened = h.open_alerts.get(key)
            due = None
            if track.spacing and track.changes >= MIN_CHANGES and not track.complete:
                due = (state.paced - track.parent_mark) / track.spacing
            stalled = due is not None and due >= self.options.region_min_expected
            if not stalled and opened is None:
                continue
            changed_at = datetime.fromtimestamp(track.changed_at, timezone.utc)
            if not stalled and opened.since is not None:
                changed_at = opened.since      # the stall being resolved began then
            quiet = (now - changed_at).total_seconds()
            details = {"child": code, "child_percent": track.percent,
                       "parent_advance": round(state.paced - track.parent_mark, 3),
                       "expected_changes": None if due is None else round(due, 1),
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
