"""The pipeline's memory, written through to SQLite; a failing database never stops alerting.

The in-memory state is what the pipeline acts on; every change is also written, in one
transaction per step. When a write fails (locked past the busy timeout, read-only, disk or
page limit full) the error is logged and counted (countwatch_state_errors_total{operation}),
the pipeline goes on in memory, and every few seconds the write-through tries to catch the
database up: the statements it could not write (the record: decisions and finished sends),
then a full snapshot of the current state.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable

import structlog

from monitor.metrics import Metrics

from . import state
from .grouping import Incident
from .lifecycle import OpenAlert
from .outbox import OutboxRow
from .silences import Silence

log = structlog.get_logger("countwatch.alerts")

# Each restored row read as the pipeline will read it; a row that fails is quarantined.
RESTORE_CHECKS = {
    "open": lambda row: OpenAlert.from_json(json.loads(row["state"])),
    "incidents": lambda row: Incident.from_json(json.loads(row["state"])),
    "outbox": OutboxRow.from_db,
}
RESYNC_WALL_SECONDS = 5.0
BACKLOG_LIMIT = 20_000


class WriteThrough:
    def __init__(self, path: Path | str, uri: bool, metrics: Metrics, snapshot: Callable[[], list[state.Op]]):
        self.path, self.uri, self.metrics, self._snapshot = path, uri, metrics, snapshot
        self._lock = threading.RLock()
        self.db: sqlite3.Connection | None = None
        self.dirty = False
        self._backlog: deque[state.Op] = deque(maxlen=BACKLOG_LIMIT)
        self._next_resync = 0.0
        self._open()

    def _open(self) -> bool:
        try:
            self.db = state.connect(self.path, self.uri)
            return True
        except (sqlite3.Error, OSError) as exc:
            self.db = None
            self._failed("alerts.open", exc)
            return False

    def _failed(self, operation: str, exc: BaseException) -> None:
        self.metrics.state_errors.labels(operation=operation).inc()
        if not self.dirty:
            log.error("state.error", operation=operation, error=f"{type(exc).__name__}: {exc}",
                      consequence="alerting continues in memory; the database is caught up when it works again")
        self.dirty = True
        self._next_resync = time.monotonic() + RESYNC_WALL_SECONDS

    def load(self) -> dict | None:
        with self._lock:
            if self.db is None:
                return None
            try:
                return state.load(self.db, RESTORE_CHECKS, self.metrics)
            except sqlite3.Error as exc:
                self._failed("alerts.read", exc)
                return None

    def commit(self, ops: list[state.Op], operation: str) -> None:
        if not ops:
            return
        with self._lock:
            if self.dirty or self.db is None:
                self._backlog.extend(ops)
                self.dirty = True
                return
            try:
                state.write(self.db, ops)
            except sqlite3.Error as exc:
                self._backlog.extend(ops)
                self._failed(operation, exc)

    def resync_if_due(self, force: bool = False) -> None:
        with self._lock:
            if not self.dirty or (not force and time.monotonic() < self._next_resync):
                return
            if self.db is None and not self._open():
                return
            try:
                state.write(self.db, list(self._backlog) + self._snapshot())
            except sqlite3.Error as exc:
                self._failed("alerts.write", exc)
                return
            self._backlog.clear()
            self.dirty = False
            log.info("state.recovered", operation="alerts.write", detail="the database caught up with memory")

    def silences(self) -> list[Silence] | None:
        with self._lock:
            if self.db is None:
                return None
            try:
                return [Silence.from_row(row) for row in state.silence_rows(self.db, Silence.from_row, self.metrics)]
            except sqlite3.Error as exc:
                self._failed("alerts.read", exc)
                return None

    def records(self) -> dict[str, list[dict]]:
        with self._lock:
            if self.db is None:
                return {"outbox": [], "decisions": []}
            return {"outbox": state.outbox_rows(self.db), "decisions": state.decision_rows(self.db)}

    def close(self) -> None:
        with self._lock:
            if self.db is not None:
                try:
                    self.db.close()
                except sqlite3.Error:
                    pass
                self.db = None
