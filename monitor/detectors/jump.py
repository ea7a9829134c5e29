"""`jump`: an update whose increment lies far outside the recent ones, or whose vote shares
moved more than its new stations can explain.

An increment is judged against what this advance was expected to bring: the median of the
recent increments, times the publications its gap spans (a catch-up after a short freeze or an
outage at the usual pace brings the usual pace), times this hour's pace against the hours the
recent increments came in (the dawn ramp), once the daily rhythm is known. Batch sizes are
heavy-tailed (lognormal, Pareto: a coefficient of variation of 1-3 is ordinary), so the scale is
the tail's own: the rises from one recent increment to the next, in logs, are an exponential
tail (a Pareto's, as Hill's estimate), and a batch is outsized when it is as rare
as one false alarm per `false_alarm_budget` of advances; never less than `jump_min_ratio` times
what was expected, nor under `jump_min_share` of the stations.

A catch-up after a freeze is large per update yet ordinary per hour: the +31,743 TPS of 19 Feb
2024 arrived after 35.5 hours, about 900 TPS/h, KPU's usual daytime pace. So a big batch that
follows a stall is reported as a catch-up (info, the stall's resolution is the news), an
outsized one that does not as a jump (warning), both with the rate per hour beside the usual.
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta
from statistics import median

from ..model import Event
from .base import Rule, event, label
from .history import History
from .series import offset_at
from .text import count, duration

MIN_STEPS = 6
SMALL_BATCH = 30        # usual increments below this are Poisson noise, not a tail (sd ~ 1/sqrt(n) >= 18%)
# Without any history, a catch-up is a batch of at least this share of all stations.
CATCH_UP_SHARE = 0.001


class JumpRule(Rule):
    name = "jump"

    def __call__(self, h: History, now: datetime) -> list[Event]:
        events: list[Event] = []
        if h.advance > 0 and h.previous is not None:
            events += self._increment(h, now)
        if h.changed and h.previous is not None and h.current is not None:
            events += self._share_shift(h, now)
        return events

    def _increment(self, h: History, now: datetime) -> list[Event]:
        o = self.options
        increment = h.advance
        steps = h.state.steps[:-1]            # the Judge appended this update's increment already
        catch_up = "stall" in h.open_alerts or (h.advance_gap is not None and h.stall is not None
                                                  and h.advance_gap >= h.stall.warning)
        typical = median(steps) if steps else None
        expected = ratio = None
        if typical is not None and len(steps) >= MIN_STEPS:
            spread = 1.4826 * median(abs(s - typical) for s in steps)
            scale = max(spread, 0.1 * typical, 1.0)
            robust_z = (increment - typical) / scale
            expected = typical * self._publications(h) * self._hour_factor(h, now)
            ratio = self._rare_ratio(h, steps, typical)
            # After a stall a big batch is expected, so size alone makes it a catch-up; out of the
            # blue it must be outsized against what this advance was expected to bring.
            outlier = (increment >= o.jump_min_ratio * typical if catch_up
                       else increment >= ratio * expected and robust_z >= o.jump_factor)
            stations = h.current.stations
            if stations and increment < o.jump_min_share * stations:
                outlier = False               # +22 TPS of 823,236 is noise however unusual
        else:
            robust_z = None
            stations = h.current.stations if h.current else None
            outlier = catch_up and (increment >= CATCH_UP_SHARE * stations if stations else increment > 1)
        if not outlier:
            return []
        # The source's clock dates a freeze that began before our first poll (19 Feb 2024).
        gap = h.source_gap or h.advance_gap
        rate = increment * 3600 / gap if gap else None
        usual = self._usual_rate(h)
        details = {
            "kind": "stations", "increment": increment, "median_increment": typical,
            "expected_increment": None if expected is None else round(expected, 1),
            "outsized_ratio": None if ratio is None else round(ratio, 2),
            "robust_z": None if robust_z is None else round(robust_z, 2),
            "seconds_since_previous_advance": None if gap is None else round(gap, 3),
            "rate_per_hour": None if rate is None else round(rate, 1),
            "usual_rate_per_hour": None if usual is None else round(usual, 1),
            "catch_up": catch_up,
        }
        unit = h.units if h.current.stations_reported is not None else "points"
        usual_text = f" (usually {count(typical)} per update)" if typical is not None else ""
        pace = ""
        if rate:
            pace = f", {count(round(rate))} {unit}/h over that time" + (
                f" against a usual {count(round(usual))}/h" if usual else "")
        if catch_up:
            details["stalled_seconds"] = None if gap is None else round(gap, 3)
            summary = (f"Catch-up at {label(h)}: +{count(increment)} {unit} in one update after "
                       f"{duration(gap or 0)} without progress{usual_text}{pace}.")
            return [event(h, now, "jump", "observed", "info", summary, now - timedelta(seconds=gap or 0.0), details)]
        summary = (f"Jump at {label(h)}: +{count(increment)} {unit} in one update{usual_text} after "
                   f"{duration(gap or 0)}{pace}: {increment / expected:.1f}x the {count(round(expected))} this update "
                   f"was expected to bring, where {ratio:.1f}x happens by chance once in the false-alarm budget.")
        return [event(h, now, "jump", "observed", "warning", summary, now, details)]

    @staticmethod
    def _publications(h: History) -> float:
        """How many usual gaps this advance's gap spans (at least one)."""
        gaps = h.state.advance_gaps[-MIN_STEPS * 4:-1]
        gap = h.source_gap or h.advance_gap
        if not gaps or not gap:
            return 1.0
        return max(1.0, gap / median(gaps))

    @staticmethod
    def _hour_factor(h: History, now: datetime) -> float:
        """This gap's pace by the daily rhythm against the pace over the hours the recent
        increments came in (>= 1: a morning ramp raises what is expected, nothing lowers it)."""
        rhythm = h.state.rhythm
        gap = h.source_gap or h.advance_gap
        window = sum(h.state.advance_gaps[-len(h.state.steps):])
        if not rhythm.mature or not gap or window <= gap:
            return 1.0
        end = now.timestamp()
        offset = offset_at(now, h.zone)
        here = rhythm.expected_stations(end - gap, end, offset) / gap
        usual = rhythm.expected_stations(end - window, end, offset) / window
        return max(1.0, here / usual) if usual > 0 else 1.0

    def _rare_ratio(self, h: History, steps: list[float], typical: float) -> float:
        """How many times the expected increment is as rare as the budget allows: the rises
        from one increment to the next, in logs, as an exponential tail of mean m (a Pareto's
        1/alpha, as Hill's estimate would give it), exceeded with chance 0.5 * e**(-t/m); the
        chance allowed per advance is the usual gap over `false_alarm_budget`."""
        o = self.options
        # From one increment to the next, in logs: the day's slow swell (the ramp the hour
        # factor already expects) cancels, while a Pareto tail's exponential in logs keeps its
        # rate (the difference of two such is a Laplace of the same scale).
        # Usual increments of a few units that vary no more than Poisson counts do rise and fall
        # by that noise alone (1 -> 3 is no tail): their logs say nothing of one, and
        # jump_min_share keeps their batches honest. Small but overdispersed ones are a tail.
        spread = 1.4826 * median(abs(x - typical) for x in steps)
        if typical < SMALL_BATCH and spread ** 2 <= 3 * max(typical, 1.0):
            return o.jump_min_ratio       # small and no more dispersed than Poisson counts
        rises = [math.log(b / a) for a, b in zip(steps, steps[1:]) if a > 0 and b > a]
        if not rises:
            return o.jump_min_ratio
        tail = sum(rises) / len(rises)
        gaps = h.state.advance_gaps[-len(steps):]
        usual_gap = median(gaps) if gaps else 3600.0
        chance = min(usual_gap / o.false_alarm_budget, 0.25)
        return max(o.jump_min_ratio, math.exp(min(tail * math.log(0.5 / chance), 50.0)))

    def _usual_rate(self, h: History) -> float | None:
        steps, gaps = h.state.steps[:-1], h.state.advance_gaps[:-1]
        n = min(len(steps), len(gaps), 12)
        if n < 3:
            return None
        seconds = sum(gaps[-n:])
        return sum(steps[-n:]) * 3600 / seconds if seconds > 0 else None

    def _share_shift(self, h: History, now: datetime) -> list[Event]:
        before, after = h.previous.votes, h.current.votes
        total_before, total_after = sum(before.values()), sum(after.values())
        if total_before <= 0 or total_after <= 0 or set(before) != set(after):
            return []
        o = self.options
        new_stations = None
        if h.current.stations_reported is not None and h.previous.stations_reported is not None:
            new_stations = max(0, h.current.stations_reported - h.previous.stations_reported)
        removed = sum(max(0, before[c] - after[c]) for c in before)
        added = sum(max(0, after[c] - before[c]) for c in before)
        # What the batch can carry: every new station full for one candidate, plus whatever
        # corrections took away. Votes beyond that arrived without stations to hold them.
        capacity = added if new_stations is None else min(
            added, new_stations * o.max_votes_per_station * (1 + o.capacity_slack))
        allowed = (capacity + removed) / total_after + o.share_tolerance
        shifts = {c: after[c] / total_after - before[c] / total_before for c in before}
        worst = max(shifts, key=lambda c: abs(shifts[c]))
        if abs(shifts[worst]) <= allowed:
            return []
        details = {"kind": "share_shift", "candidate": worst, "share_shift": round(shifts[worst], 6),
                   "allowed_shift": round(allowed, 6), "new_stations": new_stations,
                   "votes_added": added, "votes_removed": removed, "catch_up": False}
        summary = (f"Vote shares at {label(h)} moved by {100 * shifts[worst]:+.2f} points for candidate {worst} "
                   f"in one update, more than its {count(new_stations) if new_stations is not None else '?'} "
                   f"new stations can explain (at most {100 * allowed:.2f}).")
        return [event(h, now, "jump", "observed", "warning", summary, now, details)]
