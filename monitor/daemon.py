"""The daemon: one APScheduler job per source, the metrics endpoint, the state store and the
alert pipeline, started and stopped together.

Scheduling: an interval job per source with jitter, max_instances=1 (a slow pass is never
overlapped by the next), coalesce (missed runs collapse into one) and a misfire grace; each
source has its own worker thread, so a slow source never delays another. On a scenario
clock the wall-time interval is the configured interval divided by the clock's speed.
"""
from __future__ import annotations

import dataclasses
import os
import signal
import threading
import weakref
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import structlog
from apscheduler.executors.pool import ThreadPoolExecutor as SchedulerPool
from apscheduler.schedulers.background import BackgroundScheduler

from . import __version__
from .clock import Clock, WallClock
from .config import Config, ConfigError
from .detectors import Judge
from .fetch import Fetcher, HostLimits
from .logs import lost_lines
from .metrics import Metrics, metrics_app, serve_metrics
from .model import Event
from . import races
from .poll import SourceWatcher
from .recording import RecordingWriter
from .sources.regions import RegionNames
from .statelock import StateDirLock
from .store import StateStore

log = structlog.get_logger("countwatch.daemon")

# Settings a SIGHUP reload cannot change in a running process (files, sockets, identity): a
# reload keeps the running values and says that they wait for a restart.
RESTART_KEYS = ("state_dir", "instance", "timezone", "metrics_listen", "metrics_basic_auth", "metrics_tls",
                "log_format", "log_file", "log_level", "log_max_bytes", "log_backups", "history_retention",
                "history_max_rows")
EVENTS_KEPT = 10_000           # Daemon.events: the demo's night has ~300
CLOCK_STEP_TOLERANCE = 1.0    # seconds the system clock may step before the daemon says so


class Daemon:
    def __init__(self, config: Config, clock: Clock | None = None, metrics: Metrics | None = None,
                 record_path: str | Path | None = None, serve_http: bool = True, alerts=None,
                 shard=None):
        self.config = config
        self.shard = shard                     # monitor.poll.Shard of `run --shard K/N`, or None
        self.clock = clock or WallClock()
        self.metrics = metrics or Metrics()
        self.stop_event = threading.Event()
        self.serve_http = serve_http
        self.http_server = None
        # The latest events of this run (demo summary, soak, tests). Bounded: a daemon runs for
        # weeks, and the log and the alert outbox are where events are kept.
        self.events: deque[Event] = deque(maxlen=EVENTS_KEPT)
        self._events_lock = threading.Lock()
        config.state_dir.mkdir(parents=True, exist_ok=True)
        # before anything reads the state: a second instance must not even restore the outbox
        self.state_lock = StateDirLock(config.state_dir).acquire()
        try:
            self.db_path = config.state_dir / "countwatch.db"
            self.store = StateStore(self.db_path, self.metrics, timedelta(seconds=config.history_retention),
                                    history_max_rows=config.history_max_rows)
            # an election definition becomes its races' sources here, for every stage alike
            config = self.config = self._expand(config)
            self.judge = Judge(config)
            self.names = RegionNames({s.name: s.kind for s in config.sources}, self.db_path)
            for source in config.sources:     # dashboards join region_info for names
                for region, name in self.names.below(source.name, source.region, source.export_depth):
                    self.metrics.region_info.labels(source=source.name, region=region, name=name).set(1)
            self.recorder = RecordingWriter(record_path) if record_path else None
            if alerts is None:
                from alerts.pipeline import AlertPipeline
                alerts = AlertPipeline(config, self.metrics, self.clock, self.db_path)
            self.alerts = alerts
            self.watchers = self._build_watchers(config)
            self.scheduler = self._new_scheduler()
            # A reload does not wait for passes in flight (one may be stuck on a slow source):
            # the new watcher of a kept source takes over its predecessor's state when that
            # one's last pass has ended (_run_pass). Source name -> predecessor; passes running.
            # Replaced watchers are closed only once none of them runs a pass: the races of an
            # election share one fetcher and pool, which closing one would take from another.
            self._predecessors: dict[str, SourceWatcher] = {}
            self._retired: list[SourceWatcher] = []
            self._replaced: weakref.WeakSet[SourceWatcher] = weakref.WeakSet()   # retired, closed or not
            self._running: set[int] = set()
            self._passes_lock = threading.Lock()
        except BaseException:
            self.state_lock.release()
            raise
        self.metrics.build_info.labels(version=__version__, countwatch_instance=config.instance).set(1)
        lost_lines.attach(self.metrics.log_lines_lost.inc)

    def _handle_events(self, events: list[Event]) -> None:
        events = [self.names.named(event) for event in events]   # people read names, not codes
        with self._events_lock:
            self.events.extend(events)
        self.alerts.handle(events)

    @property
    def metrics_port(self) -> int | None:
        return self.http_server.server_port if self.http_server else None

    def health(self) -> tuple[bool, str]:
        """Healthy while the scheduler runs and every source completed a pass within three of
        its intervals plus one fetch budget (on the daemon's clock), counted from start-up
        for a source that has not finished its first pass yet."""
        if not self.scheduler.running:
            return False, "scheduler not running"
        now = self.clock.now()
        late = []
        for watcher in self.watchers:
            source = watcher.source
            allowed = 3 * source.interval + source.timeout * (source.retries + 1)
            if (now - (watcher.last_pass_at or self._started_at)).total_seconds() > allowed:
                late.append(source.name)
        return (False, "late sources: " + ", ".join(late)) if late else (True, "ok")

    def start(self) -> None:
        self._started_at = self.clock.now()
        if self.serve_http:
            auth = None
            if self.config.metrics_basic_auth:
                user, password = self.config.metrics_basic_auth
                auth = (user, password.reveal())
            self.http_server, _ = serve_metrics(self.config.metrics_listen,
                                                metrics_app(self.metrics.registry, self.health, auth),
                                                tls=self.config.metrics_tls)
        self.alerts.start()
        self._schedule()
        log.info("daemon.started", sources=[w.source.name for w in self.watchers],
                 units={w.source.name: w.source.units for w in self.watchers},   # the review says what alerts said
                 metrics=f"{'https' if self.config.metrics_tls else 'http'}://{self.config.metrics_listen.rpartition(':')[0]}:{self.metrics_port}/metrics"
                 if self.http_server else None, state_dir=str(self.config.state_dir), speed=self.clock.speed,
                 shard=str(self.shard) if self.shard else None)

    def _schedule(self) -> None:
        first_run = datetime.now(timezone.utc)
        for job_id, watchers in self._jobs().items():
            source = watchers[0].source
            wall_interval = source.interval / self.clock.speed
            self.scheduler.add_job(
                self._run_passes, "interval", args=(watchers,), seconds=wall_interval, id=f"poll:{job_id}",
                name=f"poll {job_id}", jitter=(source.jitter / self.clock.speed) or None,
                max_instances=1, coalesce=True, misfire_grace_time=max(1, int(wall_interval)),
                next_run_time=first_run,
            )
        self.scheduler.start()

    # --- SIGHUP ---------------------------------------------------------------------------
    def reload_from_file(self) -> bool:
        """Re-read and validate the config file; an invalid one changes nothing and is logged
        with every problem (the running config stays)."""
        from .cli import load_config     # the whole file, alerting included, as `run` read it

        try:
            new_config = load_config(self.config.path, os.environ)
        except ConfigError as error:
            log.error("config.reload_failed", path=self.config.path, problems=error.problems,
                      action="kept the running config")
            return False
        try:
            self.reload(new_config)
        except Exception:  # noqa: BLE001 - a failed reload must not end the daemon
            log.exception("config.reload_failed", path=self.config.path, action="polling restarted with "
                          "the sources in force")
            if not self.scheduler.running:
                self.scheduler = self._new_scheduler()
                self._schedule()
            return False
        return True

    def reload(self, new_config: Config) -> None:
        """Apply a validated config while running: sources added, removed or changed, detection
        options, alerting. Passes in flight are not waited for (a stuck request must not stop
        every source): a kept source's new watcher takes over its state when the old pass ends,
        so every series keeps its detector state (as across a restart) and open alerts stay
        open. RESTART_KEYS keep their running values."""
        new_config = self._expand(new_config)
        self.names.kinds = {s.name: s.kind for s in new_config.sources}
        pending = [key for key in RESTART_KEYS if getattr(new_config, key) != getattr(self.config, key)]
        if pending:
            log.warning("config.reload_partial", keys=pending, action="these take effect at the next restart")
            new_config = dataclasses.replace(new_config, **{key: getattr(self.config, key) for key in pending})
        running = self.scheduler.running
        if running:
            self.scheduler.shutdown(wait=False)
        old = {watcher.source.name: watcher for watcher in self.watchers}
        with self._passes_lock:
            # a predecessor a former reload left behind stays the one to take over from
            old = {name: self._predecessors.get(name, watcher) for name, watcher in old.items()}
            self._predecessors.clear()
            busy = {name for name, watcher in old.items() if id(watcher) in self._running}
            self._retired += [w for w in self.watchers if w not in self._retired]
            self._retired += [w for w in old.values() if w not in self._retired]
            self._replaced.update(self._retired)
        alerting_changed = new_config.alerting != self.config.alerting
        self.config = new_config
        self.judge = Judge(new_config)
        from alerts.pipeline import AlertPipeline
        if alerting_changed and isinstance(self.alerts, AlertPipeline):    # not a test's stand-in
            self.alerts.stop()
            self.alerts = AlertPipeline(new_config, self.metrics, self.clock, self.db_path)
            if running:
                self.alerts.start()
        self.watchers = self._build_watchers(new_config)
        for watcher in self.watchers:
            previous = old.get(watcher.source.name)
            if previous is not None and watcher.source.name in busy:
                with self._passes_lock:
                    self._predecessors[watcher.source.name] = previous     # _run_pass takes over later
            elif previous is not None:
                # the states in memory are at least as new as the store's (it may be failing)
                watcher.states.update({region: self.judge.restore(watcher.source.name, region, state.to_json())
                                       for region, state in previous.states.items()})
        for name in set(old) - {s.name for s in new_config.sources}:
            if old[name].source.race is None:
                old[name].close()    # a pass in flight is abandoned: the source is gone
            self._forget_source(name)
        self._close_retired()
        self.scheduler = self._new_scheduler()
        if running:
            self._schedule()
        log.info("config.reloaded", path=new_config.path, sources=[w.source.name for w in self.watchers],
                 added=sorted({s.name for s in new_config.sources} - set(old)),
                 removed=sorted(set(old) - {s.name for s in new_config.sources}),
                 alerting_changed=alerting_changed)

    def _expand(self, config: Config) -> Config:
        """Election definitions -> one source per race, discovered from KPU's documents (or
        the last discovery saved in the state database when KPU cannot be read now)."""
        if not any(source.election for source in config.sources):
            return config
        cache = races.RaceCache(self.db_path)
        try:
            expanded, self.races = races.expand(config, cache=cache)
        finally:
            cache.close()
        return expanded

    def _build_watchers(self, config: Config) -> list[SourceWatcher]:
        """The one place watchers are made (start-up and reload): one per source, sources of
        one host sharing its rate limit, the races of one election one pool of fetch threads
        (545 races must not mean 545 x concurrency threads). A shard keeps the regent and
        mayor races whose kab/kota it owns, whole."""
        limits = HostLimits(config.sources)
        shared: dict[str, tuple[ThreadPoolExecutor, Fetcher]] = {}     # election -> its races' pool, fetcher
        watchers = []
        for source in config.sources:
            if races.outside_shard(source, self.shard):
                continue
            pool = fetcher = None
            if source.race is not None:
                if source.election not in shared:
                    # the races of one definition differ only in name, URL and region: one
                    # connection pool and one set of threads serve them all
                    shared[source.election] = (
                        ThreadPoolExecutor(max_workers=source.concurrency, thread_name_prefix=f"fetch-{source.election}"),
                        Fetcher(source, self.stop_event, limits.for_source(source)))
                pool, fetcher = shared[source.election]
            watchers.append(SourceWatcher(source, self.judge, self.metrics, self.clock, self.store,
                                          self._handle_events, self.recorder, self.stop_event, self.shard,
                                          limits.for_source(source), pool=pool, fetcher=fetcher))
        return watchers

    def _jobs(self) -> dict[str, list[SourceWatcher]]:
        """One scheduler job per source, but one per election for its races: they share the
        host's rate limit, so running them side by side would only add threads; in turn,
        each race's pass is as fast as the bucket allows."""
        jobs: dict[str, list[SourceWatcher]] = {}
        for watcher in self.watchers:
            source = watcher.source
            jobs.setdefault(source.election if source.race is not None else source.name, []).append(watcher)
        return jobs

    def _run_passes(self, watchers: list[SourceWatcher]) -> None:
        for watcher in watchers:
            if self.stop_event.is_set():
                return
            self._run_pass(watcher)

    def _run_pass(self, watcher: SourceWatcher) -> None:
        """One pass of `watcher`, after taking over from the watcher a reload replaced once
        that one's last pass has ended (until then this turn is skipped: the source is still
        being polled, by its predecessor)."""
        name = watcher.source.name
        with self._passes_lock:
            if watcher in self._replaced:
                return                   # replaced by a reload: the new job runs its successor
            previous = self._predecessors.get(name)
            if previous is not None:
                if id(previous) in self._running:
                    return
                del self._predecessors[name]
            self._running.add(id(watcher))
        try:
            if previous is not None:
                # the states in memory are at least as new as the store's (it may be failing)
                watcher.states.update({region: self.judge.restore(name, region, state.to_json())
                                       for region, state in previous.states.items()})
                self._close_retired()
            watcher.poll_once()
        finally:
            with self._passes_lock:
                self._running.discard(id(watcher))
                retired = any(w is watcher for w in self._retired)
            if retired:                  # the last pass of a replaced watcher has ended
                self._close_retired()

    def _close_retired(self) -> None:
        """Close the watchers reloads replaced, once none of them runs a pass."""
        with self._passes_lock:
            if any(id(watcher) in self._running for watcher in self._retired):
                return
            retired, self._retired = self._retired, []
        for watcher in retired:
            watcher.close()

    def _new_scheduler(self) -> BackgroundScheduler:
        """The one place the scheduler is made (start-up, reload, a failed reload's restart):
        a worker per watcher, so a slow source never delays another. A shut-down scheduler's
        pool cannot be started again, hence a new one each time."""
        return BackgroundScheduler(executors={"default": SchedulerPool(max_workers=len(self._jobs()) + 1)},
                                   timezone=timezone.utc)

    def _forget_source(self, name: str) -> None:
        """A removed source's series leave /metrics (a frozen `up 1` would say it is fine)."""
        from .metrics import METRICS

        for spec in METRICS:
            if "source" not in spec.labels:
                continue
            metric = getattr(self.metrics, spec.name)
            for family in metric.collect():
                stale = {tuple(sample.labels[label] for label in spec.labels) for sample in family.samples
                         if sample.labels.get("source") == name}
                for labels in stale:
                    metric.remove(*labels)

    def _check_clock(self) -> None:
        """Say once per step when the system clock stepped away from ours (SteadyClock)."""
        offset = getattr(self.clock, "offset", None)
        if offset is None:
            return
        seconds = offset()
        if abs(seconds - getattr(self, "_clock_offset_logged", 0.0)) > CLOCK_STEP_TOLERANCE:
            log.warning("clock.step", offset_seconds=round(seconds, 3),
                        action="not followed: detectors keep measuring on the monotonic clock until a restart")
            self._clock_offset_logged = seconds

    def stop(self, timeout: float = 5.0) -> None:
        """Stop polling (in-flight requests are abandoned at their next check), flush alerts,
        close the store. Bounded by `timeout` plus the alert pipeline's own bound."""
        self.stop_event.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        with self._passes_lock:
            retired = list(self._retired)
        for watcher in self.watchers + retired:
            watcher.close()         # requests in flight are cut: a stuck one cannot hold the exit
        self.alerts.stop(timeout)
        if self.http_server is not None:
            self.http_server.shutdown()
            self.http_server.server_close()
        if self.recorder is not None:
            self.recorder.close()
        self.store.close()
        self.state_lock.release()
        log.info("daemon.stopped")

    def run_forever(self) -> int:
        """Run until SIGTERM or SIGINT (the CLI's `countwatch run`); SIGHUP reloads the config."""
        done = threading.Event()
        hangup = threading.Event()

        def on_signal(signum, frame):
            log.info("daemon.signal", signal=signal.Signals(signum).name)
            (hangup if signum == signal.SIGHUP else done).set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        try:
            self.start()
            while not done.wait(0.5):
                if hangup.is_set():          # reloaded here, not in the handler
                    hangup.clear()
                    self.reload_from_file()
                self._check_clock()
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0

    def run_until(self, moment: datetime, poll_seconds: float = 0.05) -> None:
        """Run on a scenario clock until it reaches `moment` (demo, tests)."""
        self.start()
        while self.clock.now() < moment and not self.stop_event.is_set():
            self.stop_event.wait(poll_seconds)


