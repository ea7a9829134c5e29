"""The daemon: one APScheduler job per source, the metrics endpoint, the state store and the
alert pipeline, started and stopped together.

Scheduling: an interval job per source with jitter, max_instances=1 (a slow pass is never
overlapped by the next), coalesce (missed runs collapse into one) and a misfire grace; each
source has its own worker thread, so a slow source never delays another. On a scenario
clock the wall-time interval is the configured interval divided by the clock's speed.
"""
from __future__ import annotations

import signal
import threading
from datetime import datetime, timezone
from pathlib import Path

import structlog
from apscheduler.executors.pool import ThreadPoolExecutor as SchedulerPool
from apscheduler.schedulers.background import BackgroundScheduler

from . import __version__
from .clock import Clock, WallClock
from .config import Config
from .detectors import Judge
from .metrics import Metrics, metrics_app, serve_metrics
from .model import Event
from .poll import SourceWatcher
from .recording import RecordingWriter
from .store import StateStore

log = structlog.get_logger("countwatch.daemon")


class Daemon:
    def __init__(self, config: Config, clock: Clock | None = None, metrics: Metrics | None = None,
                 record_path: str | Path | None = None, serve_http: bool = True, alerts=None):
        self.config = config
        self.clock = clock or WallClock()
        self.metrics = metrics or Metrics()
        self.stop_event = threading.Event()
        self.serve_http = serve_http
        self.http_server = None
        self.events: list[Event] = []          # every event of this run (demo summary, tests)
        self._events_lock = threading.Lock()
        config.state_dir.mkdir(parents=True, exist_ok=True)
        self.db_path = config.state_dir / "countwatch.db"
        self.store = StateStore(self.db_path, self.metrics)
        self.judge = Judge(config)
        self.recorder = RecordingWriter(record_path) if record_path else None
        if alerts is None:
            from alerts.pipeline import AlertPipeline
            alerts = AlertPipeline(config, self.metrics, self.clock, self.db_path)
        self.alerts = alerts
        self.watchers = [
            SourceWatcher(source, self.judge, self.metrics, self.clock, self.store, self._handle_events,
                          self.recorder, self.stop_event)
            for source in config.sources
        ]
        self.scheduler = BackgroundScheduler(
            executors={"default": SchedulerPool(max_workers=len(self.watchers) + 1)},
            timezone=timezone.utc,
        )
        self.metrics.build_info.labels(version=__version__, instance=config.instance).set(1)

    def _handle_events(self, events: list[Event]) -> None:
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
        first_run = datetime.now(timezone.utc)
        for watcher in self.watchers:
            source = watcher.source
            wall_interval = source.interval / self.clock.speed
            self.scheduler.add_job(
                watcher.poll_once, "interval", seconds=wall_interval, id=f"poll:{source.name}",
                name=f"poll {source.name}", jitter=(source.jitter / self.clock.speed) or None,
                max_instances=1, coalesce=True, misfire_grace_time=max(1, int(wall_interval)),
                next_run_time=first_run,
            )
        self.scheduler.start()
        log.info("daemon.started", sources=[w.source.name for w in self.watchers],
                 metrics=f"{'https' if self.config.metrics_tls else 'http'}://{self.config.metrics_listen.rpartition(':')[0]}:{self.metrics_port}/metrics"
                 if self.http_server else None, state_dir=str(self.config.state_dir), speed=self.clock.speed)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop polling (in-flight requests are abandoned at their next check), flush alerts,
        close the store. Bounded by `timeout` plus the alert pipeline's own bound."""
        self.stop_event.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        for watcher in self.watchers:
            watcher.close()
        self.alerts.stop(timeout)
        if self.http_server is not None:
            self.http_server.shutdown()
            self.http_server.server_close()
        if self.recorder is not None:
            self.recorder.close()
        self.store.close()
        log.info("daemon.stopped")

    def run_forever(self) -> int:
        """Run until SIGTERM or SIGINT (the CLI's `countwatch run`)."""
        done = threading.Event()

        def on_signal(signum, frame):
            log.info("daemon.signal", signal=signal.Signals(signum).name)
            done.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.start()
            while not done.wait(0.5):
                pass
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


