"""The deliver stage: the head of each receiver's outbox queue goes to its notifier, and the
answer decides the row's fate: sent; retried later (exponential backoff, or the receiver's
Retry-After in wall time); failed alone (a notification the receiver refuses); or the
receiver disabled (its credentials or destination are gone), loudly.

It shares the outbox with the stage that fills it, under the pipeline's state lock, which it
holds for the bookkeeping and never during a request. At most one request per receiver is in
flight (the send lock), which is what bounds a crash to at most one duplicate per receiver
(docs/alerting.md). Threads: the Slack message that heads each incident (per receiver), kept
here because the answer to a send is where it comes from.
"""
from __future__ import annotations

import math
import threading
from datetime import datetime
from typing import Mapping

import structlog

from monitor.clock import Clock
from monitor.metrics import Metrics
from monitor.model import iso_utc

from . import state
from .notification import NotifyError, thread_slot
from .notifiers import Notifier
from .notifiers.http_errors import RETRY_AFTER_MAX_SECONDS
from .outbox import Outbox, OutboxRow, backoff
from .record import DecisionRecord
from .writethrough import WriteThrough

log = structlog.get_logger("countwatch.alerts")


class Delivery:
    def __init__(self, notifiers: Mapping[str, Notifier], outbox: Outbox, state_lock: threading.RLock,
                 writethrough: WriteThrough, record: DecisionRecord, metrics: Metrics, clock: Clock, *,
                 retry_initial: float, retry_max: float, give_up_after: float | None):
        self.notifiers = notifiers
        self.outbox = outbox
        self._lock = state_lock
        self.writethrough = writethrough
        self.record = record
        self.metrics = metrics
        self.clock = clock
        self.retry_initial, self.retry_max, self.give_up_after = retry_initial, retry_max, give_up_after
        self._send_locks = {name: threading.Lock() for name in notifiers}
        self.threads: dict[str, dict[str, str]] = {}      # thread slot -> the incident's first Slack message
        self.disabled: dict[str, str] = {}                # receiver -> the error that disabled it

    def deliver_due(self, receiver: str) -> None:
        """Send what is due to one receiver, in order, until it has to wait."""
        while self.deliver_next(receiver)[0] == "acted":
            pass

    def deliver_next(self, receiver: str) -> tuple[str, datetime | None]:
        """Try the head of one receiver's queue. -> ("acted", None) when a row was sent, failed,
        expired or rescheduled; ("wait", due) / ("idle", None) / ("busy", None) otherwise."""
        send_lock = self._send_locks[receiver]
        if not send_lock.acquire(blocking=False):
            return "busy", None
        try:
            with self._lock:
                if receiver in self.disabled:
                    return "idle", None
                row = self.outbox.head(receiver)
                if row is None:
                    return "idle", None
                now = self.clock.now()
                try:
                    give_up = self.give_up_after
                    if give_up is not None and (now - row.created_at).total_seconds() >= give_up:
                        self._finish(row, now, "expired", error=f"unsent after {give_up:g}s "
                                                                f"({row.attempts} attempt(s); last error: {row.last_error})")
                        return "acted", None
                    if row.due_at is not None and row.due_at > now:
                        return "wait", row.due_at
                    row.status, row.attempts = "inflight", row.attempts + 1
                    self.writethrough.commit([row.op()], "alerts.write")
                    notification = row.notification.with_thread(self.threads.get(thread_slot(row.notification)),
                                                                 row.possible_duplicate)
                except Exception as exc:  # noqa: BLE001 - see _hold: not sent, and not due again at once
                    self._hold(row, exc, now, sent=False)
                    return "wait", row.due_at
            try:
                receipt, error = self.notifiers[receiver].notify(notification), None
            except NotifyError as exc:
                receipt, error = None, exc
            except Exception as exc:   # a notifier bug: class name only (messages may quote URLs)
                receipt, error = None, NotifyError(f"unexpected {type(exc).__name__} in notifier")
            with self._lock:
                now = self.clock.now()
                try:
                    if error is None:
                        self._sent(row, receipt, now)
                    elif error.disable_receiver:
                        self._disable(row, error, now)
                    elif error.permanent:
                        self._finish(row, now, "failed", error=error.message)
                    else:
                        self._retry(row, error, now)
                    self.outbox.export(self.metrics, now)
                except Exception as exc:  # noqa: BLE001 - see _hold
                    self._hold(row, exc, now, sent=error is None)
            return "acted", None
        finally:
            send_lock.release()

    def _sent(self, row: OutboxRow, receipt, now: datetime) -> None:
        ops = []
        n = row.notification
        if receipt and receipt.get("root") and receipt.get("ts"):
            self.threads[thread_slot(n)] = {"channel": receipt["channel"], "ts": receipt["ts"]}
            ops.append(state.put_thread(thread_slot(n), n.receiver, receipt["channel"], receipt["ts"]))
        self._finish(row, now, "sent", ops=ops)

    def _finish(self, row: OutboxRow, now: datetime, status: str, error: str | None = None, ops=None) -> None:
        row.status, row.last_error = status, error or row.last_error
        if status == "sent":
            row.sent_at = now
        self.outbox.remove(row)
        ops = list(ops or []) + [row.op()]
        n = row.notification
        action = "sent" if status == "sent" else "failed"
        self.record.decide(ops, now, n.receiver, n.alert_key, action, n.reason if status != "expired" else "expired",
                           n.incident, n.id, error, level="info" if status == "sent" else "error",
                           attempts=row.attempts, possible_duplicate=row.possible_duplicate or None)
        self.metrics.notifications.labels(receiver=n.receiver, result=status).inc()
        self.writethrough.commit(ops, "alerts.write")

    def _hold(self, row: OutboxRow, exc: Exception, now: datetime, sent: bool) -> None:
        """What was to happen after a send failed itself (a bug, a Retry-After beyond the
        calendar): the row must not stay due now, or the loop sends it again at once, over and
        over (issue 14: 69 POSTs in 33 s). A row that was sent leaves the queue; any other
        waits retry_max."""
        log.error("alerts.error", stage="delivery", receiver=row.receiver, notification=row.notification.id,
                  error=type(exc).__name__, sent=sent, action="dropped from the queue" if sent
                  else f"retried in {self.retry_max:g}s")
        if sent:
            try:
                self.outbox.remove(row)
            except ValueError:
                pass
            return
        row.status, row.attempts = "pending", max(row.attempts, 1)
        row.due_at = now + backoff(row.attempts, self.retry_max, self.retry_max, self.clock.speed, None)

    def _retry(self, row: OutboxRow, error: NotifyError, now: datetime) -> None:
        retry_after = error.retry_after
        if retry_after is not None:
            # whatever a notifier parsed, never beyond the documented maximum (nor negative)
            retry_after = min(max(0.0, float(retry_after)), RETRY_AFTER_MAX_SECONDS) \
                if math.isfinite(retry_after) else RETRY_AFTER_MAX_SECONDS
        delay = backoff(row.attempts, self.retry_initial, self.retry_max, self.clock.speed, retry_after)
        row.status, row.last_error, row.due_at = "pending", error.message, now + delay
        n = row.notification
        self.metrics.notifications.labels(receiver=n.receiver, result="retry").inc()
        log.warning("notification.retry", receiver=n.receiver, alert_key=n.alert_key, reason=n.reason,
                    notification=n.id, incident=n.incident, error=error.message, attempts=row.attempts,
                    retry_at=iso_utc(row.due_at), retry_after=retry_after)
        self.writethrough.commit([row.op()], "alerts.write")

    def _disable(self, row: OutboxRow, error: NotifyError, now: datetime) -> None:
        """A broken receiver (bad token, channel or webhook gone) is switched off, loudly; its
        notifications stay in the outbox for when the config is fixed and the daemon restarted."""
        n = row.notification
        self.disabled[n.receiver] = error.message
        row.status, row.last_error = "pending", error.message
        self.metrics.receiver_disabled.labels(receiver=n.receiver).set(1)
        self.metrics.notifications.labels(receiver=n.receiver, result="disabled").inc()
        log.error("receiver.disabled", receiver=n.receiver, error=error.message,
                  consequence="no more sends to this receiver until the config is fixed and countwatch restarted; "
                              "its notifications stay in the outbox")
        log.error("notification.failed", receiver=n.receiver, alert_key=n.alert_key, reason=n.reason,
                  notification=n.id, incident=n.incident, error=error.message, permanent=True)
        self.writethrough.commit([row.op()], "alerts.write")

