"""The alert pipeline: detector Events in, notifications out, through stages composed here in
this order, each an object given what it depends on (as Alertmanager composes its notify
stages):

    handle(events of one poll)
      -> lifecycle   Lifecycle (alerts/lifecycle.py): open / escalate / resolve; alert_active
      -> route       Router (alerts/routing.py): every matching route's receiver
      -> group       Grouper (alerts/grouping.py): the Incident per receiver and group;
                     group_wait / group_interval / repeat
      -> suppress    Suppressor (alerts/suppression.py): silences, inhibition rules (data)
         and dedup   Incident.plan: what each receiver was told and what is new
      -> outbox      Flusher (alerts/flush.py): one Notification per due incident, a row written
                     in the same transaction as the state that caused it
      -> deliver     Delivery (alerts/delivery.py): one worker per receiver, in order, backoff,
                     Retry-After, disable on permanent receiver errors -> notifier.notify()
      -> record      DecisionRecord (alerts/record.py): every send or skip with its reason

This module wires them, holds the state lock and runs the workers; it decides nothing itself
beyond which stage an event's transition goes to. Every decision is a log line
(`notification.queued|grouped|silenced|skipped|sent|retry|failed` with receiver, alert_key
and reason) and a row of alert_decisions. All times come from the injected clock; worker
sleeps are divided by clock.speed. When the database fails the pipeline logs, counts
countwatch_state_errors_total and carries on in memory (alerts/writethrough.py).
"""
from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import structlog

from monitor.clock import Clock
from monitor.config import Config
from monitor.metrics import Metrics
from monitor.model import Event, iso_utc

from . import state
from .delivery import Delivery
from .flush import Flusher
from .grouping import Grouper, Incident
from .lifecycle import ESCALATED, LOWERED, OBSERVED, RESOLVED, UNCHANGED, UNKNOWN_RESOLVED, Lifecycle, OpenAlert
from .notification import alert_key
from .notifiers import build_notifier, transport
from .outbox import Outbox, OutboxRow
from .record import DecisionRecord
from .routing import Router
from .suppression import Suppressor, inhibit_rules
from .writethrough import WriteThrough

log = structlog.get_logger("countwatch.alerts")

RESULTS = ("sent", "failed", "retry", "silenced", "grouped", "disabled", "expired")
RETENTION = timedelta(days=7)        # finished outbox rows and decisions kept for the record
MAX_WALL_SLEEP = 0.5                 # workers re-check at least this often (a ManualClock may move)


class AlertPipeline:
    def __init__(self, config: Config, metrics: Metrics, clock: Clock, db_path: Path | str, *, uri: bool = False):
        alerting = config.alerting
        if alerting is None:
            raise ValueError("the config was read without its alerting tables: read it with "
                             "monitor.cli.load_config or parse_config")
        self.config = config
        self.metrics = metrics
        self.clock = clock
        self.receivers = {r.name: r for r in alerting.receivers}
        self.notifiers = {name: build_notifier(r, clock) for name, r in self.receivers.items()}
        self._lock = threading.RLock()       # the state every stage shares; never held during a send
        self._wakes = {name: threading.Event() for name in [*self.receivers, "__timers__"]}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._last_prune: datetime | None = None
        for name in self.receivers:
            metrics.init_receiver(name, RESULTS)

        self.outbox = Outbox()
        self.record = DecisionRecord(metrics)
        self.writethrough = WriteThrough(db_path, uri, metrics, self._snapshot_ops)
        self.lifecycle = Lifecycle(metrics)
        self.router = Router(alerting.effective_routes())
        self.grouper = Grouper(self.receivers, {s.name: s.host for s in config.sources},
                               group_by=alerting.group_by, group_wait=alerting.group_wait,
                               group_interval=alerting.group_interval, repeat_interval=alerting.repeat_interval)
        self.suppressor = Suppressor(alerting.silences, inhibit_rules(alerting), self.lifecycle.open_events,
                                     self.writethrough.silences)
        self.flusher = Flusher(self.grouper, self.suppressor, self.outbox, self.record, metrics, config)
        self.delivery = Delivery(self.notifiers, self.outbox, self._lock, self.writethrough, self.record, metrics,
                                 clock, retry_initial=alerting.retry_initial, retry_max=alerting.retry_max,
                                 give_up_after=alerting.give_up_after)

        self._restore(self.writethrough.load())
        self.suppressor.refresh(force=True)
        self.outbox.export(metrics, clock.now())

    @property
    def incidents(self) -> dict[str, Incident]:
        return self.grouper.incidents

    # --- start-up -----------------------------------------------------------------------
    def _restore(self, loaded: dict | None) -> None:
        if not loaded:
            return
        self.lifecycle.restore(OpenAlert.from_json(json.loads(row["state"])) for row in loaded["open"])
        self.grouper.restore(Incident.from_json(json.loads(row["state"])) for row in loaded["incidents"])
        for row in loaded["threads"]:
            self.delivery.threads[row["incident"]] = {"channel": row["channel"], "ts": row["ts"]}
        self.outbox.resume_after(loaded["max_seq"])
        for db_row in loaded["outbox"]:
            row = OutboxRow.from_db(db_row)
            if row.receiver not in self.receivers:
                log.warning("notification.failed", receiver=row.receiver, alert_key=row.notification.alert_key,
                            reason=row.notification.reason, notification=row.id,
                            error="receiver no longer configured; left in the outbox")
                continue
            self.outbox.restore(row)
            if row.possible_duplicate:
                log.warning("notification.retry", receiver=row.receiver, alert_key=row.notification.alert_key,
                            reason=row.notification.reason, notification=row.id,
                            error="interrupted while sending; resent as a possible duplicate")
        if self.outbox.pending():
            log.info("alerts.restored", pending=len(self.outbox.pending()), open_alerts=len(self.lifecycle.book.open),
                     incidents=len(self.grouper.incidents))

    # --- events: lifecycle, route, group, then the due incidents to the outbox ---------------
    def handle(self, events: list[Event]) -> None:
        """The events of one poll. Never raises into the poll job."""
        if not events:
            return
        try:
            with self._lock:
                now = self.clock.now()
                self.suppressor.refresh()   # a `silence add` of a second ago counts
                ops: list[state.Op] = []
                touched: set[str] = set()
                for event in events:
                    touched.update(incident.slot for incident in self._apply(event, now, ops))
                self.flusher.flush_due(now, ops, touched)
                self.writethrough.commit(ops, "alerts.write")
                self.outbox.export(self.metrics, now)
        except Exception:
            log.error("alerts.error", stage="handle", exc_info=True)
            return
        self._wake_all()

    def _apply(self, event: Event, now: datetime, ops: list[state.Op]) -> list[Incident]:
        """One event through the lifecycle, then to the incidents it changes."""
        transition = self.lifecycle.apply(event, now, ops)
        if transition == UNKNOWN_RESOLVED:
            log.debug("notification.skipped", receiver="-", alert_key=alert_key(event), reason="resolved_but_not_open")
            return []
        if transition == RESOLVED:
            return self.grouper.update(event, "resolved", now, tell=True)
        if transition in (UNCHANGED, LOWERED):
            return self.grouper.update(event, "firing", now, tell=False)
        routed = self.router.route(event)
        if not routed:
            self.record.decide(ops, now, "-", alert_key(event), "skipped", "no_route", None, None,
                               f"severity {event.severity} matched no route", level="debug")
        status = "observed" if transition == OBSERVED else "firing"
        return [self.grouper.join(receiver, route, event, status, transition == ESCALATED, now)
                for receiver, route in routed]

    # --- timers, the database ------------------------------------------------------------------
    def _timer_pass(self, force: bool = False, refresh: bool = False) -> datetime | None:
        """Flush due incidents (all of them when forced), re-read silences, resync a failed
        database. -> the next clock time a timer falls due."""
        with self._lock:
            now = self.clock.now()
            self.suppressor.refresh(refresh)
            self.writethrough.resync_if_due()
            ops: list[state.Op] = []
            self.flusher.flush_due(now, ops, set(), force=force)
            if self._last_prune is None or now - self._last_prune > timedelta(hours=6):
                self._last_prune = now
                ops += state.prune(iso_utc(now - RETENTION))
            self.writethrough.commit(ops, "alerts.write")
            self.outbox.export(self.metrics, now)
            return self.grouper.next_wakeup()

    def _snapshot_ops(self) -> list[state.Op]:
        """Everything in memory as statements: how a database that failed is caught up."""
        now = iso_utc(self.clock.now())
        ops: list[state.Op] = [("DELETE FROM alert_open", ()), ("DELETE FROM alert_incidents", ())]
        ops += self.lifecycle.snapshot_ops(now)
        ops += [state.put_incident(i.slot, i.receiver, i.to_json(), now) for i in self.grouper.incidents.values()]
        ops += [state.put_thread(inc, "", t["channel"], t["ts"]) for inc, t in self.delivery.threads.items()]
        ops += [row.op() for row in self.outbox.pending()]
        return ops

    # --- public: the daemon's interface ------------------------------------------------------
    def tick(self) -> None:
        """One synchronous pass: timers, then every receiver's due notifications."""
        self._timer_pass(refresh=True)
        for receiver in self.receivers:
            self.delivery.deliver_due(receiver)

    def drain(self, timeout_seconds: float) -> bool:
        """Flush every pending group now and send what is queued; True when the outbox is empty
        (disabled receivers keep theirs: False)."""
        deadline = time.monotonic() + timeout_seconds
        self._timer_pass(force=True, refresh=True)
        while True:
            for receiver in self.receivers:
                self.delivery.deliver_due(receiver)
            with self._lock:
                pending = self.outbox.pending()
                if not pending:
                    return True
                if all(row.receiver in self.delivery.disabled for row in pending):
                    return False
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(0.02, max(0.0, deadline - time.monotonic())))

    def start(self) -> None:
        if self._threads:
            return
        self._stop.clear()
        self._threads = [threading.Thread(target=self._timer_loop, name="alerts-timers", daemon=True)]
        self._threads += [threading.Thread(target=self._delivery_loop, args=(name,), name=f"alerts-send-{name}",
                                           daemon=True) for name in self.receivers]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_seconds: float = 5) -> None:
        self._stop.set()
        self._wake_all()
        # a receiver stuck mid-exchange would hold each sender for its timeout: cut it (the
        # attempt fails and stays in the outbox, as any failed attempt does)
        transport.cut(self._threads)
        deadline = time.monotonic() + timeout_seconds
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = []
        self.writethrough.close()

    def records(self) -> dict[str, list[dict]]:
        """The outbox and decisions as stored (tests, `countwatch timeline`)."""
        return self.writethrough.records()

    # --- workers ----------------------------------------------------------------------------
    def _wake_all(self) -> None:
        for wake in self._wakes.values():
            wake.set()

    def _sleep_until(self, moment: datetime | None, wake: threading.Event) -> None:
        wall = MAX_WALL_SLEEP
        if moment is not None:
            wall = min(wall, max(0.01, (moment - self.clock.now()).total_seconds() / self.clock.speed))
        wake.wait(wall)
        wake.clear()

    def _timer_loop(self) -> None:
        wake = self._wakes["__timers__"]
        while not self._stop.is_set():
            try:
                next_at = self._timer_pass()
            except Exception:
                log.error("alerts.error", stage="timers", exc_info=True)
                next_at = None
            self._wake_senders()
            self._sleep_until(next_at, wake)

    def _wake_senders(self) -> None:
        for name in self.receivers:
            self._wakes[name].set()

    def _delivery_loop(self, receiver: str) -> None:
        wake = self._wakes[receiver]
        while not self._stop.is_set():
            try:
                outcome, due = self.delivery.deliver_next(receiver)
            except Exception:
                log.error("alerts.error", stage="delivery", receiver=receiver, exc_info=True)
                outcome, due = "idle", None
            if outcome != "acted":
                self._sleep_until(due, wake)
