"""The poll job of one source: the pass that wires the tree walker (fetch, parse, what to
descend into: monitor/walker.py), the judge (monitor/detectors), the exporter (metrics and log
lines: monitor/exporter.py), the recording and the state store, and does nothing else.

A source is a document, or a tree of documents when `depth` > 0 (walker.py says how a pass
descends). `--shard K/N` (Shard) splits a tree between instances at SHARD_DEPTH
(docs/scaling.md).
"""
from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from typing import Callable

import structlog

from .clock import Clock
from .config import SourceConfig
from .detectors import Judge, SeriesState
from .exporter import Exporter
from .fetch import Fetcher, RateLimiter
from .metrics import Metrics
from .model import Event, Poll, Snapshot
from .recording import RecordingWriter
from .store import StateStore
from .walker import LEVEL_CHUNK, SHARD_DEPTH, Fetch, Shard, TreeWalker, Unchanged

__all__ = ["CLOCK_AHEAD", "LEVEL_CHUNK", "SHARD_DEPTH", "Shard", "SourceWatcher"]

log = structlog.get_logger("countwatch.poll")

# A restored series whose last poll is this far ahead of our clock was saved before the clock
# was stepped back: it is rebased to now (SeriesState.rebase).
CLOCK_AHEAD = 5.0
CAPPED_SAY_EVERY = 3600.0    # series.capped is logged at most once an hour per source


class SourceWatcher:
    def __init__(self, source: SourceConfig, judge: Judge, metrics: Metrics, clock: Clock,
                 store: StateStore | None = None, handle_events: Callable[[list[Event]], None] | None = None,
                 recorder: RecordingWriter | None = None, stop: threading.Event | None = None,
                 shard: Shard | None = None, rate_limiter: RateLimiter | None = None,
                 pool: ThreadPoolExecutor | None = None, fetcher: Fetcher | None = None):
        self.shard = shard
        self.judge = judge
        self.metrics = metrics
        self.clock = clock
        self.store = store
        self.handle_events = handle_events
        self.recorder = recorder
        self.stop = stop or threading.Event()
        self.walker = TreeWalker(source, clock, self.stop, shard, rate_limiter, pool, fetcher)
        self.exporter = Exporter(source, metrics)
        self.source = source
        self.states: dict[str, SeriesState] = {}
        self.last_pass_at = None
        self.passes = 0
        self._refused = 0                  # regions refused by max_series in this pass
        self._capped_said_at = None        # when series.capped was last logged (our clock)
        if store is not None:
            self._restore(store)

    @property
    def source(self) -> SourceConfig:
        return self._source

    @source.setter
    def source(self, source: SourceConfig) -> None:
        # one source for the three parts (a test re-points a watcher at another site)
        self._source = self.walker.source = self.exporter.source = source

    @property
    def fetcher(self) -> Fetcher:
        return self.walker.fetcher

    @fetcher.setter
    def fetcher(self, fetcher: Fetcher) -> None:
        self.walker.fetcher = fetcher

    def _restore(self, store: StateStore) -> None:
        now = self.clock.now()
        ahead = []
        for region, blob in store.load_states(self.source.name).items():
            try:
                state = self.judge.restore(self.source.name, region, blob)
            except Exception as error:  # noqa: BLE001 - one unreadable state must not stop the source
                store.quarantine_state(self.source.name, region, blob, error)
                continue
            self.states[region] = state
            lead = (state.last_at - now).total_seconds() if state.last_at is not None else 0.0
            if lead > CLOCK_AHEAD:
                ahead.append(lead)
                state.rebase(-lead)
        if ahead:
            # Saved under a clock that was later stepped back: judged as they were, every
            # poll would be "older than the last one" until the clock caught up (blind).
            log.warning("state.rebased", source=self.source.name, series=len(ahead),
                        seconds_back=round(max(ahead), 3),
                        consequence="the series' times moved back to now; the time since their last poll is lost")
        self.walker.restore_tables(store.load_tables(self.source.name))
        if self.states:
            log.info("state.restored", source=self.source.name, series=len(self.states),
                     tables=len(self.walker.children))

    def close(self) -> None:
        self.walker.close()

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
        with closing(self.walker.walk(self.states.__contains__)) as visits:
            for visit in visits:
                if isinstance(visit, Fetch):
                    events.extend(self._judge(visit, pass_id, dirty, changed_snapshots))
                else:
                    events.extend(self._tick_unchanged(visit, dirty))
        self.passes += 1
        self.last_pass_at = self.clock.now()
        self._forget_vanished()
        self._say_capped()
        # Alerts first: whatever happens to the state write, what was detected is told.
        if events and self.handle_events is not None:
            self.handle_events(events)
        if self.store is not None and (dirty or changed_snapshots or self.walker.tables_changed):
            self._save(dirty, changed_snapshots)
        return events

    def _save(self, dirty: dict[str, SeriesState], changed_snapshots: list[Snapshot]) -> None:
        # each blob made and encoded as its row is written (a cold pass's 91,561 at once as
        # dicts were ~2 KB a series at the peak); one that cannot be made is counted there.
        # The states themselves are handed over: no bound method and key per series.
        self.store.save_states(self.source.name, dirty, self.last_pass_at, changed_snapshots,
                               self.walker.take_tables())

    def _judge(self, fetch: Fetch, pass_id: str, dirty: dict[str, SeriesState],
               changed_snapshots: list[Snapshot]) -> list[Event]:
        poll, target = fetch.poll, fetch.target
        state = self._state(target.region)
        if state is None:                 # beyond max_series: counted, not judged
            self.exporter.request(poll, target.depth)
            return []
        events = self._observe(state, poll)
        state = self.states[target.region]      # a fresh one if the restored one was quarantined
        dirty[target.region] = state
        if not self.walker.owns(target):
            # Another shard's region above the split: fetched to find our way down, judged so
            # that this Judge knows what one machine's would (a national stall keeps our
            # provinces' stalls quiet), but its events, series and log line are its owner's.
            self.exporter.request(poll, target.depth)
            return []
        # History rows only down to export_depth, like the series: a national tree's desa
        # tables would add ~300 MB per cold pass (docs/scaling.md); deeper regions are in the
        # poll log and in --record.
        if fetch.changed and poll.snapshot is not None and target.depth <= self.source.export_depth:
            changed_snapshots.append(poll.snapshot)
        if self.recorder is not None:
            self.recorder.write(poll)
        self.exporter.request(poll, target.depth)
        self.exporter.series(poll, state, target.depth)
        self.exporter.poll_line(poll, pass_id, fetch.changed)
        for event in events:
            self.exporter.event(event, pass_id)
        return events

    def _tick_unchanged(self, visit: Unchanged, dirty: dict[str, SeriesState]) -> list[Event]:
        """Judge a child whose row in its parent's table did not change, without a request.

        When the parent was just published anew (`published`, its timestamp), the child was
        republished with it: Sirekap stamps every document of a publication alike, and the
        parent says the child's numbers are what they were. So the child gets its last reading
        under the new timestamp: its stall clock keeps running (the count did not move) but
        its publication clock restarts, or every quiet kabupaten would be "stale data" while
        the publisher runs. Without a new timestamp it is a plain not_modified poll."""
        target, published = visit.target, visit.published
        region = target.region
        state = self._state(region)
        if state is None:                 # beyond max_series
            return []
        now = self.clock.now()
        current = state.current
        if (published is not None and current is not None and current.stations != 1
                and (current.published_at is None or published > current.published_at)):
            # (A TPS row is left alone: a TPS's `ts` is when its form came in, not a publication.)
            snapshot = Snapshot(self.source.name, region, now, published, current.stations,
                                current.stations_reported, current.votes, percent=current.percent)
            poll = Poll(self.source.name, region, now, "ok", snapshot)
        else:
            poll = Poll(self.source.name, region, now, "not_modified")
        events = self._observe(state, poll)
        state = self.states[region]
        owner = self.walker.owns(target)
        if owner:
            # Gauges of a region we did not fetch still move: its publication time, and the
            # stall threshold its new publication gap may have changed.
            self.exporter.series(poll, state, target.depth)
        if events or poll.snapshot is not None:
            dirty[region] = state
        if not owner:
            return []         # judged for context only (see _judge)
        for event in events:
            self.exporter.event(event, None)
        return events

    def _observe(self, state: SeriesState, poll: Poll) -> list[Event]:
        """Judge one poll. A series whose state cannot be judged (a stored value of the wrong
        type restores, then fails at a poll) is quarantined and starts fresh, so the rest of
        the pass goes on; if a fresh state fails too, the error is the pass's (job.error)."""
        region = state.region
        try:
            return self.judge.observe(state, poll)
        except Exception as error:  # noqa: BLE001 - one unreadable state must not stop the source
            try:
                blob = state.to_json()
            except Exception:  # noqa: BLE001
                blob = None
            if self.store is not None:
                self.store.quarantine_state(self.source.name, region, blob, error)
            self.judge.forget(self.source.name, region)
            fresh = self.states[region] = self.judge.restore(self.source.name, region, None)
            return self.judge.observe(fresh, poll)

    def _state(self, region: str) -> SeriesState | None:
        """The region's series; None when it is new and the source holds max_series already."""
        state = self.states.get(region)
        if state is None:
            if len(self.states) >= self.source.max_series:
                self._refused += 1
                self.metrics.series_refused.labels(source=self.source.name).inc()
                return None
            state = self.states[region] = self.judge.restore(self.source.name, region, None)
        return state

    # --- bounded memory (issue #14): series leave with their regions; a cap for the rest ---
    def _forget_vanished(self) -> None:
        """Regions that left their parents' tables (and everything below them) leave every
        map that describes them: the series, the judge's cross-series memory, the store's
        rows and /metrics. A source whose child codes change every poll stays bounded."""
        gone = self.walker.take_vanished()
        for region in gone:
            self.states.pop(region, None)
            self.judge.forget(self.source.name, region)
            self.exporter.forget(region)
        if gone and self.store is not None:
            self.store.forget(self.source.name, gone)
        self.metrics.series.labels(source=self.source.name).set(len(self.states))

    def _say_capped(self) -> None:
        refused, self._refused = self._refused, 0
        if not refused:
            return
        now = self.clock.now()
        if self._capped_said_at is not None and (now - self._capped_said_at).total_seconds() < CAPPED_SAY_EVERY:
            return
        self._capped_said_at = now
        log.warning("series.capped", source=self.source.name, max_series=self.source.max_series,
                    series=len(self.states), refused=refused,
                    consequence="regions beyond max_series are fetched but not judged (countwatch_series_refused_total); "
                                "raise the source's max_series if its tree is really this large")

