"""What reaches on-call: detector events turned into paging notifications as the example config's
alerting would send them (countwatch.example.toml: group_by source and cause, group_wait 30 s,
group_interval 5 min, routes of warning and critical; no silences).

A notification is counted when it brings news: an incident's first message, a member joining an
open incident, an escalation to a severity not told yet (sent at once), a point event (a jump,
a regression). Reminders and resolutions are not counted: they wake nobody new. This is a
small model of alerts/grouping.py, kept here so that the evaluation does not drive the outbox
and its threads; `test_evaluate_families.py` checks it against the documented behaviour.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ..model import Event

GROUP_WAIT = timedelta(seconds=30)
GROUP_INTERVAL = timedelta(minutes=5)
RANK = {"info": 0, "warning": 1, "critical": 2}
STOPPAGE = "stoppage"
# Only when an event does not name its own `family` (DESIGN.md: details carry it).
FALLBACK_FAMILY = {"stall": STOPPAGE, "stale_source": STOPPAGE, "region_stall": STOPPAGE, "lagging": STOPPAGE,
                   "not_started": STOPPAGE, "jump": "jump", "regression": "consistency",
                   "correction": "consistency", "over_capacity": "consistency", "inconsistent": "consistency"}
STOPPED_RULES = ("stall", "stale_source", "region_stall")


def family_of(event: Event) -> str:
    family = event.details.get("family")
    return family if isinstance(family, str) and family else FALLBACK_FAMILY.get(event.rule, event.rule)


def cause_of(event: Event) -> str:
    cause = event.details.get("cause")
    if isinstance(cause, str) and cause:
        return cause
    return "count_stopped" if event.rule in STOPPED_RULES else event.rule


@dataclass
class Page:
    at: datetime
    group: tuple[str, str]
    members: list[Event]          # the events that made it news

    @property
    def families(self) -> set[str]:
        return {family_of(e) for e in self.members}


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
    """The paging notifications of `events` (in time order), in time order."""
    out: list[Page] = []
    open_: dict[tuple[str, str], _Incident] = {}

    def flush(until: datetime | None) -> None:
        for group, incident in list(open_.items()):
            if incident.due is not None and (until is None or incident.due <= until):
                news = [e for k, e in incident.pending.items()
                        if k in incident.firing or e.state == "observed"]
                if news:
                    out.append(Page(incident.due, group, news))
                    incident.sent = incident.due
                    for e in news:
                        incident.told[_key(e)] = e.severity
                incident.pending.clear()
                incident.due = None
            if not incident.firing and incident.due is None:
                del open_[group]

    for e in sorted(events, key=lambda e: e.at):
        flush(e.at)
        if RANK.get(e.severity, 0) < RANK["warning"] and e.state != "resolved":
            continue
        group = (e.source, cause_of(e))
        key = _key(e)
        if e.state == "resolved":
            incident = open_.get(group)
            if incident is not None:
                incident.firing.pop(key, None)
                incident.pending.pop(key, None)
                incident.told.pop(key, None)
                if not incident.firing and not incident.pending:
                    incident.due = None
                    del open_[group]
            continue
        incident = open_.setdefault(group, _Incident(e.at))
        if e.state != "observed":
            incident.firing[key] = e.severity
        incident.pending[key] = e
        told = incident.told.get(key)
        if e.state == "escalated" and told is not None and RANK[e.severity] > RANK[told]:
            due = e.at                                   # a rise in severity does not wait
        elif incident.sent is None:
            due = incident.opened + GROUP_WAIT
        else:
            due = max(e.at, incident.sent + GROUP_INTERVAL)
        incident.due = due if incident.due is None else min(incident.due, due)
    flush(None)
    return out
