"""How long without an advance (or a new publication) is too long: learned from the series' own
recent gaps, at a false-alarm budget (docs/detection.md, "Stall").

Two models, chosen from the data:

- **Cadence** (Sirekap: hourly at HH:00:15 WIB; Situng 2019: every 15 minutes). Publication gaps
  sit on a lattice of period c. Counting in publications, an advance skips a publication with
  probability s; a run of M skipped publications then has probability s**M, so the warning goes
  off at the first M with s**M <= budget share ("one missed publication" when s is ~0), plus the
  largest delay we have seen between a publication and our seeing it.
  A publisher whose publication time wanders (jitter of up to a tenth of the cadence either
  way, a minute that drifts day by day, publications now and then late) is still on a lattice:
  its publication times, not its gaps, are compared with the best-fitting lattice, and the
  latest a publication has come after its slot (with a quarter of the observed spread to spare)
  is added to the wait instead of a fixed half minute.
- **Poisson-like** (a feed that updates whenever data arrives). For rate lambda the optimal
  detector of a rate falling to zero (CUSUM) alarms after tau = ln(1 + lambda*ARL0)/lambda
  without an event, ARL0 being the mean time between false alarms.

Both estimate from recent gaps with robust statistics (medians, a long and a short window, the
slower of the two so that an overnight slow-down raises the threshold before it bites), start
from a prior, and are clamped to a floor and a ceiling. Everything here is a pure function.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, replace
from functools import lru_cache
from statistics import median
from typing import Sequence, Union

from .diurnal import (SEEN_SECONDS, Rhythm, believed_surprise, expected, hour_of, publications_believed,
                      publications_unbatched, quarter_weights, time_to_believed, unmerged)
from .options import DetectionOptions
from .text import duration

SHORT_WINDOW = 8          # recent gaps that let a slow-down show before the long window sees it
PRIOR_SKIPS = 0.01        # pseudo-count of skipped publications: no history is not proof of none
CRITICAL_BUDGET = 10.0    # critical: ten times rarer than a warning by chance
MIN_CADENCE = 60.0        # below a minute a "cadence" is indistinguishable from a continuous feed
ALIGNED_SHARE = 0.8       # share of gaps on the lattice that makes a source cadenced
JITTER = 30.0            # seconds a cadenced publisher may be late by its own clock
WANDER_MIN = 12          # publications before a wandering lattice can be told from chance
WANDER_SHARE = 0.25      # ...which keeps most publications within this share of the period of their slot
LEARNING = " (its daily rhythm is not known yet: ten times the usual certainty)"
WINSOR = 5.0             # gaps above this many medians count as this many
RENEWAL_CV = 0.5         # gaps more regular than this are no Poisson stream (an exponential's CV is 1)
BATCH_MIN = 8            # increments before the batches' spread can be read
MEDIAN4_VARIANCE = 0.2978  # variance of the median of four standard normal draws
DAY = 86400.0            # a publisher's schedule repeats daily (the rhythm's period)
BATCH_HOUR = 3600.0       # batches within an hour of each other's local time are one hour of a schedule
CREDIBLE = 0.5           # standard deviations below its mean a Poisson-like hour's rate is believed at (credible)
HABIT_BOUND = 2           # a habit, or a walk of the source's own hours, raises the ceilings up to this many critical ceilings
HABIT_WINDOW = 8         # recent gaps a habit of long gaps is read from (the series' HABIT bits span 8)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Seconds without progress (on our clock) before warning / critical, and why.

    Slotted, with its reason interned: a series whose prior runs on its own data's timestamp
    (every series of a tree on its first pass: its own first poll) holds thresholds of its own,
    and a dict and a reason string each made them ~320 B a series (~180 B slotted)."""

    warning: float
    critical: float
    reason: str
    model: str                       # "prior" | "cadence" | "poisson"
    cadence: float | None = None     # seconds between publications, when cadenced
    missed_warning: int | None = None
    missed_critical: int | None = None
    # The model's own warning before a habit of long gaps raised it (renewal floor): what tells
    # whether a gap was long for the model, so that the habit is kept alive by its gaps.
    base_warning: float | None = None
    # A lattice that publication times wander about: the newest publication's offset from its
    # slot (the ledger measures the next one's from it and remembers the latest offsets longer
    # than the window: SeriesState.slot_memory).
    deviation: float | None = None
    # The model's own critical before a publisher that held its data back lately raised it
    # (held_back_floor): what caps the gaps learned, as before.
    base_critical: float | None = None

    def __post_init__(self):
        object.__setattr__(self, "reason", sys.intern(self.reason))

    @property
    def own_warning(self) -> float:
        return self.warning if self.base_warning is None else self.base_warning

    @property
    def own_critical(self) -> float:
        return self.critical if self.base_critical is None else self.base_critical


def _last_answer(function):
    """The answer of the last call again for the same gaps (equal values of equal types) and
    jitter: a series' stall and stale thresholds are learned one after the other from the
    same publication gaps, and both read their lattice. One entry, swapped whole (threads)."""
    last = [None]

    def cached(gaps: Sequence[float], jitter: float = 0.0):
        key = (tuple(gaps), tuple(map(type, gaps)), jitter, type(jitter))
        seen = last[0]
        if seen is not None and seen[0] == key:
            return seen[1]
        answer = function(gaps, jitter)
        last[0] = (key, answer)
        return answer
    cached.__doc__, cached.__name__, cached.__wrapped__ = function.__doc__, function.__name__, function
    return cached


@_last_answer
def detect_cadence(gaps: Sequence[float], jitter: float = 0.0) -> float | None:
    """The lattice period of `gaps` (seconds), or None when they are not on one.

    The smallest usual gap is the candidate (a quarter of the gaps or more are single
    periods even when some publications are skipped); the cadence is accepted when most gaps
    are whole multiples of it within the jitter."""
    values = sorted(g for g in gaps if g > 0)
    if len(values) < 4:
        return None
    candidate = values[len(values) // 4]
    tol = max(10.0, 0.02 * candidate, jitter)
    if candidate < MIN_CADENCE or tol > 0.1 * candidate:
        return None
    singles = [g for g in values if abs(g - candidate) <= tol]
    period = median(singles)
    aligned = sum(1 for g in values if round(g / period) >= 1 and abs(g - round(g / period) * period) <= tol)
    return period if aligned >= ALIGNED_SHARE * len(values) else None


@dataclass(frozen=True)
class Lattice:
    """Publication times that wander about a lattice: its period (fitted to the times, so a
    drifting minute is part of it) and each publication's offset from its slot, oldest first
    (seconds), with `end` the slot-frame time of the newest one."""

    period: float
    intercept: float
    slots: tuple[int, ...]
    deviations: tuple[float, ...]

    def late_edge(self) -> float:
        """How late after its slot a publication may come: the latest seen, plus a quarter of
        the spread seen (a sample sees less than the whole of a bounded wander). A publisher late
        now and then by an amount of its own is waited for further (late_beyond)."""
        return wander_edge(self.deviations)

    def deviation_at(self, seconds_after_last: float) -> float:
        """The offset from its slot of an event `seconds_after_last` after the newest one (<= 0:
        before it)."""
        t = self.intercept + self.period * self.slots[-1] + self.deviations[-1] + seconds_after_last
        slot = round((t - self.intercept) / self.period)
        return t - (self.intercept + self.period * slot)


def wander_edge(deviations: Sequence[float]) -> float:
    """The latest offset seen plus a quarter of the spread seen (Lattice.late_edge)."""
    high, low = max(deviations), min(deviations)
    return high + 0.25 * (high - low)


def late_tail(deviations: Sequence[float], chance: float) -> float:
    """The offset from its slot that a publication passes with probability `chance`, when
    now and then one comes late by an amount of its own (a publisher late by minutes on some
    slots, on time on the others): not bounded by the latest seen. Of n publications seen,
    the next is later than all of them with probability 1/(n+1) (exchangeable: the rule of
    succession); beyond the latest the tail is exponential, its scale the mean excess of the
    latest k over the next (peaks over a threshold). Where the late ones part from the body is
    not known: of the thresholds among the latest sqrt(n), the one whose excesses are largest
    (two late slots of 48 are their own tail, not a seventh of one). A wander seen whole
    (jitter) has close top spacings and a short tail; a few late slots far apart, a long one."""
    d = sorted(deviations)
    n = len(d)
    if n < 3 or chance <= 0:
        return d[-1] if d else 0.0
    top = min(max(2, round(math.sqrt(n))), n - 1)
    scale = max(sum(x - d[-k - 1] for x in d[-k:]) / k for k in range(1, top + 1))
    return d[-1] + scale * max(0.0, math.log(1.0 / ((n + 1) * chance)))


def late_beyond(deviations: Sequence[float], chance: float) -> float:
    """How much later than the bounded wander's edge (Lattice.late_edge) a publication may come
    with probability `chance`, by the heavy tail of its publications' offsets (late_tail)."""
    if len(deviations) < 3:
        return 0.0
    return max(0.0, late_tail(deviations, chance) - wander_edge(deviations))


@_last_answer
def wandering_lattice(gaps: Sequence[float], jitter: float = 0.0) -> Lattice | None:
    """The lattice that publication times (the running sums of `gaps`) wander about, or None.

    Each publication is given the slot its gap from the previous one says (a skipped
    publication is a gap of two slots), the period and phase are fitted to the times by least
    squares, and the lattice is accepted when most publications lie within WANDER_SHARE of the
    period of their slot: a Poisson-like feed's times fall anywhere, so about half would."""
    values = [g for g in gaps if g > 0]
    if len(values) < WANDER_MIN:
        return None
    ordered = sorted(values)
    candidate = ordered[len(ordered) // 4]
    if candidate < MIN_CADENCE or jitter > 0.1 * candidate:
        return None
    period = median([g for g in ordered if abs(g - candidate) <= WANDER_SHARE * candidate])
    for _ in range(2):                     # fit, then fit again with the slots the fit implies
        slots, times, k, t = [0], [0.0], 0, 0.0
        for g in values:
            k += max(1, round(g / period))
            t += g
            slots.append(k)
            times.append(t)
        n = len(slots)
        mean_k, mean_t = sum(slots) / n, sum(times) / n
        var_k = sum((x - mean_k) ** 2 for x in slots)
        if var_k <= 0:
            return None
        period = sum((x - mean_k) * (y - mean_t) for x, y in zip(slots, times)) / var_k
        if period < MIN_CADENCE:
            return None
    intercept = mean_t - period * mean_k
    deviations = tuple(y - (intercept + period * x) for x, y in zip(slots, times))
    within = sum(1 for d in deviations if abs(d) <= WANDER_SHARE * period)
    if within < ALIGNED_SHARE * len(deviations):
        return None
    return Lattice(period, intercept, tuple(slots), deviations)


def publisher_skips(pub_gaps: Sequence[float], cadence: float, prior: float = PRIOR_SKIPS) -> float:
    """The share of the lattice's slots in which the source published nothing (a gap of k slots
    is k - 1 skipped), with `prior` pseudo-skips: never seen is not never."""
    slots = [max(1, round(g / cadence)) for g in pub_gaps if g > 0]
    if not slots:
        return 0.0
    return (sum(slots) - len(slots) + prior) / (sum(slots) + prior)


def max_lag(lags: Sequence[float]) -> float | None:
    """The longest usual delay between a publication and our poll that saw it; the single
    largest is dropped once there are enough to call it an outlier."""
    if not lags:
        return None
    ordered = sorted(lags)
    return ordered[-2] if len(ordered) >= 6 else ordered[-1]


@dataclass(frozen=True)
class Clock:
    """What a threshold measures the time since: the last advance (stall) or the last
    publication (stale_source)."""

    noun: str
    skipped: str                     # what a skipped publication means on this clock
    steady: bool                     # a cadenced publisher keeps its cadence day and night


ADVANCE = Clock("advance", "of publications lately brought no new stations", steady=False)
PUBLICATION = Clock("publication", "of expected publications lately did not come", steady=True)


@dataclass(frozen=True)
class Seen:
    """What a series has seen, for one clock.

    gaps: recent gaps between events (seconds, oldest first); pub_gaps: gaps between the
    source's timestamps, which reveal a cadence; lags: recent delays from publication to our
    seeing it; lag0: that delay for the event the clock runs from; poll_gap: our polling
    interval; rhythm, start, offset: the series' daily rhythm, the epoch the clock runs from
    (on the source's clock when it has one) and the source's UTC offset, for a walk through
    the hours ahead once the rhythm is known."""

    clock: Clock
    gaps: Sequence[float]
    pub_gaps: Sequence[float] = ()
    lags: Sequence[float] = ()
    lag0: float | None = None
    poll_gap: float | None = None
    rhythm: Rhythm | None = None
    start: float | None = None
    offset: float = 0.0
    anchor: float | None = None      # epoch of the newest publication (where pub_gaps end)
    pace: float = 1.0                # the pace expected now against the gaps' (< 1 in a count's tail)
    level: float | None = None       # in a count's tail: the pace now against a cadenced rhythm's (phase.py)
    # The publication clock of a count's tail whose publications outnumber its advances (updates
    # keep coming as units thin out): they are read against the advances' rhythm by their own level.
    outpaced: bool = False
    habitual: bool = False           # long gaps recur (HABIT of the last 8): they are the source's way
    held_back: bool = False          # the last gap was long (on the advances' clock: it ended in a backlog)
    # Epochs (on the source's clock when it has one) of the recent advances that ended such gaps,
    # oldest first: when a habitual publisher's batches came (batch_waits).
    batches: Sequence[float] = ()
    # Since the last advance, a publication ended a long gap of the source's own clock and brought
    # nothing: the batch a held-back gap may have announced came, empty (held_back_floor).
    empty_batch: bool = False
    # The publisher's rarer habits, remembered longer than the window of gaps (half-life of days:
    # a 15-min publisher's 48 gaps are 12 hours, in which one skipping 2% of its slots shows
    # none a third of the time): (slots, skipped slots, the two latest after their slot), decayed.
    memory: Sequence[float] | None = None
    # Recent increments (stations per advance) and the gap each came after: how batchy the
    # publisher's batches are, beyond the Poisson noise of their units (batch_spread).
    steps: Sequence[float] = ()
    step_gaps: Sequence[float] = ()
    # The publication clock before any gap: how old the data was at our first poll (the prior
    # runs on the source's clock, so this is a gap in progress; the advance clock's is lag0).
    first_age: float | None = None

    @property
    def remembered_skips(self) -> float:
        if not self.memory or self.memory[0] <= 0:
            return 0.0
        return (self.memory[1] + PRIOR_SKIPS) / (self.memory[0] + PRIOR_SKIPS)

    def window_prior(self, slots: float) -> float:
        """The pseudo-skips a window of `slots` slots is read with: PRIOR_SKIPS, unless the long
        memory has seen at least as many slots (it carries the prior, on all it has seen). The
        prior is a pseudo-count over the evidence, counted once: over a window of 48 gaps it is a
        share of 1/4800, which a 5-min publisher's budget (a slot's chance of 1/8640 per 30 days)
        reads as "it may skip" forever, a 2-hour one's (1/360) as nothing."""
        return 0.0 if self.memory and self.memory[0] >= slots else PRIOR_SKIPS

    @property
    def remembered_edge(self) -> float:
        return self.memory[3] if self.memory and len(self.memory) > 3 else 0.0   # seen twice: a habit


@dataclass(frozen=True)
class Prior:
    """Too little history: the configured prior."""

    def thresholds(self, seen: Seen, o: DetectionOptions) -> Thresholds:
        # Like every model, the prior runs on the source's clock: data that was minutes old at
        # our first poll has been standing that much longer (so a stall and the stale timestamp
        # of one stopped publisher come due together). Data older than the prior already is
        # stale_source's news on the first poll; the stall then counts from that poll.
        already = seen.lag0 if seen.lag0 is not None and 0 < seen.lag0 < o.stall_prior else 0.0
        prior, critical_prior, slower = o.stall_prior, 2 * o.stall_prior, ""
        # Too few gaps to learn a threshold from can still tell that the source is slower than
        # the prior assumes (a count met in its night, or its evening slowing down), never that
        # it is faster: the prior is raised to what their own pace asks for at the budget. Gaps
        # on a lattice (an hourly publisher's first hours) are a cadence, not a slow Poisson pace.
        # Advances come no faster than publications: the publications' gaps, when more, tell too.
        gaps = [g for g in max(seen.gaps, seen.pub_gaps, key=len) if g > 0]
        if len(gaps) >= 2 and not _lattice_like(seen.pub_gaps or gaps):
            mean = sum(gaps) / len(gaps)
            paced = mean * math.log1p(o.false_alarm_budget / mean)
            if paced > prior:
                prior, slower = paced, (f", raised to {duration(paced)}: its {len(gaps)} gaps so far, about "
                                        f"{duration(mean)} each, are slower than the prior assumes")
                critical_prior = max(critical_prior, mean * math.log1p(CRITICAL_BUDGET * o.false_alarm_budget / mean))
        # A silence no longer than the gaps the source has already shown is no news: few gaps
        # put 1/(n+1) of the chance beyond the longest (renewal_waits), so a publisher every 2
        # hours is not paged by a 2-hour prior at its first slot a minute late. With no gap yet,
        # the age of the data at our first poll is a gap in progress (at least that long).
        age = already if seen.first_age is None else seen.first_age
        shown = gaps or ([age] if 0 < age < o.stall_prior else [])
        if shown:
            waits = renewal_waits(shown, o.false_alarm_budget, seen.poll_gap)
            if waits[0] > prior:
                prior, slower = waits[0], (f", raised to {duration(waits[0])}: it has gone {duration(waits[2])} "
                                           f"without {'an' if seen.clock.noun[0] in 'aeiou' else 'a'} "
                                           f"{seen.clock.noun} already")
                critical_prior = max(critical_prior, waits[1])
        advances = [g for g in seen.gaps if g > 0]
        publications = [g for g in seen.pub_gaps if g > 0]
        n = min(len(seen.steps), len(seen.step_gaps))
        # Units per publication: each increment over the slots of the gap it ended (incidents
        # included: a freeze's catch-up brings many), and before the second advance the first
        # one's, over the publications since the data we first saw (_first_span).
        brought = list(zip(seen.steps[-n:], seen.step_gaps[-n:])) if n else []
        first = _first_span(seen, publications)
        if first is not None:
            brought.append(first)
            if not advances:
                advances = [first[1]]               # of its slots, only the last brought units
        if seen.clock is ADVANCE and (advances or brought) and publications and _lattice_like(publications):
            # Publications on a lattice make the advances a thinned lattice: a slot comes empty
            # as often as the slots the advance gaps spanned came empty, and at least as often
            # as a publication's units are none (Poisson, at the fewest units a publication of
            # those seen brought: a small region's +1, +2 TPS say an empty one is no surprise).
            # M empty slots in a row are as improbable as the budget allows at s**M <= c / T
            # (the cadence model's own rule, from what came before the silence now, never from
            # it: it would raise the threshold as fast as it grows).
            unit = min(publications)
            spans = [max(1, round(g / unit)) for g in advances]
            empty = (sum(spans) - len(spans)) / sum(spans) if spans else 0.0
            units = [x / max(1, round(g / unit)) for x, g in brought if x > 0 and g > 0]
            if units:
                empty = max(empty, math.exp(-min(units)))
            if 0 < empty < 1:
                waits = [unit * math.ceil(math.log(unit / (budget * o.false_alarm_budget)) / math.log(empty) - 1e-9)
                         for budget in (1.0, CRITICAL_BUDGET)]
                if waits[0] > prior:
                    prior, slower = waits[0], (f", raised to {duration(waits[0])}: {100 * empty:.0f}% of its "
                                               f"publications may come empty, by those seen so far")
                    critical_prior = max(critical_prior, waits[1])
        warning = _clamp(prior - already, o.stall_floor, o.stall_ceiling)
        critical = _clamp(critical_prior - already, warning, o.critical_ceiling)
        return Thresholds(warning, critical, f"too little history yet ({len(seen.gaps)} {seen.clock.noun} gaps): "
                          f"prior of {duration(o.stall_prior)}{slower}", "prior")


def _first_span(seen: Seen, publications: Sequence[float]) -> tuple[float, float] | None:
    """(units, seconds) of the first advance, on the source's clock, from the data we first saw:
    when the count last moved before our first poll is unknown, but the first advance's units
    came over the publications since (the publication gaps kept since the first sighting, all
    of them while no advance gap is: a gap not kept makes the span shorter, the units per
    publication more, and the prior no more patient than before). None before the first
    advance, and once there is a gap of the advances' own."""
    if (seen.clock is not ADVANCE or len(seen.steps) != 1 or seen.step_gaps or seen.gaps
            or seen.start is None or seen.anchor is None or not publications):
        return None
    span = seen.start - (seen.anchor - sum(publications))
    return (seen.steps[0], span) if span > 0 else None


def _lattice_like(gaps: Sequence[float]) -> bool:
    """A few gaps that are all whole multiples of the shortest (within JITTER): what a cadenced
    publisher's first gaps look like, and what irregular ones almost never do."""
    values = [g for g in gaps if g > 0]
    if not values:
        return True
    unit = min(values)
    return unit >= MIN_CADENCE and all(abs(g - round(g / unit) * unit) <= JITTER for g in values)


@dataclass(frozen=True)
class Cadence:
    """Publications on a lattice of `period` seconds; `daily`: the rhythm the walk follows
    (mature, or still learning its day); `strict`: the extra certainty asked for."""

    period: float
    daily: Rhythm | None = None
    strict: float = 1.0
    late: float | None = None        # a wandering lattice: seconds after its slot a publication may come
    pace: float = 1.0                # advances expected now against the gaps' (a count's tail)
    deviation: float | None = None   # the newest publication's offset from its slot (for the ledger)
    offsets: tuple[float, ...] = ()  # the wandering lattice's offsets of publications from their slots (late_beyond)

    def thresholds(self, seen: Seen, o: DetectionOptions) -> Thresholds:
        return replace(_cadenced(seen, self.period, o, self.daily, self.strict, self.late, self.pace, self.offsets),
                       deviation=self.deviation)


@dataclass(frozen=True)
class Poisson:
    """Updates whenever data arrives; `daily`: the mature rhythm the walk follows."""

    daily: Rhythm | None = None
    strict: float = 1.0
    pace: float = 1.0
    learning: Rhythm | None = None   # the rhythm still learning its day: the walk follows the hours seen

    def thresholds(self, seen: Seen, o: DetectionOptions) -> Thresholds:
        return _poissonian(seen, o, self.daily, self.strict, self.pace, self.learning)


@dataclass(frozen=True)
class Renewal:
    """A regular source that fits no lattice: the learned distribution of its own gaps."""

    def thresholds(self, seen: Seen, o: DetectionOptions) -> Thresholds:
        # In a count's tail the gaps stretch as what remains shrinks (seen.pace < 1).
        gaps = [g / seen.pace for g in seen.gaps[-o.stall_window:]]
        warning, critical, top = renewal_waits(gaps, o.false_alarm_budget, seen.poll_gap)
        shift = _lag_shift(seen)
        reason = (f"regular updates on no fixed cadence, gaps up to about {duration(top)}{_tail(seen.pace)}: no "
                  f"{seen.clock.noun} for {duration(warning + shift)} happens by chance once in "
                  f"{duration(o.false_alarm_budget)}")
        return _finish(warning + shift, critical + shift, reason, "renewal", o)


Model = Union[Prior, Cadence, Poisson, Renewal]


def renewal_waits(gaps: Sequence[float], budget: float, poll: float | None) -> tuple[float, float, float]:
    """(warning, critical, usual longest gap): seconds after the last event at which a silence
    has become as improbable as the budget allows, by the gaps' own distribution (a renewal
    process). Each gap may be the one that ends the run: the empirical survival puts 1/(n+1) of
    the chance beyond the longest usual gap, and beyond it the tail falls exponentially with the
    spread of the gaps near the longest (a publication time that wanders by w makes gaps that
    wander by up to 2w). The allowed chance per gap is mean gap / budget (one false alarm per
    budget); critical is ten times rarer."""
    values = sorted(g for g in gaps if g > 0)
    top = values[-1]
    near = [g for g in values if g >= (1 - WANDER_SHARE) * top]
    k = len(near)
    # The range of k draws covers (k-1)/(k+1) of a bounded spread; one draw proves little.
    width = (top - near[0]) * (k + 1) / (k - 1) if k >= 2 else WANDER_SHARE * top
    scale = max(width / 2, poll or 0.0, MIN_CADENCE)
    beyond = 1.0 / (len(values) + 1)
    share = (sum(values) / len(values)) / budget

    def wait(chance: float) -> float:
        return top + scale * max(math.log(beyond / chance), 0.0)
    return wait(share), wait(share / CRITICAL_BUDGET), top


def _lag_shift(seen: Seen) -> float:
    """Gaps on the source's clock, thresholds on ours since the event was seen: the longest
    usual delay to our seeing a publication, less that of the event the clock runs from. That
    event may have been seen later than usual by up to one polling interval (a publication off
    its usual minute: a batch, a late slot), and is still counted on the source's clock, so
    that the stall and the stale timestamp of one stopped publisher come due at the same poll
    (one page, not two a minute apart). Seen later still (our polls failed), it is not."""
    lag0, lag = seen.lag0, max_lag(seen.lags)
    if lag is None:
        lag = seen.poll_gap or 0.0
    return lag - (lag0 if lag0 is not None and 0 <= lag0 <= lag + (seen.poll_gap or 0.0) else 0.0)


def habit_floor(model: Thresholds, seen: Seen, o: DetectionOptions) -> Thresholds:
    """A source whose long gaps recur (a publisher settled into one or two batches a day) is
    judged by its habit where the model would page sooner: the model (a lattice with
    independent skips, a Poisson stream) cannot express runs of empty slots that come every
    day. When the last advance was itself a batch, the next is due at the first of the local
    hours its batches come round at (batch_waits): a long night after an evening batch is no
    stall, and a missed short-gap batch is not waited for until after the longest gap.
    Otherwise by the renewal of its recent gaps. A floor, never lower than the model's own
    threshold: long gaps that recur by chance (a slow tail) teach no schedule to page sooner
    by. The ceilings give way to the habit: a source that publishes once a day is not stalled
    at 12 hours."""
    waits = batch_waits(seen.batches, seen.start, seen.offset, o.false_alarm_budget, seen.poll_gap)
    if waits is not None:
        warning, critical, due = waits
        how = (f": its batches come round at the same local hours, the next due {duration(due)} after the last, "
               f"so no {seen.clock.noun} for {{}}")
    else:
        recent = [g / seen.pace for g in seen.gaps[-HABIT_WINDOW:]]
        if len(recent) < 2:
            return model
        warning, critical, top = renewal_waits(recent, o.false_alarm_budget, seen.poll_gap)
        how = (f" (up to about {duration(top)} lately), so by the distribution of its recent gaps: "
               f"no {seen.clock.noun} for {{}}")
    shift = _lag_shift(seen)
    bound = HABIT_BOUND * o.critical_ceiling
    warning, critical = min(warning + shift, bound), min(critical + shift, bound)
    if warning <= model.warning:
        return replace(model, base_warning=model.warning)
    reason = f"{model.reason}; but its long gaps recur" + how.format(duration(warning))
    return Thresholds(warning, max(critical, model.critical, warning), reason, "renewal", model.cadence,
                      model.missed_warning, model.missed_critical, base_warning=model.warning,
                      deviation=model.deviation)


def batch_waits(batches: Sequence[float], start: float | None, offset: float, budget: float,
                poll: float | None) -> tuple[float, float, float] | None:
    """(warning, critical, seconds to the batch due) after the last advance `start`, when it was
    itself a batch (the end of a held-back gap): a publisher that batches does so on a daily
    schedule, so its batches come round at the same local hours. Batches within BATCH_HOUR of
    each other's local time are one hour of its schedule, from the first batch seen there; an
    hour seen once is dropped when it comes round and passes with no batch while later ones
    came (a freeze's catch-up at an odd hour is expected once more at most), an hour seen twice
    is the schedule (a freeze across it does not unschedule it). The batch due is the first of those hours more
    than BATCH_HOUR after the last batch (whose own hour comes round within a day in any case).
    How late after its hour a batch comes is learned like a renewal's tail: the latest seen, and
    beyond it an exponential tail with the spread seen (k offsets from their hour cover
    (k-1)/(k+1) of a bounded spread; with fewer than two, the hour's own width), 1/(n+1) of the
    chance beyond the latest of n batches, the allowed chance per gap the mean gap over the
    budget. None when the last advance was no batch."""
    if not batches or start is None or abs(batches[-1] - start) > 1.0:
        return None
    clock = sorted(((b + offset) % DAY, b) for b in batches)
    groups: list[list[tuple[float, float]]] = [[clock[0]]]
    for before, entry in zip(clock, clock[1:]):
        if entry[0] - before[0] <= BATCH_HOUR:
            groups[-1].append(entry)
        else:
            groups.append([entry])
    if len(groups) > 1 and groups[0][0][0] + DAY - groups[-1][-1][0] <= BATCH_HOUR:
        groups[0] = [(m - DAY, b) for m, b in groups.pop()] + groups[0]      # an hour across midnight
    hours, late = [], []
    for group in groups:
        if len(group) == 1 and group[0][1] + DAY + BATCH_HOUR < start:
            continue                      # seen once, and its hour came round and passed while later batches came
        centre = sum(m for m, _ in group) / len(group)
        hours.append(centre)
        if len(group) >= 2:
            late += [m - centre for m, _ in group]
    local = start + offset
    midnight = local - local % DAY
    due = min(midnight + hour % DAY + k * DAY for hour in hours for k in range(3)
              if midnight + hour % DAY + k * DAY > local + BATCH_HOUR) - local
    k = len(late)
    high = max(late) if late else 0.0
    width = (high - min(late)) * (k + 1) / (k - 1) if k >= 2 else BATCH_HOUR
    scale = max(width / 2, poll or 0.0, MIN_CADENCE)
    beyond = 1.0 / (len(batches) + 1)
    mean = (batches[-1] - batches[0]) / (len(batches) - 1) if len(batches) >= 2 else DAY
    share = max(mean, MIN_CADENCE) / budget

    def wait(chance: float) -> float:
        return due + max(high, 0.0) + scale * max(math.log(beyond / chance), 0.0)
    return wait(share), wait(share / CRITICAL_BUDGET), due


def model_of(seen: Seen, o: DetectionOptions) -> Model:
    """The model the series' own gaps support."""
    gaps, pub_gaps, rhythm = seen.gaps, seen.pub_gaps, seen.rhythm
    if len(gaps) < o.stall_min_gaps:
        return Prior()
    cadence = detect_cadence(pub_gaps) if len(pub_gaps) >= 4 else None
    if cadence is None and not pub_gaps:
        cadence = detect_cadence(gaps, jitter=1.5 * (seen.poll_gap or 0.0))
    late = edge = deviation = None
    if cadence is None:
        cadence, late, edge, deviation, deviations = _wandering(seen)
    else:
        # On a strict lattice still: publications now and then late by more than the usual
        # half minute (a slot published minutes after its time) widen the wait by what was seen.
        period, wander, edge, deviation, deviations = _wandering(seen)
        if period is None or abs(period - cadence) > 0.02 * cadence:
            edge = deviation = None
        elif wander is not None and wander > JITTER:
            late = wander
        if edge is None:
            # Too few publications to fit the wander yet, the lattice was accepted with gaps up to
            # a tolerance off its multiples (2% of a 2-hour cadence is 144 s): a gap off by d
            # is two publications off their slots, one of them by up to d. Wait for that much.
            lattice_gaps = pub_gaps if len(pub_gaps) >= 4 else gaps
            off = max((abs(g - round(g / cadence) * cadence) for g in lattice_gaps[-o.stall_window:] if g > 0),
                      default=0.0)
            if off > JITTER:
                late = max(late or JITTER, off)
    # Offsets from the slots, for a lateness of its own beyond the bounded wander (late_beyond).
    offsets = deviations if edge is not None else ()
    if cadence is not None and seen.remembered_edge > max(edge or 0.0, JITTER):
        # Lateness seen days ago, beyond the window, is still the publisher's: it is rare, not gone.
        late = (late if late is not None else JITTER) + seen.remembered_edge - max(edge or 0.0, JITTER)
    # In a count's tail the hours' history is of another regime (more remained then): the
    # rhythm is followed at the level the tail keeps now (seen.level, seen.pace).
    timed = rhythm is not None and seen.start is not None
    daily = rhythm if timed and rhythm.mature else None
    learning = rhythm if timed and not rhythm.mature else None
    # Until the rhythm has seen a whole day, the first evening's slow-down is unknown: ask for
    # ten times the certainty (the critical level) before warning. (A cadenced source's stall
    # instead walks the hours seen so far, `learning`: its beliefs carry their uncertainty.)
    strict = CRITICAL_BUDGET if rhythm is not None and not rhythm.mature else 1.0
    if cadence is None:
        if _regular(gaps[-o.stall_window:], seen.poll_gap):
            return Renewal()
        walk = learning if learning is not None and not learning.cadence and learning.slowest_hour(1.0) else None
        return Poisson(daily if daily is not None and not daily.cadence else None, strict, seen.pace, walk)
    if seen.clock.steady:
        return Cadence(cadence, late=late, deviation=deviation, offsets=offsets)   # a cadenced publisher keeps its cadence day and night
    # The rhythm counts in publications of its own cadence: only that cadence can use it.
    if daily is not None and abs(daily.cadence - cadence) > 0.1 * cadence:
        daily = None
    if learning is not None and abs(learning.cadence - cadence) > 0.1 * cadence:
        learning = None
    return Cadence(cadence, daily or learning, strict, late, seen.pace, deviation, offsets)


def _wandering(seen: Seen) -> tuple[float | None, float | None, float | None, float | None, tuple[float, ...]]:
    """A wandering lattice's period, how late after the slot of the event the clock runs
    from (seen.start) the next publications may come, its late edge, the newest
    publication's offset from its slot and every fitted publication's offset; or Nones and ()."""
    if seen.pub_gaps:
        lattice = wandering_lattice(seen.pub_gaps)
        behind = (seen.start - seen.anchor) if seen.start is not None and seen.anchor is not None else 0.0
    else:                              # no timestamps: our clock's advances, the clock's own start
        lattice = wandering_lattice(seen.gaps, jitter=1.5 * (seen.poll_gap or 0.0))
        behind = 0.0
    if lattice is None:
        return None, None, None, None, ()
    edge = lattice.late_edge()
    late = edge - lattice.deviation_at(behind)
    return (lattice.period, min(max(late, JITTER), edge - min(lattice.deviations)), edge, lattice.deviations[-1],
            lattice.deviations)


def _regular(gaps: Sequence[float], poll: float | None) -> bool:
    """Gaps far more regular than a Poisson stream's: a coefficient of variation below
    RENEWAL_CV times a Poisson stream's as polled every `poll` seconds (geometric gaps in polls,
    CV sqrt(1 - poll / mean): a busy feed polled every minute looks regular by its quantization
    alone). Too few polls per gap to tell is not regular."""
    values = [g for g in gaps if g > 0]
    if len(values) < 2:
        return False
    mean = sum(values) / len(values)
    poll = poll or 0.0
    if mean < 2 * poll:
        return False
    var = sum((g - mean) ** 2 for g in values) / (len(values) - 1)
    return math.sqrt(var) / mean < RENEWAL_CV * math.sqrt(1.0 - poll / mean)


def learn(seen: Seen, options: DetectionOptions) -> Thresholds:
    """Thresholds for the time since the last event of `seen.clock`, from the model its gaps
    support (raised to the renewal of its recent gaps when long gaps are its habit)."""
    model = model_of(seen, options)
    thresholds = model.thresholds(seen, options)
    if seen.habitual and not isinstance(model, (Prior, Renewal)):
        return habit_floor(thresholds, seen, options)
    if seen.held_back and not isinstance(model, Prior):
        return held_back_floor(thresholds, seen, options)
    return thresholds


def held_back_floor(model: Thresholds, seen: Seen, o: DetectionOptions) -> Thresholds:
    """A publisher whose last advance ended a held-back gap (a long gap that ended in a backlog:
    about what the gap's hours would have brought, nothing lost) has just done one of two
    things that one such gap cannot tell apart: caught up a freeze, after which it resumes its
    cadence, or held its data back as a publisher settling into daily batches does, after which
    the hour of its last batch comes round within a day (batch_waits, with the batches seen).
    A silence after it is news only when neither explains it, and the second is no rare
    chance: a publisher settles into batches about once in its count, no rarer than a freeze,
    so after a held-back gap its weight is far above the chance a gap may have of ending in a
    false alarm (mean gap / budget: 1 in 720 for an hourly publisher), and a silence the model
    calls improbable is not improbable for the publisher. Warning and critical therefore wait
    until the silence is improbable under the batches too, floors over the model's own. The
    price: a freeze that begins right at a catch-up (back for one publication, then stopped
    again) is told when the batch would have been due, up to a day later. Once an advance comes
    after a short gap (publishing as usual after a catch-up), the model's thresholds are back.
    Bounded like a habit (2 x `critical_ceiling`); what counts as a long gap, and the gaps
    learned, are still judged by the model's own thresholds (base_warning, base_critical). A
    batcher publishes when its batch comes: a publication that ends a long gap of the source's
    own clock and brings nothing is that batch come empty (the pipeline stuck), which the
    batches no longer explain, so the model's thresholds are back (a publisher whose timestamp
    beats on its cadence while its data comes in batches ends no long gap: still waited for)."""
    if seen.empty_batch:
        return model
    waits = batch_waits(seen.batches, seen.start, seen.offset, o.false_alarm_budget, seen.poll_gap)
    if waits is None:
        return model
    shift = _lag_shift(seen)
    bound = HABIT_BOUND * o.critical_ceiling
    warning = max(min(waits[0] + shift, bound), model.warning)
    critical = max(min(waits[1] + shift, bound), model.critical, warning)
    if warning <= model.warning and critical <= model.critical:
        return model
    reason = (f"{model.reason}; but it held its data back until its last advance, as a freeze caught up or a "
              f"publisher settling into daily batches does: a batch may next be due {duration(waits[2])} after it, "
              f"so no {seen.clock.noun} for {duration(warning)}")
    return replace(model, warning=warning, critical=critical, reason=reason, base_warning=model.warning,
                   base_critical=model.critical)


def _cadenced(seen: Seen, cadence: float, o: DetectionOptions, daily: Rhythm | None, strict: float,
              late: float | None = None, pace: float = 1.0, offsets: Sequence[float] = ()) -> Thresholds:
    gaps, start, offset = seen.gaps, seen.start, seen.offset
    steps = [max(1, round(g / cadence)) for g in gaps]
    short = steps[-SHORT_WINDOW:]
    prior = seen.window_prior(sum(steps))
    skip_long = max((sum(steps) - len(steps) + prior) / (sum(steps) + prior), seen.remembered_skips)
    skip_short = (sum(short) - len(short)) / sum(short)
    skip = min(max(skip_long, skip_short), 0.999)
    if pace < 1.0:
        # In a tail, a publication brings no stations more often: e**-(lambda*pace), not e**-lambda.
        skip = min(skip ** pace, 0.999)
    mean_gap = cadence * sum(steps) / len(steps)
    budget = mean_gap / o.false_alarm_budget / strict
    missed_w = max(1, math.ceil(math.log(budget) / math.log(skip) - 1e-9))
    missed_c = max(missed_w + 1, math.ceil(math.log(budget / CRITICAL_BUDGET) / math.log(skip) - 1e-9))
    # The surprise (-log chance) of the first missed_w - 1 slots all empty, and of all missed_w.
    surprise = ((missed_w - 1) * -math.log(skip), missed_w * -math.log(skip), -math.log(budget))
    rhythmic = ""
    if daily is not None:
        level = seen.level if seen.level is not None else _level(daily, 1.0 - skip_long, gaps, start, offset) * pace
        if daily.mature:
            per_publication = sum(daily.stations) / max(sum(daily.exposure), 1e-9)
            beliefs = daily.beliefs(per_publication)
            budget = daily.mean_gap() / o.false_alarm_budget
        else:
            # Still learning its day: the hours not seen yet are believed as slow as the slowest
            # one seen, as if seen once. The beliefs carry their own uncertainty (an hour seen
            # once promises little), so no extra certainty is asked for.
            hours = [(st, e) for st, e in zip(daily.stations, daily.exposure) if e >= 0.5]
            per_publication = sum(st for st, _ in hours) / max(sum(e for _, e in hours), 1e-9)
            beliefs = daily.beliefs(per_publication, unseen=daily.slowest())
            budget = mean_gap / o.false_alarm_budget
        # A publisher that skips slots of its own (no new timestamp at all) comes empty at least
        # that often, whatever the stations explain; the hours' own evidence may say more.
        pub_slots = sum(max(1, round(g / cadence)) for g in seen.pub_gaps if g > 0)
        skipped = max(publisher_skips(seen.pub_gaps, cadence, seen.window_prior(pub_slots)), seen.remembered_skips)
        explaining = beliefs
        if seen.level is not None:
            # A tail's rhythm counts stations per unit still to come, more than came: its empty
            # publications came with the stations of their day, which explain them. Those are
            # judged at the level of the recent advances (what remains now over the recent
            # pace's share of it, `pace`; never above the counting level): at the hours' weighted
            # stations a night's empty publications passed for hiccups, ~1% of every hour's
            # publications, and a count that brings 8 units an hour was only paged at its
            # second missed publication.
            then = min(seen.level / max(pace, 1e-9), 1.0)
            explaining = [(shape, mean * then) for shape, mean in beliefs]
        own = daily.empty_chances(explaining, PRIOR_SKIPS)
        empty = [max(e, skipped) for e in own]
        # The publications of the silence that did come (its timestamp moved on since the last
        # advance) brought nothing although they came: the chance that a slot is skipped, which
        # `skipped` adds for a slot that may not come at all, explains none of them.
        came = (max(0, round((seen.anchor - start) / cadence))
                if seen.anchor is not None and start is not None and seen.anchor > start else 0)
        if seen.level is not None:
            # A tail's rhythm counts stations per unit still to come (phase.py): its evidence is
            # counted in today's stations, fewer, so each hour promises no more than they do.
            beliefs = [(shape * seen.level, mean) for shape, mean in beliefs]
        else:
            # Each hour at its credible bound, as a Poisson-like hour is (credible): the
            # predictive spends the budget exactly on average over the stations an hour may
            # bring, so a family of series spends it mostly on the hours believed too busy. A
            # busy hour (shape in the hundreds of stations) barely moves; a small region's
            # night, known from a handful of stations (shape ~3), is taken a third lower.
            # (Not in a count's tail, whose beliefs are bounds already.)
            beliefs = credible(beliefs)
        # While its day is being learned, an hour has seen too few publications to tell how often
        # one comes empty, and batches that vary beyond the Poisson noise of their units (a
        # publisher's batch is the sum of what some offices sent) make empty ones far likelier
        # than e**-m: E[e**-(m*G)] over the batch multiplier G. The spread of the recent batches
        # stands in for the evidence the hours lack; once the day is known, its hours' own
        # empty publications say how often (empty_chances).
        spread = 0.0 if daily.mature else batch_spread(seen.steps, seen.step_gaps, cadence)
        batchy = [batch_empty(mean * level, spread) for _, mean in beliefs] if spread > 0 else None
        missed_w = max(1, publications_believed(beliefs, empty, start, cadence, -math.log(budget), offset, level,
                                                batchy, came, own))
        surprise = (*believed_surprise(missed_w), -math.log(budget))
        missed_c = max(missed_w + 1, publications_believed(beliefs, empty, start, cadence,
                                                           -math.log(budget / CRITICAL_BUDGET), offset, level, batchy,
                                                           came, own))
        rhythmic = ", following its daily rhythm" if daily.mature else ", following the hours seen so far"
        if batchy is not None and missed_w > max(1, publications_unbatched(beliefs, empty, start, cadence,
                                                                           -math.log(budget), offset, level, batchy,
                                                                           came, own)):
            rhythmic += f" and the spread of its batches (about ×{math.exp(spread):.1f} either way)"
        skip = 0.0
    # Publication j after the one the clock runs from is visible by P0 + j*c + lag; the clock
    # started lag0 after P0 (_lag_shift). JITTER absorbs the source's own (Sirekap:
    # HH:00:14..HH:00:20); a wandering publisher's is learned (`late`).
    offset = _lag_shift(seen) + (JITTER if late is None else late)
    if late is not None and offsets and surprise[1] is not None:
        # A publisher late now and then by an amount of its own: the last of the slots counted
        # may come later than the bounded wander allows, with the chance the slots before it
        # leave: e**-before * (empty + late) <= e**-target (late_beyond).
        before, after, target = surprise
        chance = max(math.exp(before - target) - math.exp(before - after), math.exp(-target))
        offset += late_beyond(offsets, chance)
    warning = missed_w * cadence + offset
    critical = missed_c * cadence + offset
    noun = "missed publication" if missed_w == 1 else "missed publications"
    skipped = "" if skip < 0.005 else f", {100 * skip:.0f}% {seen.clock.skipped}"
    wander = "" if late is None else f" (publications wander: up to {duration(late)} after their slot)"
    reason = f"{_every(cadence)} cadence{wander}{skipped}{rhythmic}{_tail(pace)}: {missed_w} {noun}" + (LEARNING if strict > 1 and not daily else "")
    if daily is not None and seen.level is None and not (seen.habitual or seen.held_back):
        # The ceilings ("never warn later than this, however slow the source") give way to the
        # walk of the source's own hours, as they do to a habit and to a count's tail (bounded
        # the same, 2 x critical_ceiling): a small region whose night brings a unit or two is
        # known by its stations to go 19 hours without one, and a 12-hour ceiling paged it every
        # night; a night past the ceiling was an incident, never learned, so its day was never
        # known. (A publisher that holds its data back is the habit floors' to judge.)
        bound = HABIT_BOUND * o.critical_ceiling
        o = replace(o, stall_ceiling=max(o.stall_ceiling, min(warning, bound)),
                    critical_ceiling=max(o.critical_ceiling, min(critical, bound)))
    return _finish(warning, critical, reason, "cadence", o, cadence, missed_w, missed_c)


def batch_spread(steps: Sequence[float], step_gaps: Sequence[float], cadence: float) -> float:
    """The spread (standard deviation of the logarithm) of the low side of a cadenced
    publisher's batches, beyond the Poisson noise of their units, from its recent increments
    (each per publication of its gap). Each is set against the median of the four around it
    (the day's rhythm barely moves in five publications; an outsized batch does not move a
    median), and the spread is read from the lower quartile of those log ratios: only small
    batches make empty publications, and a batch law bounded below (Pareto) has a heavy upper
    tail but a narrow lower one. The reference's own noise and the Poisson noise of the units
    (about 1/x in logs) are taken out. 0 with too few increments to tell."""
    n = min(len(steps), len(step_gaps))
    per = [x / max(1, round(g / cadence)) for x, g in zip(steps[-n:], step_gaps[-n:]) if x > 0 and g > 0] if n else []
    if len(per) < BATCH_MIN:
        return 0.0
    logs = [math.log(y) for y in per]
    ratios = sorted(logs[i] - median(logs[max(0, i - 2):i] + logs[i + 1:i + 3]) for i in range(len(logs)))
    low = -ratios[len(ratios) // 4] / 0.6745
    # The reference is itself noisy: the median of four draws has 0.30 of one draw's variance.
    noise = median(1.0 / y for y in per)
    return math.sqrt(max(low * low / (1.0 + MEDIAN4_VARIANCE) - noise, 0.0)) if low > 0 else 0.0


_NODES = [(-7.0 + 0.25 * i) for i in range(57)]
_WEIGHTS = [math.exp(-z * z / 2) for z in _NODES]
_WEIGHTS = [w / sum(_WEIGHTS) for w in _WEIGHTS]


def batch_empty(mean: float, spread: float) -> float:
    """The chance that a publication expected to bring `mean` units brings none when its batch
    is Poisson with a lognormal multiplier G of mean 1 and log spread `spread`: E[e**-(mean*G)].
    Computed on three significant digits of the mean and a hundredth of the spread (a tree's
    many series share them; 57 exponentials each otherwise)."""
    if mean <= 0:
        return 1.0
    return _batch_empty(float(f"{mean:.3g}"), round(spread, 2))


@lru_cache(maxsize=4096)
def _batch_empty(mean: float, spread: float) -> float:
    shift = -spread * spread / 2
    return sum(w * math.exp(-mean * math.exp(spread * z + shift)) for z, w in zip(_NODES, _WEIGHTS))


def _poissonian(seen: Seen, o: DetectionOptions, daily: Rhythm | None, strict: float, pace: float = 1.0,
                learning: Rhythm | None = None) -> Thresholds:
    if seen.outpaced and daily is not None:
        # Publications that outpace the advances (a tail whose updates keep coming) follow their
        # own day once it is known and the rhythm has counted them: a Poisson-like walk like any
        # other. (While the day is being learned, a first evening's publications would be walked
        # as the first evening's advances are, and those pay for it: they keep their level
        # against the advances' hours seen so far, less a standard deviation.)
        own = daily.published()
        if own is not None:
            seen, daily = replace(seen, outpaced=False), own
    gaps, start, offset, what = seen.gaps, seen.start, seen.offset, seen.clock.noun
    poll_gap = seen.poll_gap
    mean_long = robust_mean(gaps[-o.stall_window:])
    if daily is None and learning is not None:
        # Still learning its day: walk the hours seen so far, the hours not seen yet believed
        # as slow as the slowest seen (the first evening is not assumed as busy as the day). The
        # beliefs carry their own uncertainty: no extra certainty is asked for.
        beliefs = learning.beliefs(1.0 / mean_long, poll_gap, learning=True)
        level = pace
        # Each hour at its credible bound (credible); not in a count's tail, whose beliefs are
        # bounds already (the lesser of two paces, evidence counted in today's stations), nor for
        # publications that outpace advances (their level is their count less a deviation).
        if not seen.outpaced and seen.level is None:
            beliefs = credible(beliefs)
        elif seen.outpaced:
            level = _outpaced(learning, 1.0 / mean_long, gaps[-o.stall_window:], start, offset, poll_gap) * pace
        elif seen.level is not None:
            # In a count's tail the hours seen were learned while more remained, and the recent
            # gaps' pace is against what remained while those gaps came, not while the hours
            # were learned: an hour promises no more than its units per unit still to come bring
            # at what remains now (as for a known day), nor than its advances at the recent pace
            # (the last units of a real count straggle in slower than its early tail's hazard).
            tail = _tail_beliefs(learning, beliefs, seen.level, learning=True)
            beliefs = [(shape, mean * pace) if mean * pace <= now else (tail_shape, now)
                       for (shape, mean), (tail_shape, now) in zip(beliefs, tail)]
            level = 1.0
        return _walked(seen, o, beliefs, level, mean_long / pace, "the hours seen so far", pace)
    if daily is not None:
        raw = daily.beliefs(1.0 / mean_long, poll_gap)
        if seen.level is not None:
            level, beliefs, usual = 1.0, _tail_beliefs(daily, raw, seen.level), daily.mean_gap()
            usual *= sum(m for _, m in raw) / max(sum(m for _, m in beliefs), 1e-12)
        elif seen.outpaced:
            level = _outpaced(daily, 1.0 / mean_long, gaps[-o.stall_window:], start, offset, poll_gap) * pace
            beliefs, usual = raw, mean_long / pace
        else:
            level = _level(daily, 1.0 / mean_long, gaps, start, offset, o.stall_window) * pace
            beliefs, usual = credible(raw), daily.mean_gap()
        return _walked(seen, o, beliefs, level, usual, "their daily rhythm", pace)
    short = gaps[-SHORT_WINDOW:]
    mean_short = robust_mean(short) if len(short) >= SHORT_WINDOW // 2 else 0.0
    mean_gap = max(mean_long, mean_short, 1.0) / pace
    if poll_gap:
        mean_gap = 1.0 / unmerged(1.0 / mean_gap, poll_gap)
    warning = mean_gap * math.log1p(strict * o.false_alarm_budget / mean_gap)
    critical = mean_gap * math.log1p(strict * CRITICAL_BUDGET * o.false_alarm_budget / mean_gap)
    rate = 3600.0 / mean_gap
    usual = f"{rate:.1f} {what}s/h" if rate >= 1 else f"one {what} per {duration(mean_gap)}"
    reason = (f"irregular updates, about {usual}{_tail(pace)}: a gap of {duration(warning)} happens by chance "
              f"once in {duration(strict * o.false_alarm_budget)}" + (LEARNING if strict > 1 else ""))
    return _finish(warning, max(critical, 1.25 * warning), reason, "poisson", o)


def credible(beliefs: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Each hour's gamma belief (shape, mean rate) with its mean lowered to the belief's lower
    bound CREDIBLE standard deviations below it (the Wilson-Hilferty quantile of a gamma of that
    shape; 0 when the shape is too small to bound). The belief's predictive chance of a silence
    is what a series sees on average over the rates it may have: exactly the budget on average,
    so a family of series spends it over or under by chance, and mostly on the hours whose rate
    was believed too fast. At the bound, the rate is overestimated with a chance of about 30%
    instead of half, and the margin is where the evidence is thin: at the busiest hours of a
    feed seen for days (shape ~60) the rate is taken ~7% lower, at a steep morning ramp seen a
    few times (shape ~13) ~15% lower."""
    out = []
    for shape, mean in beliefs:
        root = 1.0 - 1.0 / (9.0 * shape) - CREDIBLE / (3.0 * math.sqrt(shape))
        out.append((shape, mean * max(root, 0.0) ** 3))
    return out


def _walked(seen: Seen, o: DetectionOptions, beliefs: list[tuple[float, float]], level: float, usual: float,
            following: str, pace: float) -> Thresholds:
    """A Poisson-like source walked through the hours ahead of its last event (`beliefs` at
    `level`; `usual`: its mean gap, which sets the chance allowed per gap), the day it follows
    named in the reason: "their daily rhythm" once known, "the hours seen so far" before."""
    start, offset, what, lag0 = seen.start, seen.offset, seen.clock.noun, seen.lag0
    already = lag0 if lag0 is not None and lag0 >= 0 else 0.0
    weights = quarter_weights(beliefs)
    warning = time_to_believed(beliefs, start, math.log1p(o.false_alarm_budget / usual), offset, level,
                               weights) - already
    critical = time_to_believed(beliefs, start, math.log1p(CRITICAL_BUDGET * o.false_alarm_budget / usual),
                                offset, level, weights) - already
    rate_now = level * beliefs[hour_of(start, offset)[0]][1] * 3600
    reason = (f"irregular updates following {following}, about {rate_now:.1f} {what}s/h at this hour{_tail(pace)}: "
              f"no {what} for {duration(warning)} happens by chance once in {duration(o.false_alarm_budget)}")
    return _finish(warning, max(critical, 1.25 * warning), reason, "poisson", o)


def _tail_beliefs(daily: Rhythm, beliefs: list[tuple[float, float]], level: float,
                  learning: bool = False) -> list[tuple[float, float]]:
    """A Poisson-like source in a count's tail: per hour, the advances expected now. The rhythm
    knows the hour's advances a (updates that brought units; `beliefs`) and its units u per unit
    still to come (phase.py); units now come at u * level. Updates come at least as often as a,
    so with the units spread over them an advance comes at a * (1 - e**-(u * level / a)) or
    more: a when units are plenty (each update brings some), u * level when they are few (each
    brings one). The belief's evidence shrinks in the same proportion: never surer than today's
    advances. While the day is being learned (`learning`), an hour not watched long enough to be
    seen (believed as slow as the slowest hour seen) brings the units per update of those seen."""
    watched = [(units, seen * a) for (_, a), units, seen in zip(beliefs, daily.stations, daily.exposure)
               if seen >= SEEN_SECONDS and a > 0]
    per_update = sum(u for u, _ in watched) / sum(w for _, w in watched) if watched else 0.0
    out = []
    for (shape, a), units, seen in zip(beliefs, daily.stations, daily.exposure):
        if learning and seen < SEEN_SECONDS and a > 0 and per_update > 0:
            now = a * -math.expm1(-per_update * level)
        elif a <= 0 or seen <= 0:
            out.append((shape, a * level))
            continue
        else:
            now = a * -math.expm1(-(units / seen) * level / a)
        out.append((max(shape * now / a, 1e-9), now))
    return out


def _level(daily: Rhythm, prior_rate: float, gaps: Sequence[float], start: float, offset: float,
           window: int = SHORT_WINDOW) -> float:
    """The factor on the rhythm's hourly rates when the recent advances (the last `window`
    gaps) came slower than it expected (a count winding down from one day to the next); never
    above 1. A Poisson-like source reads it over the long window: its 8 last gaps are 8 random
    events (a third either way), and a level capped at 1 turns their noise into thresholds that
    are only ever longer (0.58 of an evening's rhythm by chance: a 66-minute stall the oracle
    calls after 30 was missed); 48 gaps still follow a count that slows from day to day."""
    seen = daily.rates(prior_rate)              # advances as polled (several updates may make one)
    recent = gaps[-window:]
    per_second = [r / daily.cadence for r in seen] if daily.cadence else seen
    due = expected(per_second, start - sum(recent), start, offset)
    return min(1.0, len(recent) / due) if due > 0 else 1.0


def _outpaced(daily: Rhythm, prior_rate: float, gaps: Sequence[float], start: float, offset: float,
              poll: float | None) -> float:
    """The factor on the advances' hourly rates that gives a source's publications when they
    outnumber its advances (a count's tail whose updates keep coming as units thin out): the
    recent publications (the long window: their pace does not thin) over what the rhythm expected
    for them, less one standard deviation of their count, so that chance cannot promise more."""
    span, n = sum(gaps), len(gaps)
    due = expected(daily.rates(prior_rate, poll), start - span, start, offset)
    return span * unmerged(max(n - math.sqrt(n), 1.0) / span, poll) / due if due > 0 and span > 0 else 1.0


def robust_mean(gaps: Sequence[float]) -> float:
    """The mean (the exponential's maximum-likelihood scale) with each gap winsorized at five
    times the median, so that a freeze or two among them cannot drag it."""
    cap = WINSOR * median(gaps)
    return sum(min(g, cap) for g in gaps) / len(gaps)


def _finish(warning: float, critical: float, reason: str, model: str, o: DetectionOptions,
            cadence: float | None = None, missed_w: int | None = None, missed_c: int | None = None) -> Thresholds:
    clamped_w = _clamp(warning, o.stall_floor, o.stall_ceiling)
    if clamped_w != warning:
        reason += f" (held to the {'floor' if clamped_w > warning else 'ceiling'} of {duration(clamped_w)})"
    clamped_c = _clamp(critical, clamped_w, o.critical_ceiling)
    return Thresholds(clamped_w, clamped_c, reason, model, cadence, missed_w, missed_c)


def _tail(pace: float) -> str:
    return "" if pace >= 1.0 else f", in its tail at {100 * pace:.0f}% of the recent pace (in proportion to what remains)"


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def _every(seconds: float) -> str:
    if abs(seconds - 3600) < 60:
        return "hourly"
    if abs(seconds - 86400) < 600:
        return "daily"
    return f"{duration(seconds)}"
