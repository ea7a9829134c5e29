"""The one way countwatch opens its SQLite state database (countwatch.db under state_dir):
monitor.store's tables and alerts.state's tables live in the same file and want the same
settings."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Mapping

import structlog

log = structlog.get_logger("countwatch.state")


def connect(path: Path | str, uri: bool = False, rows: type | None = None) -> sqlite3.Connection:
    """A connection with the settings every countwatch table wants: WAL (readers never block
    the writer), a busy timeout instead of instant 'database is locked', NORMAL sync (WAL
    keeps it crash-safe; at worst the last transaction is lost on power failure), autocommit
    mode with explicit transactions. `rows` is the row factory (sqlite3.Row for named columns)."""
    connection = sqlite3.connect(str(path), timeout=5.0, check_same_thread=False, uri=uri,
                                 isolation_level=None)
    if rows is not None:
        connection.row_factory = rows
    connection.execute("PRAGMA busy_timeout = 5000")
    try:
        connection.execute("PRAGMA journal_mode = WAL")
    except sqlite3.OperationalError:
        pass  # a read-only database keeps its journal mode; writes will fail and be counted
    connection.execute("PRAGMA synchronous = NORMAL")
    return connection


# Rows that could not be read (bad JSON, a wrong shape, a bad date) are moved here rather than
# stopping the daemon: one malformed row used to give exit 1 at start-up (issue #14). Kept for
# whoever wants to see what was there; nothing reads them back.
QUARANTINE_SCHEMA = """
CREATE TABLE IF NOT EXISTS state_quarantine (
    at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    table_name TEXT NOT NULL, row_key TEXT NOT NULL, row TEXT NOT NULL, error TEXT NOT NULL);
"""


def quarantine(db: sqlite3.Connection | None, table: str, key: Mapping[str, Any], row: Mapping[str, Any],
               error: BaseException | str, metrics=None, consequence: str = "") -> bool:
    """Move one unreadable row of `table` (found by the columns of `key`) to state_quarantine,
    in one transaction; log `state.quarantined` and count it either way. False when the move
    failed (the database is read-only or full): the row is then skipped in memory only."""
    reason = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    reason = reason[:500]
    moved = False
    if db is not None:
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(QUARANTINE_SCHEMA)
                db.execute("INSERT INTO state_quarantine (table_name, row_key, row, error) VALUES (?, ?, ?, ?)",
                           (table, json.dumps(dict(key), default=str), json.dumps(dict(row), default=str,
                                                                                 ensure_ascii=False), reason))
                db.execute(f"DELETE FROM {table} WHERE " + " AND ".join(f"{column} = ?" for column in key),
                           tuple(key.values()))
                db.execute("COMMIT")
                moved = True
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            reason += f" (not moved: {type(exc).__name__}: {exc})"
    log.error("state.quarantined", table=table, key={k: str(v) for k, v in key.items()}, error=reason,
              moved=moved, consequence=consequence or "the row is ignored; everything else goes on")
    if metrics is not None:
        metrics.state_quarantined.labels(table=table).inc()
    return moved
