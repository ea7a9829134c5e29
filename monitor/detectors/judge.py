"""The Judge: the one stateful shell around the pure rules.

    judge = Judge(config)                                  # config may be None (replay without -c)
    state = judge.restore(source, region, blob_or_None)    # SeriesState
    events = judge.observe(state, poll)                    # appends the poll, runs the rules
    judge.stall_thresholds(state) -> (warning_s, critical_s) | None

For each poll it (1) appends the poll to the series' bounded history, (2) builds the read-only
History, (3) runs every enabled rule `rule(history, now)`, (4) marks events that share one cause
(publisher stopped: `stall` + `stale_source`), and (5) keeps the open alerts. `now` is always
`poll.at`: the same code runs on wall time in the daemon and on recorded time in replay.
Across series it remembers only what multi-series rules need: which region is whose child (so a
national freeze is one incident, not one per region) and the latest reading of mirror sources.
"""
from __future__ import annotations

from collections import deque
from datetime import datetime, timezone, tzinfo
from typing import Any, Callable, Mapping
from zoneinfo import ZoneInfo
import zlib
from statistics import median

import structlog

from ..model import STOPPAGE, Event, Poll, is_station
from .consistency import CorrectionRule, InconsistentRule, OverCapacityRule, RegressionRule
from .divergence import DivergenceRule
from .history import LAG_KEEP, LATENCY_KEEP, STEP_KEEP, ChildTrack, History, MirrorView, Reading, SeriesState
from .jump import JumpRule
from .options import DetectionOptions
from .outage import LatencyRule, OutageRule, recovery_needed
from .regions import RegionStallRule
from .stall import StaleSourceRule, StallRule
from .thresholds import WINSOR, Thresholds, learn

log = structlog.get_logger("countwatch.detectors")

RULE_CLASSES = (StallRule, StaleSourceRule, OutageRule, LatencyRule, JumpRule, RegressionRule, CorrectionRule,
                OverCapacityRule, InconsistentRule, RegionStallRule, DivergenceRule)
DEFAULT_ZONE = "Asia/Jakarta"     # DESIGN.md: [daemon] timezone default; KPU publishes in WIB
MIRROR_KEEP = 64
ANCESTOR_DEPTH = 8
SPACING_WEIGHT = 0.3              # EWMA weight of a child's newest spacing (region_stall)
POLL_GAP_WEIGHT = 0.2
LATENCY_WEIGHT = 0.02
BLIND_ADVANCE, BLIND_PUBLICATION = 1, 2  # state.blind: polls failed since the last advance / publication
BACKLOG_WINDOW = 3              # advances before a gap that set the pace it is judged by

STATION_EXEMPT = ("stall", "stale_source", "jump")   # rules about a count's pace, not one TPS
# The stoppage rules that can say "the publisher stopped" about one series (stall: counts
# frozen; stale_source: timestamp frozen); both open at once are one incident.
PUBLISHER_STOPPED = ("stale_source", "stall")

Rule = Callable[[History, datetime], list[Event]]


class Judge:
    def __init__(self, config: Any = None):
        self.config = config
        self._global = config.detection if config is not None else DetectionOptions()
        self._sources = {s.name: s for s in config.sources} if config is not None else {}
        self._options: dict[str, DetectionOptions] = {}
        self._rules: dict[str, list[Rule]] = {}
        self._parent: dict[tuple[str, str], str] = {}
        self._stalled: set[tuple[str, str]] = set()
        self._mirror_of = {s.name: s.mirror_of for s in self._sources.values() if s.mirror_of}
        self._mirrored = set(self._mirror_of) | set(self._mirror_of.values())
        self._latest: dict[tuple[str, str], tuple[Reading, deque]] = {}

    # -- configuration per source --
    def options(self, source: str) -> DetectionOptions:
        if source not in self._options:
            configured = self._sources.get(source)
            self._options[source] = self._global.merged(configured.detection if configured else None)
        return self._options[source]

    def rules(self, source: str) -> list[Rule]:
        if source not in self._rules:
            options = self.options(source)
            self._rules[source] = [cls(options) for cls in RULE_CLASSES if options.enabled(cls.name)]
        return self._rules[source]

    def zone(self, state: SeriesState) -> tzinfo:
        configured = self._sources.get(state.source)
        if configured is not None:
            return configured.zone
        if state.current is not None and state.current.published_at is not None:
            return state.current.published_at.tzinfo
        return ZoneInfo(DEFAULT_ZONE)

    # -- the interface the poll job calls --
    def restore(self, source: str, region: str, blob: Mapping[str, Any] | None) -> SeriesState:
        if blob is None:
            return SeriesState(source, region)
        state = SeriesState.from_json(blob)
        if (state.source, state.region) != (source, region):
            raise ValueError(f"state of {state.source}/{state.region} restored as {source}/{region}")
        if "stall" in state.open_alerts:
            self._stalled.add((source, region))
        return state

    def stall_thresholds(self, state: SeriesState) -> tuple[float, float] | None:
        if state.current is None or state.current.progress is None or self._complete(state):
            return None
        thresholds = self._stall(state, self.options(state.source))
        return thresholds.warning, thresholds.critical

    def observe(self, state: SeriesState, poll: Poll) -> list[Event]:
        if (poll.source, poll.region) != (state.source, state.region):
            raise ValueError(f"poll of {poll.source}/{poll.region} given to the state of {state.source}/{state.region}")
        if state.last_at is not None and poll.at < state.last_at:
            # An older poll than one already judged (a recording's re-committed line): the
            # present has moved on, so it is no evidence about it.
            return []
        options = self.options(poll.source)
        stall_before = self._stall(state, options)
        stale_before = self._stale(state, options)
        facts = self._append(state, poll, options, stall_before, stale_before)
        history = History(
            poll=poll, state=state, zone=self.zone(state),
            stall=stall_before if facts["advance"] > 0 else self._stall(state, options),
            stale=self._stale(state, options), complete=self._complete(state),
            ancestor_stalled=self._ancestor_stalled(state), mirror=self._mirror_view(state), **facts)
        events: list[Event] = []
        # A TPS document's `ts` is when that one station's form came in, not a publication
        # time, and one station cannot "stall" or "jump" (it reports once: 0 -> 1 after hours
        # is its form arriving, not a catch-up): the rules of a count's pace judge aggregates.
        station_level = _is_station(poll, state)
        for rule in self.rules(poll.source):
            if station_level and getattr(rule, "name", "") in STATION_EXEMPT:
                continue
            try:
                events.extend(rule(history, poll.at))
            except Exception:   # a broken rule must not silence the others (DESIGN.md practice 7)
                log.exception("detector.error", rule=getattr(rule, "name", repr(rule)), source=state.source,
                              region=state.region)
        events = _group(state, events)
        self._apply(state, events, options)
        self._remember(state, poll)
        return events

    # -- (1) appending a poll to the series' history --
    def _append(self, state: SeriesState, poll: Poll, o: DetectionOptions, stall_before: Thresholds,
                stale_before: Thresholds | None) -> dict[str, Any]:
        at = poll.at
        previous_poll_at = state.last_at
        if state.first_at is None:
            state.first_at = at
        if previous_poll_at is not None:
            gap = (at - previous_poll_at).total_seconds()
            if gap > 0:
                # A gap in a recording or a long outage says nothing about our interval.
                gap = min(gap, 4 * state.poll_gap) if state.poll_gap else gap
                state.poll_gap = round(gap if state.poll_gap is None else
                                       (1 - POLL_GAP_WEIGHT) * state.poll_gap + POLL_GAP_WEIGHT * gap, 3)
        state.last_at = at
        self._count_result(state, poll, o)
        facts = {"previous": state.current, "current": state.current, "changed": False, "advance": 0,
                 "advance_gap": None, "source_gap": None, "new_publication": False,
                 "incident": False}
        if not poll.ok:
            return facts
        if poll.latency_seconds is not None:
            _push(state.latencies, poll.latency_seconds, LATENCY_KEEP)
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
        facts.update(current=current, changed=True)
        self._note_progress(state, current, at, o, stall_before, facts, self.zone(state))
        self._note_publication(state, previous, current, at, previous_poll_at, o, stale_before, facts)
        if snapshot.children:
            self._track_children(state, snapshot, at, o)
        return facts

    @staticmethod
    def _count_result(state: SeriesState, poll: Poll, o: DetectionOptions) -> None:
        failed = not poll.ok
        state.window_bits = ((state.window_bits << 1) | int(failed)) & ((1 << o.outage_window) - 1)
        state.window_len = min(state.window_len + 1, o.outage_window)
        if failed:
            state.blind = BLIND_ADVANCE | BLIND_PUBLICATION
            if state.failing_since is None:
                state.failing_since = poll.at
            if state.ok_streak and "outage" in state.open_alerts:
                state.flaps += 1
            state.fail_streak += 1
            state.ok_streak = 0
            state.error_classes[poll.result] = state.error_classes.get(poll.result, 0) + 1
            state.last_error = poll.result + (f": {poll.detail}" if poll.detail else "")
            return
        state.ok_streak += 1
        state.fail_streak = 0
        if "outage" not in state.open_alerts and state.ok_streak >= o.outage_recovery and state.failing_since:
            _reset_failures(state)

    @staticmethod
    def _note_publication(state: SeriesState, previous: Reading | None, current: Reading, at: datetime,
                          previous_poll_at: datetime | None, o: DetectionOptions, stale_before: Thresholds | None,
                          facts: dict[str, Any]) -> None:
        published = current.published_at
        if published is None:
            return
        if previous is None or previous.published_at is None:
            state.pub_seen_at = at                        # first sighting: not a new publication
            return
        if published <= previous.published_at:
            return                                        # unchanged, or older (regression's business)
        gap = (published - previous.published_at).total_seconds()
        if stale_before is not None:
            gap = min(gap, stale_before.critical)         # a freeze is an incident, not the habit
        if not facts["incident"] and not state.blind & BLIND_PUBLICATION:
            _push(state.pub_gaps, gap, o.stall_window)
        state.blind &= ~BLIND_PUBLICATION
        lag = (at - published).total_seconds()
        recent_poll = previous_poll_at is not None and state.poll_gap is not None and (
            (at - previous_poll_at).total_seconds() <= 2 * state.poll_gap)
        if lag >= 0 and recent_poll:
            # Only when we were polling all along does the delay measure the publisher + us.
            _push(state.lags, lag, LAG_KEEP)
        state.pub_seen_at = at
        _learned(state)
        facts["new_publication"] = True

    @staticmethod
    def _note_progress(state: SeriesState, current: Reading, at: datetime, o: DetectionOptions,
                       stall_before: Thresholds, facts: dict[str, Any], zone: tzinfo) -> None:
        progress = current.progress
        if progress is None:
            return
        if state.high_water is None:
            state.high_water = state.paced = progress     # first sighting is no advance...
            state.last_advance_published_at = current.published_at   # ...but dates the data we start from
            return
        if progress <= state.high_water:
            return
        advance = progress - state.high_water
        state.high_water = progress
        # Winsorized: one outsized batch (another region's backlog) must neither teach the
        # rhythm a pace nor make region_stall's children overdue.
        counted = min(advance, WINSOR * median(state.steps[-STEP_KEEP:])) if len(state.steps) >= 6 else advance
        state.paced = round(state.paced + counted, 3)   # set with high_water, so never None here
        facts["advance"] = advance
        facts["advance_gap"] = (at - (state.last_advance_at or state.first_at)).total_seconds()
        if current.published_at and state.last_advance_published_at and current.published_at > state.last_advance_published_at:
            facts["source_gap"] = (current.published_at - state.last_advance_published_at).total_seconds()
        if state.last_advance_at is not None:
            # On the source's clock when it has one: exact for a cadenced publisher.
            if (current.published_at and state.last_advance_published_at
                    and current.published_at > state.last_advance_published_at):
                gap = (current.published_at - state.last_advance_published_at).total_seconds()
            else:
                gap = (at - state.last_advance_at).total_seconds()
            end = current.published_at or at
            offset = _offset(end, zone)
            facts["incident"] = gap >= o.stall_ceiling or _was_incident(state, gap, advance, stall_before,
                                                                         end.timestamp(), offset)
            # A gap we partly could not see (failed polls) is no evidence of skipped publications.
            if not facts["incident"] and not state.blind & BLIND_ADVANCE:
                _push(state.advance_gaps, min(gap, stall_before.critical), o.stall_window)
                state.rhythm.record(end.timestamp() - gap, end.timestamp(), offset, stall_before.cadence, counted)
        state.blind &= ~BLIND_ADVANCE
        _push(state.steps, advance, STEP_KEEP)
        state.last_advance_at = at
        state.last_advance_published_at = current.published_at
        _learned(state)

    @staticmethod
    def _track_children(state: SeriesState, snapshot, at: datetime, o: DetectionOptions) -> None:
        mark = state.paced or 0.0
        seen = set()
        for code, child in snapshot.children.items():
            if is_station(stations=child.stations):
                continue                                  # a TPS row: it reports once, it does not stall
            seen.add(code)
            signature = zlib.crc32(f"{child.stations_reported}|{child.percent}|{sum(child.votes.values())}".encode())
            complete = ((child.stations is not None and child.stations_reported is not None
                         and child.stations_reported >= o.complete_ratio * child.stations)
                        or (child.percent is not None and child.percent >= 100 * o.complete_ratio))
            track = state.children.get(code)
            if track is None:
                state.children[code] = ChildTrack(signature, mark, round(at.timestamp(), 3), 0, None, child.percent, complete)
                continue
            if signature == track.signature:
                continue
            if track.changes >= 1:                        # the first change ends a censored interval
                spacing = mark - track.parent_mark
                track.spacing = round(spacing if track.spacing is None else (
                    (1 - SPACING_WEIGHT) * track.spacing + SPACING_WEIGHT * spacing), 3)
            track.changes += 1
            track.signature, track.parent_mark, track.changed_at = signature, mark, round(at.timestamp(), 3)
            track.percent, track.complete = child.percent, complete
        for code in [c for c in state.children if c not in seen]:
            del state.children[code]

    # -- thresholds, cached until the gaps change --
    def _stall(self, state: SeriesState, o: DetectionOptions) -> Thresholds:
        cached = state.cache.get("stall")
        if cached is not None and cached[0] == state.version:
            return cached[1]
        lag0 = start = None
        if state.last_advance_at is not None:
            start = state.last_advance_at
            if state.last_advance_published_at is not None:
                lag0 = (state.last_advance_at - state.last_advance_published_at).total_seconds()
                start = state.last_advance_published_at
        thresholds = learn(state.advance_gaps, state.pub_gaps, state.lags, lag0, state.learned_poll_gap, o, what="advance",
                           rhythm=state.rhythm, start=start.timestamp() if start else None,
                           offset=_offset(start, self.zone(state)) if start else 0.0)
        state.cache["stall"] = (state.version, thresholds)
        return thresholds

    def _stale(self, state: SeriesState, o: DetectionOptions) -> Thresholds | None:
        if state.current is None or state.current.published_at is None:
            return None
        published = state.current.published_at
        cached = state.cache.get("stale")
        if cached is not None and cached[0] == (state.version, published):
            return cached[1]
        # A Poisson-like source publishes when it advances: the advances' rhythm is the one.
        thresholds = learn(state.pub_gaps, state.pub_gaps, state.lags, 0.0, state.learned_poll_gap, o,
                           what="publication", rhythm=state.rhythm, start=published.timestamp(),
                           offset=_offset(published, self.zone(state)))
        state.cache["stale"] = ((state.version, published), thresholds)
        return thresholds

    def _complete(self, state: SeriesState) -> bool:
        ratio = state.progress_ratio
        return ratio is not None and ratio >= self.options(state.source).complete_ratio

    # -- cross-series memory --
    def _ancestor_stalled(self, state: SeriesState) -> bool:
        if not self._stalled:
            return False
        region = state.region
        for _ in range(ANCESTOR_DEPTH):
            region = self._parent.get((state.source, region))
            if region is None:
                return False
            if (state.source, region) in self._stalled:
                return True
        return False

    def _mirror_view(self, state: SeriesState) -> MirrorView | None:
        mirror = self._mirror_of.get(state.source)
        if mirror is None:
            return None
        theirs = self._latest.get((mirror, state.region))
        if theirs is None:
            return None
        ours = self._latest.get((state.source, state.region))
        return MirrorView(mirror, theirs[0], tuple(theirs[1]), tuple(ours[1]) if ours else ())

    def _remember(self, state: SeriesState, poll: Poll) -> None:
        key = (state.source, state.region)
        if "stall" in state.open_alerts:
            self._stalled.add(key)
        else:
            self._stalled.discard(key)
        if poll.snapshot is not None and poll.snapshot.children:
            for code in poll.snapshot.children:
                self._parent[(state.source, code)] = state.region
        if state.source in self._mirrored and state.current is not None:
            _, advances = self._latest.get(key, (None, deque(maxlen=MIRROR_KEEP)))
            progress = state.current.progress
            if progress is not None and (not advances or progress > advances[-1][1]):
                advances.append((poll.at.timestamp(), progress))
            self._latest[key] = (state.current, advances)

    # -- (5) open alerts --
    @staticmethod
    def _apply(state: SeriesState, events: list[Event], o: DetectionOptions) -> None:
        for event in events:
            key = event.rule if event.region == state.region else f"{event.rule}/{event.region}"
            if event.state in ("firing", "escalated"):
                state.open_alerts[key] = event
            elif event.state == "resolved":
                state.open_alerts.pop(key, None)
                if event.rule == "outage":
                    _reset_failures(state)


def _group(state: SeriesState, events: list[Event]) -> list[Event]:
    """Say so when this series' stoppage rules are one incident (the publisher stopped: its
    `stall` and `stale_source` both open with cause publisher_stopped): they carry `members`,
    so alerting can send one message. The family comes from the events themselves, as alerting
    and the timeline read it; a child's region_stall is another region's, so never a member."""
    own = [e for e in events if e.region == state.region]
    active = {key for key, e in state.open_alerts.items() if "/" not in key and e.family == STOPPAGE}
    active |= {e.rule for e in own if e.state in ("firing", "escalated") and e.family == STOPPAGE}
    active -= {e.rule for e in own if e.state == "resolved"}
    members = sorted(r for r in active if r in PUBLISHER_STOPPED)
    if len(members) < 2:
        return events
    out = []
    for event in events:
        if (event.region == state.region and event.rule in members and event.state in ("firing", "escalated")
                and event.details.get("cause") == "publisher_stopped"):
            event = Event(at=event.at, rule=event.rule, state=event.state, severity=event.severity,
                          source=event.source, region=event.region, summary=event.summary, since=event.since,
                          details={**event.details, "members": members})
        out.append(event)
    return out


def _was_incident(state: SeriesState, gap: float, advance: float, stall_before: Thresholds, end: float,
                  offset: float) -> bool:
    """A gap that reached the stall threshold and ended in a backlog (at least half of the
    stations the series' pace would have brought meanwhile) was an incident: the count stopped
    while the work went on. It is not learned from, or one freeze would slow the alarm for the
    next. A long gap that ends with an ordinary increment is the source slowing down (a night,
    the end of a count), and is learned; not beyond `stall_ceiling`, though, where it alarms
    whatever was learned and would smear days into the rhythm (the caller's rule). The pace comes
    from the daily rhythm once it is known,
    so that a freeze across a night is not judged by the day's pace, else from the last few
    advances."""
    if gap < stall_before.warning:
        return False
    if state.rhythm.mature:
        due = state.rhythm.expected_stations(end - gap, end, offset)
    else:
        steps, gaps = state.steps[-BACKLOG_WINDOW:], state.advance_gaps[-BACKLOG_WINDOW:]
        if len(gaps) < BACKLOG_WINDOW or sum(gaps) <= 0:
            return True
        due = sum(steps) / sum(gaps) * gap
    return advance >= 0.5 * due


def _offset(moment: datetime, zone: tzinfo) -> float:
    """The source's UTC offset at `moment`, in seconds (its own when it gave one)."""
    delta = moment.utcoffset() if moment.tzinfo not in (None, timezone.utc) else moment.astimezone(zone).utcoffset()
    return delta.total_seconds() if delta is not None else 0.0


def _learned(state: SeriesState) -> None:
    """The gaps changed: thresholds are recomputed, with the polling interval as it is now.
    (The interval drifts with every poll; pinning it here keeps a restarted Judge, which
    recomputes from the saved state, in step with one that kept its cache.)"""
    state.version += 1
    state.learned_poll_gap = state.poll_gap


def _reset_failures(state: SeriesState) -> None:
    state.failing_since = None
    state.error_classes = {}
    state.last_error = None
    state.flaps = 0


def _push(values: list, value: float, keep: int) -> None:
    values.append(round(value, 3))          # quantized here so that the JSON state is exact
    if len(values) > keep:
        del values[: len(values) - keep]


__all__ = ["Judge", "RULE_CLASSES", "recovery_needed"]


def _is_station(poll: Poll, state: SeriesState) -> bool:
    """A polling-station (TPS) series: by the document's level, or for a not_modified poll by
    its region code."""
    level = poll.snapshot.level if poll.snapshot is not None else None
    return is_station(level=level, code=state.region)
