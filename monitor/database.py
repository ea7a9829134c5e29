"""The one way countwatch opens its SQLite state database (countwatch.db under state_dir):
monitor.store's tables and alerts.state's tables live in the same file and want the same
settings."""
from __future__ import annotations

import sqlite3
from pathlib import Path


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
