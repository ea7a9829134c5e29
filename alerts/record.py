"""The last stage, the record: every decision of the pipeline, for every receiver and alert,
with its named reason (`notification.queued|grouped|silenced|skipped|sent|failed`).

A decision is a log line (the incident record people read), a row of alert_decisions (what
`countwatch timeline` and the tests read back), and for `silenced` a count in
countwatch_notifications_total. Debug-level decisions (an event no route wanted, a resolution
of an alert never open) are logged only. The row goes into the caller's `ops`, so it is
written in the same transaction as the state that caused it.
"""
from __future__ import annotations

from datetime import datetime

import structlog

from monitor.metrics import Metrics
from monitor.model import iso_utc

from . import state

log = structlog.get_logger("countwatch.alerts")


class DecisionRecord:
    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def decide(self, ops: list[state.Op], now: datetime, receiver: str, key: str, action: str, reason: str,
               incident: str | None, notification: str | None, detail: str | None, level: str = "info",
               **extra) -> None:
        record = {"at": iso_utc(now), "receiver": receiver, "alert_key": key, "action": action, "reason": reason,
                  "incident": incident, "notification": notification, "detail": detail}
        if level != "debug":
            ops.append(state.put_decision(**record))
        if action == "silenced":
            self.metrics.notifications.labels(receiver=receiver, result="silenced").inc()
        fields = {"receiver": receiver, "alert_key": key, "reason": reason, "incident": incident,
                  "notification": notification, "detail": detail, **extra}
        getattr(log, level)(f"notification.{action}", **{k: v for k, v in fields.items() if v is not None})
