"""The poll job of one source: fetch -> parse -> judge -> export -> alert, wired and nothing
else (each stage lives in its own module).

A source is a document, or a tree of documents when `depth` > 0: one pass starts at the top
and descends only into children whose row in the parent's table changed since the last
pass (a child whose row did not change is judged as `not_modified` without a request).
Requests of one level run in parallel, up to `concurrency`, through the source's rate limit;
judging runs in the job's own thread, so the detectors never see two threads.
"""
from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import structlog

from .clock import Clock
from .config import SourceConfig
from .detectors import Judge, SeriesState
from .fetch import Fetcher, FetchError
from .metrics import Metrics
from .model import Event, Poll, RegionCount, Snapshot
from .recording import RecordingWriter
from .sources import DocumentError, child_url, parse_document
from .store import StateStore

log = structlog.get_logger("countwatch.poll")


@dataclass(frozen=True)
class _Target:
    url: str
    region: str
    depth: int          # levels below the source's top document


@dataclass
class _Outcome:
    target: _Target
    poll: Poll
    changed: bool = False


def _fingerprint(snapshot: Snapshot) -> tuple:
    """What makes a document 'changed' for the poll log and the history table."""
    return (snapshot.published_at, snapshot.stations, snapshot.stations_reported,
            tuple(sorted(snapshot.votes.items())), snapshot.percent)


class SourceWatcher:
    def __init__(self, source: SourceConfig, judge: Judge, metrics: Metrics, clock: Clock,
                 store: StateStore | None = None, handle_events: Callable[[list[Event]], None] | None = None,
                 recorder: RecordingWriter | None = None, stop: threading.Event | None = None):
        self.source = source
        self.judge = judge
        self.metrics = metrics
        self.clock = clock
        self.store = store
        self.handle_events = handle_events
        self.recorder = recorder
        self.stop = stop or threading.Event()
        self.fetcher = Fetcher(source, self.stop)
        self.states: dict[str, SeriesState] = {}
        self._fingerprints: dict[str, tuple] = {}
        self._children: dict[str, dict[str, RegionCount]] = {}   # parent region -> its last table
        self._candidates: dict[str, frozenset[str]] = {}           # region -> candidates exported
        self._pool = ThreadPoolExecutor(max_workers=source.concurrency, thread_name_prefix=f"fetch-{source.name}")
        self.last_pass_at = None
        self.passes = 0
        metrics.init_source(source.name)
        if store is not None:
            for region, blob in store.load_states(source.name).items():
                self.states[region] = judge.restore(source.name, region, blob)
            if self.states:
                log.info("state.restored", source=source.name, series=len(self.states))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.fetcher.close()

    # --- one pass ---------------------------------------------------------------------
    def poll_once(self) -> list[Event]:
        """One pass over the source. Never raises: an unexpected error is logged and counted
        (countwatch_job_errors_total) and the scheduler keeps going."""
        try:
            return self._pass()
        except Exception:  # noqa: BLE001 - a failing job must not kill the scheduler
            self.metrics.job_errors.labels(source=self.source.name).inc()
            log.exception("job.error", source=self.source.name)
            return []

    def _pass(self) -> list[Event]:
        pass_id = uuid.uuid4().hex[:12]
        events: list[Event] = []
        dirty: dict[str, SeriesState] = {}
        changed_snapshots: list[Snapshot] = []
        frontier = [_Target(self.source.url, self.source.region, 0)]
        while frontier and not self.stop.is_set():
            if len(frontier) == 1:
                outcomes = [self._fetch(frontier[0])]
            else:
                outcomes = list(self._pool.map(self._fetch, frontier))
            next_frontier: list[_Target] = []
            for outcome in outcomes:
                events.extend(self._judge(outcome, pass_id, dirty, changed_snapshots))
                next_frontier.extend(self._descend(outcome, events, dirty))
            frontier = next_frontier
        self.passes += 1
        self.last_pass_at = self.clock.now()
        # Alerts first: whatever happens to the state write, what was detected is told.
        if events and self.handle_events is not None:
            self.handle_events(events)
        if self.store is not None and (dirty or changed_snapshots):
            self._save(dirty, changed_snapshots)
        return events

    def _save(self, dirty: dict[str, SeriesState], changed_snapshots: list[Snapshot]) -> None:
        try:
            blobs = {region: state.to_json() for region, state in dirty.items()}
        except Exception:  # noqa: BLE001 - a state that cannot be serialised is a bug, not a reason to stop
            self.metrics.state_errors.labels(operation="serialize").inc()
            log.exception("state.error", operation="serialize", source=self.source.name)
            return
        self.store.save_states(self.source.name, blobs, self.last_pass_at, changed_snapshots)

    def _fetch(self, target: _Target) -> _Outcome:
        started = time.monotonic()
        source = self.source
        result, snapshot, detail = "ok", None, None
        try:
            fetched = self.fetcher.fetch(target.url)
            if fetched.not_modified:
                result = "not_modified"
            else:
                snapshot = parse_document(source, target.region, fetched.body, self.clock.now(),
                                          fetched.content_type)
                self.fetcher.remember(fetched)
        except FetchError as error:
            result, detail = error.result, error.detail
        except DocumentError as error:
            result, detail = error.result, error.detail
        latency = time.monotonic() - started
        poll = Poll(source.name, target.region, self.clock.now(), result, snapshot, detail, latency)
        changed = False
        if snapshot is not None:
            fingerprint = _fingerprint(snapshot)
            changed = self._fingerprints.get(target.region) != fingerprint
            self._fingerprints[target.region] = fingerprint
        return _Outcome(target, poll, changed)

    def _judge(self, outcome: _Outcome, pass_id: str, dirty: dict[str, SeriesState],
               changed_snapshots: list[Snapshot]) -> list[Event]:
        poll, target = outcome.poll, outcome.target
        state = self._state(target.region)
        events = self.judge.observe(state, poll)
        dirty[target.region] = state
        if outcome.changed and poll.snapshot is not None:
            changed_snapshots.append(poll.snapshot)
        if self.recorder is not None:
            self.recorder.write(poll)
        self._export(poll, state, target)
        snap = poll.snapshot
        log.info("poll", source=poll.source, region=poll.region, poll_id=pass_id, result=poll.result,
                 latency=round(poll.latency_seconds or 0.0, 4),
                 stations_reported=snap.stations_reported if snap else None,
                 stations=snap.stations if snap else None, changed=outcome.changed,
                 **({"detail": poll.detail} if poll.detail else {}))
        for event in events:
            self._log_event(event, pass_id)
        return events

    def _descend(self, outcome: _Outcome, events: list[Event], dirty: dict[str, SeriesState]) -> list[_Target]:
        """Children to fetch next: those whose table row changed. Unchanged ones are judged
        as not_modified here (no request), so their stall clocks keep running."""
        target, poll = outcome.target, outcome.poll
        if target.depth >= self.source.depth:
            return []
        if poll.result == "not_modified":
            table = self._children.get(target.region, {})
            # the parent did not change, so no child did: tick them all without a request
            for code in table:
                events.extend(self._tick_unchanged(code, dirty))
            return []
        if poll.snapshot is None:
            return []
        previous = self._children.get(target.region)
        table = dict(poll.snapshot.children)
        self._children[target.region] = table
        wanted = []
        for code, row in table.items():
            if previous is not None and previous.get(code) == row and code in self.states:
                events.extend(self._tick_unchanged(code, dirty))
                continue
            try:
                url = child_url(self.source, target.url, target.region, code)
            except ValueError:
                continue
            wanted.append(_Target(url, code, target.depth + 1))
        return wanted

    def _tick_unchanged(self, region: str, dirty: dict[str, SeriesState]) -> list[Event]:
        state = self._state(region)
        poll = Poll(self.source.name, region, self.clock.now(), "not_modified")
        events = self.judge.observe(state, poll)
        if events:
            dirty[region] = state
            for event in events:
                self._log_event(event, None)
        return events

    def _state(self, region: str) -> SeriesState:
        state = self.states.get(region)
        if state is None:
            state = self.states[region] = self.judge.restore(self.source.name, region, None)
        return state

    # --- export -------------------------------------------------------------------------
    def _export(self, poll: Poll, state: SeriesState, target: _Target) -> None:
        m, name = self.metrics, self.source.name
        m.polls.labels(source=name, result=poll.result).inc()
        if poll.latency_seconds is not None:
            m.poll_duration_seconds.labels(source=name).observe(poll.latency_seconds)
        if target.depth == 0:
            m.up.labels(source=name).set(1 if poll.ok else 0)
            if poll.ok:
                m.last_success_timestamp_seconds.labels(source=name).set(poll.at.timestamp())
        if target.depth > self.source.export_depth:
            return   # deeper regions: judged, logged and alerted, but no series (cardinality)
        region = target.region
        snap = poll.snapshot
        if snap is not None:
            if snap.stations is not None:
                m.stations.labels(source=name, region=region).set(snap.stations)
            if snap.stations_reported is not None:
                m.stations_reported.labels(source=name, region=region).set(snap.stations_reported)
            if snap.progress_ratio is not None:
                m.progress_ratio.labels(source=name, region=region).set(snap.progress_ratio)
            self._export_votes(region, snap.votes)
            if snap.published_at is not None:
                m.source_published_timestamp_seconds.labels(source=name, region=region).set(
                    snap.published_at.timestamp())
        if state.last_advance_at is not None:
            m.last_advance_timestamp_seconds.labels(source=name, region=region).set(state.last_advance_at.timestamp())
        thresholds = self.judge.stall_thresholds(state)
        if thresholds is not None:
            m.stall_threshold_seconds.labels(source=name, region=region).set(thresholds[0])

    def _export_votes(self, region: str, votes) -> None:
        """The region's candidates as the document lists them now: candidates that left it
        leave /metrics too, so a source that renames its ids every poll cannot grow the label
        sets beyond one document's (at most MAX_CANDIDATES, docs/reliability.md)."""
        name, current = self.source.name, frozenset(votes)
        for candidate in self._candidates.get(region, frozenset()) - current:
            self.metrics.votes.remove(name, region, candidate)
        self._candidates[region] = current
        for candidate, count in votes.items():
            self.metrics.votes.labels(source=name, region=region, candidate=candidate).set(count)

    def _log_event(self, event: Event, pass_id: str | None) -> None:
        if event.state in ("firing", "escalated", "observed"):
            self.metrics.anomalies.labels(source=event.source, rule=event.rule).inc()
        fields = event.to_json()
        fields.pop("at")   # the line's timestamp is the event's time (same clock)
        level = "warning" if event.severity == "critical" and event.state != "resolved" else "info"
        getattr(log, level)("detector.event", poll_id=pass_id, event_at=event.to_json()["at"], **fields)
