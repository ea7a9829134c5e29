"""The lifecycle of each alert key (rule, source, region): open on firing, rise on escalated,
close on resolved. Detectors already emit transitions; this book makes them idempotent
(a repeated firing changes nothing) and remembers what is open across restarts.

`Lifecycle` is the pipeline's first stage: the book, written through to alert_open and
exported as countwatch_alert_active (a silenced alert is still active)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Iterator

from monitor.metrics import Metrics
from monitor.model import Event, iso_utc

from . import state
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



def _keep_since(event: Event, before: OpenAlert) -> Event:
    """An escalation that does not repeat `since` keeps the alert's original start."""
    from dataclasses import replace
    return replace(event, since=before.event.since)


class Lifecycle:
    def __init__(self, metrics: Metrics):
        self.book = AlertBook()
        self.metrics = metrics

    def restore(self, alerts: Iterable[OpenAlert]) -> None:
        for alert in alerts:
            self.book.open[alert.key] = alert
            self._active(alert.event, 1)

    def apply(self, event: Event, now: datetime, ops: list[state.Op]) -> str:
        """What the event did to its alert (NEW, ESCALATED, ...); the change goes into `ops`."""
        transition, before = self.book.apply(event)
        key = alert_key(event)
        if transition == NEW:
            self._active(event, 1)
        elif transition in (ESCALATED, LOWERED):
            self._active(before.event, 0)
            self._active(event, 1)
        elif transition == RESOLVED:
            self._active(before.event, 0)
        if transition in (NEW, ESCALATED, LOWERED, UNCHANGED):
            ops.append(state.put_open(key, self.book.open[key].to_json(), iso_utc(now)))
        elif transition == RESOLVED:
            ops.append(state.delete_open(key))
        return transition

    def open_events(self) -> Iterator[Event]:
        return (alert.event for alert in self.book.open.values())

    def snapshot_ops(self, at: str) -> list[state.Op]:
        return [state.put_open(k, a.to_json(), at) for k, a in self.book.open.items()]

    def _active(self, event: Event, value: int) -> None:
        labels = dict(source=event.source, region=event.region, rule=event.rule, severity=event.severity)
        if value:
            self.metrics.alert_active.labels(**labels).set(1)
        else:
            try:
                self.metrics.alert_active.remove(*labels.values())
            except KeyError:
                pass
