"""The durable outbox: every notification is a row before it is a request.

Rows leave a receiver's queue strictly in order (head of line): a notification that cannot be
sent yet holds back the ones behind it, so people read an incident's story in the order it
happened and a resolution never arrives before its alert. The row's `id` is the notification's
idempotency key. Status: pending -> inflight (the request is out) -> sent | failed | expired;
a row found inflight at start-up was interrupted mid-send and goes out again, marked as a
possible duplicate (the one window in which a crash can duplicate: docs/alerting.md).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.model import iso_utc, parse_iso

from . import state
from .notification import Notification

RETRY_WALL_FLOOR_SECONDS = 1.0   # never retry a receiver sooner than this in wall time


@dataclass
class OutboxRow:
    seq: int
    notification: Notification
    status: str = "pending"
    due_at: datetime | None = None
    attempts: int = 0
    last_error: str | None = None
    sent_at: datetime | None = None
    possible_duplicate: bool = False

    @property
    def id(self) -> str:
        return self.notification.id

    @property
    def receiver(self) -> str:
        return self.notification.receiver

    @property
    def created_at(self) -> datetime:
        return self.notification.created_at

    def op(self) -> state.Op:
        n = self.notification
        return state.put_outbox({
            "seq": self.seq, "id": n.id, "receiver": n.receiver, "incident": n.incident, "reason": n.reason,
            "status": self.status, "created_at": iso_utc(n.created_at), "due_at": iso_utc(self.due_at or n.created_at),
            "attempts": self.attempts, "last_error": self.last_error, "sent_at": iso_utc(self.sent_at),
            "possible_duplicate": int(self.possible_duplicate), "notification": state.dumps(n.to_json())})

    @classmethod
    def from_db(cls, row) -> "OutboxRow":
        interrupted = row["status"] == "inflight"
        return cls(seq=row["seq"], notification=Notification.from_json(_loads(row["notification"])),
                   status="pending", due_at=parse_iso(row["due_at"]), attempts=row["attempts"],
                   last_error=row["last_error"] if not interrupted else "interrupted while sending",
                   possible_duplicate=bool(row["possible_duplicate"]) or interrupted)


def _loads(text: str):
    return json.loads(text)


class Outbox:
    """Pending rows per receiver, in order. The database is written by the pipeline (in the
    same transaction as the state that caused the row); this class is the in-memory queue."""

    def __init__(self, next_seq: int = 1):
        self.queues: dict[str, list[OutboxRow]] = {}
        self._next_seq = next_seq

    def resume_after(self, seq: int) -> None:
        """Number new rows after every row the database holds, finished ones included."""
        self._next_seq = max(self._next_seq, seq + 1)

    def new_row(self, notification: Notification) -> OutboxRow:
        row = OutboxRow(seq=self._next_seq, notification=notification, due_at=notification.created_at)
        self._next_seq += 1
        self.queues.setdefault(notification.receiver, []).append(row)
        return row

    def restore(self, row: OutboxRow) -> None:
        self.queues.setdefault(row.receiver, []).append(row)
        self._next_seq = max(self._next_seq, row.seq + 1)

    def head(self, receiver: str) -> OutboxRow | None:
        queue = self.queues.get(receiver)
        return queue[0] if queue else None

    def remove(self, row: OutboxRow) -> None:
        self.queues[row.receiver].remove(row)

    def pending(self) -> list[OutboxRow]:
        return [row for queue in self.queues.values() for row in queue]

    def oldest_age(self, now: datetime) -> float:
        rows = self.pending()
        return max(0.0, (now - min(r.created_at for r in rows)).total_seconds()) if rows else 0.0

    def export(self, metrics, now: datetime) -> None:
        """countwatch_outbox_pending and countwatch_outbox_oldest_pending_age_seconds."""
        metrics.outbox_pending.set(len(self.pending()))
        metrics.outbox_oldest_pending_age_seconds.set(self.oldest_age(now))


def backoff(attempts: int, initial: float, maximum: float, speed: float, retry_after: float | None) -> timedelta:
    """Clock time until the next attempt. Exponential (initial, 2x, 4x, ... capped), or the
    receiver's Retry-After, which is wall time on its side; both at least a wall-clock floor, so
    an accelerated scenario clock never hammers a real receiver."""
    if retry_after is not None:
        wall = max(retry_after, RETRY_WALL_FLOOR_SECONDS)
        return timedelta(seconds=wall * speed)
    seconds = min(maximum, initial * (2 ** max(0, attempts - 1)))
    return timedelta(seconds=max(seconds, RETRY_WALL_FLOOR_SECONDS * speed))
