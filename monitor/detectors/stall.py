"""`stall` (stations reported stopped advancing) and `stale_source` (the source's own timestamp
stopped moving, or is already old on our first poll).

Both are judged only on polls that worked: a failed poll is no evidence that the count moved
or did not (that is `outage`). Their thresholds come from monitor.detectors.thresholds, learned
per series; the Judge hands them in through History. The cause says which of the three
situations on-call is in: the publisher stopped (timestamp and counts frozen), the pipeline is
stuck (timestamp moving, counts frozen), or the site is down (`outage`).
"""
from __future__ import annotations

from datetime import datetime

from ..model import Event, iso_utc
from .base import Rule, label, lifecycle, transition
from .history import History
from .phase import NOT_STARTED
from .text import count, duration, local_iso, percent, when


def stall_cause(h: History, since: datetime) -> str:
    """publisher_stopped when the source has published nothing new since progress stopped,
    pipeline_stuck when its timestamp kept moving; unknown without a timestamp."""
    current = h.current
    if current is None or current.published_at is None:
        return "count_stopped"
    seen = h.state.pub_seen_at
    return "publisher_stopped" if seen is None or seen <= since else "pipeline_stuck"


class StallRule(Rule):
    name = "stall"

    def __call__(self, h: History, now: datetime) -> list[Event]:
        current = h.current
        if current is None or current.progress is None or h.stall is None:
            return []
        opened = h.open_alerts.get("stall")
        if h.advance > 0:
            if opened is None:
                return []
            stalled = (now - opened.since).total_seconds() if opened.since else None
            details = self._details(h, now, opened.since) | {
                "catch_up_stations": h.advance, "stalled_seconds": stalled}
            summary = (f"Count at {label(h)} moving again after {duration(stalled or 0)} stalled: "
                       f"{_amount(h.advance, current, h.units)} in one update, now {_standing(current, h.units)} "
                       f"at {when(now, h.zone)}.")
            return lifecycle(h, now, "stall", "stall", None, opened.since, details, {"resolved": summary})
        if not h.poll.ok:
            return []
        if h.complete:
            details = self._details(h, now, opened.since if opened else None) | {"resolution": "complete"}
            summary = f"Count at {label(h)} is complete ({_standing(current, h.units)}): stall closed."
            return lifecycle(h, now, "stall", "stall", None, None, details, {"resolved": summary})
        if h.phase == NOT_STARTED:
            # Nothing counted (cleared to zero, or before counting_starts): nothing can stall.
            details = self._details(h, now, opened.since if opened else None) | {"resolution": "not_started"}
            summary = (f"Count at {label(h)} has not started ({_standing(current, h.units)}): "
                       f"a count that has not started cannot stall; stall closed.")
            return lifecycle(h, now, "stall", "stall", None, None, details, {"resolved": summary})
        since = h.state.last_advance_at or h.state.first_at
        elapsed = (now - since).total_seconds()
        thresholds = h.stall
        severity = ("critical" if elapsed >= thresholds.critical else
                    "warning" if elapsed >= thresholds.warning else None)
        cause, stale, stopped = stall_cause(h, since), h.stale, ""
        if (cause == "publisher_stopped" and stale is not None and h.state.last_advance_at is not None
                and h.state.pub_seen_at == h.state.last_advance_at
                and current.published_at == h.state.last_advance_published_at):
            # The last advance came with the publication still on show, and the source has
            # published nothing since: no publication means no advance, so the silence of the
            # counts is what the silence of the timestamp is, and as improbable. The stall comes
            # due with the stale timestamp, one page (the walk of its hours counts a slot that
            # may bring nothing; the timestamp says the slot did not come at all). The very
            # publication, not an older copy on show (a CDN node's: regression's and the stale
            # timestamp's business, no silence of the counts).
            age = (now - current.published_at).total_seconds()
            own = ("critical" if age >= stale.critical else "warning" if age >= stale.warning else None)
            if own == "critical" and severity != "critical" or (own == "warning" and severity is None):
                severity, stopped = own, f"; no publication since, which the timestamp's model prices: {stale.reason}"
        unproven = h.state.last_advance_at is None and (current.published_at is None or cause == "pipeline_stuck")
        if unproven and severity == "critical":
            # Never seen moving and no clock of its own: a count frozen before we came cannot be
            # told from data on show before counting began (a state's test data stood 8.5 h in
            # Minnesota 2020). Nor, while its timestamp moves on, from a count slower than the
            # prior assumes: nothing seen of its pace tells which. Told once as a warning;
            # critical needs a count seen to move, or a source timestamp that dates the silence
            # (the real 2024 freeze escalates on it).
            severity = "warning"
        if severity is None or (opened is None and h.ancestor_stalled):
            # Below threshold the open alert (if any) stays open until progress resumes; a
            # child of a stalled parent is part of the parent's incident, not its own.
            return []
        details = self._details(h, now, since)
        cause = details["cause"]
        frozen = (f"and its own timestamp has not moved from {when(current.published_at, h.zone)}"
                  if cause == "publisher_stopped" else
                  f"though its timestamp moved on to {when(current.published_at, h.zone)}"
                  if cause == "pipeline_stuck" else "")
        what = ("progress" if current.stations_reported is None
                else "new polling stations" if h.units == "TPS" else f"new {h.units}")
        unseen = ("" if not unproven else
                  "; not seen advancing since we began watching and with no timestamp of its own, it may not "
                  "have started counting: a warning until it moves" if current.published_at is None else
                  "; not seen advancing since we began watching, it may be slower than the prior assumes: "
                  "a warning until it moves")
        firing = (f"No {what} at {label(h)} for {duration(elapsed)} (since {when(since, h.zone)}): "
                  f"still {_standing(current, h.units)}{', ' + frozen if frozen else ''} — {thresholds.reason}{stopped}{unseen}.")
        escalated = (f"Stall at {label(h)} is now critical: no {what} for {duration(elapsed)} "
                     f"since {when(since, h.zone)}, still {_standing(current, h.units)}.")
        return lifecycle(h, now, "stall", "stall", severity, since, details,
                         {"firing": firing, "escalated": escalated})

    @staticmethod
    def _details(h: History, now: datetime, since: datetime | None) -> dict:
        current = h.current
        thresholds = h.stall
        since = since or h.state.last_advance_at or h.state.first_at
        return {
            "last_published_at": local_iso(current.published_at, h.zone),
            "last_advance_at": iso_utc(h.state.last_advance_at if h.advance <= 0 else since),
            "stalled_seconds": round((now - since).total_seconds(), 3),
            "threshold_seconds": round(thresholds.warning, 3),
            "critical_seconds": round(thresholds.critical, 3),
            "threshold_reason": thresholds.reason,
            "cause": stall_cause(h, since),
        }


class StaleSourceRule(Rule):
    name = "stale_source"

    def __call__(self, h: History, now: datetime) -> list[Event]:
        current = h.current
        if not h.poll.ok or current is None or current.published_at is None or h.stale is None:
            return []
        opened = h.open_alerts.get("stale_source")
        published = current.published_at
        age = (now - published).total_seconds()
        if h.new_publication or h.complete or h.phase == NOT_STARTED:
            if opened is None:
                return []         # nothing open to resolve
            details = self._details(h, now, age)
            why = (f"published again at {when(published, h.zone)}" if h.new_publication
                   else f"complete ({_standing(current, h.units)}), so an unchanging timestamp is expected"
                   if h.complete else f"has not started counting ({_standing(current, h.units)}), so nothing is stale yet")
            stale_for = (now - opened.since).total_seconds() if opened and opened.since else 0.0
            details["stale_seconds"] = round(stale_for, 3)
            summary = f"{label(h)} {why}; its data had been stale for {duration(stale_for)}."
            return lifecycle(h, now, "stale_source", "stale_source", None, None, details, {"resolved": summary})
        severity = ("critical" if age >= h.stale.critical else "warning" if age >= h.stale.warning else None)
        if severity is None or (opened is None and h.ancestor_stalled) or transition(opened, severity) is None:
            return []             # below threshold, the parent's incident, or already told
        details = self._details(h, now, age)
        first = " already" if details["first_poll"] else ""
        firing = (f"{label(h)} serves stale data: its timestamp says {when(published, h.zone)}, "
                  f"{duration(age)} old{first} at our poll of {when(now, h.zone)}, "
                  f"with {_standing(current, h.units)} — {h.stale.reason}.")
        escalated = (f"{label(h)} data is now {duration(age)} old (timestamp {when(published, h.zone)}), "
                     f"{_standing(current, h.units)}.")
        return lifecycle(h, now, "stale_source", "stale_source", severity, published, details,
                         {"firing": firing, "escalated": escalated})

    def _details(self, h: History, now: datetime, age: float) -> dict:
        return {
            "last_published_at": local_iso(h.current.published_at, h.zone),
            "age_seconds": round(age, 3),
            "threshold_seconds": round(h.stale.warning, 3),
            "critical_seconds": round(h.stale.critical, 3),
            "threshold_reason": h.stale.reason,
            "cause": self._cause(h),
            "first_poll": h.state.first_at == now,
        }

    @staticmethod
    def _cause(h: History) -> str:
        state = h.state
        # Counts that advanced after the timestamp froze mean only the timestamp is stuck.
        if state.last_advance_at is not None and state.pub_seen_at is not None and state.last_advance_at > state.pub_seen_at:
            return "timestamp_frozen"
        return "publisher_stopped"


def _standing(reading, units: str = "TPS") -> str:
    if reading.stations_reported is not None and reading.stations:
        return f"{count(reading.stations_reported)} of {count(reading.stations)} {units} ({percent(reading.progress_ratio)})"
    if reading.percent is not None:
        return f"{reading.percent:.2f}%"
    return "no count yet"


def _amount(advance: float, reading, units: str = "TPS") -> str:
    return f"+{count(advance)} {units}" if reading.stations_reported is not None else f"+{advance:.2f} points"
