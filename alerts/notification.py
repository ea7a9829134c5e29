"""What the pipeline hands a notifier, and what a notifier may raise.

A Notification is plain data, written to the outbox as JSON before anything is sent, so it
carries no secret: only the receiver's *name*. Each member is one alert (a detector Event)
with what changed for it in this notification.
"""
from __future__ import annotations

import hashlib

from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import Any, Mapping

from monitor.model import Event, iso_utc, parse_iso

REASONS = ("first", "escalated", "repeat", "resolved", "observed", "test")
# A notification's reason is the most urgent of its members' changes.
_URGENCY = {"escalated": 4, "first": 3, "observed": 2, "resolved": 1, "repeat": 0, "test": 0}


@dataclass(frozen=True)
class Member:
    event: Event          # the latest event of this alert (firing, escalated, resolved or observed)
    change: str           # first | escalated | repeat | resolved | observed: why it is in here

    @property
    def key(self) -> str:
        return alert_key(self.event)

    def to_json(self) -> dict[str, Any]:
        return {"event": self.event.to_json(), "change": self.change}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Member":
        return cls(Event.from_json(data["event"]), data["change"])


def alert_key(event: Event) -> str:
    """`rule/source/region`: how logs, metrics and the outbox name one alert."""
    return "/".join(event.key)


def incident_id(group: tuple[str, ...], began: datetime) -> str:
    """An incident's id: a short hash of its group (`alerting.group_by` values, e.g. source
    and cause) and when it began (the opening event's `since`, else its `at`). Derived, not
    drawn, so every receiver, every replica and anyone holding the first `detector.event`
    line (its source, `details.cause` and `since`) arrive at the same 12 characters."""
    text = "\x1f".join((*group, iso_utc(began) or ""))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def thread_slot(notification: "Notification") -> str:
    """The key of an incident's first Slack message: one per incident and receiver."""
    return f"{notification.incident}@{notification.receiver}"


def overall_reason(changes) -> str:
    return max(changes, key=lambda c: _URGENCY.get(c, 0))


@dataclass(frozen=True)
class Notification:
    id: str                     # the idempotency key: one per notification, kept across retries
    receiver: str
    reason: str                 # see REASONS
    status: str                 # firing | resolved | observed | test
    severity: str
    source: str
    cause: str
    incident: str               # the group this belongs to (a Slack thread for the bot)
    members: tuple[Member, ...]
    created_at: datetime
    opened_at: datetime         # when the incident's first member fired
    timezone: str = "UTC"       # the source's zone, for the local time shown beside UTC
    units: str = "TPS"          # what the source counts ("precincts" for a US feed)
    title: str | None = None    # the source's display name (a race's: "Pilbup Bandung 2024")
    links: Mapping[str, str] = field(default_factory=dict)
    instance: str = "countwatch"
    possible_duplicate: bool = False   # resent after a crash in the send-then-record window
    thread: Mapping[str, str] | None = None   # the incident's first message (set when sending)

    def __post_init__(self) -> None:
        object.__setattr__(self, "links", MappingProxyType(dict(self.links)))
        if self.thread is not None:
            object.__setattr__(self, "thread", MappingProxyType(dict(self.thread)))

    @property
    def lead(self) -> Member:
        """The member this notification is about: the first that changed (others ride along)."""
        return next((m for m in self.members if m.change != "repeat"), self.members[0])

    @property
    def alert_key(self) -> str:
        return self.lead.key if self.members else "-"

    def with_thread(self, thread: Mapping[str, str] | None, possible_duplicate: bool = False) -> "Notification":
        return replace(self, thread=thread, possible_duplicate=possible_duplicate or self.possible_duplicate)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "receiver": self.receiver, "reason": self.reason, "status": self.status,
                "severity": self.severity, "source": self.source, "cause": self.cause,
                "incident": self.incident, "members": [m.to_json() for m in self.members],
                "created_at": iso_utc(self.created_at), "opened_at": iso_utc(self.opened_at),
                "timezone": self.timezone, "units": self.units, "title": self.title, "links": dict(self.links),
                "instance": self.instance}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Notification":
        return cls(id=data["id"], receiver=data["receiver"], reason=data["reason"], status=data["status"],
                   severity=data["severity"], source=data["source"], cause=data["cause"],
                   incident=data["incident"], members=tuple(Member.from_json(m) for m in data["members"]),
                   created_at=parse_iso(data["created_at"]), opened_at=parse_iso(data["opened_at"]),
                   timezone=data.get("timezone", "UTC"), units=data.get("units", "TPS"), title=data.get("title"),
                   links=data.get("links") or {},
                   instance=data.get("instance", "countwatch"))


class NotifyError(Exception):
    """A send that did not work. The message is safe to log (never a URL or token).

    permanent: retrying the same notification cannot work (bad payload, bad credentials).
    disable_receiver: the receiver itself is broken (invalid token, channel or webhook gone):
        stop using it, loudly, until the config is fixed and the daemon restarted.
    retry_after: seconds (wall time, on the receiver's side) the receiver asked us to wait.
    """

    def __init__(self, message: str, permanent: bool = False, disable_receiver: bool = False,
                 retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.permanent = permanent or disable_receiver
        self.disable_receiver = disable_receiver
        self.retry_after = retry_after


Receipt = Mapping[str, str]   # what a notifier reports back, e.g. {"channel": ..., "ts": ...}
