"""A series' daily rhythm: how fast it advances at each hour of the source's day.

A count slows down every night (the real 2024 count went from ~900 TPS/h by day to ~20 at
04:00 WIB), so "a gap this long has become improbable" depends on when the gap began. The
rhythm keeps, per local hour, the advances seen and the time observed (exponentially forgotten,
half-life four days), fed only from gaps that were watched throughout and were not incidents.
The stall threshold walks forward from the last advance through the hours ahead until a
silence that long has become as improbable as the budget allows: the evening's slow-down is
anticipated instead of discovered one false alarm at a time. Each hour is a gamma belief about
its rate (`beliefs()`), so the walk prices in how little a thinly seen hour proves; a cadenced
source is counted in stations per publication (Poisson, pooled with the neighbouring hours),
plus the empty publications the stations do not explain (`empty_chances()`). A level factor
(recent advances over what the rhythm expected for them) follows a count that slows from day
to day.
"""
from __future__ import annotations

import math
import threading
from array import array
from bisect import bisect_left
from typing import Sequence

BINS = 24
_ZEROS = (0.0,) * BINS
HALF_LIFE = 4 * 86400.0
MATURE_SECONDS = 1.5 * 86400      # total time observed before the rhythm is trusted
MATURE_BIN = 900.0                # ...and at least this much in every hour of the day
PRIOR_WEIGHT = 600.0              # seconds of "the recent average" each hour starts from
PRIOR_PUBLICATIONS = 0.2          # ...or publications, for a cadenced source
WALK_LIMIT = 14 * 86400.0
POOL = 0.5                        # share of each neighbouring hour's evidence an hour borrows
SEEN_SECONDS = 1800.0             # a Poisson-like hour watched this long is seen (while learning the day)
FALL_HOURS = 2                    # hours seen next to an unseen stretch, set against as many before them


def _row(values: Sequence[float] | None) -> Sequence[float]:
    """24 hourly values as C doubles: the same numbers as a list of floats, in 256 bytes
    instead of up to 824 (a float object per hour), for each of the three rows of each of a
    national tree's 91,561 series (~190 B per TPS). A row never written is one shared tuple
    of zeros until record() writes it."""
    return array("d", values) if values else _ZEROS


class Rhythm:
    """Per-hour advances and what they are counted against: seconds watched (a Poisson-like
    source, `cadence` 0) or publications (a cadenced one, `cadence` its period). Counting a
    cadenced source in publications keeps "every publication brought stations" exactly 1: at
    a budget of 1 in 720, a rate off by 1% would already ask for a second missed publication.

    A Poisson-like source also counts its publications per hour (`publications`, in the same
    watched time): in a count's tail its updates keep coming while fewer and fewer bring units,
    and how stale its timestamp may grow is their own day's, not the thinning advances'. The row
    is the shared zeros (8 B) until a gap holds a publication that brought nothing (until then
    it equals the advances, and is made as their copy), and for a cadenced source, whose
    publications are its exposure."""

    __slots__ = ("advances", "exposure", "stations", "cadence", "publications")

    def __init__(self, advances: Sequence[float] | None = None, exposure: Sequence[float] | None = None,
                 stations: Sequence[float] | None = None, cadence: float = 0.0,
                 publications: Sequence[float] | None = None):
        self.advances = _row(advances)
        self.exposure = _row(exposure)
        self.stations = _row(stations)
        self.cadence = cadence
        self.publications = _row(publications)

    def to_json(self) -> list:
        # Values are rounded when they enter, so this is exact; whole numbers are written as ints.
        out = [[_whole(v) for v in row] for row in (self.advances, self.exposure, self.stations)] + [self.cadence]
        if type(self.publications) is not tuple:
            out.append([_whole(v) for v in self.publications])
        return out

    @classmethod
    def from_json(cls, data: list) -> "Rhythm":
        return cls(data[0], data[1], data[2], data[3], data[4] if len(data) > 4 else None)

    def _counted_in(self, cadence: float, phase: float) -> None:
        """The hours learned so far, counted from now on in publications of `cadence` (0: in
        seconds watched, a source on no lattice), between no lattice and a cadence of two hours
        or more: a publication of such a cadence is spread over the hours it covers (record()),
        which are the hours its gap's seconds were watched in, so the same watched time is
        exposure / cadence publications there; each advance's stations, counted at the hour it
        ended, are spread as its publication would have been, over the seconds before it (the
        publications land `phase` of an hour past the hour). What a series has watched is
        evidence whatever model read it: a publisher whose lattice is recognised only once a
        wander can be fitted (12 publications: a day of a 2-hour one), or whose model goes from
        lattice to renewal and back while its wander is learned, kept none of it when the rhythm
        started afresh at each change, and its second evening and night were then unknown: a
        freeze across them, judged by the afternoon's pace, ended in what looked like a slow
        night's increment and was learned as empty publications. An hourly or faster publisher
        is recognised after its prior's few gaps (a strict lattice from 4), whose long gaps were
        called incidents unjudged (too few advances to judge a backlog by), so the night they
        show is faster than it was (a small region's first night, kept, paged "6 missed
        publications" on its fourth): its rhythm starts afresh, as it always did. (Back on no
        lattice the spread stays: a rhythm that goes back and forth while its wander is learned
        is smoothed over the hours of a publication once more at each return, no further.)"""
        old, new = self.cadence or 1.0, cadence or 1.0
        self.exposure[:] = array("d", [round(v * old / new, 4 if cadence else 1) for v in self.exposure])
        if cadence:
            # An advance counted at hour h landed at h + phase: its publication covered the
            # `cadence` seconds before, a share of each hour they lie in (_covered).
            shares = _covered(phase * 3600.0, cadence, 0.0)
            for row, digits in ((self.advances, 4), (self.stations, 3)):
                values, spread = list(row), [0.0] * BINS
                for h, value in enumerate(values):
                    if value:
                        for b, share in shares:
                            spread[(h + b) % BINS] += share * value
                row[:] = array("d", [round(v, digits) for v in spread])
        self.publications = _ZEROS
        self.cadence = cadence

    def published(self) -> "Rhythm | None":
        """A Poisson-like source's publications as a rhythm of their own (the same watched time,
        its publications counted as advances), or None before any was counted."""
        if self.cadence or type(self.publications) is tuple:
            return None
        return Rhythm(self.publications, self.exposure, self.stations, self.cadence)

    @property
    def mature(self) -> bool:
        if self.cadence:
            return sum(self.exposure) * self.cadence >= MATURE_SECONDS and min(self.exposure) * self.cadence >= MATURE_BIN
        return sum(self.exposure) >= MATURE_SECONDS and min(self.exposure) >= MATURE_BIN

    def record(self, start: float, end: float, offset: float, cadence: float | None, stations: float,
               published: Sequence[float] = ()) -> tuple[tuple[int, float, float, float], ...]:
        """A watched gap from `start` to `end` (epoch seconds) that ended in one advance of
        `stations`; `offset` is the source's UTC offset in seconds, `cadence` its period if it
        has one; `published`: a Poisson-like source's publications in the gap (epochs).
        Returns what this gap added to its hours, (hour, advances, stations, exposure) each:
        `jump` judges the advance against the rhythm without it."""
        if end <= start:
            return ()
        # the shared zeros become this series' own rows
        self.advances, self.exposure, self.stations = (array("d", row) if type(row) is tuple else row
                                                       for row in (self.advances, self.exposure, self.stations))
        cadence = cadence or 0.0
        if abs(cadence - self.cadence) > 0.1 * max(cadence, self.cadence):
            if min(cadence, self.cadence) == 0 and round(max(cadence, self.cadence) / 3600.0) >= 2 and any(self.exposure):
                self._counted_in(cadence, (end + offset) % 3600.0 / 3600.0)
            else:
                self.advances, self.exposure, self.stations = (array("d", _ZEROS), array("d", _ZEROS),
                                                               array("d", _ZEROS))
                self.publications = _ZEROS
                self.cadence = cadence
        keep = 0.5 ** ((end - start) / HALF_LIFE)
        digits = 4 if cadence else 1
        # Most hours of a young series are still zero (~80% of them on a tree recording), and
        # round() is what costs: a zero stays itself (0.0 * keep, rounded, is that zero).
        self.advances[:] = array("d", [round(v * keep, 4) if v else v for v in self.advances])
        self.stations[:] = array("d", [round(v * keep, 3) if v else v for v in self.stations])
        self.exposure[:] = array("d", [round(v * keep, digits) if v else v for v in self.exposure])
        if type(self.publications) is not tuple:
            self.publications[:] = array("d", [round(v * keep, 4) if v else v for v in self.publications])
        if cadence > 3600:
            # A publication reports what came in over its cadence: one every 2 hours lands on
            # every other hour, and its units came over both. Spread over the hours it covers,
            # every hour is seen (each publication's share of it), and an hour's stations per
            # publication stay what a publication brings. (Up to an hour's cadence, the hour it
            # lands in is that span.)
            count = max(1, round((end - start) / cadence))
            added = []
            for j in range(count):
                for b, share in _covered(end - j * cadence, cadence, offset):
                    self.exposure[b] = round(self.exposure[b] + share, 4)
                    if j == 0:
                        self.advances[b] = round(self.advances[b] + share, 4)
                        self.stations[b] = round(self.stations[b] + share * stations, 3)
                    added.append((b, share if j == 0 else 0.0, share * stations if j == 0 else 0.0, share))
            return tuple(added)
        added = []
        if cadence:
            count = max(1, round((end - start) / cadence))
            for j in range(count):
                b, _ = hour_of(end - j * cadence, offset)
                self.exposure[b] = round(self.exposure[b] + 1, 4)
                added.append((b, 0.0, 0.0, 1.0))
        else:
            t = start
            while t < end:
                b, until = hour_of(t, offset)
                step = min(until, end) - t
                self.exposure[b] = round(self.exposure[b] + step, 1)
                added.append((b, 0.0, 0.0, step))
                t += step
        b, _ = hour_of(end, offset)
        self.advances[b] = round(self.advances[b] + 1, 4)
        self.stations[b] = round(self.stations[b] + stations, 3)
        added.append((b, 1.0, stations, 0.0))
        added = tuple(added)
        if published and not cadence:
            if type(self.publications) is tuple:
                if len(published) < 2:
                    return added             # each publication an advance so far: the row is the advances'
                self.publications = array("d", self.advances)
                published = published[1:]    # this advance's own publication is in the copy
            for moment in published:
                b, _ = hour_of(moment, offset)
                self.publications[b] = round(self.publications[b] + 1, 4)
        return added

    def expected_stations(self, start: float, end: float, offset: float, unseen: float = 0.0) -> float:
        """Stations the rhythm expects between two moments (what a freeze leaves as backlog);
        `unseen`: stations per second at the hours not seen yet."""
        per = self.cadence or 1.0
        rates = [n / (e * per) if e > 0 else unseen for n, e in zip(self.stations, self.exposure)]
        return expected(rates, start, end, offset)

    def rates(self, prior: float, poll: float | None = None) -> list[float]:
        """Per hour: advances per second (Poisson-like) or the chance that a publication
        brings stations (cadenced), each shrunk towards `prior` (the same, from recent gaps).

        A Poisson-like source polled every `poll` seconds shows at most one advance per poll,
        however many updates came in between: the share p of polls with an advance gives the
        update rate -ln(1 - p) / poll, which is what the chance of a silent gap depends on."""
        if self.cadence:
            return [(n + PRIOR_PUBLICATIONS * prior) / (e + PRIOR_PUBLICATIONS)
                    for n, e in zip(self.advances, self.exposure)]
        rates = [(n + PRIOR_WEIGHT * prior) / (e + PRIOR_WEIGHT) for n, e in zip(self.advances, self.exposure)]
        return [unmerged(r, poll) for r in rates]

    def beliefs(self, prior: float, poll: float | None = None,
                unseen: float | None = None, learning: bool = False) -> list[tuple[float, float]]:
        """Per hour, what the rhythm knows as a gamma belief (shape, scale) about the rate the
        walk sums: the update rate per second (Poisson-like), or the stations a publication
        brings (cadenced). Over a stretch D at that hour (seconds, or publications) the chance
        of no advance is then (1 + D * scale / shape) ** -shape: the point estimate's e**-(rate
        * D) with the estimate's own uncertainty priced in. An hour seen a few times cannot
        promise what one seen for days can, and since a rate overestimated by 10% at the busy
        hours already doubles the false alarms (the chance of a silent gap is exponential in
        the rate), the uncertainty is what keeps the budget.

        Cadenced: stations per publication (Poisson, counted in stations, so a handful of
        publications at an hour already tell that a noon publication almost never comes empty),
        shrunk towards `prior` (stations per publication over the day); empty publications the
        stations do not explain are `empty_chances()`.
        Poisson-like: advances per second, unmerged (see rates()); the unmerging stretches the
        uncertainty by p / ((1 - p) * -ln(1 - p)) for a share p of polls with an advance.
        `unseen` (cadenced, while the day is being learned): the hours not seen yet are believed
        to bring this many stations per publication, as if seen once. `learning` (Poisson-like,
        the same): the hours not seen yet are believed as slow as the slowest hour seen, with
        that hour's evidence: the first evening is not assumed to be as busy as the day."""
        out = []
        if self.cadence:
            for s, e in zip(_pooled(self.stations), _pooled(self.exposure)):
                if unseen is not None and e < 0.5:
                    shape, exposure = s + unseen, e + 1.0
                else:
                    shape, exposure = s + PRIOR_PUBLICATIONS * prior, e + PRIOR_PUBLICATIONS
                out.append((max(shape, 1e-9), shape / exposure))
            return out
        slowest = self.slowest_hour(prior) if learning else None
        unseen_hours = None
        if slowest is not None:
            # An hour seen once is shrunk towards the slowest hour seen, not the day's mean: the
            # first evening's hours, seen once, must not borrow the day's pace.
            prior = slowest[0] / slowest[1]
            unseen_hours = self.unseen(slowest)
        advances, exposures = self.advances, self.exposure
        for b, (n, e) in enumerate(zip(advances, exposures)):
            if unseen_hours is not None and e < SEEN_SECONDS:
                n, e = unseen_hours[b]     # not seen yet: the fall seen either side goes on (unseen())
            # Shrunk towards the hours beside it (an hour is rarely far from its neighbours), not
            # the day's mean: a night hour must not borrow the day's pace.
            side_n = advances[b - 1] + advances[(b + 1) % BINS]
            side_e = exposures[b - 1] + exposures[(b + 1) % BINS]
            local = (side_n + PRIOR_WEIGHT * prior) / (side_e + PRIOR_WEIGHT)
            shape, exposure = n + PRIOR_WEIGHT * local, e + PRIOR_WEIGHT
            seen = shape / exposure
            rate = unmerged(seen, poll)
            if poll and seen > 0:
                share = min(seen * poll, 0.95)
                shape /= share / ((1.0 - share) * -math.log(1.0 - share))
            out.append((max(shape, 1e-9), rate))
        return out

    def empty_chances(self, beliefs: list[tuple[float, float]], floor: float) -> list[float]:
        """Cadenced: per hour, the chance that a publication comes empty whatever the stations
        (a publisher's hiccup, a batch held back): the empty publications seen beyond what the
        stations explain (a small province's empty nights are explained by its few stations),
        shrunk towards the same over the whole day (with `floor` pseudo-empties: never seen is
        not never) with the weight of one publication.
        It is what keeps a source whose publications sometimes bring nothing from being paged
        at its first empty one."""
        raw = [max(e - a, 0.0) for e, a in zip(self.exposure, self.advances)]
        empty = _pooled(raw)
        exposure = _pooled(self.exposure)
        chance = [math.exp(-silence(shape, mean, 1.0, 1.0)) for shape, mean in beliefs]
        explained = [e * c for c, e in zip(chance, exposure)]
        # Beyond chance (two standard deviations of the empty publications the stations explain),
        # and one empty publication at an hour is not yet a habit.
        unexplained = [max(k - x - 2 * math.sqrt(x) - 1.0, 0.0) for k, x in zip(empty, explained)]
        # Over the day, counted once: pooled, each publication is counted twice (itself and half
        # in each neighbour), and one empty publication would pass for two.
        x = sum(e * c for c, e in zip(chance, self.exposure))
        day = (max(sum(raw) - x - 2 * math.sqrt(x) - 1.0, 0.0) + floor) / (sum(self.exposure) + floor)
        return [(k + day) / (e + 1.0) for k, e in zip(unexplained, exposure)]

    def slowest(self) -> float:
        """Stations per publication at the slowest hour seen at least once (cadenced): what a
        series still learning its day assumes of the hours it has not seen yet."""
        seen = [s / e for s, e in zip(self.stations, self.exposure) if e >= 0.5]
        return min(seen) if seen else 0.0

    def slowest_hour(self, prior: float) -> tuple[float, float] | None:
        """Poisson-like: (advances, seconds watched) of the slowest hour watched at least
        SEEN_SECONDS (by its shrunk rate), or None when none was."""
        seen = [(n, e) for n, e in zip(self.advances, self.exposure) if e >= SEEN_SECONDS]
        if not seen:
            return None
        return min(seen, key=lambda ne: (ne[0] + PRIOR_WEIGHT * prior) / (ne[1] + PRIOR_WEIGHT))

    def unseen(self, slowest: tuple[float, float]) -> list[tuple[float, float]]:
        """Poisson-like, while the day is being learned: per hour, the evidence (advances,
        seconds) an hour not seen yet is believed with. All that is known of it is that it
        lies between hours seen, and the hours seen either side tell which way the pace was
        going: a first evening that halved its pace every two hours is not assumed to stop
        falling when the night begins. So the pace falls on into the unseen hours as it fell
        over the last hours seen before them (FALL_HOURS, their pace against that of the same
        number of hours before), and, going back from the first hours seen after them, as it
        rose over those: the slower of the two, never faster than the slowest hour seen. The
        belief is never surer than the slowest hour seen, nor than the hours it is extrapolated
        from (a pace extrapolated from few advances promises no more than they do)."""
        seen = [e >= SEEN_SECONDS for e in self.exposure]
        out = []
        for b in range(BINS):
            if seen[b]:
                out.append((self.advances[b], self.exposure[b]))
                continue
            n0, e0 = slowest
            rate = n0 / e0
            for step in (-1, 1):           # the hours seen before it, then those after it
                edge = next((k for k in range(1, BINS) if seen[(b + step * k) % BINS]), None)
                if edge is None:
                    continue
                near = [(b + step * (edge + k)) % BINS for k in range(FALL_HOURS)]
                far = [(b + step * (edge + FALL_HOURS + k)) % BINS for k in range(FALL_HOURS)]
                if not all(seen[h] for h in near + far):
                    continue
                n_near, e_near = sum(self.advances[h] for h in near), sum(self.exposure[h] for h in near)
                n_far, e_far = sum(self.advances[h] for h in far), sum(self.exposure[h] for h in far)
                if n_near <= 0 or n_far <= 0:
                    continue
                # per hour, the factor by which the pace fell towards the unseen hours (<= 1)
                fall = min(1.0, (n_near / e_near) / (n_far / e_far)) ** (1.0 / FALL_HOURS)
                # the near hours' pace is at their middle, (FALL_HOURS - 1) / 2 hours from the edge
                ahead = edge + (FALL_HOURS - 1) / 2.0
                if n_near / e_near * fall ** ahead < rate:
                    # as slow as the fall says, no surer than the slowest hour seen
                    rate, n0 = n_near / e_near * fall ** ahead, min(n0, n_near)
            out.append((n0, n0 / rate) if n0 > 0 else slowest)
        return out

    def mean_gap(self) -> float:
        return sum(self.exposure) * (self.cadence or 1.0) / max(sum(self.advances), 1e-9)


class _Unrecorded(Rhythm):
    """The rhythm of a series that has recorded nothing yet: one shared, read-only object
    (UNRECORDED) in place of a Rhythm of its own per series (64 B each of a national tree's
    91,561, most of which never record one on their first passes). The series gives itself a
    Rhythm() before its first record()."""

    __slots__ = ()

    def record(self, *args, **kwargs) -> None:
        raise TypeError("the shared unrecorded rhythm is read-only: give the series a Rhythm() of its own")


UNRECORDED = _Unrecorded()


def _pooled(values: Sequence[float]) -> list[float]:
    """Each hour with half of each neighbour's: an hour is rarely far from the ones beside it,
    and three hours' evidence is firmer than one's (counted as two: a cautious pooling)."""
    return [values[b] + POOL * (values[b - 1] + values[(b + 1) % BINS]) for b in range(BINS)]


def unmerged(rate: float, poll: float | None) -> float:
    """The update rate behind an observed rate of advances, when each poll can show one."""
    if not poll or rate <= 0:
        return rate
    share = min(rate * poll, 0.95)
    return -math.log(1.0 - share) / poll


def _whole(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _covered(end: float, span: float, offset: float) -> list[tuple[int, float]]:
    """The local hours of (end - span, end] and the share of `span` in each."""
    out, t = [], end - span
    while t < end:
        b, until = hour_of(t, offset)
        step = min(until, end) - t
        out.append((b, step / span))
        t += step
    return out


def hour_of(epoch: float, offset: float) -> tuple[int, float]:
    """The local hour of `epoch` and the epoch at which that hour ends."""
    local = epoch + offset
    hour_start = math.floor(local / 3600) * 3600
    return int(hour_start // 3600) % BINS, hour_start + 3600 - offset


def expected(rates: list[float], start: float, end: float, offset: float) -> float:
    """Expected advances between two moments."""
    total, t = 0.0, start
    while t < end:
        b, until = hour_of(t, offset)
        step = min(until, end) - t
        total += rates[b] * step
        t += step
    return total


def silence(shape: float, mean: float, level: float, amount: float) -> float:
    """-ln of the chance of no advance over `amount` (seconds or publications) at an hour whose
    belief is (shape, mean), the rate scaled by `level`."""
    return shape * math.log1p(level * mean * amount / shape)


QUARTERS = 4                      # a Poisson-like hour is walked in quarters, its rate following its neighbours'


def quarter_weights(beliefs: list[tuple[float, float]]) -> list[float]:
    """Per quarter of each hour (BINS * QUARTERS), its rate against its hour's mean: the day's
    rate is smooth, the rhythm knows each hour's mean, and within an hour the rate goes from
    the previous hour's towards the next one's (straight lines between the hours' middles,
    scaled so that the hour keeps its mean). On a steep morning ramp the first minutes of a
    rising hour are far slower than its mean, which the walk otherwise spends on them."""
    means = [mean for _, mean in beliefs]
    out = []
    for b in range(BINS):
        m, before, after = means[b], means[b - 1], means[(b + 1) % BINS]
        rates = []
        for q in range(QUARTERS):
            x = (q + 0.5) / QUARTERS - 0.5                  # hours from the hour's middle
            rates.append(m + x * (m - before) if x < 0 else m + x * (after - m))
        total = sum(rates)
        out.extend([r * QUARTERS / total if total > 0 else 1.0 for r in rates])
    return out


def time_to_believed(beliefs: list[tuple[float, float]], start: float, target: float, offset: float,
                     level: float = 1.0, weights: list[float] | None = None) -> float:
    """Seconds from `start` until a silence has become as improbable as e**-target (Poisson-
    like). An hour met again a day later is the same unknown rate: its stretches add up, each
    counted at its quarter's weight (quarter_weights; given when the caller walks the same
    beliefs twice, the warning's target and the critical's).

    The plain walk (tests/test_diurnal_walks.py keeps it) with hour_of() and silence() inlined,
    and each hour's silence so far the one its previous visit computed: the same floats, step
    by step, which that test checks on random hours."""
    log1p, floor = math.log1p, math.floor
    weights = quarter_weights(beliefs) if weights is None else weights
    width = 3600 / QUARTERS
    if _out_of_reach(beliefs, target, level, weights, width):
        return WALK_LIMIT
    spent = [0.0] * BINS
    known: list[float | None] = [None] * BINS
    total, t = 0.0, start
    while t - start < WALK_LIMIT:
        quarter_start = floor((t + offset) / width) * width
        q = int(quarter_start // width) % (BINS * QUARTERS)
        b = q // QUARTERS
        until = quarter_start + width - offset
        shape, mean = beliefs[b]
        weight = weights[q]
        step = (until - t) * weight
        ran = spent[b]
        before = known[b]
        if before is None:
            before = shape * log1p(level * mean * ran / shape)
        after = shape * log1p(level * mean * (ran + step) / shape)
        gain = after - before
        if total + gain >= target and mean > 0 and weight > 0:
            grow = (target - total) / shape
            if grow > 700:
                return WALK_LIMIT
            scale = shape / (level * mean)
            return t - start + (scale + ran) * math.expm1(grow) / weight
        total += gain
        spent[b] = ran + step
        known[b] = after
        t = until
    return WALK_LIMIT


# Each quarter of the day is met at most 15 times in a walk of WALK_LIMIT (14 days and the first
# quarter's rest); 16 leaves room for any rounding of the walk's clock.
_VISITS = 16
_MARGIN = 1e-6                     # relative: far above the rounding of ~1,350 terms (~1e-12)


def _out_of_reach(beliefs: list[tuple[float, float]], target: float, level: float, weights: list[float],
                  width: float) -> bool:
    """Whether time_to_believed's walk cannot reach `target` within WALK_LIMIT, so that it
    would return WALK_LIMIT after walking all of it (most walks of series whose hours are
    believed at a rate of 0: credible() bounds a thinly seen hour's rate below by nothing).
    The walk's total is, hour by hour, the silence over the time it spent there (its terms
    add up to it, each hour's from zero), and silence() grows with that time: with every hour
    given more than its quarters can hold over the walk, the total stays below this bound.
    Only for plain numbers (no negative, NaN or infinite rate, level or weight); any doubt
    walks."""
    if not 0.0 <= level < math.inf or not target > 0.0:
        return False
    log1p = math.log1p
    bound = 0.0
    span = _VISITS * width
    for b in range(BINS):
        shape, mean = beliefs[b]
        if not mean >= 0.0 or not shape > 0.0:
            return False
        if mean:
            quarters = weights[b * QUARTERS:(b + 1) * QUARTERS]
            if not all(w >= 0.0 for w in quarters):
                return False
            bound += shape * log1p(level * mean * span * sum(quarters) / shape)
    return bound * (1.0 + _MARGIN) < target


def publications_believed(beliefs: list[tuple[float, float]], empty: list[float], start: float, cadence: float,
                          target: float, offset: float, level: float = 1.0,
                          batchy: list[float] | None = None, came: int = 0,
                          came_empty: list[float] | None = None) -> int:
    """Publications after `start` until a run that brought no stations has become as improbable
    as e**-target: each comes empty by chance of its hour (`empty`) or for want of stations
    (the belief, given the run so far at that hour; at least `batchy`, the chance that a batch
    of that hour's law brings none). The first `came` publications are known to have come
    (the source's timestamp moved on) and brought nothing: each is empty by `came_empty` of its
    hour, not by `empty` (which also prices a slot that may not come at all).

    The same sum as the plain walk in tests/test_diurnal_walks.py, term by term: the walk is
    kept (per thread),
    so that the next target over the same hours (the critical after the warning) goes on from
    where this one stopped instead of walking again."""
    came_empty = came_empty if came > 0 else None
    came = came if came_empty is not None else 0
    key = (beliefs, empty, batchy, start, cadence, offset, level, came, came_empty)
    walk = getattr(_WALKS, "last", None)
    if walk is None or walk.key != key:
        walk = _Walk((list(beliefs), list(empty), None if batchy is None else list(batchy),
                      start, cadence, offset, level, came, None if came_empty is None else list(came_empty)))
        _WALKS.last = walk
    reached = walk.reached
    if reached and reached[-1] >= target:
        return bisect_left(reached, target) + 1      # the first publication whose run reached it
    if walk.done:
        return walk.j
    try:
        return walk.on(target)
    except BaseException:
        _WALKS.last = None                           # a walk cut short is no walk to go on from
        raise


def believed_surprise(j: int) -> tuple[float, float | None]:
    """The run totals (-log chance) of the first j - 1 and the first j publications of the walk
    publications_believed() just walked (0 before the first; None when it did not get that far)."""
    walk = getattr(_WALKS, "last", None)
    reached = walk.reached if walk is not None else []
    before = reached[j - 2] if 2 <= j <= len(reached) + 1 else 0.0
    return before, (reached[j - 1] if 1 <= j <= len(reached) else None)


def publications_unbatched(beliefs: list[tuple[float, float]], empty: list[float], start: float, cadence: float,
                           target: float, offset: float, level: float = 1.0,
                           batchy: list[float] | None = None, came: int = 0,
                           came_empty: list[float] | None = None) -> int:
    """publications_believed() without `batchy` (what the hours' beliefs alone would ask for),
    read from the kept walk with `batchy` that was just walked: its terms are the same ones
    before `batchy` raised them, and were summed beside it. Without batchy the run is never
    slower, so once that walk reached `target` so has this one (otherwise it is walked)."""
    walk = getattr(_WALKS, "last", None)
    came_empty = came_empty if came > 0 else None
    came = came if came_empty is not None else 0
    if batchy is None or walk is None or walk.key != (beliefs, empty, batchy, start, cadence, offset, level, came,
                                                      came_empty):
        return publications_believed(beliefs, empty, start, cadence, target, offset, level, None, came, came_empty)
    plain = walk.plain
    if plain and plain[-1] >= target:
        return bisect_left(plain, target) + 1
    if walk.done:
        return walk.j
    return publications_believed(beliefs, empty, start, cadence, target, offset, level, None, came, came_empty)


_WALKS = threading.local()


class _Walk:
    """publications_believed's walk so far over one set of hours: `reached[j - 1]` is the
    highest run total of the first j publications (nondecreasing, so a target already reached
    is found by bisection), and the walk goes on from publication `j`. The terms are computed
    as the plain walk computes them, in the same order (the silence at an hour's run so
    far is the one its previous visit computed for it), so the totals are the same floats.
    With `batchy`, `plain` keeps the same totals without it (publications_unbatched)."""

    __slots__ = ("key", "j", "total", "top", "spent", "before", "reached", "done", "bare", "bare_top", "plain")

    def __init__(self, key: tuple):
        self.key = key
        self.j, self.total, self.top = 0, 0.0, -math.inf
        self.spent = [0.0] * BINS
        self.before: list[float | None] = [None] * BINS
        self.reached: list[float] = []
        self.done = False
        self.bare, self.bare_top = 0.0, -math.inf
        self.plain: list[float] = []

    def on(self, target: float) -> int:
        beliefs, empty, batchy, start, cadence, offset, level, came, came_empty = self.key
        spent, before, reached = self.spent, self.before, self.reached
        j, total, top = self.j, self.total, self.top
        bare, bare_top, plain = self.bare, self.bare_top, self.plain
        exp, log, log1p, floor = math.exp, math.log, math.log1p, math.floor
        found = False
        while j * cadence < WALK_LIMIT:
            j += 1
            b = floor((start + j * cadence + offset) / 3600) % BINS        # hour_of()
            shape, mean = beliefs[b]
            s = spent[b]
            was = before[b]
            if was is None:
                was = shape * log1p(level * mean * s / shape)            # silence() at the run so far
            now = shape * log1p(level * mean * (s + 1) / shape)
            none = exp(was - now)
            e = empty[b] if j > came else came_empty[b]
            if batchy is not None:
                bare += -log(e + (1.0 - e) * none)
                if bare > bare_top:
                    bare_top = bare
                plain.append(bare_top)
                none = max(none, batchy[b])
            total += -log(e + (1.0 - e) * none)
            spent[b] = s + 1
            before[b] = now
            if total > top:      # a term is -log of a chance <= 1, yet rounding may make it -1e-17:
                top = total      # the highest total keeps `reached` sorted for the bisection
            reached.append(top)
            if total >= target:
                found = True
                break
        self.j, self.total, self.top = j, total, top
        self.bare, self.bare_top = bare, bare_top
        self.done = not found
        return j
