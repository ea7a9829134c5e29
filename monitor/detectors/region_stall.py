"""`region_stall`: a child region (a row of the parent document's table) below 100% that stopped
while its siblings advance.

Time is the wrong yardstick here: at night the whole count slows, and a province known only by
`persen` to two decimals shows no change until 0.01% of its stations (14 TPS in West Java) come
in. So a child is measured against its siblings' flow (the parent's stations), and counted in
its own units: its stations reported, or hundredths of a point when its row gives only a
percentage. Over its recent intervals between changes the Judge keeps the units it gained per
station its siblings brought (its share; the child standing still is missing from its parent's
advance, so the share is of the flow that goes on without it) and how clumped they come (1 for
units arriving one by one; a kecamatan of 200 TPS known by percentage moves 50 hundredths at a
time). Its arrivals are then a Poisson process in the siblings' stations at
lambda = share / clumping, and a silence while they brought A stations has chance exp(-lambda A)
when lambda is known, (1 + A / E)^-n when it was learned from n arrivals over E stations (the
Gamma posterior's predictive: a share learned from a few units may be lower than it looked).

Counting the child's *changes* instead ignores its own cadence: a child that moves at every
publication changes once per publication however many units it brings, so its silence through
one publication that should have brought it 50 units looked like one missed change in ~8.

A sibling's backlog (after its own stall, its units far beyond its share's 1-in-10^4) is not
flow the others missed: a poll's flow is what the children bringing their usual share say.

The child is stalled once its silence is as rare as one false alarm per `false_alarm_budget`:
each of its changes starts a silence that may look like a stall by chance, so with N changes
in the budget (its changes per second over all the time watched, day and night, once that is a
day; before that its recent rate, at most one per advance of its parent) the CUSUM for a rate
falling to zero alarms at -ln P >= ln(1 + N), never below `region_min_expected`. A row whose
units are unknown (votes only) is judged by its changes (spacing: parent stations per change).
A national freeze moves no stations, so it raises the parent's `stall`, not 39 of these.
"""
from __future__ import annotations

from datetime import datetime, timezone

import math
from statistics import median

from ..model import Event
from .base import Rule, label, lifecycle
from .history import History, share_memory
from .text import count, duration, when
from .thresholds import WINSOR

# Changes seen before a child's pace is known well enough to judge. With three, the demo's
# kecamatan that start late (the simulator skews some) looked stalled in the first hour.
MIN_CHANGES = 6
PACE_WINDOW = 24       # recent advances that give the parent's pace
DAY = 86400.0


def parent_rates(state) -> tuple[float | None, float | None]:
    """The parent's stations per second and advances per second over its recent advances
    (None: too few to tell). A child's changes are seen at most once per advance of its
    parent's, so the second bounds how often it can change."""
    n = min(len(state.steps), len(state.advance_gaps), PACE_WINDOW)
    if n < 3:
        return None, None
    seconds = sum(state.advance_gaps[-n:])
    if seconds <= 0:
        return None, None
    steps = state.steps[-n:]
    cap = WINSOR * median(steps)          # one region's backlog is not the parent's pace
    return sum(min(step, cap) for step in steps) / seconds, n / seconds


def parent_pace(state) -> float | None:
    """The parent's stations per second over its recent advances (None: too few to tell)."""
    return parent_rates(state)[0]


BACKLOG_TAIL = 3.72    # a child bringing more than its share's 1-in-10^4 is bringing a backlog


def row_quantum(track) -> float:
    """Units one station of a child brings: 1 when its units are stations; when its row gives
    only a percentage, the hundredths of a point one of its stations is, which the smallest
    change it was seen to make bounds (a kecamatan of 60 TPS moves 1.67 points at a time, one of
    200 half a point, a province of ~21,000 TPS one hundredth now and then)."""
    if track.stations is not None or track.percent is None or not track.least:
        return 1.0
    return max(1.0, track.least)


def clumping(track) -> float:
    """Units per independent arrival of the child: what its scatter says, and at least one
    station's worth."""
    return max(track.clumping, row_quantum(track))


def sibling_flow(rows: list, counted: float) -> float:
    """The parent's advance this poll (`counted`, winsorized) as its children's own flows say
    it: each child of known share is a Poisson witness of the parent's flow (its arrivals
    with mean share x flow / clumping), and one that brought more than its share's
    1-in-10^4 is bringing a backlog (its own, after its stall), not this poll's flow. The
    flow is then the others' arrivals over their expected arrivals per parent station.
    `rows`: (the child's track or None, its units now)."""
    witnesses = []
    for track, units in rows:
        if track is None or units is None or track.units is None or track.share is None:
            continue
        clump = clumping(track)
        witnesses.append((track.share / clump, max(units - track.units, 0.0) / clump))
    flow = counted
    for _ in range(3):
        usual = [(rate, arrivals) for rate, arrivals in witnesses
                 if arrivals <= rate * flow + BACKLOG_TAIL * math.sqrt(rate * flow) + 2]
        if len(usual) == len(witnesses) or not usual:
            break
        estimate = sum(a for _, a in usual) / sum(r for r, _ in usual)
        if estimate >= flow:
            break
        flow = estimate
    return flow


def changes_due(spacing: float, pace: float, budget: float, floor: float) -> float:
    """Expected changes of a child (spacing: parent stations per change) after which its
    silence is as rare as one false alarm per `budget` seconds."""
    return max(floor, math.log1p(pace * budget / spacing))


def surprise(advance: float, spacing: float, seen: float) -> float:
    """-ln P(no arrival of the child while the parent advanced `advance`), its rate known only
    from the `seen` arrivals of its recent intervals (one per `spacing` parent stations over
    them): the Gamma posterior's predictive, n ln(1 + A / E) with n arrivals seen over an
    exposure E = n x spacing. That is A / spacing when the rate is known exactly and less when
    it is known from a few (a share guessed 20% high would otherwise page 20% early)."""
    seen = max(seen, 1.0)
    return seen * math.log1p(advance / (spacing * seen))


class RegionStallRule(Rule):
    name = "region_stall"

    def __call__(self, h: History, now: datetime) -> list[Event]:
        state = h.state
        if not h.changed or state.paced is None or not state.children:
            return []
        events: list[Event] = []
        pace, advances = parent_rates(state)
        watched = (now - state.first_at).total_seconds() if state.first_at else 0.0
        for code, track in state.children.items():
            key = f"region_stall/{code}"
            opened = h.open_alerts.get(key)
            due = needed = expected = None
            share = track.share
            if track.changes >= MIN_CHANGES and not track.complete and pace:
                advance = state.paced - track.parent_mark
                if share is not None:
                    clump = clumping(track)
                    spacing = clump / share                    # parent stations per arrival of the child
                    expected = share * advance
                    seen = min(track.learned * track.gained / clump, share_memory(track.gained, clump))
                elif track.spacing:
                    spacing, seen = track.spacing, track.changes - 1
                else:
                    spacing = None
                if spacing is not None:
                    due = surprise(advance, spacing, seen)
                    # The budget is spent per silence, and each change starts one: a child that
                    # changes at every publication has that many chances to look stalled by
                    # luck, however many units each brings. Once a day was watched, its changes
                    # over the whole of it (few at night), not the busy hours' rate times 24.
                    episodes = min(pace / max(spacing, track.spacing or 0.0), advances or math.inf)
                    if watched >= DAY:
                        episodes = track.changes / watched
                    needed = changes_due(1.0, episodes, self.options.false_alarm_budget,
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
                       "child_units_per_parent_unit": None if share is None else round(share, 6),
                       "clumping": round(clumping(track), 2),
                       "stalled_seconds": round(quiet, 3), "cause": "region_stalled"}
            pct = f" at {track.percent:.2f}%" if track.percent is not None else ""
            if expected is not None:
                owed = (f"{count(round(expected))} {h.units}" if track.stations is not None
                        else f"{expected / 100:.2f} points")
                evidence = f"enough to have brought it about {owed} (~{details['expected_changes']} of its usual arrivals)"
            else:
                evidence = f"enough for about {details['expected_changes']} of its usual changes"
            firing = (f"Region {code} of {label(h)} stands still{pct} since {when(changed_at, h.zone)} "
                      f"({duration(quiet)}) while the rest gained {count(details['parent_advance'])} {h.units}, "
                      f"{evidence}.")
            resolved = (f"Region {code} of {label(h)} moves again{pct} after {duration(quiet)}."
                        if not track.complete else f"Region {code} of {label(h)} is complete.")
            events += lifecycle(h, now, key, "region_stall", "warning" if stalled else None, changed_at,
                                details, {"firing": firing, "resolved": resolved}, region=code)
        return events
