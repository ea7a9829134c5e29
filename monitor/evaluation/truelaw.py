"""The oracle of the publisher families: it knows the generator's true gap law, not countwatch's
model of it, and alarms once a silence has become as improbable as the false-alarm budget allows.

For the silence since the last advance it computes S, the law's chance of that silence: for a
scheduled publisher the product over the slots since of (1 - P(slot has appeared by now) x
P(not skipped) x P(it brings at least one unit)), the appearance law being the slot's jitter,
drift and lateness and the units' law the batch distribution (mixed Poisson) at the pace of that
hour with what remains; for arrivals, exp(-integrated rate of advances). It alarms at
-ln S >= ln(1 + T / mean gap between advances): the CUSUM level of one false alarm per T.
For `publication` the same on publications (a stale timestamp), for a child the child's share.
The fixed thresholds ("no change for X") run over the same polls. Both return the times of their
first alarm in every episode without progress, like the Judge looking only at polls that worked.
"""
from __future__ import annotations

import bisect
import math
from datetime import datetime
from typing import Callable

from .publishers import Generated, empty_chance
from .scenarios import START

FIXED = {"fixed 15 min": 15 * 60.0, "fixed 60 min": 3600.0, "fixed 3 h": 3 * 3600.0}


def appeared(law, offset: float, jitter: float | None = None) -> float:
    """P(a slot has appeared `offset` seconds after its nominal time): uniform within ± `jitter`
    (the law's by default), and with chance `late` an extra uniform delay up to `late_by`."""
    jitter = law.jitter if jitter is None else jitter
    def uniform(x: float, low: float, high: float) -> float:
        if high <= low:
            return 1.0 if x >= low else 0.0
        return min(1.0, max(0.0, (x - low) / (high - low)))

    on_time = uniform(offset, -jitter, jitter)
    if not law.late or law.late_by <= 0:
        return on_time
    steps = 16          # the jitter convolved with the lateness, by the midpoint rule
    delayed = sum(uniform(offset - law.late_by * (k + 0.5) / steps, -jitter, jitter)
                  for k in range(steps)) / steps
    return (1 - law.late) * on_time + law.late * delayed


def _track(g: Generated, what: str, child: int | None):
    """Per poll: (poll time, moved?, the publication shown)."""
    best = last_at = None
    for poll, index in zip(g.polls, g.shown):
        pub = g.publications[index]
        if what == "publication":
            moved = last_at is None or pub.at > last_at
            last_at = pub.at if moved else last_at
        else:
            value = pub.reported if child is None else pub.children[child]
            moved = best is None or value > best
            # The oracle knows a fall to zero is test data cleared: counting resumes from there.
            best = value if moved or value < best else best
        yield poll.at, moved, index


def episodes(g: Generated, fires: Callable[[float, float, int], bool], what: str = "advance",
             child: int | None = None) -> list[datetime]:
    """First alarm per episode without progress; fires(now, seen_at, publication index)."""
    alarms, seen, armed, shown = [], None, False, None
    for at, moved, index in _track(g, what, child):
        now = at.timestamp()
        if moved:
            seen, shown, armed = now, index, True
            continue
        if armed and fires(now, seen, shown):
            alarms.append(at)
            armed = False
    return alarms


def fixed_alarms(g: Generated, seconds: float, child: int | None = None) -> list[datetime]:
    return episodes(g, lambda now, seen, _: now - seen >= seconds, "advance", child)


def mean_gap(g: Generated, what: str = "advance", child: int | None = None) -> float:
    """Mean seconds between advances (or publications) while counting, incidents excluded."""
    busy = sum((t.end - t.start).total_seconds() for t in g.truth if t.kind in ("stall", "child_stall"))
    span = (g.complete_at or g.end.timestamp()) - max(g.counting_from, g.publications[0].at) - busy
    count, previous = 0, None
    for pub in g.publications:
        if what == "publication":
            value = pub.at
        else:
            value = pub.reported if child is None else pub.children[child]
        if previous is not None and value > previous and pub.at >= g.counting_from:
            count += 1
        previous = value
    return max(span, 3600.0) / max(count, 1)


def oracle_alarms(g: Generated, budget: float, what: str = "advance", child: int | None = None) -> list[datetime]:
    law = g.law
    level = math.log1p(budget / mean_gap(g, what, child))
    share = 1.0 if child is None else g.weights[child] / sum(g.weights)
    nominals = [s.nominal for s in g.slots]
    reach = max(law.jitter, law.daily_jitter if law.daily else 0.0) + law.late_by

    settled: dict[int, tuple[int, float]] = {}     # per episode: slots whose term is final, and their sum

    def term(j: int, now: float, remaining: int) -> float:
        slot = g.slots[j]
        p = (1 - law.skip) * appeared(law, now - slot.nominal, slot.jitter)
        if what == "advance":
            p *= 1 - empty_chance(law, share * g.expected(slot.nominal, slot.gap, remaining))
        return math.inf if p >= 1 else -math.log1p(-p)

    def silence(now: float, seen: float, index: int) -> float:
        pub = g.publications[index]
        remaining = g.stations - pub.reported
        if not law.cadence:
            hazard = g.pub_hazard if what == "publication" else g.hazard
            return _interpolate(hazard, now, g) - _interpolate(hazard, pub.at, g)
        if index not in settled:
            settled.clear()
            settled[index] = (pub.slot + 1 if pub.slot >= 0 else bisect.bisect_right(nominals, pub.at - reach), 0.0)
        j, total = settled[index]
        while j < len(g.slots) and g.slots[j].nominal + reach <= now:
            total += term(j, now, remaining)
            j += 1
        settled[index] = (j, total)
        for k in range(j, len(g.slots)):
            if g.slots[k].nominal - g.slots[k].jitter > now:
                break
            total += term(k, now, remaining)
        return total

    return episodes(g, lambda now, seen, index: silence(now, seen, index) >= level, what, child)


def _interpolate(cumulative: list[float], epoch: float, g: Generated) -> float:
    """The arrivals' cumulative hazard (one value a minute from START) at `epoch`."""
    position = max((epoch - START.timestamp()) / 60, 0.0)
    k = min(int(position), len(cumulative) - 2)
    return cumulative[k] + (cumulative[k + 1] - cumulative[k]) * (position - k)
