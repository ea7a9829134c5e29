"""State that survives a restart: per-series detector state and the history of changed
snapshots, in an embedded SQLite database (WAL) under the state directory.

The store never stops detection: when the database is locked, read-only or full, the error
is logged and counted (countwatch_state_errors_total) and the daemon goes on in memory; the
next successful write catches the state up.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterator, Mapping

import structlog

from .database import connect, quarantine
from .model import Poll, Snapshot, iso_utc
from .recording import poll_to_record, record_to_poll

log = structlog.get_logger("countwatch.store")

SCHEMA = """
CREATE TABLE IF NOT EXISTS series_state (
    source TEXT NOT NULL,
    region TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (source, region)
);
CREATE TABLE IF NOT EXISTS snapshots (
    source TEXT NOT NULL,
    region TEXT NOT NULL,
    at TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS snapshots_series ON snapshots (source, region, at);
CREATE TABLE IF NOT EXISTS child_tables (
    source TEXT NOT NULL,
    region TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    rows TEXT NOT NULL,
    PRIMARY KEY (source, region)
);
"""


def state_text(blob: dict) -> str:
    """A series' state blob as the series_state table keeps it."""
    return json.dumps(blob, separators=(",", ":"))


HISTORY_MAX_ROWS = 5_000_000        # snapshot rows kept at most ([daemon] history_max_rows)
PRUNE_EVERY = timedelta(hours=1)


class StateStore:
    """Series state and snapshot history. One connection shared by the source jobs behind a
    lock: writes are small and SQLite serialises writers anyway."""

    def __init__(self, path: Path | str, metrics=None, history_retention: timedelta = timedelta(days=14),
                 uri: bool = False, history_max_rows: int = HISTORY_MAX_ROWS):
        self.path = path
        self.metrics = metrics
        self.history_retention = history_retention
        self.history_max_rows = history_max_rows
        self._pruned_at: datetime | None = None
        self._inserted = 0                 # snapshot rows written since the last prune
        self._rows: int | None = None      # snapshot rows in the table (counted at the first prune)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        # States handed to save_states and not written (a write failed), per source: region ->
        # JSON text. A write that works goes straight from the caller's mapping, with no copy
        # of it and no key or value made per series: a cold pass of a national tree hands 91,561.
        self._memory: dict[str, dict[str, Any]] = {}
        self._tables: dict[tuple[str, str], dict] = {}   # parents' child tables not yet written
        if not uri:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = connect(path, uri=uri)
            self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            self._failed("open", exc)

    def _failed(self, operation: str, exc: Exception) -> None:
        log.error("state.error", operation=operation, error=f"{type(exc).__name__}: {exc}",
                  consequence="detection continues in memory; state is written once the database works again")
        if self.metrics is not None:
            self.metrics.state_errors.labels(operation=operation).inc()

    @property
    def healthy(self) -> bool:
        return self._db is not None and not any(self._memory.values())

    def load_states(self, source: str) -> dict[str, dict]:
        """region -> state blob, for every series of a source."""
        return self._load("series_state", "state", source, _check_state)

    def load_tables(self, source: str) -> dict[str, dict[str, int]]:
        """parent region -> {child code: fingerprint of its row}, as the last pass saw them."""
        return self._load("child_tables", "rows", source, _check_table)

    def _load(self, table: str, column: str, source: str, check) -> dict[str, Any]:
        """region -> its JSON column, for one source; {} (counted, logged) when the db fails.
        A row that is not JSON or not of the right shape is quarantined: its series starts fresh."""
        if self._db is None:
            return {}
        try:
            with self._lock:
                rows = self._db.execute(f"SELECT region, {column} FROM {table} WHERE source = ?", (source,)).fetchall()
        except sqlite3.Error as exc:
            self._failed("read", exc)
            return {}
        out = {}
        for region, text in rows:
            try:
                value = json.loads(text)
                check(value)
            except (ValueError, TypeError, RecursionError) as exc:
                self._quarantine(table, source, region, text, exc)
                continue
            out[region] = value
        return out

    def _state_rows(self, stamp: str, source: str, states: Mapping[str, Any]) -> Iterator[tuple[str, str, str, str]]:
        """The rows of the states not written before (those of `source` that this pass
        brings again are its), then this pass's."""
        for kept, blobs in self._memory.items():
            for region, blob in blobs.items():
                if kept == source and region in states:
                    continue
                text = self._text(kept, region, blob)
                if text is not None:
                    yield kept, region, stamp, text
        for region, blob in states.items():
            text = self._text(source, region, blob)
            if text is not None:
                yield source, region, stamp, text

    def _keep(self, source: str, states: Mapping[str, Any]) -> None:
        """States not written stay in memory for the next write (a copy of the pass's
        mapping, made only then: the states are written straight from it when the db works)."""
        blobs = self._memory.get(source)
        if blobs:
            blobs.update(states)
        elif states:
            self._memory[source] = dict(states)

    def _text(self, source: str, region: str, blob) -> str | None:
        if type(blob) is str:
            return blob
        try:
            if type(blob) is dict:
                return state_text(blob)
            make = getattr(blob, "to_json", blob)      # a SeriesState, or what makes the blob
            return state_text(make())
        except Exception:  # noqa: BLE001 - a state that cannot be serialised is a bug, not a reason to stop
            if self.metrics is not None:
                self.metrics.state_errors.labels(operation="serialize").inc()
            log.exception("state.error", operation="serialize", source=source, region=region,
                          consequence="this series' state is not saved this pass")
            return None

    def _settle(self) -> None:
        """States not written keep their JSON text (not what makes it: the series moves on)."""
        for source, blobs in self._memory.items():
            for region, blob in list(blobs.items()):
                if type(blob) is not str:
                    text = self._text(source, region, blob)
                    if text is None:
                        del blobs[region]
                    else:
                        blobs[region] = text

    def forget(self, source: str, regions: list[str]) -> None:
        """Series that are gone (left their parents' tables): their state and child table rows
        go too, and any of them not yet written. History rows stay, for the retention."""
        if not regions:
            return
        with self._lock:
            blobs = self._memory.get(source, {})
            for region in regions:
                blobs.pop(region, None)
                self._tables.pop((source, region), None)
            if self._db is None:
                return
            try:
                self._db.execute("BEGIN")
                for table in ("series_state", "child_tables"):
                    self._db.executemany(f"DELETE FROM {table} WHERE source = ? AND region = ?",
                                         [(source, region) for region in regions])
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                try:
                    self._db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                self._failed("forget", exc)

    def quarantine_state(self, source: str, region: str, blob: Any, error: BaseException) -> None:
        """A state that read as JSON but could not be restored: moved aside, the series starts fresh."""
        self._quarantine("series_state", source, region, json.dumps(blob, default=str), error)

    def _quarantine(self, table: str, source: str, region: str, text: Any, error: BaseException) -> None:
        with self._lock:
            quarantine(self._db, table, {"source": source, "region": region},
                       {"source": source, "region": region, "value": text}, error, self.metrics,
                       consequence="the series starts fresh; everything else goes on")

    def save_states(self, source: str, states: Mapping[str, Any], at: datetime,
                    snapshots: list[Snapshot] = (), tables: Mapping[str, Any] | None = None) -> bool:
        """Write the states of one pass (the changed snapshots, the parents' tables that
        changed) in one transaction. On failure states and tables are kept in memory (as JSON
        text) and retried with the next pass. A state is its blob, its JSON text, what makes
        the blob, or an object whose to_json() does (a pass hands its SeriesStates): made and
        encoded one at a time as the row is written, so that a cold pass's 91,561 blobs never
        live at once (as dicts they were ~2 KB a series at the peak, as text ~0.6 KB). One that
        cannot be made is counted (state_errors_total{operation="serialize"}) and left out; the
        rest are written."""
        with self._lock:
            self._tables.update({(source, region): table for region, table in (tables or {}).items()})
            if self._db is None:
                self._keep(source, states)
                self._settle()
                return False
            stamp = iso_utc(at)
            try:
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT INTO series_state (source, region, updated_at, state) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (source, region) DO UPDATE SET updated_at = excluded.updated_at, state = excluded.state",
                    self._state_rows(stamp, source, states))
                self._db.executemany(
                    "INSERT INTO snapshots (source, region, at, record) VALUES (?, ?, ?, ?)",
                    [(snap.source, snap.region, iso_utc(snap.at),
                      json.dumps(poll_to_record(Poll(snap.source, snap.region, snap.at, "ok", snap)),
                                 separators=(",", ":")))
                     for snap in snapshots])
                self._db.executemany(
                    "INSERT INTO child_tables (source, region, updated_at, rows) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (source, region) DO UPDATE SET updated_at = excluded.updated_at, rows = excluded.rows",
                    [(s, r, stamp, json.dumps(dict(table.items()), separators=(",", ":")))
                     for (s, r), table in self._tables.items()])
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                try:
                    self._db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                self._failed("write", exc)
                self._keep(source, states)
                self._settle()
                return False
            self._memory.clear()
            self._tables.clear()
            self._inserted += len(snapshots)
            if self._rows is not None:
                self._rows += len(snapshots)
            if (self._pruned_at is None or at - self._pruned_at >= PRUNE_EVERY
                    or self._inserted >= max(1, self.history_max_rows // 10)):
                self._prune(at)
            return True

    def prune(self, now: datetime) -> None:
        """Apply the history's retention now (save_states does it by itself: at its first
        write, then every PRUNE_EVERY of its clock or a tenth of history_max_rows written)."""
        with self._lock:
            self._prune(now)

    def _prune(self, now: datetime) -> None:
        """Snapshot rows older than history_retention go, then the oldest beyond
        history_max_rows (a source whose regions change every poll writes rows faster than
        any retention in time removes them). Freed pages are reused: the file stops growing."""
        if self._db is None:
            return
        cutoff = iso_utc(now - self.history_retention)
        try:
            old = self._db.execute("DELETE FROM snapshots WHERE at < ?", (cutoff,)).rowcount
            if self._rows is None:
                self._rows = self._db.execute("SELECT COUNT(*) FROM snapshots").fetchone()[0]
            else:
                self._rows -= old
            excess = max(0, self._rows - self.history_max_rows)
            if excess:
                self._db.execute("DELETE FROM snapshots WHERE rowid IN "
                                 "(SELECT rowid FROM snapshots ORDER BY rowid LIMIT ?)", (excess,))
                self._rows -= excess
        except sqlite3.Error as exc:
            self._rows = None
            self._failed("prune", exc)
            return
        self._pruned_at, self._inserted = now, 0
        if old or excess:
            log.info("state.pruned", table="snapshots", older_than=cutoff, removed_old=old, removed_excess=excess,
                     kept=self._rows)

    def history(self, source: str, region: str) -> Iterator[Poll]:
        """The stored changed snapshots of one series, oldest first (as polls)."""
        if self._db is None:
            return iter(())
        with self._lock:
            rows = self._db.execute("SELECT rowid, record FROM snapshots WHERE source = ? AND region = ? ORDER BY at",
                                    (source, region)).fetchall()
        polls = []
        for rowid, record in rows:
            try:
                polls.append(record_to_poll(json.loads(record)))
            except (ValueError, TypeError, RecursionError) as exc:
                with self._lock:
                    quarantine(self._db, "snapshots", {"rowid": rowid}, {"source": source, "region": region,
                               "record": record}, exc, self.metrics, consequence="left out of the history")
        return iter(polls)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path), "open": self._db is not None,
                "unsaved_series": sum(len(blobs) for blobs in self._memory.values())}


def _check_state(value: Any) -> None:
    if not isinstance(value, dict):
        raise ValueError(f"a series state is a JSON object, not {type(value).__name__}")


def _check_table(value: Any) -> None:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, int) for k, v in value.items()):
        raise ValueError("a child table maps child codes to integer fingerprints")
