"""What reaches on-call: detector events turned into paging notifications as the example config's
alerting would send them (countwatch.example.toml: group_by source and cause, group_wait 30 s,
group_interval 5 min, routes of warning and critical; no silences).

A notification is counted when it brings news: an incident's first message, a member joining an
open incident, an escalation (sent at once when it raises what the incident told), a point event
(a jump, a regression). Reminders and resolutions are not counted: they wake nobody new. This is a
small model of alerts/ (grouping and flush), kept here so that the evaluation does not drive the
outbox and its database for every series; `test_evaluate_families.py` checks that it sends what
the real AlertPipeline sends, notification for notification.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ..model import STOPPAGE, Event, severity_rank

GROUP_WAIT = timedelta(seconds=30)
GROUP_INTERVAL = timedelta(minutes=5)
# Which rules are one trouble is the detectors' judgement, stamped on each event (`Event.family`,
# `Event.cause`, read through monitor.model); this module keeps no table of its own.


@dataclass
class Page:
    at: datetime
    group: tuple[str, str]
    members: list[Event]          # the events that made it news

    @property
    def families(self) -> set[str]:
        return {e.family for e in self.members}


@dataclass
class _Incident:
    opened: datetime
    firing: dict[str, str] = field(default_factory=dict)      # alert key -> severity open
    told: dict[str, str] = field(default_factory=dict)        # alert key -> severity told
    pending: dict[str, Event] = field(default_factory=dict)
    due: datetime | None = None
    sent: datetime | None = None


def _key(event: Event) -> str:
    return f"{event.rule}/{event.region}"


def pages(events: list[Event]) -> list[Page]:
    """The paging notifications of `events` (in time order), in time order. The events of one
    poll share their time and are handled together, then what is due is sent (the pipeline's
    handle: apply every event, then flush)."""
    out: list[Page] = []
    open_: dict[tuple[str, str], _Incident] = {}
    where: dict[str, tuple[str, str]] = {}     # open alert -> its incident's group (its cause may change)

    def send(group: tuple[str, str], incident: _Incident) -> None:
        news = [e for k, e in incident.pending.items() if k in incident.firing or e.state == "observed"]
        if news:
            out.append(Page(incident.due, group, news))
            incident.sent = incident.due
            for e in news:
                incident.told[_key(e)] = e.severity
        incident.pending.clear()
        incident.due = None
        if not incident.firing:
            del open_[group]
            for key in [k for k, g in where.items() if g == group]:
                del where[key]

    def flush(until: datetime | None, inclusive: bool) -> None:
        for group, incident in list(open_.items()):
            due = incident.due
            if due is not None and (until is None or due < until or (inclusive and due == until)):
                send(group, incident)

    def apply(e: Event) -> None:
        if severity_rank(e.severity) < severity_rank("warning") and e.state != "resolved":
            return
        key = _key(e)
        group = where.get(key) or (e.source, e.cause)
        if e.state == "resolved":
            where.pop(key, None)
            incident = open_.get(group)
            if incident is not None:
                incident.firing.pop(key, None)
                incident.pending.pop(key, None)
                incident.told.pop(key, None)
                if not incident.firing and not incident.pending:
                    del open_[group]
            return
        incident = open_.setdefault(group, _Incident(e.at))
        # Urgent when it raises what this receiver knows of the incident (warning -> critical).
        told = max((severity_rank(v) for k, v in incident.told.items() if k in incident.firing), default=None)
        urgent = e.state == "escalated" and (told is None or severity_rank(e.severity) > told)
        if e.state != "observed":
            incident.firing[key] = e.severity
            where[key] = group
        incident.pending[key] = e
        if urgent:
            due = e.at
        elif incident.sent is None:
            due = incident.opened + GROUP_WAIT
        else:
            due = max(e.at, incident.sent + GROUP_INTERVAL)
        incident.due = due if incident.due is None else min(incident.due, due)

    ordered = sorted(events, key=lambda e: e.at)
    k = 0
    while k < len(ordered):
        at = ordered[k].at
        flush(at, inclusive=False)                  # timers that fell due before this poll
        while k < len(ordered) and ordered[k].at == at:
            apply(ordered[k])
            k += 1
        flush(at, inclusive=True)                   # what this poll made due now
    flush(None, inclusive=True)
    return out
