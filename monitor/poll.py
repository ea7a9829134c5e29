"""The poll job of one source: fetch -> parse -> judge -> export -> alert, wired and nothing
else (each stage lives in its own module).

A source is a document, or a tree of documents when `depth` > 0: one pass starts at the top
and descends only into children whose row in the parent's table changed since the last
pass (a child whose row did not change is judged as `not_modified` without a request).
Requests of one level run in parallel, up to `concurrency`, through the source's rate limit;
parsing and judging run in the job's own thread, so the detectors never see two threads. A
level is fetched and judged in chunks of LEVEL_CHUNK documents, so memory holds a chunk of
documents, not a level of 83,731 desa.

A child whose last fetch failed is fetched again on the next pass even if its row did not
change (its ancestors too, so the pass reaches it), or one 503 would hide it until its row moves.

`--shard K/N` (Shard) splits a tree between instances at SHARD_DEPTH (docs/scaling.md).
"""
from __future__ import annotations

import threading
import time
import uuid
import zlib
from concurrent.futures import CancelledError, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import structlog

from .clock import Clock
from .config import SourceConfig
from .detectors import Judge, SeriesState
from .fetch import Fetched, Fetcher, FetchError, RateLimiter
from .metrics import Metrics
from .model import Event, Poll, RegionCount, Snapshot
from .recording import RecordingWriter
from .sources import DocumentError, child_url, parse_document
from .store import StateStore

log = structlog.get_logger("countwatch.poll")

# Where a tree splits between shards: levels below the top document (kab/kota of a national
# tree: 514 units, the largest ~1% of the TPS, so shards come out even; provinces would not:
# West Java alone is 17%). Shallower sources split at their own depth.
SHARD_DEPTH = 2
# Documents fetched by the pool before the judge takes them. Memory holds one chunk, not a
# level (83,731 desa with their TPS tables); judging between chunks rather than while the
# fetch threads run costs less CPU (bench/scaling.py measured 1.0 vs 1.3 ms per document
# when the judge thread fought eight fetch threads for the interpreter lock).
LEVEL_CHUNK = 2048
# A restored series whose last poll is this far ahead of our clock was saved before the clock
# was stepped back: it is rebased to now (SeriesState.rebase).
CLOCK_AHEAD = 5.0


@dataclass(frozen=True)
class Shard:
    """`--shard K/N`: this instance watches the regions at the split level whose code hashes
    (CRC-32, stable across machines and runs, unlike Python's salted hash()) to K - 1 modulo
    N, and everything below them. Above the split every shard fetches the documents to know
    where to descend; each such region is judged for real by its own hash's shard only."""

    index: int          # 1..count
    count: int

    @classmethod
    def parse(cls, text: str) -> "Shard":
        index, sep, count = text.partition("/")
        if not sep or not index.isdigit() or not count.isdigit() or not 1 <= int(index) <= int(count):
            raise ValueError(f"expected K/N with 1 <= K <= N (e.g. 1/2), got {text!r}")
        return cls(int(index), int(count))

    def owns(self, region: str) -> bool:
        return zlib.crc32(region.encode()) % self.count == self.index - 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class _Target:
    url: str
    region: str
    depth: int          # levels below the source's top document
    parent: "_Target | None" = None


@dataclass
class _Outcome:
    target: _Target
    poll: Poll
    changed: bool = False


def _row_print(row: RegionCount) -> int:
    """A child's row in its parent's table, reduced to what says whether it moved: the
    tables kept between passes (and saved, so a restart need not fetch every child) are
    these numbers, not the rows (a national tree's kecamatan tables hold 83,731 desa rows)."""
    return zlib.crc32(repr((row.stations, row.stations_reported, row.percent,
                            sorted(row.votes.items()))).encode())


def _fingerprint(snapshot: Snapshot) -> tuple:
    """What makes a document 'changed' for the poll log and the history table."""
    return (snapshot.published_at, snapshot.stations, snapshot.stations_reported,
            tuple(sorted(snapshot.votes.items())), snapshot.percent)


class SourceWatcher:
    def __init__(self, source: SourceConfig, judge: Judge, metrics: Metrics, clock: Clock,
                 store: StateStore | None = None, handle_events: Callable[[list[Event]], None] | None = None,
                 recorder: RecordingWriter | None = None, stop: threading.Event | None = None,
                 shard: Shard | None = None, rate_limiter: RateLimiter | None = None):
        self.source = source
        self.shard = shard
        self._split = min(SHARD_DEPTH, source.depth)
        self.judge = judge
        self.metrics = metrics
        self.clock = clock
        self.store = store
        self.handle_events = handle_events
        self.recorder = recorder
        self.stop = stop or threading.Event()
        self.fetcher = Fetcher(source, self.stop, rate_limiter)
        self.states: dict[str, SeriesState] = {}
        self._fingerprints: dict[str, tuple] = {}
        self._children: dict[str, dict[str, int]] = {}   # parent region -> {child: _row_print}
        self._tables_changed: dict[str, dict[str, int]] = {}   # since the last save
        self._candidates: dict[str, frozenset[str]] = {}           # region -> candidates exported
        self._revisit: set[str] = set()    # failed last pass, or an ancestor of one: fetch again
        self._pool = ThreadPoolExecutor(max_workers=source.concurrency, thread_name_prefix=f"fetch-{source.name}")
        self.last_pass_at = None
        self.passes = 0
        metrics.init_source(source.name)
        if store is not None:
            now = clock.now()
            ahead = []
            for region, blob in store.load_states(source.name).items():
                state = self.states[region] = judge.restore(source.name, region, blob)
                lead = (state.last_at - now).total_seconds() if state.last_at is not None else 0.0
                if lead > CLOCK_AHEAD:
                    ahead.append(lead)
                    state.rebase(-lead)
            if ahead:
                # Saved under a clock that was later stepped back: judged as they were, every
                # poll would be "older than the last one" until the clock caught up (blind).
                log.warning("state.rebased", source=source.name, series=len(ahead),
                            seconds_back=round(max(ahead), 3),
                            consequence="the series' times moved back to now; the time since their last poll is lost")
            self._children = store.load_tables(source.name)
            if self.states:
                log.info("state.restored", source=source.name, series=len(self.states), tables=len(self._children))

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
        revisit, self._revisit = self._revisit, set()
        frontier = [_Target(self.source.url, self.source.region, 0)]
        completed = False
        try:
            while frontier and not self.stop.is_set():
                next_frontier: list[_Target] = []
                for outcome in self._fetch_level(frontier):
                    events.extend(self._judge(outcome, pass_id, dirty, changed_snapshots))
                    next_frontier.extend(self._descend(outcome, events, dirty, revisit))
                frontier = next_frontier
            completed = not self.stop.is_set()
        finally:
            if not completed:
                self._revisit |= revisit        # an interrupted pass may not have reached them
        self.passes += 1
        self.last_pass_at = self.clock.now()
        # Alerts first: whatever happens to the state write, what was detected is told.
        if events and self.handle_events is not None:
            self.handle_events(events)
        if self.store is not None and (dirty or changed_snapshots or self._tables_changed):
            self._save(dirty, changed_snapshots)
        return events

    def _save(self, dirty: dict[str, SeriesState], changed_snapshots: list[Snapshot]) -> None:
        try:
            blobs = {region: state.to_json() for region, state in dirty.items()}
        except Exception:  # noqa: BLE001 - a state that cannot be serialised is a bug, not a reason to stop
            self.metrics.state_errors.labels(operation="serialize").inc()
            log.exception("state.error", operation="serialize", source=self.source.name)
            return
        tables, self._tables_changed = self._tables_changed, {}
        self.store.save_states(self.source.name, blobs, self.last_pass_at, changed_snapshots, tables)

    def _fetch_level(self, targets: list[_Target]):
        """Outcomes in the order of `targets`, fetched by the pool in chunks (bounded
        memory: a chunk of documents, not a level of 83,731 desa) and parsed here, in the
        job thread, just before they are judged: the pool's threads only wait on the network
        (parsing there too cost ~5% more CPU per document in bench/scaling.py, the threads
        contending for the interpreter lock)."""
        if len(targets) == 1:
            yield self._read(targets[0], self._get(targets[0]))
            return
        try:
            for start in range(0, len(targets), LEVEL_CHUNK):
                if self.stop.is_set():
                    return
                chunk = targets[start:start + LEVEL_CHUNK]
                for target, got in zip(chunk, list(self._pool.map(self._get, chunk))):
                    yield self._read(target, got)
        except CancelledError:
            return      # close() cancelled the pool's queue: the daemon is stopping

    def _owner(self, target: _Target) -> bool:
        """Does this instance judge `target` for real (export, log, alert)? Without a shard,
        always; above the split, only the shard its own code hashes to; below, only regions
        of this shard are ever reached (_descend filters at the split)."""
        return self.shard is None or target.depth > self._split or self.shard.owns(target.region)

    def _get(self, target: _Target) -> tuple[Fetched | FetchError, float]:
        """The network part of a poll (a pool thread): the document or the classified
        failure, and the seconds it took."""
        started = time.monotonic()
        try:
            fetched: Fetched | FetchError = self.fetcher.fetch(target.url)
        except FetchError as error:
            fetched = error
        return fetched, time.monotonic() - started

    def _read(self, target: _Target, got: tuple[Fetched | FetchError, float]) -> _Outcome:
        """The rest of a poll (the job thread): parse, and the Poll with fetch + parse time."""
        fetched, seconds = got
        started = time.monotonic()
        source = self.source
        result, snapshot, detail = "ok", None, None
        try:
            if isinstance(fetched, FetchError):
                raise fetched
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
        latency = seconds + time.monotonic() - started
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
        if not poll.ok:
            ancestor = target
            while ancestor is not None:
                self._revisit.add(ancestor.region)
                ancestor = ancestor.parent
        state = self._state(target.region)
        events = self.judge.observe(state, poll)
        dirty[target.region] = state
        if not self._owner(target):
            # Another shard's region above the split: fetched to find our way down, judged so
            # that this Judge knows what one machine's would (a national stall keeps our
            # provinces' stalls quiet), but its events, series and log line are its owner's.
            self._export_poll(poll, target)
            return []
        # History rows only down to export_depth, like the series: a national tree's desa
        # tables would add ~300 MB per cold pass (docs/scaling.md); deeper regions are in the
        # poll log and in --record.
        if outcome.changed and poll.snapshot is not None and target.depth <= self.source.export_depth:
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

    def _descend(self, outcome: _Outcome, events: list[Event], dirty: dict[str, SeriesState],
                 revisit: set[str]) -> list[_Target]:
        """Children to fetch next: those whose table row changed, and those to `revisit`.
        Unchanged ones are judged as not_modified here (no request), so their stall clocks
        keep running; their own children are not (a frozen province is one stall, not 500)."""
        target, poll = outcome.target, outcome.poll
        if target.depth >= self.source.depth:
            return []
        published = None
        if poll.result == "not_modified":
            table = self._children.get(target.region, {})
            previous = table          # the parent did not change, so no child's row did
        elif poll.snapshot is None:
            return []
        else:
            previous = self._children.get(target.region)
            table = {code: _row_print(row) for code, row in poll.snapshot.children.items()}
            if table != previous:
                self._children[target.region] = self._tables_changed[target.region] = table
            published = poll.snapshot.published_at
        depth = target.depth + 1
        wanted = []
        for code, row in table.items():
            if self.shard is not None and depth == self._split and not self.shard.owns(code):
                continue          # another shard's subtree
            if (previous is not None and previous.get(code) == row and code in self.states
                    and code not in revisit):
                events.extend(self._tick_unchanged(_Target("", code, depth, target), published, dirty))
                continue
            try:
                url = child_url(self.source, target.url, target.region, code)
            except ValueError:
                continue
            wanted.append(_Target(url, code, depth, target))
        return wanted

    def _tick_unchanged(self, target: _Target, published, dirty: dict[str, SeriesState]) -> list[Event]:
        """Judge a child whose row in its parent's table did not change, without a request.

        When the parent was just published anew (`published`, its timestamp), the child was
        republished with it: Sirekap stamps every document of a publication alike, and the
        parent says the child's numbers are what they were. So the child gets its last reading
        under the new timestamp: its stall clock keeps running (the count did not move) but
        its publication clock restarts, or every quiet kabupaten would be "stale data" while
        the publisher runs. Without a new timestamp it is a plain not_modified poll."""
        region = target.region
        state = self._state(region)
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
        events = self.judge.observe(state, poll)
        owner = self._owner(target)
        if owner:
            # Gauges of a region we did not fetch still move: its publication time, and the
            # stall threshold its new publication gap may have changed.
            self._export_series(poll, state, target)
        if events or poll.snapshot is not None:
            dirty[region] = state
        if not owner:
            return []         # judged for context only (see _judge)
        for event in events:
            self._log_event(event, None)
        return events

    def _state(self, region: str) -> SeriesState:
        state = self.states.get(region)
        if state is None:
            state = self.states[region] = self.judge.restore(self.source.name, region, None)
        return state

    # --- export -------------------------------------------------------------------------
    def _export_poll(self, poll: Poll, target: _Target) -> None:
        """What every request adds, whoever owns the region: this instance's load on the
        source and whether it reaches the top document (a shard that cannot is blind)."""
        m, name = self.metrics, self.source.name
        m.polls.labels(source=name, result=poll.result).inc()
        if poll.latency_seconds is not None:
            m.poll_duration_seconds.labels(source=name).observe(poll.latency_seconds)
        if target.depth == 0:
            m.up.labels(source=name).set(1 if poll.ok else 0)
            if poll.ok:
                m.last_success_timestamp_seconds.labels(source=name).set(poll.at.timestamp())

    def _export(self, poll: Poll, state: SeriesState, target: _Target) -> None:
        self._export_poll(poll, target)
        self._export_series(poll, state, target)

    def _export_series(self, poll: Poll, state: SeriesState, target: _Target) -> None:
        """The region's own gauges: what its document (or its parent's row) said, and the
        stall clock and threshold the Prometheus rules compare. Down to export_depth only:
        deeper regions are judged, logged and alerted, but have no series (cardinality)."""
        if target.depth > self.source.export_depth:
            return
        m, name = self.metrics, self.source.name
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
