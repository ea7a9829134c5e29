"""What every rule shares: its shape (Rule), the details each event on a snapshot carries, the
series' label in summaries, and the open -> escalate -> resolve life cycle over the open alerts."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from ..model import Event, cause_of, family_of, severity_rank
from .history import History, Reading
from .options import DetectionOptions


class Rule:
    """A detector rule: `rule(history, now) -> events`, a pure function of its arguments and of
    the options it was built with (one instance per source, the Judge's)."""

    name = ""

    def __init__(self, options: DetectionOptions):
        self.options = options

    def __call__(self, h: History, now: datetime) -> list[Event]:
        raise NotImplementedError


def label(h: History) -> str:
    name = h.snapshot.name if h.snapshot is not None and h.snapshot.name else None
    return f"{h.source}/{h.region}" + (f" ({name})" if name else "")


def reading_details(reading: Reading | None) -> dict[str, Any]:
    """`stations`, `stations_reported`, `progress_ratio`: on every event about a snapshot,
    so that a message can always say where the count stood."""
    if reading is None:
        return {"stations": None, "stations_reported": None, "progress_ratio": None}
    ratio = reading.progress_ratio
    return {"stations": reading.stations, "stations_reported": reading.stations_reported,
            "progress_ratio": None if ratio is None else round(ratio, 6)}


def event(h: History, now: datetime, rule: str, state: str, severity: str, summary: str,
          since: datetime | None, details: Mapping[str, Any], region: str | None = None) -> Event:
    """Every event names its `cause` (the rule's own when it gives none) and `family`: the one
    place alerting and the timeline learn which events go together (DESIGN.md)."""
    return Event(at=now, rule=rule, state=state, severity=severity, source=h.source,
                 region=region or h.region, summary=summary, since=since,
                 details={**reading_details(h.current), **_named(h, region), **details,
                          "cause": cause_of(rule, details), "family": family_of(rule, details)})


def _named(h: History, region: str | None) -> dict[str, Any]:
    """The name the source gives its own region (a json feed's `name`), for people to read."""
    name = h.snapshot.name if region is None and h.snapshot is not None else None
    return {"region_name": name} if name else {}


def transition(opened: Event | None, severity: str | None) -> str | None:
    """The event `lifecycle` makes of `severity` against the alert open under its key:
    `resolved`, `firing`, `escalated`, or None (nothing to say). A rule may ask first, so that
    it builds its details and wording only when it will speak."""
    if severity is None:
        return None if opened is None else "resolved"
    if opened is None:
        return "firing"
    return "escalated" if severity_rank(severity) > severity_rank(opened.severity) else None


def lifecycle(h: History, now: datetime, key: str, rule: str, severity: str | None,
              since: datetime | None, details: Mapping[str, Any], summaries: Mapping[str, str],
              region: str | None = None) -> list[Event]:
    """Transitions only (DESIGN.md: alert on transitions, never on every poll).

    severity None means the condition is absent: an open alert resolves (keeping its
    severity and since, so routing and the timeline pair it with its firing). A rise in
    severity is an `escalated` event; a fall is not announced (the incident is still on)."""
    opened = h.open_alerts.get(key)
    state = transition(opened, severity)
    if state is None:
        return []
    if state == "resolved":
        return [event(h, now, rule, state, opened.severity, summaries[state], opened.since, details, region)]
    return [event(h, now, rule, state, severity, summaries[state], since if opened is None else opened.since,
                  details, region)]
