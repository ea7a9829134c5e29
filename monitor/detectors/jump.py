"""`jump`: an update whose increment lies far outside the recent ones, or whose vote shares
moved further than its votes could carry whatever their mix.

An increment is judged against what this advance was expected to bring. Once the daily rhythm
is known: the rhythm's stations over the advance's gap (the dawn ramp, the night; an hour is the
median of itself and its neighbours, so that one outsized batch does not teach it), at least
one advance's batch, times the level the count runs at now (the median of the recent increments
over what the rhythm expected of each). Before: the pace of the last few increments (a catch-up
after a short freeze or an outage at the usual pace brings the usual pace). Batch sizes are
heavy-tailed (lognormal, Pareto: a coefficient of variation of 1-3 is ordinary), so the scale is
the increments' own: what is left of each after its expectation is the publisher's batchiness,
whose upper half in logs, past the Poisson noise, is an exponential tail (a Pareto's, as Hill's
estimate), priced with the uncertainty of a dozen excesses. A batch is outsized when it is as
rare as one false alarm per `false_alarm_budget` of advances; never less than `jump_min_ratio`
times what was expected, nor under `jump_min_share` of the stations.

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
from .diurnal import Rhythm, expected as expected_by, hour_of
from .history import History
from .series import offset_at
from .text import count, duration, pace

MIN_STEPS = 6
POISSON_EXCESS = math.sqrt(2 / math.pi)   # a normal's mean excess above its mean, in standard deviations
SMALL_BATCH = 30        # expected increments below this are Poisson noise in logs (sd 1/sqrt(n) >= 18%)...
POISSON_DISPERSION = 3.0   # ...when they vary no more than this robust variance-to-mean ratio
SMOOTH = 2              # an hour's expected batch is the median of it and the 2 hours either side
GROWTH = (1.0, 0.5, 0.0)   # how an increment may grow with the advances its gap held: in proportion ... not at all
LOCAL = 4               # before the daily rhythm is known, an increment's pace is set against the trend of the 4 before it
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
        catch_up = catch_up_gap(h)
        typical = median(steps) if steps else None
        expected = ratio = robust_z = None
        stations = h.current.stations if h.current else None
        model = self._model(h, now, catch_up) if typical is not None and len(steps) >= MIN_STEPS else None
        if model is not None:
            expected, ratio, robust_z, by_rhythm = model
            # Outsized against what this advance was expected to bring (after a stall: the backlog
            # its gap was expected to hold, which only a known daily rhythm can say). After a
            # stall a big batch that is not is a catch-up.
            # A batch no larger than the usual update is an ordinary batch whatever an hour's
            # thin expectation says ("usually 7 per update" beside "7.6x the 1 expected").
            outsized = (increment >= ratio * expected and robust_z >= o.jump_factor
                        and increment > typical and (by_rhythm or not catch_up))
            outlier = outsized or (catch_up and increment >= o.jump_min_ratio * typical)
            if stations and increment < o.jump_min_share * stations:
                outlier = outsized = False    # +22 TPS of 823,236 is noise however unusual
        else:
            outsized = False
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
        over = ""
        if rate:
            over = f", {pace(rate)} {unit}/h over that time" + (f" against a usual {pace(usual)}/h" if usual else "")
        if catch_up:
            details["stalled_seconds"] = None if gap is None else round(gap, 3)
        if catch_up and not outsized:
            summary = (f"Catch-up at {label(h)}: +{count(increment)} {unit} in one update after "
                       f"{duration(gap or 0)} without progress{usual_text}{over}.")
            return [event(h, now, "jump", "observed", "info", summary, now - timedelta(seconds=gap or 0.0), details)]
        backlog = " without progress, outsized even for the backlog" if catch_up else ""
        summary = (f"Jump at {label(h)}: +{count(increment)} {unit} in one update{usual_text} after "
                   f"{duration(gap or 0)}{backlog}{over}: {increment / expected:.1f}x the {_expected_text(expected)} this update "
                   f"was expected to bring, where {ratio:.1f}x happens by chance once in the false-alarm budget.")
        return [event(h, now, "jump", "observed", "warning", summary, now, details)]

    def _model(self, h: History, now: datetime, catch_up: bool) -> tuple[float, float, float, bool] | None:
        """(what this advance was expected to bring, how many times that is as rare as the
        budget allows, the robust z of this advance against the recent ones, whether the daily
        rhythm said it).

        Each recent increment is set against what its own gap was expected to bring (a gap
        never counting for less than one usual publication): once the daily rhythm is known,
        the rhythm's stations over that gap times the level the count runs at (the median of
        the recent increments over what the rhythm expected of them), so the dawn ramp and the
        night are expected; before, the pace of the few increments before it, so a ramp is
        followed as it comes. What is left is the publisher's batchiness, a multiplier whose
        upper half, in logs, is the tail: exactly exponential for a Pareto (its 1/alpha is the
        mean excess, Hill's estimate), conservative for a lognormal. That tail is known from a
        dozen excesses, so the chance of a batch beyond it is the predictive one, with the
        uncertainty of its rate priced in (a gamma belief: 0.5 * (1 + t/S)**-k for k excesses
        summing to S), and a batch is outsized where that chance is one false alarm per
        `false_alarm_budget` of advances."""
        o = self.options
        state = h.state
        gap = h.source_gap or h.advance_gap
        n = min(len(state.steps), len(state.step_gaps)) - 1      # the last is this advance's
        if not gap or n < MIN_STEPS:
            return None
        steps, spans = state.steps[-n - 1:-1], list(state.step_gaps[-n - 1:-1])
        usual_gap = median(spans)
        end_at = h.current.published_at or now
        offset = offset_at(end_at, h.zone)
        # This advance is judged against the rhythm without it: the ledger taught its hour the
        # batch already (winsorized at 5 usual ones, still 2.7x that hour's 480 on an hour seen
        # three times), and an outsized batch must not raise what it is expected to bring.
        stations_row, *rows = _without(state.rhythm, h.facts.learned)
        rates = _rates(state.rhythm, stations_row, *rows) if state.rhythm.mature else None
        if rates is not None:
            per_second, per_advance = rates

            backlog = math.log1p(o.false_alarm_budget / max(usual_gap, 1.0))

            def due_by(until: float, span: float) -> tuple[float, float, bool]:
                # An advance brings at least the batch one advance brings at that hour (a Poisson-
                # like source's batch does not shrink with the wait before it; a late publication's
                # follower is one publication still), and up to the rhythm's stations over its gap
                # (the advances that gap was expected to hold, `spans`). A gap in which the rhythm
                # expected as many advances as the budget's level was a stall by the budget:
                # its increment is the backlog of the work that went on meanwhile.
                one = per_advance[hour_of(until, offset)[0]]
                spans_ = expected_by(per_second, until - span, until, offset) / one if one > 0 else 0.0
                return one, max(spans_, 1.0), spans_ >= backlog

            ends, t = [], end_at.timestamp() - gap
            for span in reversed(spans):
                ends.append(t)
                t -= span
            ends.reverse()
            due = [due_by(e, s) for e, s in zip(ends, spans)]
            one, spanned, stalled = due_by(end_at.timestamp(), gap)
            kept = [(x, d) for x, d in zip(steps, due) if x > 0 and d[0] > 0]
            if len(kept) >= MIN_STEPS and one > 0:
                # How an increment grows with its gap is the source's own: a publisher that sends
                # what came in since its last update brings in proportion to the wait (a skipped
                # slot's follower brings two), one that updates as each batch comes brings a batch
                # whatever the wait. Of the two (and halfway), the law its recent increments
                # follow most tightly (the smallest spread of their logs) is the one.
                best = None
                for power in GROWTH:
                    logs = [math.log(x / (d * (n if s else n ** power))) for x, (d, n, s) in kept]
                    level = median(logs)
                    spread = median(abs(v - level) for v in logs)
                    if best is None or spread < best[0] - 1e-9:
                        best = (spread, power, logs, level)
                _, power, logs, level = best
                now_due = one * (spanned if stalled or catch_up else spanned ** power)
                expected = math.exp(level) * now_due
                # The hour's batch is a rate learned from the units seen at and around it.
                b = hour_of(end_at.timestamp(), offset)[0]
                seen = median(stations_row[(b + d) % len(per_advance)] for d in range(-SMOOTH, SMOOTH + 1))
                return (expected, *self._judged(h, [x for x, _ in kept], logs, level, expected, usual_gap,
                                                seen, merged=True), True)
        # The pace (per usual publication) of each increment against the few before it: their
        # median, or their trend carried forward to it (a dawn ramp followed as it comes, not as
        # it was), whichever the recent increments follow more tightly (the smaller spread of
        # their logs), as the growth with the gap is chosen above.
        paces = [x / max(s, usual_gap) for x, s in zip(steps, spans)]
        ends, t = [], end_at.timestamp() - gap
        for span in reversed(spans):
            ends.append(t)
            t -= span
        ends.reverse()
        best = None
        for follow in (lambda times, values, counts, at: median(values), _trend):
            bases = {i: follow(ends[i - LOCAL:i], paces[i - LOCAL:i], steps[i - LOCAL:i], ends[i])
                     for i in range(LOCAL, len(paces))}
            kept = [(x, p / bases[i]) for i, (x, p) in enumerate(zip(steps, paces))
                    if i >= LOCAL and p > 0 and bases[i] > 0]
            local = follow(ends[-LOCAL:], paces[-LOCAL:], steps[-LOCAL:], end_at.timestamp())
            if len(kept) < MIN_STEPS or local <= 0:
                continue
            logs = [math.log(r) for _, r in kept]
            level = median(logs)
            spread = median(abs(v - level) for v in logs)
            if best is None or spread < best[0] - 1e-9:
                best = (spread, kept, logs, level, local)
        if best is None:
            return None
        _, kept, logs, level, local = best
        expected = math.exp(level) * local * max(gap, usual_gap)
        # The local pace is learned from the units of the few increments it is the median of.
        seen = sum(steps[-LOCAL:])
        return (expected, *self._judged(h, [x for x, _ in kept], logs, level, expected, usual_gap, seen), False)

    def _judged(self, h: History, counts: list[float], logs: list[float], level: float, expected: float,
                usual_gap: float, seen: float, merged: bool = False) -> tuple[float, float]:
        """The ratio at which an increment is as rare as the budget allows, and this increment's
        robust z against the recent ones. Each recent
        increment is a count around d, what was expected of it (its multiplier's median level
        times what its gap was expected to bring). Those above it, in logs past the Poisson
        noise (about 0.8/sqrt(d) of each, in quadrature), are the tail: exponential for a
        Pareto (Hill's estimate of 1/alpha is their mean), conservative for a lognormal, and nothing for Poisson counts of
        a few units, whose logs would make a tail of noise (1 -> 3). The tail is known from a
        dozen excesses, so the chance of a batch beyond it by t is the predictive one of a
        gamma belief in its rate: 0.5 * (1 + t/S)**-k for k excesses summing to S.

        Counts of a few units are judged by their predictive distribution too: what this
        update was expected to bring is a rate learned from a handful of units (`seen`: those
        of the hour's batch, or of the few increments the local pace is the median of; and
        the recent counts, whose level is the ratio of their sums, a Poisson rate's estimate,
        not the median of their logs), so the count is negative binomial, not Poisson of a
        known mean: a night hour seen for a few dozen units cannot say that 7 is 7x too many."""
        o = self.options
        multipliers = [math.exp(x - level) for x in logs]
        spread = 1.4826 * median(abs(m - 1.0) for m in multipliers)
        robust_z = (h.advance / expected - 1.0) / max(spread, 0.1)
        chance = min(usual_gap / o.false_alarm_budget, 0.25)
        due = [x / m for x, m in zip(counts, multipliers)]
        # Poisson noise alone lifts a count above d by 0.8/sqrt(d) in logs on average (a
        # normal's mean excess, in units of d); noise and batchiness add in quadrature.
        typical = median(due)
        dispersion = (1.4826 * median(abs(x - d) / math.sqrt(d) for x, d in zip(counts, due))) ** 2
        # A Poisson-like feed polled every minute shows the updates since the last poll as one
        # advance: a sum of a few Poisson counts, whose spread is that of Poisson counts in
        # units of `phi` (a quasi-Poisson count: x / phi is Poisson of mean d / phi).
        # Its spread is read from the squares (the median does not see the merged polls' tail),
        # the largest left out (an earlier jump).
        spreads = sorted((x - d) ** 2 / d for x, d in zip(counts, due))[:-1]
        # Only against a known day's expectations: before it, the spread is the rough pace's.
        phi = max(1.0, dispersion, sum(spreads) / max(len(spreads), 1)) if merged else 1.0
        # ...and whose tail the median does not see: counts past d + 3 sqrt(phi * d), which such
        # counts reach once in a few hundred (one is allowed: an earlier jump, a merged poll).
        wild = sum(1 for x, d in zip(counts, due) if x > d + 3 * math.sqrt(phi * d) + 1)
        # A gamma belief in the rate this update brings, from the units behind the level (the
        # recent counts) and behind the base (the hour's or the local pace's), their squared
        # coefficients of variation adding up: the count's predictive is negative binomial.
        # After n units the belief in a Poisson rate (a flat prior) is a gamma of shape n + 1:
        # a handful of units cannot prove a rate as low as they read.
        total = sum(counts)
        mean = expected * (total + 1) / sum(due) if sum(due) > 0 else expected
        mean *= (seen + 1) / max(seen, 1.0)
        shape = 1.0 / (1.0 / (total + 1) + 1.0 / (seen + 1))
        if typical < SMALL_BATCH and dispersion <= POISSON_DISPERSION and wild <= 1:
            # Counts of a few units that stray from what was expected no more than (quasi-)
            # Poisson counts do: their logs are noise, not a tail (1 -> 3), and such a count's
            # rare value is the budget's; jump_min_share keeps their batches honest.
            rare = phi * _negative_binomial_beyond(mean / phi, shape, chance)
            return max(o.jump_min_ratio, rare / expected), robust_z
        excesses = [(math.log(x / d), POISSON_EXCESS / math.sqrt(d)) for x, d in zip(counts, due) if x > d]
        beyond = _beyond(_ordinary(excesses, chance, math.log(o.jump_min_ratio)), chance)
        rare = max(expected * math.exp(min(beyond, 50.0)), _negative_binomial_beyond(mean, shape, chance))
        return max(o.jump_min_ratio, rare / expected), robust_z

    def _usual_rate(self, h: History) -> float | None:
        steps, gaps = h.state.steps[:-1], h.state.advance_gaps[:-1]
        n = min(len(steps), len(gaps), 12)
        if n < 3:
            return None
        seconds = sum(gaps[-n:])
        return sum(steps[-n:]) * 3600 / seconds if seconds > 0 else None

    def _share_shift(self, h: History, now: datetime) -> list[Event]:
        """Vote shares that moved more than this update's votes could carry, whatever the
        batch's own composition. A batch of A votes onto a total of T moves candidate c's share
        by A/T times how far the batch's share of c lies from the running one, which a batch
        from one town can take anywhere from 0 to 1: a 0.12-point shift on 3.2 million votes is
        a batch 22 points off the running share, ordinary for one county's absentee votes. What
        no honest batch can do is carry votes it has no stations for (beyond what the reported
        stations can hold at `max_votes_per_station` plus `capacity_slack`), or move shares
        further than its composition allows: that is news, whatever the budget."""
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
        # Votes beyond what the stations now reported can hold arrived without stations to hold them.
        carriable = added
        if h.current.stations_reported is not None:
            room = h.current.stations_reported * o.max_votes_per_station * (1 + o.capacity_slack)
            carriable = max(0.0, min(added, room - (total_before - removed)))
        shifts = {c: after[c] / total_after - before[c] / total_before for c in before}

        def allowed(c: str) -> float:
            share = before[c] / total_before
            reach = 1.0 - share if shifts[c] > 0 else share     # how far a batch's share can lie from it
            return (carriable * reach + removed) / total_after + o.share_tolerance

        worst = max(shifts, key=lambda c: abs(shifts[c]) - allowed(c))
        limit = allowed(worst)
        if abs(shifts[worst]) <= limit:
            return []
        details = {"kind": "share_shift", "candidate": worst, "share_shift": round(shifts[worst], 6),
                   "allowed_shift": round(limit, 6), "new_stations": new_stations,
                   "votes_added": added, "votes_removed": removed, "votes_carriable": round(carriable),
                   "catch_up": False}
        summary = (f"Vote shares at {label(h)} moved by {100 * shifts[worst]:+.2f} points for candidate {worst} "
                   f"in one update, more than its +{count(added)} votes could carry whatever their mix "
                   f"(at most {100 * limit:.2f}: {count(round(carriable))} votes fit the "
                   f"{count(new_stations) if new_stations is not None else '?'} new stations and those reported).")
        return [event(h, now, "jump", "observed", "warning", summary, now, details)]


def _expected_text(expected: float) -> str:
    """An expectation as a count, with a decimal below 10 (never "the 0 this update was expected
    to bring")."""
    return count(round(expected)) if expected >= 9.95 else f"{expected:.1f}"


def catch_up_gap(h: History) -> bool:
    """This advance ends a gap that reached the stall threshold (or an open stall): the model's
    own, before a publisher's batches raised it (Thresholds.own_warning). A batch after a gap
    the habit of batches, or one held-back gap, waits out without a page is still the backlog
    of the hours it held back, as a freeze's catch-up is."""
    return "stall" in h.open_alerts or (h.advance_gap is not None and h.stall is not None
                                        and h.advance_gap >= h.stall.own_warning)


def _beyond(excesses: list[tuple[float, float]], chance: float) -> float:
    """How far past the median, in logs, a batch is as rare as `chance`, from the upper half's
    (excess, Poisson noise) pairs."""
    if not excesses:
        return 0.0
    k = len(excesses)
    seen = sum(x for x, _ in excesses) / k
    noise = math.sqrt(sum(n * n for _, n in excesses) / k)
    mean_excess = math.sqrt(max(seen * seen - noise * noise, 0.0))
    return k * mean_excess * ((0.5 / chance) ** (1.0 / k) - 1.0)


def _trend(times: list[float], paces: list[float], counts: list[float], at: float) -> float:
    """The pace the few recent ones lead to at `at`: their log-linear trend (Theil-Sen: the
    median of the pairwise slopes, robust to one outsized batch among them) carried forward.
    Counts of a few units have no trend to carry: their logs are noise (6, 4, 2, 1 is no fall
    to 0.3, and +4 TPS after it was paged as 14x), so then it is their median."""
    if min(counts) < SMALL_BATCH or min(paces) <= 0:
        return median(paces)
    logs = [math.log(p) for p in paces]
    slopes = [(logs[k] - logs[j]) / (times[k] - times[j])
              for j in range(len(times)) for k in range(j + 1, len(times)) if times[k] > times[j]]
    slope = median(slopes) if slopes else 0.0
    level = median(y - slope * (x - at) for x, y in zip(times, logs))
    return math.exp(level)


def _ordinary(excesses: list[tuple[float, float]], chance: float, floor: float) -> list[tuple[float, float]]:
    """The publisher's ordinary tail: without the recent batches that were themselves outsized
    against the others (an earlier jump, at least `floor` in logs and beyond the tail the rest
    make at `chance`). Each is judged against the rest, largest first: judged against a tail it
    is part of, a jump of 7x (an excess of 2 where the others average 0.1) lifts that tail to
    17x and hides the next jump for a day."""
    kept = sorted(excesses)
    while len(kept) > 1 and kept[-1][0] >= max(floor, _beyond(kept[:-1], chance)):
        kept.pop()
    return kept


def _without(rhythm: Rhythm, learned: tuple) -> tuple[list[float], list[float], list[float]]:
    """The rhythm's stations, advances and exposure per hour without what this advance's gap
    added to them (the forgetting before it scales every hour alike: their ratios keep)."""
    stations, advances, exposure = list(rhythm.stations), list(rhythm.advances), list(rhythm.exposure)
    for b, advanced, added, watched in learned:
        stations[b] = max(stations[b] - added, 0.0)
        advances[b] = max(advances[b] - advanced, 0.0)
        exposure[b] = max(exposure[b] - watched, 0.0)
    return stations, advances, exposure


def _rates(rhythm: Rhythm, stations: list[float], advances: list[float],
           exposure: list[float]) -> tuple[list[float], list[float]]:
    """The rhythm's stations per second and per advance at each hour (from its rows without
    this advance), each the median of its hour and the two either side: a day's slope passes
    unchanged, while an hour that one or two outsized batches inflated (winsorized, still
    several usual ones) does not make that hour expect them again."""
    per = rhythm.cadence or 1.0
    seconds = [s / (e * per) if e > 1e-9 else None for s, e in zip(stations, exposure)]
    batches = [s / a if a > 1e-9 else None for s, a in zip(stations, advances)]
    return _smoothed(seconds), _smoothed(batches)


def _smoothed(values: list[float | None]) -> list[float]:
    out = []
    for b in range(len(values)):
        near = [v for v in (values[(b + d) % len(values)] for d in range(-SMOOTH, SMOOTH + 1)) if v is not None]
        out.append(median(near) if near else 0.0)
    return out


def _negative_binomial_beyond(mean: float, shape: float, chance: float) -> float:
    """The smallest count reached with at most `chance` by a Poisson whose mean is a gamma
    belief (`mean`, `shape`): the negative binomial predictive. A large shape is the Poisson."""
    if mean <= 0:
        return 1.0
    if shape > 1e6:
        return _poisson_beyond(mean, chance)
    if mean > 50 * max(1.0, mean / shape):
        sd = math.sqrt(mean + mean * mean / shape)
        return mean + math.sqrt(-2 * math.log(chance)) * sd + 1
    q = mean / (shape + mean)
    k, term = 0, math.exp(shape * math.log1p(-q))
    tail = 1.0 - term
    while tail > chance and k < 100_000:
        k += 1
        term *= (k - 1 + shape) / k * q
        tail -= term
    return k + 1


def _poisson_beyond(mean: float, chance: float) -> float:
    """The smallest count a Poisson of `mean` reaches with at most `chance`."""
    if mean > 50:
        return mean + math.sqrt(-2 * math.log(chance)) * math.sqrt(mean) + 1
    k, term = 0, math.exp(-mean)
    tail = 1.0 - term
    while tail > chance:
        k += 1
        term *= mean / k
        tail -= term
    return k + 1
