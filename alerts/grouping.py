"""Incidents: the alerts of one cause, per receiver, told as one story.

An incident collects the alerts that share its group labels (by default source and cause: a
stopped publisher's `stall` and `stale_source`, or four provinces stalling in one poll). Like
Alertmanager, its first notification waits `group_wait` for the rest of the group to arrive,
later changes wait `group_interval` after the previous notification (an escalation that
raises the incident's severity does not wait), and while anything is open it repeats every `repeat_interval`.

`plan()` is the dedup stage: for each member it compares what is true now with what this
receiver was last told, and names the reason to send (first, escalated, repeat, resolved,
observed) or to skip (silenced, inhibited, resolved_before_notified, send_resolved_off).

`Grouper` is the group stage: it keeps the open incidents and finds (or opens) the one a
routed alert joins.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Iterable, Mapping

import structlog

from monitor.model import Event, iso_utc, parse_iso, severity_rank

from .config import ReceiverConfig, RouteConfig
from .matching import cause_of, labels_of
from .notification import Member, alert_key, incident_id

log = structlog.get_logger("countwatch.alerts")

MAX_MEMBERS_PER_NOTIFICATION = 200   # a national freeze can stall thousands of regions at once


@dataclass
class MemberState:
    event: Event                         # latest event of this alert
    status: str                          # firing | resolved | observed
    told_status: str | None = None       # what this receiver was last told: firing | resolved | observed
    told_severity: str | None = None

    def to_json(self) -> dict:
        return {"event": self.event.to_json(), "status": self.status, "told_status": self.told_status,
                "told_severity": self.told_severity}

    @classmethod
    def from_json(cls, data: dict) -> "MemberState":
        return cls(Event.from_json(data["event"]), data["status"], data.get("told_status"), data.get("told_severity"))


@dataclass
class Incident:
    id: str
    receiver: str
    group: tuple[str, ...]
    source: str
    cause: str
    opened_at: datetime
    group_wait: float
    group_interval: float
    repeat_interval: float
    members: dict[str, MemberState] = field(default_factory=dict)
    first_sent_at: datetime | None = None
    last_sent_at: datetime | None = None
    due_at: datetime | None = None       # a flush is pending at this time
    quiet_since: datetime | None = None  # a repeat found every member silenced: next check one interval on

    @property
    def slot(self) -> str:
        """How the pipeline and the state database name this receiver's copy of the incident
        (the id itself is the same on every receiver)."""
        return f"{self.id}@{self.receiver}"

    # --- scheduling -----------------------------------------------------------------------
    def schedule(self, now: datetime, urgent: bool = False) -> None:
        if urgent:
            due = now
        elif self.last_sent_at is None:
            due = self.opened_at + timedelta(seconds=self.group_wait)
        else:
            due = max(now, self.last_sent_at + timedelta(seconds=self.group_interval))
        self.due_at = due if self.due_at is None else min(self.due_at, due)

    def _repeat_at(self) -> datetime | None:
        if self.last_sent_at is None:
            return None
        base = max(self.last_sent_at, self.quiet_since or self.last_sent_at)
        return base + timedelta(seconds=self.repeat_interval)

    def repeat_due(self, now: datetime) -> bool:
        at = self._repeat_at()
        return (at is not None and now >= at
                and any(m.status == "firing" and m.told_status == "firing" for m in self.members.values()))

    def next_wakeup(self) -> datetime | None:
        times = [t for t in (self.due_at,) if t is not None]
        if any(m.status == "firing" and m.told_status == "firing" for m in self.members.values()):
            times.append(self._repeat_at())
        return min((t for t in times if t is not None), default=None)

    @property
    def finished(self) -> bool:
        """Nothing firing and nothing left to tell: the incident can close."""
        return all(m.status != "firing" and not (m.status == "resolved" and m.told_status == "firing")
                   for m in self.members.values())

    def told_severity(self) -> str | None:
        """The highest severity this receiver was told about for an alert still open."""
        told = [m.told_severity for m in self.members.values() if m.status == "firing" and m.told_status == "firing"]
        return max(told, key=severity_rank) if told else None

    def add(self, event: Event, status: str) -> MemberState:
        key = alert_key(event)
        member = self.members.get(key)
        if member is None:
            member = self.members[key] = MemberState(event, status)
        else:
            member.event, member.status = event, status
            if status == "observed":
                member.told_status = None      # a new point event: tell it, once
        return member

    # --- the dedup stage ------------------------------------------------------------------
    def plan(self, now: datetime, suppressed: Callable[[MemberState], tuple[str, str] | None],
             send_resolved: bool) -> tuple[list[tuple[MemberState, str]], list[tuple[MemberState, str, str]]]:
        """-> (members to send with their change, members skipped with (reason, detail)).
        Members that only ride along ("repeat") are included only when something else is sent."""
        repeat = self.repeat_due(now)
        changes: list[tuple[MemberState, str]] = []
        riders: list[tuple[MemberState, str]] = []
        skipped: list[tuple[MemberState, str, str]] = []
        for member in self.members.values():
            if member.status == "resolved":
                if member.told_status != "firing":
                    if member.told_status is None and member.event.state == "resolved":
                        skipped.append((member, "resolved_before_notified", ""))
                        member.told_status = "resolved"    # nothing to tell, ever
                    continue
                if not send_resolved:
                    skipped.append((member, "send_resolved_off", ""))
                    member.told_status = "resolved"
                    continue
                changes.append((member, "resolved"))
                continue
            if member.told_status == member.status == "observed":
                continue
            hold = suppressed(member)
            if hold is not None:
                if member.told_status is None or repeat or _rose(member):
                    skipped.append((member, *hold))
                if member.status == "observed":
                    member.told_status = "observed"   # a point event is told once or not at all
                continue
            if member.status == "observed":
                changes.append((member, "observed"))
            elif member.told_status != "firing":
                changes.append((member, "first"))
            elif _rose(member):
                changes.append((member, "escalated"))
            else:
                (changes if repeat else riders).append((member, "repeat"))
        if not changes:
            if repeat:
                self.quiet_since = now
            return [], skipped
        # Members keep the incident's order (so a list of regions reads the same in every
        # message); the ones that changed come first only when the list must be cut.
        keep = {id(m) for m, _ in (changes + riders)[:MAX_MEMBERS_PER_NOTIFICATION]}
        order = {id(m): i for i, m in enumerate(self.members.values())}
        chosen = sorted(((m, c) for m, c in changes + riders if id(m) in keep), key=lambda mc: order[id(mc[0])])
        return chosen, skipped

    def mark_told(self, chosen: list[tuple[MemberState, str]], now: datetime) -> None:
        for member, change in chosen:
            member.told_status = "resolved" if change == "resolved" else member.status
            member.told_severity = member.event.severity
        self.last_sent_at = now
        self.first_sent_at = self.first_sent_at or now

    # --- persistence ----------------------------------------------------------------------
    def to_json(self) -> dict:
        return {"id": self.id, "receiver": self.receiver, "group": list(self.group), "source": self.source,
                "cause": self.cause, "opened_at": iso_utc(self.opened_at), "group_wait": self.group_wait,
                "group_interval": self.group_interval, "repeat_interval": self.repeat_interval,
                "members": {k: m.to_json() for k, m in self.members.items()},
                "first_sent_at": iso_utc(self.first_sent_at), "last_sent_at": iso_utc(self.last_sent_at),
                "due_at": iso_utc(self.due_at), "quiet_since": iso_utc(self.quiet_since)}

    @classmethod
    def from_json(cls, data: dict) -> "Incident":
        return cls(id=data["id"], receiver=data["receiver"], group=tuple(data["group"]), source=data["source"],
                   cause=data["cause"], opened_at=parse_iso(data["opened_at"]), group_wait=data["group_wait"],
                   group_interval=data["group_interval"], repeat_interval=data["repeat_interval"],
                   members={k: MemberState.from_json(m) for k, m in data["members"].items()},
                   first_sent_at=parse_iso(data.get("first_sent_at")), last_sent_at=parse_iso(data.get("last_sent_at")),
                   due_at=parse_iso(data.get("due_at")), quiet_since=parse_iso(data.get("quiet_since")))


def _rose(member: MemberState) -> bool:
    return (member.told_severity is not None
            and severity_rank(member.event.severity) > severity_rank(member.told_severity))


def members_for_notification(chosen: list[tuple[MemberState, str]]) -> tuple[Member, ...]:
    return tuple(Member(m.event, change) for m, change in chosen)


class Grouper:
    """The open incidents, one per receiver and group (the `group_by` labels' values), keyed by
    their slot (`id@receiver`). `hosts` maps a source to its host: the outages of one site are
    one incident whatever it serves."""

    def __init__(self, receivers: Mapping[str, ReceiverConfig], hosts: Mapping[str, str], *,
                 group_by: tuple[str, ...], group_wait: float, group_interval: float, repeat_interval: float):
        self.receivers = receivers
        self.hosts = hosts
        self.group_by = group_by
        self.group_wait, self.group_interval, self.repeat_interval = group_wait, group_interval, repeat_interval
        self.incidents: dict[str, Incident] = {}

    def restore(self, incidents: Iterable[Incident]) -> None:
        for incident in incidents:
            if incident.receiver in self.receivers:
                self.incidents[incident.slot] = incident

    def holding(self, key: str) -> list[Incident]:
        """The incidents (one per receiver told) that hold the alert `key`."""
        return [i for i in self.incidents.values() if key in i.members]

    def incident_for(self, receiver: str, route: RouteConfig, event: Event, now: datetime) -> Incident:
        """The receiver's incident that holds this alert or shares its group; else a new one,
        on the route's timers (the defaults where the route names none)."""
        key = alert_key(event)
        labels = labels_of(event)
        group = tuple(self._group_value(name, labels, event) for name in self.group_by)
        for incident in self.incidents.values():
            if incident.receiver == receiver and key in incident.members:
                return incident
        for incident in self.incidents.values():
            if incident.receiver == receiver and incident.group == group:
                return incident
        repeat = route.repeat_interval or self.repeat_interval
        if self.receivers[receiver].kind == "alertmanager":
            repeat = min(repeat, self.receivers[receiver].resend)   # Alertmanager wants re-posts
        # One id for the group's incident on every receiver and in every replica: derived from
        # the group and when it began, or taken from the incident another receiver has open.
        began = event.since or event.at
        shared = next((i.id for i in self.incidents.values() if i.group == group), None)
        incident = Incident(
            id=shared or incident_id(group, began), receiver=receiver, group=group, source=event.source,
            cause=cause_of(event), opened_at=now,
            group_wait=self.group_wait if route.group_wait is None else route.group_wait,
            group_interval=route.group_interval or self.group_interval, repeat_interval=repeat)
        self.incidents[incident.slot] = incident
        if shared is None:
            # the id next to the alert that opened it, in the same pass as its detector.event
            # line: the review names even an incident nobody was told about by this id
            log.info("incident.opened", incident=incident.id, alert_key=key, receiver=receiver,
                     group=list(group), began=iso_utc(began))
        return incident

    def join(self, receiver: str, route: RouteConfig, event: Event, status: str, escalated: bool,
             now: datetime) -> Incident:
        """A routed alert joins its incident and is scheduled. An escalation is told at once
        when it raises what this receiver knows of the incident (warning -> critical); members
        that follow it up wait group_interval."""
        incident = self.incident_for(receiver, route, event, now)
        told = incident.told_severity()
        urgent = escalated and (told is None or severity_rank(event.severity) > severity_rank(told))
        incident.add(event, status)
        incident.schedule(now, urgent=urgent)
        return incident

    def update(self, event: Event, status: str, now: datetime, tell: bool) -> list[Incident]:
        """The latest event of an alert the incidents hold already: a resolution to tell
        (scheduled), or fresher details for the next repeat (nothing to tell now)."""
        holding = self.holding(alert_key(event))
        for incident in holding:
            incident.add(event, status)
            if tell:
                incident.schedule(now)
        return holding

    def close(self, incident: Incident) -> None:
        del self.incidents[incident.slot]

    def next_wakeup(self) -> datetime | None:
        times = [t for i in self.incidents.values() if (t := i.next_wakeup()) is not None]
        return min(times) if times else None

    def _group_value(self, name: str, labels: dict[str, str], event: Event) -> str:
        """A group label's value. An unreachable site is one incident whatever it serves: the
        outages of sources on one host (two contests of KPU's) group by the host, not by
        source, so on-call is told once that the site is down."""
        if name == "source" and labels["cause"] == "outage":
            host = self.hosts.get(event.source)
            if host is None:          # an event of a source no longer configured
                return labels[name]
            return f"host {host}"
        return labels[name]
