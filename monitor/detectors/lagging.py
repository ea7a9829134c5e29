"""`lagging`: a child region far behind its siblings and barely moving ("0.07% while the
country is at 65%").

region_stall asks whether a child stopped against its own usual pace; a child that never had
a pace (real 2024: province 95 sat at 0.05-0.07% while the country passed 60%, province 93
stood at 18.08%) has none to fall behind. So the yardstick is the parent's: were each of the
child's remaining units coming in at the hazard the parent's remaining units do, the child
would have gained (parent gain) x (child remaining) / (parent remaining) since its window began
(series.py restarts the window whenever the child keeps up). A child is lagging when it stands
below `lagging_share` of its parent's progress and, over a window in which its parent's pace
would have brought it at least one point, gained less than `lagging_pace` of that.
"""
from __future__ import annotations

from datetime import datetime, timezone

from ..model import Event
from .base import Rule, label, lifecycle
from .history import History
from .phase import COUNTING, TAIL
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
        for code, track in state.children.items():
            key = f"lagging/{code}"
            opened = h.open_alerts.get(key)
            behind = track.behind(parent) if judged else None
            lagging = (behind is not None and not track.complete and track.ratio is not None
                       and track.ratio < o.lagging_share * parent and behind[1] >= LAG_EVIDENCE
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
