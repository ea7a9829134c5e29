"""The lifecycle of each alert key (rule, source, region): open on firing, rise on escalated,
close on resolved. Detectors already emit transitions; this book makes them idempotent
(a repeated firing changes nothing) and remembers what is open across restarts."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from monitor.model import Event

from .matching import severity_rank
from .notification import alert_key

# What an event did to its alert: the pipeline's reason for acting (or not).
NEW, ESCALATED, LOWERED, UNCHANGED, RESOLVED, UNKNOWN_RESOLVED, OBSERVED = (
    "new", "escalated", "lowered", "unchanged", "resolved", "unknown_resolved", "observed")


@dataclass
class OpenAlert:
    event: Event            # the latest firing/escalated event: severity, since, details

    @property
    def key(self) -> str:
        return alert_key(self.event)

    @property
    def opened_at(self) -> datetime:
        return self.event.since or self.event.at

    def to_json(self) -> dict:
        return {"event": self.event.to_json()}

    @classmethod
    def from_json(cls, data: dict) -> "OpenAlert":
        return cls(Event.from_json(data["event"]))


class AlertBook:
    def __init__(self) -> None:
        self.open: dict[str, OpenAlert] = {}

    def apply(self, event: Event) -> tuple[str, OpenAlert | None]:
        """-> (transition, the alert before this event, if it was open)."""
        key = alert_key(event)
        before = self.open.get(key)
        if event.state == "observed":
            return OBSERVED, before
        if event.state == "resolved":
            if before is None:
                return UNKNOWN_RESOLVED, None
            del self.open[key]
            return RESOLVED, before
        # firing or escalated
        self.open[key] = OpenAlert(event if before is None or event.since else _keep_since(event, before))
        if before is None:
            return NEW, None
        rise = severity_rank(event.severity) - severity_rank(before.event.severity)
        if rise > 0:
            return ESCALATED, before
        if rise < 0:
            return LOWERED, before
        return UNCHANGED, before

    def outage_open(self, source: str) -> bool:
        return any(a.event.rule == "outage" and a.event.source == source for a in self.open.values())


def _keep_since(event: Event, before: OpenAlert) -> Event:
    """An escalation that does not repeat `since` keeps the alert's original start."""
    from dataclasses import replace
    return replace(event, since=before.event.since)
