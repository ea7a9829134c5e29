"""The alerting tables in the state database (the daemon's countwatch.db; monitor.store owns
the other tables of the same file). Only SQL lives here; the pipeline decides what to write.

Tables (all prefixed `alert_`):
- alert_open       open alerts (rule/source/region) with their latest event;
- alert_incidents  open notification groups per receiver (id `incident@receiver`), with what each member was told;
- alert_threads    the Slack message that heads an incident (bot receivers);
- alert_outbox     every notification, written before it is sent; `status` pending | inflight |
                   sent | failed | expired; `id` is the idempotency key;
- alert_silences   run-time silences (`countwatch silence add`);
- alert_decisions  the record: one row per send or skip, with its reason.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from monitor import database

SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_open (
    key TEXT PRIMARY KEY, state TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alert_incidents (
    id TEXT PRIMARY KEY, receiver TEXT NOT NULL, state TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alert_threads (
    incident TEXT PRIMARY KEY, receiver TEXT NOT NULL, channel TEXT NOT NULL, ts TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alert_outbox (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, receiver TEXT NOT NULL, incident TEXT NOT NULL,
    reason TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL, due_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, sent_at TEXT, possible_duplicate INTEGER NOT NULL DEFAULT 0,
    notification TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS alert_outbox_status ON alert_outbox (status, receiver, seq);
CREATE TABLE IF NOT EXISTS alert_silences (
    id TEXT PRIMARY KEY, matchers TEXT NOT NULL, comment TEXT NOT NULL, starts_at TEXT, ends_at TEXT,
    created_by TEXT, created_at TEXT, expired_at TEXT);
CREATE TABLE IF NOT EXISTS alert_decisions (
    at TEXT NOT NULL, receiver TEXT NOT NULL, alert_key TEXT NOT NULL, action TEXT NOT NULL,
    reason TEXT NOT NULL, incident TEXT, notification TEXT, detail TEXT);
CREATE INDEX IF NOT EXISTS alert_decisions_at ON alert_decisions (at);
"""

Op = tuple[str, tuple]


def connect(path: Path | str, uri: bool = False) -> sqlite3.Connection:
    """The shared connection settings (monitor.database), named columns, and the alerting tables."""
    if not uri:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = database.connect(path, uri=uri, rows=sqlite3.Row)
    db.executescript(SCHEMA)
    return db


def write(db: sqlite3.Connection, ops: Iterable[Op]) -> None:
    """All of `ops` or none: a queued notification and the incident state that says it was
    queued must never disagree after a crash."""
    db.execute("BEGIN IMMEDIATE")
    try:
        for sql, params in ops:
            db.execute(sql, params)
        db.execute("COMMIT")
    except BaseException:
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        raise


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# --- statements the pipeline composes into transactions -----------------------------------

def put_open(key: str, state: dict, at: str) -> Op:
    return ("INSERT OR REPLACE INTO alert_open (key, state, updated_at) VALUES (?, ?, ?)", (key, dumps(state), at))


def delete_open(key: str) -> Op:
    return ("DELETE FROM alert_open WHERE key = ?", (key,))


def put_incident(incident_id: str, receiver: str, state: dict, at: str) -> Op:
    return ("INSERT OR REPLACE INTO alert_incidents (id, receiver, state, updated_at) VALUES (?, ?, ?, ?)",
            (incident_id, receiver, dumps(state), at))


def delete_incident(incident_id: str) -> Op:
    return ("DELETE FROM alert_incidents WHERE id = ?", (incident_id,))


def put_thread(incident: str, receiver: str, channel: str, ts: str) -> Op:
    return ("INSERT OR REPLACE INTO alert_threads (incident, receiver, channel, ts) VALUES (?, ?, ?, ?)",
            (incident, receiver, channel, ts))


def put_outbox(row: dict) -> Op:
    columns = ("seq", "id", "receiver", "incident", "reason", "status", "created_at", "due_at", "attempts",
               "last_error", "sent_at", "possible_duplicate", "notification")
    return (f"INSERT OR REPLACE INTO alert_outbox ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            tuple(row[c] for c in columns))


def put_decision(at: str, receiver: str, alert_key: str, action: str, reason: str, incident: str | None,
                 notification: str | None, detail: str | None) -> Op:
    return ("INSERT INTO alert_decisions (at, receiver, alert_key, action, reason, incident, notification, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (at, receiver, alert_key, action, reason, incident, notification, detail))


def prune(before: str) -> list[Op]:
    """Finished outbox rows and decisions older than the retention, and threads of finished incidents."""
    return [("DELETE FROM alert_outbox WHERE status IN ('sent', 'failed', 'expired') AND created_at < ?", (before,)),
            ("DELETE FROM alert_decisions WHERE at < ?", (before,)),
            ("DELETE FROM alert_threads WHERE incident NOT IN (SELECT id FROM alert_incidents) "
             "AND incident NOT IN (SELECT incident || '@' || receiver FROM alert_outbox WHERE status IN ('pending', 'inflight'))", ())]


# --- reads ---------------------------------------------------------------------------------

# what load() returns -> (table, the column that finds one row)
_LOADED = {"open": ("alert_open", "key"), "incidents": ("alert_incidents", "id"),
           "threads": ("alert_threads", "incident"), "outbox": ("alert_outbox", "seq")}
Check = Callable[[sqlite3.Row], object]


def load(db: sqlite3.Connection, checks: Mapping[str, Check] | None = None, metrics=None) -> dict[str, Any]:
    """The rows the pipeline restores. `checks` reads each row of a part ("open", "incidents",
    "outbox") as the pipeline will; a row it cannot read is quarantined (moved to
    state_quarantine, logged, counted) and left out, so one bad row never stops the daemon."""
    loaded: dict[str, Any] = {
        "open": db.execute("SELECT key, state FROM alert_open").fetchall(),
        "incidents": db.execute("SELECT id, receiver, state FROM alert_incidents").fetchall(),
        "threads": db.execute("SELECT incident, receiver, channel, ts FROM alert_threads").fetchall(),
        "outbox": db.execute("SELECT * FROM alert_outbox WHERE status IN ('pending', 'inflight') ORDER BY seq").fetchall(),
        "max_seq": db.execute("SELECT COALESCE(MAX(seq), 0) FROM alert_outbox").fetchone()[0],
    }
    for part, check in (checks or {}).items():
        table, column = _LOADED[part]
        loaded[part] = [row for row in loaded[part] if _readable(db, table, column, row, check, metrics)]
    return loaded


def _readable(db: sqlite3.Connection, table: str, column: str, row: sqlite3.Row, check: Check, metrics) -> bool:
    try:
        check(row)
        return True
    except Exception as exc:  # noqa: BLE001 - whatever a malformed row raises, it is one row
        consequence = {"alert_outbox": "this notification is not sent; everything else goes on",
                       "alert_silences": "this silence does not apply; everything else goes on"}.get(
            table, "the alert starts fresh; everything else goes on")
        database.quarantine(db, table, {column: row[column]}, dict(row), exc, metrics, consequence)
        return False


def silence_rows(db: sqlite3.Connection, check: Check | None = None, metrics=None,
                 move_aside: bool = True) -> list[dict[str, Any]]:
    """Run-time silences with their matchers read. A row whose matchers are not JSON, or that
    `check` cannot read, is left out: quarantined (`move_aside`) or only skipped (the CLI)."""
    def read(r: sqlite3.Row) -> dict[str, Any]:
        silence = {**dict(r), "matchers": json.loads(r["matchers"])}
        if check is not None:
            check(silence)
        return silence

    out = []
    for row in db.execute("SELECT * FROM alert_silences ORDER BY created_at, id").fetchall():
        if move_aside:
            if _readable(db, "alert_silences", "id", row, read, metrics):
                out.append(read(row))
            continue
        try:
            out.append(read(row))
        except Exception:  # noqa: BLE001 - an unreadable silence is not listed
            continue
    return out


def insert_silence(db: sqlite3.Connection, row: dict[str, Any]) -> None:
    write(db, [("INSERT INTO alert_silences (id, matchers, comment, starts_at, ends_at, created_by, created_at, "
                "expired_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (row["id"], dumps(row["matchers"]), row["comment"], row["starts_at"], row["ends_at"],
                 row["created_by"], row["created_at"], row["expired_at"]))])


def expire_silence(db: sqlite3.Connection, silence_id: str, at: str) -> bool:
    found = db.execute("SELECT expired_at FROM alert_silences WHERE id = ?", (silence_id,)).fetchone()
    if found is None:
        return False
    write(db, [("UPDATE alert_silences SET expired_at = ? WHERE id = ? AND expired_at IS NULL", (at, silence_id))])
    return True


def outbox_rows(db: sqlite3.Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in db.execute("SELECT * FROM alert_outbox ORDER BY seq").fetchall()]


def decision_rows(db: sqlite3.Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in db.execute("SELECT * FROM alert_decisions ORDER BY rowid").fetchall()]
