"""`lagging`: a child region far behind its siblings and barely moving ("0.07% while the
country is at 65%").

region_stall asks whether a child stopped against its own usual pace; a child that never had
a pace (real 2024: province 95 sat at 0.05-0.07% while the country passed 60%, province 93
stood at 18.08%) has none to fall behind. So the yardstick is the parent's: were each of the
child's remaining units coming in at the hazard the parent's remaining units do, the child
would have gained (parent gain) x (child remaining) / (parent remaining) since its window began
(series.py restarts the window whenever the child keeps up). A child is lagging when it stands
below `lagging_share` of its parent's progress and, over a window in which its parent's pace
would have brought it enough, gained less than `lagging_pace` of that.

"Enough" is a budget, not a point, and it is weighed against the slowest child that is not
left behind. Children of one parent do not all share its hazard (a kecamatan whose forms come
late moves at a third of its kabupaten's hazard early in the night and catches up later), so a
child moving at `lagging_pace` of it is normal-but-slow, and the evidence is what such a child
would have brought: lagging_pace x the stations due, a Poisson count, which arriving as none is
as rare as one false alarm per `false_alarm_budget` once ln(1 + lambda * ARL0) were due (lambda:
the child's stations per second at lagging_pace of its parent's hazard; the CUSUM bound
region_stall uses), never fewer than `region_min_expected`. A kecamatan of 62 TPS owed 7 of them
at its parent's hazard over 90 minutes has proved nothing (the demo's slow kecamatan got none in
two hours and caught up); a province owed one point of its ~21,000 TPS has. A row known only by
its percentage is taken to be of its siblings' average size.
"""
from __future__ import annotations

from datetime import datetime, timezone

from ..model import Event
from .base import Rule, label, lifecycle
from .history import History
from .phase import COUNTING, TAIL
from .region_stall import changes_due, parent_pace
from .series import LAG_EVIDENCE
from .text import duration, when


class LaggingRule(Rule):
    name = "lagging"

    def __call__(self, h: History, now: datetime) -> list[Event]:
        state = h.state
        if not h.poll.ok or h.current is None or not state.children:
            return []
        o = self.options
        parent = h.current.progress_ratio
        judged = h.phase in (COUNTING, TAIL) and parent is not None
        events: list[Event] = []
        pace = parent_pace(state) if judged else None        # the parent's stations per second
        for code, track in state.children.items():
            key = f"lagging/{code}"
            opened = h.open_alerts.get(key)
            behind = track.behind(parent) if judged else None
            lagging = (behind is not None and not track.complete and track.ratio is not None
                       and track.ratio < o.lagging_share * parent and self._enough(h, track, behind[1], pace)
                       and behind[0] < o.lagging_pace * behind[1])
            if not lagging and opened is None:
                continue
            since = (datetime.fromtimestamp(track.ref_at, timezone.utc) if track.ref_at is not None else now)
            if opened is not None and opened.since is not None:
                since = opened.since
            gained, due = behind if behind is not None else (None, None)
            details = {"child": code, "child_ratio": track.ratio, "parent_ratio": round(parent, 6) if parent else parent,
                       "child_gain": None if gained is None else round(gained, 6),
                       "gain_due": None if due is None else round(due, 6), "cause": "region_lagging"}
            child_pct = "?" if track.ratio is None else f"{100 * track.ratio:.2f}%"
            parent_pct = "?" if parent is None else f"{100 * parent:.2f}%"
            firing = (f"Region {code} of {label(h)} is far behind: {child_pct} while {label(h)} is at {parent_pct}; "
                      f"since {when(since, h.zone)} it gained {100 * (gained or 0):.2f} points where its parent's "
                      f"pace would have brought {100 * (due or 0):.2f}.")
            resolved = (f"Region {code} of {label(h)} is no longer left behind ({child_pct} while the whole is at "
                        f"{parent_pct}, after {duration((now - since).total_seconds())}).")
            events += lifecycle(h, now, key, "lagging", "warning" if lagging else None, since, details,
                                {"firing": firing, "resolved": resolved}, region=code)
        return events

    def _enough(self, h: History, track, due: float, pace: float | None) -> bool:
        """Has the child been owed enough that gaining (almost) none of it is news?"""
        if due < LAG_EVIDENCE:
            return False
        parent_stations = h.current.stations if h.current is not None else None
        if not parent_stations:
            return True                                   # no stations anywhere: one point
        # A row known only by its percentage (Sirekap's tables) is taken to be of its siblings'
        # average size: a province of the national table ~21,000 TPS, a kecamatan ~200.
        size = track.stations or parent_stations / max(len(h.state.children), 1)
        o = self.options
        parent_left = (1.0 - h.current.progress_ratio) * parent_stations
        child_left = (1.0 - track.ratio) * size
        if pace is None or parent_left <= 0 or child_left <= 0:
            return False                                  # no pace to owe the child anything by
        slow = o.lagging_pace * pace * child_left / parent_left   # stations per second of the slowest normal child
        # region_stall's bound with one station per change: ln(1 + rate * budget) stations due
        return o.lagging_pace * due * size >= changes_due(1.0, slow, o.false_alarm_budget, o.region_min_expected)
