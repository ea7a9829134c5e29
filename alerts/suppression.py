"""The suppress stage: whether a firing alert is held back now, and why (the dedup stage,
Incident.plan, asks it for every member it would tell).

Two reasons, each named in the record:
- `silenced`: a silence matches the alert's labels now (config `[[silences]]`, or run-time
  ones from `countwatch silence add`, re-read from the database at most once a second);
- `inhibited`: an inhibition rule holds it: while an alert matching the rule's `source` side
  is open, alerts matching its `target` side that share its `equal` attributes are not told
  (Alertmanager's inhibit_rules). The rules are data, below; `[alerting]
  inhibit_stall_during_outage` switches the one countwatch has on or off.
A suppressed alert stays open, in the logs and in countwatch_alert_active.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Iterable, Mapping

from monitor.model import STOPPAGE, Event

from .config import AlertingConfig
from .matching import labels_of
from .silences import Silence, silenced_by

SILENCE_REFRESH_WALL_SECONDS = 1.0   # how often run-time silences are re-read


@dataclass(frozen=True)
class InhibitRule:
    source: Mapping[str, tuple[str, ...]]   # event attribute -> values: the open alert that inhibits
    target: Mapping[str, tuple[str, ...]]   # event attribute -> values: the alert held back
    equal: tuple[str, ...]                  # attributes the two share
    detail: str                             # for the record; formatted with the target event's attributes

    def inhibitor(self, event: Event, open_events: Iterable[Event]) -> Event | None:
        """The open event that holds `event` back under this rule, if any."""
        if not _matches(event, self.target):
            return None
        return next((other for other in open_events if _matches(other, self.source)
                     and all(getattr(other, name) == getattr(event, name) for name in self.equal)), None)


def _matches(event: Event, wanted: Mapping[str, tuple[str, ...]]) -> bool:
    return all(getattr(event, name) in values for name, values in wanted.items())


# While our polls of a source fail, we cannot tell whether its count stopped: its stoppage
# alerts would only repeat the outage, so the outage is told and they wait.
OUTAGE_HOLDS_STOPPAGE = InhibitRule(
    source={"rule": ("outage",)},
    target={"family": (STOPPAGE,)},
    equal=("source",),
    detail="outage of source {source} is open",
)


def inhibit_rules(alerting: AlertingConfig) -> tuple[InhibitRule, ...]:
    return (OUTAGE_HOLDS_STOPPAGE,) if alerting.inhibit_stall_during_outage else ()


class Suppressor:
    def __init__(self, silences: tuple[Silence, ...], rules: tuple[InhibitRule, ...],
                 open_events: Callable[[], Iterable[Event]],
                 runtime_silences: Callable[[], list[Silence] | None]):
        """`silences` from the config; `open_events` the alerts open now (the lifecycle's book);
        `runtime_silences` reads the stored ones (None when the database cannot be read: the
        last ones read stay in force)."""
        self.config_silences = silences
        self.silences = silences
        self.rules = rules
        self._open_events = open_events
        self._runtime_silences = runtime_silences
        self._read_at = float("-inf")

    def refresh(self, force: bool = False) -> None:
        """Re-read the run-time silences, at most once a wall-clock second unless forced."""
        if not force and time.monotonic() - self._read_at < SILENCE_REFRESH_WALL_SECONDS:
            return
        self._read_at = time.monotonic()
        runtime = self._runtime_silences()
        if runtime is not None:
            self.silences = self.config_silences + tuple(runtime)

    def suppressed(self, event: Event, now: datetime) -> tuple[str, str] | None:
        """(reason, detail) when the alert is held back now, else None."""
        silence = silenced_by(self.silences, labels_of(event), now)
        if silence is not None:
            return "silenced", f"silence {silence.id}" + (f": {silence.comment}" if silence.comment else "")
        for rule in self.rules:
            if rule.inhibitor(event, self._open_events()) is not None:
                return "inhibited", rule.detail.format(source=event.source, region=event.region, rule=event.rule)
        return None
