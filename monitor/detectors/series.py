"""A series' state (SeriesState) and its ledger: what each poll teaches it.

One series is one (source, region). Its state keeps what the rules need and no more, because
a national tree has ~90k series and all of them are saved after every pass: the content now
in force (`Reading`), recent gaps between advances and between publications, recent
publication lags and increments, failure counters, the daily rhythm, child-region trackers and
the open alerts. `observe(poll, ...)` is the ledger: EWMAs of our polling interval and latency,
winsorized increments, the gaps learned from (and the incidents that are not), the per-hour
beliefs; it returns the poll's `Facts` for the rules. The rules themselves run in the Judge.
`to_json()` is compact (a leaf series stays well under 1 KB) and `from_json()` restores it.
"""
from __future__ import annotations

import zlib
from dataclasses import replace
from datetime import datetime, timedelta, timezone, tzinfo
from statistics import median
from types import MappingProxyType
from typing import Any, Mapping, Sequence

from ..model import Event, Poll, Snapshot, is_station, progress_ratio
from .diurnal import HALF_LIFE, MATURE_BIN, UNRECORDED, Rhythm, hour_of
from .history import ChildTrack, Facts, LearningTrack, Reading, _compact, _epoch, _from_epoch, _same
from .options import DetectionOptions
from .region_stall import sibling_flow
from .thresholds import BATCH_HOUR, WINSOR, Thresholds

LAG_KEEP = 24                      # a day of hourly publications: night polls lag more
STEP_KEEP = 24
LATENCY_KEEP = 8
SPACING_WEIGHT = 0.3               # EWMA weight of a child's newest spacing (region_stall)
POLL_GAP_WEIGHT = 0.2
LATENCY_WEIGHT = 0.02
BLIND_ADVANCE, BLIND_PUBLICATION = 1, 2  # state.blind: polls failed since the last advance / publication
BACKLOG_WINDOW = 3                 # advances before a gap that set the pace it is judged by
HABIT = 2                          # incidents among the last 8 that make them the habit
HABIT_CAP = 2                      # a habitual gap is learned up to this many critical ceilings (a daily batch: > 24 h)


def habitual(habits: int, clock: int) -> bool:
    """Long gaps recur on this clock (0: advances, 8: publications): HABIT of the last 8."""
    return bin((habits >> clock) & 0xFF).count("1") >= HABIT


def batch_epochs(state: "SeriesState") -> tuple[float, ...]:
    """When the batches among the last 8 advances came (epochs, oldest first; on the source's
    clock when it dates its data, like the gaps): advances that ended a held-back gap (a habit
    bit), or any gap of more than two hours (BATCH_HOUR) -- once a habit is learned the model
    no longer calls its shorter batched gaps long. Read back from the last advance through the
    gaps each advance ended (step_gaps), so nothing more is kept."""
    end = state.last_advance_published_at or state.last_advance_at
    if end is None or not state.habits & 0xFF:
        return ()
    moment, out, gaps = end.timestamp(), [], state.step_gaps
    for i in range(min(8, len(gaps))):
        if (state.habits >> i) & 1 or gaps[-1 - i] > 2 * BATCH_HOUR:
            out.append(round(moment, 3))
        moment -= gaps[-1 - i]
    return tuple(reversed(out))


def held_back(habits: int, clock: int) -> bool:
    """The last gap on this clock was long: the publisher held its data back until its last
    advance (it may be settling into batches), which defers escalation to critical
    (thresholds.held_back_floor)."""
    return bool((habits >> clock) & 1)


NONE: Mapping = MappingProxyType({})   # the empty mapping every series shares (read-only)
LAG_EVIDENCE = 0.01                # a child is judged behind once its parent's pace would have brought it 1 point


def child_units(child) -> float | None:
    """A child row's count in its own units: stations reported, or hundredths of a point when
    the row gives only its percentage (what a change of it can be seen in)."""
    if child.stations_reported is not None:
        return float(child.stations_reported)
    return None if child.percent is None else float(round(child.percent * 100))


class SeriesState:
    """Mutable, owned by the Judge (the only stateful shell); rules only read it."""

    # Slots: past 30 attributes CPython stops sharing instance-dict keys, and each of a
    # national tree's 91,561 states carried its own ~1.3 KB dict (~150 B per TPS).
    __slots__ = ("source", "region", "first_at", "last_at", "current", "high_water", "paced", "last_advance_at",
                 "last_advance_published_at", "advance_gaps", "steps", "step_gaps", "pub_gaps", "pub_seen_at", "lags",
                 "rhythm", "poll_gap", "learned_poll_gap", "ok_streak", "window_len", "answering_since", "latencies",
                 "latency_base", "children", "version", "stall_cached", "stall_cached_version", "stale_cached",
                 "stale_cached_version", "stale_cached_published", "stall_warning", "stall_critical", "stall_in_force",
                 "slot_memory", "__dict__")

    # What a series keeps only once it diverges (a failed poll, an open alert, a gap taken for an
    # incident): read from these shared defaults until then, and set in the series' own
    # __dict__, made at the first such assignment (so the ledger assigns them only when they
    # change). A slot each was 8 B of every series (9 of them: 72 B, ~5% of a desa's state);
    # a series that diverges pays a dict (~250 B) instead, and few do (failures, alerts and
    # incidents are rare by design).
    blind = 0                       # bits: polls failed since the last advance / publication
    fail_streak = 0
    flaps = 0                       # ok-then-fail turns inside an outage (hysteresis)
    window_bits = 0                 # recent polls, 1 = failed, newest in bit 0
    failing_since: datetime | None = None
    error_classes: Mapping[str, int] = NONE
    last_error: str | None = None
    open_alerts: Mapping[str, Event] = NONE    # a dict once an alert opened (Judge._apply)
    # bits: the last 8 advances that were incidents, and (<< 8) publication gaps that were long
    habits = 0
    RARE = ("blind", "fail_streak", "flaps", "window_bits", "failing_since", "error_classes", "last_error",
            "open_alerts", "habits")

    def __init__(self, source: str, region: str):
        self.source = source
        self.region = region
        self.first_at: datetime | None = None
        self.last_at: datetime | None = None
        self.current: Reading | None = None
        self.high_water: float | None = None          # most progress ever seen (a flapping cache is no advance)
        # Progress counted at most WINSOR usual steps per advance: region_stall's yardstick, so
        # that one child's catch-up does not make its quiet siblings look overdue.
        self.paced: float | None = None
        self.last_advance_at: datetime | None = None
        self.last_advance_published_at: datetime | None = None
        # Empty sequences and mappings are shared (`()`, NONE) until something is kept: 91,561
        # series each with seven empty lists and dicts were ~400 B a series. The rings are
        # tuples, a new one at each push (_push), shared by siblings that push alike.
        self.advance_gaps: tuple[float, ...] = ()
        self.steps: tuple[float, ...] = ()            # recent increments of progress per advance
        # ...and the gap each one ended (seconds since the advance before it, on the source's
        # clock when it dates its data), incidents included: when each came, for `jump`. Saved
        # only where it is not the tail of advance_gaps (an incident's or a capped gap is not).
        self.step_gaps: tuple[float, ...] = ()
        self.pub_gaps: tuple[float, ...] = ()
        self.pub_seen_at: datetime | None = None      # our clock when the current published_at appeared
        self.lags: tuple[float, ...] = ()             # publication -> our poll that saw it
        self.rhythm = UNRECORDED                      # advances and watched time per local hour (a Rhythm once recorded)
        self.poll_gap: float | None = None            # EWMA of our polling interval
        self.learned_poll_gap: float | None = None    # ...as it was when the gaps last changed
        self.ok_streak = 0
        self.window_len = 0
        self.answering_since: datetime | None = None   # first good poll after the last failure
        self.latencies: tuple[float, ...] = ()
        self.latency_base: float | None = None
        self.children: Mapping[str, ChildTrack] = NONE   # a dict once a child is tracked
        self.version = 0                              # bumped when gaps change: thresholds are cached on it
        # Whether stall thresholds are in force after the last poll, set by the Judge (False: no
        # count, or a complete one): `stall_thresholds` is what the exporter shows.
        self.stall_in_force = False
        # The Judge's thresholds, cached until the gaps change (derived, not saved), with the
        # version (and publication) they were learned at: slots, not a dict or tuples. The stall's
        # as the thresholds shared by every series that learned alike but for their warning and
        # critical, and those two (`cached_stall`): the prior counts from each series' own first
        # data (lag0), so on a tree's first pass every series had a Thresholds of its own (112 B).
        self.stall_cached: Thresholds | None = None
        self.stall_warning: float | None = None
        self.stall_critical: float | None = None
        self.stall_cached_version = -1
        self.stale_cached: Thresholds | None = None
        self.stale_cached_version = -1
        self.stale_cached_published: datetime | None = None
        # A cadenced publisher's rarer habits, forgotten with the rhythm's half-life (4 days) rather
        # than with the window of gaps: [slots, skipped slots, the two latest after their slot (s)].
        self.slot_memory: list[float] | None = None

    def observe(self, poll: Poll, o: DetectionOptions, zone: tzinfo, stall_before: Thresholds,
                stale_before: Thresholds | None) -> Facts:
        """Append one poll: what our polling interval, the failures, the latency baseline, the
        gaps between advances and publications, the daily rhythm and the children's trackers
        learn from it. `stall_before` / `stale_before` are the thresholds in force before it
        (a gap that reached them is an incident, not a habit). Returns what the poll brought."""
        state = self
        at = poll.at
        previous_poll_at = state.last_at
        if state.first_at is None:
            state.first_at = at
        if previous_poll_at is not None:
            gap = (at - previous_poll_at).total_seconds()
            if gap > 0:
                # A gap in a recording or a long outage says nothing about our interval.
                gap = min(gap, 4 * state.poll_gap) if state.poll_gap else gap
                state.poll_gap = _same(round(gap if state.poll_gap is None else
                                             (1 - POLL_GAP_WEIGHT) * state.poll_gap + POLL_GAP_WEIGHT * gap, 3))
        state.last_at = at
        state._count_result(poll, o)
        facts = Facts(previous=state.current, current=state.current)
        if not poll.ok:
            return facts
        if poll.latency_seconds is not None:
            state.latencies = _push(state.latencies, poll.latency_seconds, LATENCY_KEEP, shared=True)
            base = state.latency_base
            # Winsorized: a slow spell moves the baseline by at most 2% of it per poll, so the
            # degradation is seen before it becomes "normal" (and a lasting new normal still is).
            state.latency_base = round(poll.latency_seconds if base is None else (
                (1 - LATENCY_WEIGHT) * base + LATENCY_WEIGHT * min(poll.latency_seconds, 2 * base)), 6)
        snapshot = poll.snapshot
        previous = state.current
        if snapshot is None or (previous is not None and previous.same_content(snapshot)):
            return facts                                  # not_modified, or the same document again
        current = Reading.of(snapshot)
        state.current = current
        facts.current, facts.changed = current, True
        paced_before = state.paced
        state._note_progress(current, at, o, stall_before, facts, zone,
                             previous.published_at if previous is not None else None)
        state._note_publication(previous, current, at, previous_poll_at, o, stale_before, facts)
        if snapshot.children:
            state._track_children(snapshot, at, o, paced_before)
        return facts

    def _count_result(self, poll: Poll, o: DetectionOptions) -> None:
        state = self
        failed = not poll.ok
        window = ((state.window_bits << 1) | int(failed)) & ((1 << o.outage_window) - 1)
        if window != state.window_bits:
            state.window_bits = window                # (rare: set only when it changes, SeriesState.RARE)
        state.window_len = min(state.window_len + 1, o.outage_window)
        if failed:
            state.blind = BLIND_ADVANCE | BLIND_PUBLICATION
            if state.failing_since is None:
                state.failing_since = poll.at
            if state.ok_streak and "outage" in state.open_alerts:
                state.flaps += 1
            state.fail_streak += 1
            state.ok_streak = 0
            state.error_classes = {**state.error_classes, poll.result: state.error_classes.get(poll.result, 0) + 1}
            state.last_error = poll.result + (f": {poll.detail}" if poll.detail else "")
            return
        if state.ok_streak == 0:
            state.answering_since = poll.at
        state.ok_streak += 1
        if state.fail_streak:
            state.fail_streak = 0
        if "outage" not in state.open_alerts and state.ok_streak >= o.outage_recovery and state.failing_since:
            reset_failures(state)

    def _note_publication(self, previous: Reading | None, current: Reading, at: datetime,
                          previous_poll_at: datetime | None, o: DetectionOptions, stale_before: Thresholds | None,
                          facts: Facts) -> None:
        state = self
        published = current.published_at
        if published is None:
            return
        if previous is None or previous.published_at is None:
            state.pub_seen_at = at                        # first sighting: not a new publication
            return
        if published <= previous.published_at:
            return                                        # unchanged, or older (regression's business)
        gap = (published - previous.published_at).total_seconds()
        if (previous.progress or 0) > 0 and current.progress is not None and current.progress <= 0:
            # Test data taken down: clearing the count is an operator's act at any minute, not a
            # publication of the source's clock. Neither the gap into it nor the gap out of it
            # (to the next publication) is one of its gaps: a clear 26 minutes before an hourly
            # slot taught a lattice that "wanders up to an hour" and 4% skipped slots, and the
            # count's first stall waited 3 missed publications.
            state.blind |= BLIND_PUBLICATION
            state.pub_seen_at = at
            _learned(state)
            facts.new_publication = True
            return
        long = recurs = False
        if stale_before is not None:
            # A freeze is an incident, not the habit... unless it recurs (HABIT of the last 8).
            long = gap > stale_before.own_warning
            habits = (state.habits & 0xFF) | ((((state.habits >> 8) << 1) | int(long)) & 0xFF) << 8
            if habits != state.habits:
                state.habits = habits
            recurs = long and habitual(state.habits, 8)
            gap = min(gap, HABIT_CAP * o.critical_ceiling if recurs else stale_before.own_critical)
        if not facts.incident and not state.blind & BLIND_PUBLICATION:
            state.pub_gaps = _push(state.pub_gaps, gap, o.stall_window, shared=True)
            # A count at zero (not started, or test data cleared) teaches nothing of the habits
            # of its publisher while counting.
            counting = (previous.progress or 0) > 0 and (current.progress or 0) > 0
            if stale_before is not None and stale_before.cadence and counting and (recurs or not long):
                _remember_slots(state, gap, stale_before)
        if state.blind & BLIND_PUBLICATION:
            state.blind &= ~BLIND_PUBLICATION
        lag = (at - published).total_seconds()
        recent_poll = previous_poll_at is not None and state.poll_gap is not None and (
            (at - previous_poll_at).total_seconds() <= 2 * state.poll_gap)
        if lag >= 0 and recent_poll:
            # Only when we were polling all along does the delay measure the publisher + us.
            state.lags = _push(state.lags, lag, LAG_KEEP, shared=True)
        state.pub_seen_at = at
        _learned(state)
        facts.new_publication = True

    def _note_progress(self, current: Reading, at: datetime, o: DetectionOptions,
                       stall_before: Thresholds, facts: Facts, zone: tzinfo, before: datetime | None = None) -> None:
        """`before`: the previous document's publication time (the publications in a gap)."""
        state = self
        progress = current.progress
        if progress is None:
            return
        if state.high_water is None:
            state.high_water = state.paced = progress     # first sighting is no advance...
            state.last_advance_published_at = current.published_at   # ...but dates the data we start from
            _learned(state)                               # (the prior counts from that date)
            return
        if progress <= 0:
            if state.high_water > 0:
                # Cleared to zero (test data taken down): the count starts afresh from nothing.
                state.high_water = state.paced = 0
            return
        if state.high_water <= 0:
            # Counting begins: its first data is no advance, and the wait before it is no gap
            # of the count's (a feed at zero has not started, phase.py).
            state.high_water = state.paced = progress
            state.last_advance_at, state.last_advance_published_at = at, current.published_at
            if state.blind & BLIND_ADVANCE:
                state.blind &= ~BLIND_ADVANCE
            _learned(state)
            return
        if progress <= state.high_water:
            return
        advance = progress - state.high_water
        state.high_water = progress
        # Winsorized: one outsized batch (another region's backlog) must neither teach the
        # rhythm a pace nor make region_stall's children overdue.
        counted = min(advance, WINSOR * median(state.steps[-STEP_KEEP:])) if len(state.steps) >= 6 else advance
        state.paced = round(state.paced + counted, 3)   # set with high_water, so never None here
        facts.advance = advance
        facts.advance_gap = (at - (state.last_advance_at or state.first_at)).total_seconds()
        if current.published_at and state.last_advance_published_at and current.published_at > state.last_advance_published_at:
            facts.source_gap = (current.published_at - state.last_advance_published_at).total_seconds()
        if state.last_advance_at is not None:
            # On the source's clock when it has one: exact for a cadenced publisher.
            if (current.published_at and state.last_advance_published_at
                    and current.published_at > state.last_advance_published_at):
                gap = (current.published_at - state.last_advance_published_at).total_seconds()
            else:
                gap = (at - state.last_advance_at).total_seconds()
            end = current.published_at or at
            offset = offset_at(end, zone)
            # In a count's tail the rhythm learns the pace per unit still to come (tail_weight).
            weight = tail_weight(current.stations if current.stations_reported is not None else 100.0,
                                 progress - advance, o, current.stations_reported is not None)
            # Past the ceiling a gap is an incident, unless the model's own threshold lay beyond
            # it (a small region's night, walked through its hours' stations: no alarm was due).
            incident = gap >= max(o.stall_ceiling, stall_before.own_warning) or _was_incident(state, gap, advance, stall_before,
                                                               end.timestamp(), offset, weight)
            # An incident is not learned from, or one freeze would slow the alarm for the next;
            # one that recurs (HABIT, two, of the last 8 advances: a publisher settling into a batch or
            # two a day) is the source's new habit, learned in full.
            habits = (state.habits & ~0xFF) | (((state.habits << 1) | int(incident)) & 0xFF)
            if habits != state.habits:
                state.habits = habits
            recurs = incident and habitual(state.habits, 0)
            facts.incident = incident and not recurs
            state.step_gaps = _push(state.step_gaps, gap, STEP_KEEP, shared=True)
            # A gap we partly could not see (failed polls) is no evidence of skipped publications.
            if not facts.incident and not state.blind & BLIND_ADVANCE:
                state.advance_gaps = _push(state.advance_gaps, min(gap, HABIT_CAP * o.critical_ceiling if recurs
                                                                   else stall_before.own_critical), o.stall_window,
                                            shared=True)
                if state.rhythm is UNRECORDED:
                    state.rhythm = Rhythm()
                facts.learned = state.rhythm.record(end.timestamp() - gap, end.timestamp(), offset,
                                                    stall_before.cadence, counted * weight,
                                                    () if stall_before.cadence else
                                                    _published_in(state, end.timestamp() - gap, current, before))
        if state.blind & BLIND_ADVANCE:
            state.blind &= ~BLIND_ADVANCE
        state.steps = _push(state.steps, advance, STEP_KEEP, shared=True)
        state.last_advance_at = at
        state.last_advance_published_at = current.published_at
        _learned(state)

    def _track_children(self, snapshot: Snapshot, at: datetime, o: DetectionOptions,
                        paced_before: float | None = None) -> None:
        state = self
        if paced_before is not None and state.paced is not None and state.paced > paced_before:
            # A sibling's backlog coming in is no flow its quiet siblings missed (region_stall).
            counted = state.paced - paced_before
            # Only tracked children witness (sibling_flow passes over the rest: a desa's TPS rows).
            tracks = state.children
            flow = sibling_flow([(track, child_units(child)) for code, child in snapshot.children.items()
                                 if (track := tracks.get(code)) is not None], counted)
            state.paced = round(state.paced - (counted - flow), 3)
        mark = state.paced or 0.0
        excess = round((state.high_water or 0.0) - mark, 3)   # what winsorizing left out of the parent's advance
        parent_ratio = snapshot.progress_ratio
        seen = set()
        children = state.children if type(state.children) is dict else {}
        # one float for all the rows (not one per child: ~50 B a series kept in its parent's tracker)
        now = round(at.timestamp(), 3)
        rounded_parent = None if parent_ratio is None else round(parent_ratio, 6)
        for code, child in snapshot.children.items():
            if is_station(stations=child.stations):
                continue                                  # a TPS row: it reports once, it does not stall
            seen.add(code)
            signature = zlib.crc32(f"{child.stations_reported}|{child.percent}|{sum(child.votes.values())}".encode())
            complete = ((child.stations is not None and child.stations_reported is not None
                         and child.stations_reported >= o.complete_ratio * child.stations)
                        or (child.percent is not None and child.percent >= 100 * o.complete_ratio))
            ratio = progress_ratio(child.stations, child.stations_reported, child.percent)
            ratio = None if ratio is None else _same(round(ratio, 6))
            track = children.get(code)
            if track is None:
                children[code] = ChildTrack(signature, mark, now, 0, _same(child.percent), complete,
                                            ratio, ratio, parent_ratio and rounded_parent, now,
                                            child.stations, _same(child_units(child)), excess=excess)
                continue
            track.ratio, track.stations = ratio, child.stations
            behind = track.behind(parent_ratio)
            if behind is None and ratio is not None and parent_ratio is not None and track.ref_ratio is None:
                track.ref_ratio, track.ref_parent, track.ref_at = ratio, rounded_parent, now
            elif behind is not None and behind[1] >= LAG_EVIDENCE and behind[0] >= o.lagging_pace * behind[1]:
                # Kept up over a window long enough to tell: the next window starts here.
                track.ref_ratio, track.ref_parent, track.ref_at = ratio, rounded_parent, now
            if signature == track.signature:
                continue
            units = _same(child_units(child))
            if track.changes >= 1:                        # the first change ends a censored interval
                if type(track) is not LearningTrack:      # (what it learns is kept from here on)
                    track = children[code] = track.learning()
                spacing = mark - track.parent_mark
                track.spacing = round(spacing if track.spacing is None else (
                    (1 - SPACING_WEIGHT) * track.spacing + SPACING_WEIGHT * spacing), 3)
                if f"region_stall/{code}" in state.open_alerts:
                    track.restart()                       # the silence it paged on ends here
                track.learn_units(units, spacing, excess, child.stations_reported is not None)
            track.units, track.excess = units, excess
            track.changes += 1
            track.signature, track.parent_mark, track.changed_at = signature, mark, now
            track.percent, track.complete = _same(child.percent), complete
        for code in [c for c in children if c not in seen]:
            del children[code]
        state.children = children if children else NONE

    def rebase(self, seconds: float) -> None:
        """Move every moment of *our* clock by `seconds` (the source's timestamps stay): for a
        state saved under a clock that was later stepped back, whose polls would otherwise all
        be "older than the last one judged" until the clock caught up. Durations inside the
        state (gaps, lags, the daily rhythm) are unchanged."""
        delta = timedelta(seconds=seconds)

        def move(moment: datetime | None) -> datetime | None:
            return None if moment is None else moment + delta
        self.first_at, self.last_at = move(self.first_at), move(self.last_at)
        self.last_advance_at, self.pub_seen_at = move(self.last_advance_at), move(self.pub_seen_at)
        if self.failing_since is not None:
            self.failing_since = move(self.failing_since)
        if self.current is not None:
            self.current = replace(self.current, at=self.current.at + delta)
        for track in self.children.values():
            track.changed_at = round(track.changed_at + seconds, 3)
            if track.ref_at is not None:
                track.ref_at = round(track.ref_at + seconds, 3)
        if self.open_alerts:
            self.open_alerts = {key: replace(event, at=event.at + delta, since=move(event.since))
                                for key, event in self.open_alerts.items()}
        self.stall_cached = self.stale_cached = self.stale_cached_published = None
        self.stall_cached_version = self.stale_cached_version = -1

    # -- what the metrics read --
    @property
    def stall_thresholds(self) -> Thresholds | None:
        """The stall thresholds in force after the last poll the Judge took in (None: no count,
        or a complete one). Derived, not saved."""
        return cached_stall(self) if self.stall_in_force else None

    @property
    def progress_ratio(self) -> float | None:
        return None if self.current is None else self.current.progress_ratio

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"v": 1, "source": self.source, "region": self.region,
                               "first": _epoch(self.first_at), "last": _epoch(self.last_at)}
        if self.current is not None:
            out["cur"] = self.current.to_json()
        if self.high_water is not None:
            out["hw"] = self.high_water
        if self.paced is not None and self.paced != self.high_water:
            out["paced"] = self.paced
        if self.last_advance_at is not None or self.last_advance_published_at is not None:
            out["adv"] = [_epoch(self.last_advance_at), _epoch(self.last_advance_published_at)]
        for key, values in (("gaps", self.advance_gaps), ("steps", self.steps), ("pgaps", self.pub_gaps),
                            ("lags", self.lags), ("lat", self.latencies)):
            if values:
                out[key] = [_compact(v) for v in values]
        if self.step_gaps and list(self.step_gaps) != list(self.advance_gaps[-len(self.step_gaps):]):
            out["sgaps"] = [_compact(v) for v in self.step_gaps]
        if self.pub_seen_at is not None:
            out["pseen"] = _epoch(self.pub_seen_at)
        if self.blind:
            out["blind"] = self.blind
        if self.habits:
            out["habits"] = self.habits
        if self.slot_memory:
            out["slots"] = self.slot_memory
        if any(self.rhythm.exposure):
            out["day"] = self.rhythm.to_json()
        if self.poll_gap is not None:
            out["pgap"] = _compact(self.poll_gap)
        if self.learned_poll_gap is not None:
            out["lpgap"] = _compact(self.learned_poll_gap)
        if self.window_len:
            out["fails"] = [self.fail_streak, self.ok_streak, self.flaps, self.window_bits, self.window_len,
                            _epoch(self.failing_since), dict(self.error_classes), self.last_error,
                            _epoch(self.answering_since)]
        if self.latency_base is not None:
            out["latb"] = self.latency_base
        if self.children:
            out["kids"] = {code: track.to_json() for code, track in self.children.items()}
        if self.open_alerts:
            out["open"] = {key: event.to_json() for key, event in self.open_alerts.items()}
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "SeriesState":
        state = cls(data["source"], data["region"])
        state.first_at = _from_epoch(data.get("first"))
        state.last_at = _from_epoch(data.get("last"))
        if "cur" in data:
            state.current = Reading.from_json(data["cur"])
        state.high_water = data.get("hw")
        state.paced = data.get("paced", state.high_water)   # states saved before it counted in high water
        if "adv" in data:
            state.last_advance_at = _from_epoch(data["adv"][0])
            state.last_advance_published_at = _from_epoch(data["adv"][1])
        state.advance_gaps = tuple(data.get("gaps", ()))
        state.steps = tuple(data.get("steps", ()))
        state.step_gaps = tuple(data["sgaps"] if "sgaps" in data else state.advance_gaps[
            len(state.advance_gaps) - min(len(state.steps), len(state.advance_gaps)):])
        state.pub_gaps = tuple(data.get("pgaps", ()))
        state.lags = tuple(data.get("lags", ()))
        state.latencies = tuple(data.get("lat", ()))
        state.pub_seen_at = _from_epoch(data.get("pseen"))
        if data.get("blind"):
            state.blind = data["blind"]
        if data.get("habits"):
            state.habits = data["habits"]
        state.slot_memory = data.get("slots")
        if "day" in data:
            state.rhythm = Rhythm.from_json(data["day"])
        state.poll_gap = data.get("pgap")
        state.learned_poll_gap = data.get("lpgap")
        if "fails" in data:
            fails = list(data["fails"]) + [None] * (9 - len(data["fails"]))    # 8 before answering_since
            (fail_streak, state.ok_streak, flaps, window_bits, state.window_len,
             failing_since, errors, last_error, answering_since) = fails[:9]
            state.answering_since = _from_epoch(answering_since)
            # the rare ones only when they differ from the defaults (SeriesState.RARE)
            for name, value in (("fail_streak", fail_streak), ("flaps", flaps), ("window_bits", window_bits),
                                ("failing_since", _from_epoch(failing_since)), ("error_classes", dict(errors) or NONE),
                                ("last_error", last_error)):
                if value != getattr(SeriesState, name):
                    setattr(state, name, value)
        state.latency_base = data.get("latb")
        state.children = {code: ChildTrack.from_json(v) for code, v in data.get("kids", {}).items()} or NONE
        if data.get("open"):
            state.open_alerts = {key: Event.from_json(v) for key, v in data["open"].items()}
        return state


_BLANK = {"warning": 0.0, "critical": 0.0}
_rebuilt: tuple = (None, None, None, None)   # the last cached_stall made: (shared, warning, critical, thresholds)


def keep_stall(state: SeriesState, thresholds: Thresholds, shared) -> None:
    """Cache the stall thresholds a series learned, for `cached_stall`: as the thresholds
    shared (`shared`: the Judge's table of equal ones) by every series that learned alike but
    for their warning and critical, and those two floats of its own."""
    state.stall_cached = shared(replace(thresholds, **_BLANK))
    state.stall_warning, state.stall_critical = thresholds.warning, thresholds.critical


def cached_stall(state: SeriesState) -> Thresholds | None:
    """The stall thresholds `keep_stall` cached (equal to those learned; the last one made is
    given again while it is asked for: a poll asks up to three times)."""
    global _rebuilt
    blank = state.stall_cached
    if blank is None:
        return None
    warning, critical = state.stall_warning, state.stall_critical
    last = _rebuilt
    if last[0] is blank and last[1] is warning and last[2] is critical:
        return last[3]
    thresholds = replace(blank, warning=warning, critical=critical)
    _rebuilt = (blank, warning, critical, thresholds)
    return thresholds


def _remember_slots(state: SeriesState, gap: float, thresholds: Thresholds) -> None:
    """A watched publication gap of a cadenced publisher: its skipped slots, and how late after
    its slot the new publication came (from the newest offset of the lattice in force), into the
    long memory (SeriesState.slot_memory)."""
    keep = 0.5 ** (gap / HALF_LIFE)
    period = thresholds.cadence
    slots = max(1, round(gap / period))
    seen, skipped, latest, second = state.slot_memory or (0.0, 0.0, 0.0, 0.0)
    late = 0.0
    if thresholds.deviation is not None:
        moved = thresholds.deviation + gap
        late = moved - round(moved / period) * period
    # The two latest (decayed): lateness that recurs is the publisher's; one misfit is not.
    latest, second = sorted((late, latest * keep, second * keep), reverse=True)[:2]
    state.slot_memory = [round(seen * keep + slots, 3), round(skipped * keep + slots - 1, 3),
                         round(latest, 3), round(second, 3)]


def _was_incident(state: SeriesState, gap: float, advance: float, stall_before: Thresholds, end: float,
                  offset: float, weight: float = 1.0) -> bool:
    """A gap that reached the stall threshold and ended in a backlog (at least half of the
    stations the series' pace would have brought meanwhile) was an incident: the count stopped
    while the work went on. It is not learned from, or one freeze would slow the alarm for the
    next. A long gap that ends with an ordinary increment is the source slowing down (a night,
    the end of a count), and is learned; not beyond `stall_ceiling`, though, where it alarms
    whatever was learned and would smear days into the rhythm (the caller's rule). The pace comes
    from the daily rhythm, so that a freeze across a night is not judged by the day's pace: once
    it is known, or while it is learned when every hour the gap spans has been watched (a freeze
    across the second evening and night, met once the day before, is judged by them: judged by the
    evening's last advances its catch-up was a slow night's, and its empty publications were
    learned as the publisher's habit, to be waited for at every hour for days); else from the last
    few advances."""
    if gap < stall_before.own_warning:
        return False
    if state.rhythm.mature or _hours_watched(state.rhythm, end - gap, end, offset):
        due = state.rhythm.expected_stations(end - gap, end, offset) / weight
    else:
        steps, gaps = state.steps[-BACKLOG_WINDOW:], state.advance_gaps[-BACKLOG_WINDOW:]
        if len(gaps) < BACKLOG_WINDOW or sum(gaps) <= 0:
            return True
        pace = sum(steps) / sum(gaps)
        # Some hours the gap spans not watched yet: those that were already know their own pace,
        # the others are taken at the recent advances', and the lesser of that and the recent
        # pace alone is due (a freeze across the first evening, judged by the afternoon's pace,
        # ended in what looked like a slow night's increment: its empty publications were learned
        # and the next stalls of a 30-min or 2-hour publisher waited for 2-7 missed publications).
        due = min(pace * gap, state.rhythm.expected_stations(end - gap, end, offset, pace * weight) / weight)
    return advance >= 0.5 * due


def _hours_watched(rhythm: Rhythm, start: float, end: float, offset: float) -> bool:
    """Whether the rhythm has watched every local hour from `start` to `end` (epoch seconds) for
    at least MATURE_BIN: what it expects of them is then its own evidence, not a guess."""
    per = rhythm.cadence or 1.0
    t = start
    while t < end:
        b, until = hour_of(t, offset)
        if rhythm.exposure[b] * per < MATURE_BIN:
            return False
        t = until
    return True


def tail_weight(total: float | None, progress: float, o: DetectionOptions, whole: bool = True) -> float:
    """In a count's tail (from `tail_ratio` on) units come at a pace in proportion to what
    remains: what remained when the tail began over what remains at `progress` (1 before the
    tail). The daily rhythm records a tail's stations times this, so that it learns the pace
    per unit still to come and its hours stay comparable as the count thins out (phase.py
    scales them back by what remains now). At least one unit remains (a percentage: one
    hundredth of a point, its resolution)."""
    if not total or progress < o.tail_ratio * total:
        return 1.0
    at_start = (1.0 - o.tail_ratio) * total
    remaining = max(total - progress, 1.0 if whole else 0.01)
    return max(at_start / remaining, 1.0)


def offset_at(moment: datetime, zone: tzinfo) -> float:
    """The source's UTC offset at `moment`, in seconds (its own when it gave one)."""
    delta = moment.utcoffset() if moment.tzinfo not in (None, timezone.utc) else moment.astimezone(zone).utcoffset()
    return delta.total_seconds() if delta is not None else 0.0


def _published_in(state: "SeriesState", start: float, current: Reading, before: datetime | None) -> list[float]:
    """The source's publications (epochs) in a gap of its advances that ends at `current`:
    this one, the one `before` it and back through the recent publication gaps (not yet
    pushed this one's), down to the gap's start. Empty for a source without a timestamp."""
    if current.published_at is None:
        return []
    out = [current.published_at.timestamp()]
    if before is None or before >= current.published_at:
        return out
    t = before.timestamp()
    gaps = state.pub_gaps
    k = len(gaps)
    while t > start + 0.5:
        out.append(t)
        if k == 0:
            break
        k -= 1
        t -= gaps[k]
    return out


def _learned(state: SeriesState) -> None:
    """The gaps changed: thresholds are recomputed, with the polling interval as it is now.
    (The interval drifts with every poll; pinning it here keeps a restarted Judge, which
    recomputes from the saved state, in step with one that kept its cache.)"""
    state.version += 1
    state.learned_poll_gap = state.poll_gap


def reset_failures(state: SeriesState) -> None:
    state.failing_since = None
    state.error_classes = NONE
    state.last_error = None
    state.flaps = 0


SHARED_PUSHES = 1024               # pushes remembered for sharing their result (then it starts afresh)
_pushed: dict[tuple, tuple[tuple, tuple]] = {}
def _push(values: Sequence | tuple, value: float, keep: int, shared: bool = False) -> tuple:
    """`values` with `value` appended and the oldest beyond `keep` dropped, as a new tuple:
    a ring of n floats is 40 + 32n bytes (56 + 32n and more as a list: 112 B for one).

    `shared`: a push of the same value (and type) onto the same tuple returns the tuple made
    last time, so sibling series that went the same way hold one ring: a publication's gap,
    in every document it republished; a desa's one TPS; the lag and the latency, quantized to
    the millisecond, of siblings polled within the same one. Remembered by the identity of the tuple
    pushed onto, which the entry keeps alive, so it is exact (no 7200 for 7200.0, no -0.0
    for 0.0: a zero is never shared)."""
    value = round(value, 3)          # quantized here so that the JSON state is exact
    if type(values) is not tuple:
        values = tuple(values)
    if shared and value:
        key = (id(values), value, type(value), keep)
        seen = _pushed.get(key)
        if seen is not None and seen[0] is values:
            return seen[1]
    out = values + (value,)
    if len(out) > keep:
        out = out[len(out) - keep:]
    if shared and value:
        if len(_pushed) >= SHARED_PUSHES:
            _pushed.clear()
        _pushed[key] = (values, out)
    return out


__all__ = ["LAG_KEEP", "LATENCY_KEEP", "STEP_KEEP", "SeriesState", "batch_epochs", "cached_stall", "keep_stall", "held_back", "offset_at", "reset_failures", "tail_weight"]
