"""Incidents rebuilt from detector and notification lines.

An alert lifecycle is one instance's run of events for one key (rule, source, region): it
opens at `firing` (or at whatever state the log first shows, when the log begins mid-way) and
closes at `resolved`. An incident is the lifecycles that describe one happening: the same key
seen by several instances, and the rules of one family on one region (the detectors' own
`details.family`; a publisher that stopped raises `stall` and `stale_source`, both of the
`stoppage` family with `region_stall` and `lagging`), merged while their spans overlap. A point anomaly (`observed`) inside an
incident or at its resolution (the catch-up jump) belongs to it; elsewhere it is an incident of
its own, or a mere observation when its severity is `info` (vote corrections are routine).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..detectors import rules as _registered  # noqa: F401 - fills model.RULE_FAMILIES, for lines older than details.family
from ..model import STOPPAGE, family_of, parse_iso, severity_rank
from .records import LogRecord

NOTIFY_SLACK = timedelta(minutes=1)   # a notification may be stamped just before its event's line


def family(record: LogRecord) -> str:
    """The detector's `details.family` of an event line (monitor.model.family_of reads lines
    logged before the detectors stamped it)."""
    details = record.get("details")
    return family_of(str(record.get("rule")), details if isinstance(details, dict) else None)


def time_of(value: Any) -> datetime | None:
    """A time a line carries in a field (`since`, `details.recovered_at`); None when absent or
    not a time."""
    try:
        return parse_iso(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _since(record: LogRecord) -> datetime | None:
    return time_of(record.get("since"))


@dataclass
class Lifecycle:
    instance: str
    rule: str
    source: str
    region: str
    events: list[LogRecord] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.rule, self.source, self.region)

    @property
    def family(self) -> str:
        return family(self.events[0]) if self.events else family_of(self.rule)

    @property
    def detected(self) -> datetime | None:
        return next((e.at for e in self.events if e.get("state") in ("firing", "escalated")), None)

    @property
    def resolved(self) -> datetime | None:
        return next((e.at for e in self.events if e.get("state") == "resolved"), None)

    @property
    def since(self) -> datetime | None:
        values = [s for s in map(_since, self.events) if s is not None]
        return min(values) if values else None

    @property
    def start(self) -> datetime:
        candidates = [t for t in (self.since, self.detected, self.events[0].at) if t is not None]
        return min(candidates)


@dataclass
class ReviewIncident:
    """One happening on one series as the review rebuilds it from the log (alerts/grouping.py's
    Incident is the notification group; its id is in `alert_ids`)."""
    source: str
    region: str
    lifecycles: list[Lifecycle] = field(default_factory=list)
    observed: list[LogRecord] = field(default_factory=list)
    notifications: list[LogRecord] = field(default_factory=list)
    id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)    # filled by build: polls, outages, catch-up

    @property
    def rules(self) -> list[str]:
        """The alert rules that make it up (a catch-up jump inside a stall is one of its
        events, not one of its rules); a point incident's rule is its observed event's."""
        seen: list[str] = []
        for rule in [lc.rule for lc in self.lifecycles] or [str(o.get("rule")) for o in self.observed]:
            if rule not in seen:
                seen.append(rule)
        return seen

    @property
    def keys(self) -> set[tuple[str, str, str]]:
        return {lc.key for lc in self.lifecycles} | {(str(o.get("rule")), self.source, self.region)
                                                      for o in self.observed}

    @property
    def place(self) -> str:
        """`kpu-jabar: Jawa Barat (32)` when the log named the region, else `kpu-jabar/32`."""
        name = self.extra.get("region_name")
        return f"{self.source}: {name} ({self.region})" if name else f"{self.source}/{self.region}"

    def key_seen(self, key: tuple[str, str, str]) -> datetime:
        """When this incident first showed the alert `key`: its detection (or start), or the
        time of the observed event of that rule."""
        times = [lc.detected or lc.start for lc in self.lifecycles if lc.key == key]
        times += [o.at for o in self.observed if (str(o.get("rule")), self.source, self.region) == key]
        return min(times) if times else self.started

    @property
    def point(self) -> bool:
        """An incident made of observed events only (a jump with no stall around it)."""
        return not self.lifecycles

    @property
    def stoppage(self) -> bool:
        """A stopped count (stall, stale_source, region_stall, lagging) as its detector called it."""
        return not self.point and self.lifecycles[0].family == STOPPAGE

    @property
    def events(self) -> list[LogRecord]:
        out = [e for lc in self.lifecycles for e in lc.events] + list(self.observed)
        return sorted(out, key=lambda r: r.sort_key)

    @property
    def severity(self) -> str:
        return max((str(e.get("severity")) for e in self.events), key=severity_rank, default="info")

    @property
    def started(self) -> datetime:
        if self.point:
            return min(o.at for o in self.observed)
        return min(lc.start for lc in self.lifecycles)

    @property
    def detected(self) -> datetime | None:
        if self.point:
            return self.started
        times = [lc.detected for lc in self.lifecycles if lc.detected is not None]
        return min(times) if times else None

    def episodes(self, rule: str) -> list[list[Lifecycle]]:
        """The rule's lifecycles split where it fired again after an instance saw it resolve:
        each later episode is a visible reopening of the incident."""
        out: list[list[Lifecycle]] = []
        ended: datetime | None = None
        for cycle in sorted((lc for lc in self.lifecycles if lc.rule == rule), key=lambda lc: lc.start):
            if not out or (ended is not None and (cycle.detected or cycle.start) > ended):
                out.append([])
                ended = None
            out[-1].append(cycle)
            if cycle.resolved is not None:
                ended = cycle.resolved if ended is None else min(ended, cycle.resolved)
        return out

    @property
    def reopened(self) -> list[datetime]:
        """When a rule fired again after it had resolved inside this incident."""
        times = []
        for rule in {lc.rule for lc in self.lifecycles}:
            for episode in self.episodes(rule)[1:]:
                times.append(min(lc.detected or lc.start for lc in episode))
        return sorted(times)

    @property
    def resolved(self) -> datetime | None:
        """Per rule, the first instance to see its last episode resolve; the incident ends when
        every rule has."""
        if self.point:
            return self.started
        ends = []
        for rule in {lc.rule for lc in self.lifecycles}:
            last = self.episodes(rule)[-1]
            times = [lc.resolved for lc in last if lc.resolved is not None]
            if not times:
                return None
            ends.append(min(times))
        return max(ends)

    @property
    def sent(self) -> list[LogRecord]:
        """The `notification.sent` lines that told someone about this incident: its own, and
        those of the notifications whose `grouped` line names one of its alerts."""
        return self.extra.get("sent", [n for n in self.notifications if n.event == "notification.sent"])

    @property
    def notified(self) -> datetime | None:
        """The first notification that reached someone about it opening (not its resolution)."""
        times = [n.at for n in self.sent if n.get("reason") != "resolved"]
        return min(times) if times else None

    @property
    def alert_ids(self) -> list[str]:
        """The alert incident ids (alerts/: the same on every receiver) its notifications carry."""
        ids = [n.get("incident") for n in self.notifications] + [n.get("incident") for n in self.sent]
        return list(dict.fromkeys(i for i in ids if isinstance(i, str) and i))

    @property
    def detecting_instance(self) -> str | None:
        firsts = [(lc.detected, lc.instance) for lc in self.lifecycles if lc.detected is not None]
        if firsts:
            return min(firsts)[1]
        return self.observed[0].instance if self.observed else None

    def end_or(self, fallback: datetime) -> datetime:
        return self.resolved or fallback

    def open_until(self, end_of_log: datetime) -> datetime:
        """The last moment any instance still had it open (instances resolve it at their own
        polls, on their own clocks): what an event may fall within to belong to it."""
        if self.point:
            return self.started
        return max(lc.resolved or end_of_log for lc in self.lifecycles)


def lifecycles(records: list[LogRecord]) -> tuple[list[Lifecycle], list[LogRecord]]:
    """(alert lifecycles, observed events) from the detector lines, in time order."""
    open_: dict[tuple, Lifecycle] = {}
    done: list[Lifecycle] = []
    observed: list[LogRecord] = []
    for record in records:
        if record.event != "detector.event":
            continue
        rule, source, region = record.get("rule"), record.get("source"), record.get("region")
        if not all(isinstance(v, str) for v in (rule, source, region)):
            continue
        state = record.get("state")
        if state == "observed":
            observed.append(record)
            continue
        key = (record.instance, rule, source, region)
        current = open_.get(key)
        if current is None:
            current = open_[key] = Lifecycle(record.instance, rule, source, region)
            done.append(current)
        current.events.append(record)
        if state == "resolved":
            del open_[key]
    return done, observed


def merge(cycles: list[Lifecycle], end_of_log: datetime) -> list[ReviewIncident]:
    groups: dict[tuple, list[Lifecycle]] = {}
    for cycle in cycles:
        groups.setdefault((cycle.source, cycle.region, cycle.family), []).append(cycle)
    incidents = []
    for (source, region, _), members in groups.items():
        members.sort(key=lambda c: c.start)
        current: ReviewIncident | None = None
        current_end = None
        for cycle in members:
            cycle_end = cycle.resolved or end_of_log
            if current is not None and cycle.start <= current_end:
                current.lifecycles.append(cycle)
                current_end = max(current_end, cycle_end)
                continue
            current = ReviewIncident(source, region, [cycle])
            current_end = cycle_end
            incidents.append(current)
    return incidents


def attach_observed(incidents: list[ReviewIncident], observed: list[LogRecord], end_of_log: datetime,
                    grace: dict[tuple[str, str], timedelta],
                    skew: timedelta = timedelta(0)) -> tuple[list[ReviewIncident], list[LogRecord]]:
    """Observed events join the incident they happen in (or at the end of, within one poll:
    the catch-up jump is judged in the pass that resolves the stall); the rest stand alone,
    one point incident per anomaly however many instances saw it (same key and summary, other
    instance, within a poll plus the instances' clock `skew`).
    Returns (point incidents, info-level observations)."""
    points: list[ReviewIncident] = []
    notes: list[LogRecord] = []
    for record in observed:
        source, region = record.get("source"), record.get("region")
        slack = grace.get((source, region), timedelta(0))
        home = [i for i in incidents if (i.source, i.region) == (source, region)
                and i.started <= record.at <= i.open_until(end_of_log) + slack]
        if home:
            # a stall owns its catch-up before any other overlapping incident does
            home.sort(key=lambda i: (not i.stoppage, i.started))
            home[0].observed.append(record)
            continue
        twin = next((p for p in points if _same_anomaly(p.observed[0], record, slack + skew)
                     and record.instance not in {o.instance for o in p.observed}), None)
        if twin is not None:
            twin.observed.append(record)
        elif record.get("severity") == "info":
            notes.append(record)
        else:
            points.append(ReviewIncident(source, region, observed=[record]))
    return points, notes


def _same_anomaly(a: LogRecord, b: LogRecord, tolerance: timedelta) -> bool:
    return (all(a.get(k) == b.get(k) for k in ("rule", "source", "region", "summary"))
            and abs(a.at - b.at) <= tolerance)


def notification_keys(fields: dict) -> set[tuple[str, str, str]]:
    """The alert keys a notification line is about, from whichever of its fields say so:
    rule/source/region; `alert_key` (what alerts/ writes: `rule/source/region`) or `key`, each
    a string, a list or a mapping; and `members` when it lists keys (alerts/ writes a count)."""
    keys = set()
    if all(isinstance(fields.get(k), str) for k in ("rule", "source", "region")):
        keys.add((fields["rule"], fields["source"], fields["region"]))
    listed = [v for k in ("members", "keys") if isinstance(fields.get(k), list) for v in fields[k]]
    candidates = [fields.get("alert_key"), fields.get("key")] + listed
    for candidate in candidates:
        parsed = _parse_key(candidate)
        if parsed:
            keys.add(parsed)
    return keys


def _parse_key(value: Any) -> tuple[str, str, str] | None:
    if isinstance(value, dict):
        parts = [value.get(k) for k in ("rule", "source", "region")]
        return tuple(parts) if all(isinstance(p, str) for p in parts) else None  # type: ignore[return-value]
    if isinstance(value, (list, tuple)) and len(value) == 3 and all(isinstance(p, str) for p in value):
        return tuple(value)  # type: ignore[return-value]
    if isinstance(value, str):
        for separator in ("|", "/", ":", ",", " "):
            parts = value.split(separator)
            if len(parts) == 3 and all(parts):
                return (parts[0], parts[1], parts[2])
    return None


def attach_notifications(incidents: list[ReviewIncident], records: list[LogRecord]) -> list[LogRecord]:
    """Each notification line joins exactly one incident: the latest incident of the alert key
    the line names (a `queued`/`sent` line names the notification's lead alert, a `grouped`
    line one other member) that began by then (a repeat can come hours in, a resolution just
    after the end). A line that names no key falls back on its source/region. An incident is
    told by its own `sent` lines and by the `sent` line of every notification one of its
    `grouped` lines belongs to (`extra["sent"]`). Returns the lines that fit no incident."""
    notes = [r for r in records if r.event.startswith("notification.") or r.event == "incident.opened"]
    sent_by_id: dict[str, list[LogRecord]] = {}
    for record in notes:
        if record.event == "notification.sent" and isinstance(record.get("notification"), str):
            sent_by_id.setdefault(record.get("notification"), []).append(record)
    loose = []
    for record in notes:
        home = _home(incidents, record)
        if home is None:
            loose.append(record)
        else:
            home.notifications.append(record)
    for incident in incidents:
        sent = [n for n in incident.notifications if n.event == "notification.sent"]
        for line in incident.notifications:
            if line.event == "notification.grouped":
                sent += sent_by_id.get(line.get("notification"), [])
        unique = {id(n): n for n in sent}
        incident.extra["sent"] = sorted(unique.values(), key=lambda r: r.sort_key)
    return loose


def _home(incidents: list[ReviewIncident], record: LogRecord) -> ReviewIncident | None:
    keys = notification_keys(dict(record.fields))
    if keys:
        # when each candidate first showed one of the keys (its detection, or the point anomaly)
        seen = {id(i): min(i.key_seen(k) for k in keys & i.keys) for i in incidents if keys & i.keys}
        pool = [i for i in incidents if id(i) in seen]
    else:
        region = record.get("region")
        pool = [i for i in incidents if isinstance(record.get("source"), str) and i.source == record.get("source")
                and (not isinstance(region, str) or i.region == region)]
        seen = {id(i): i.detected or i.started for i in pool}
    began = [i for i in pool if seen[id(i)] <= record.at + NOTIFY_SLACK]
    return max(began, key=lambda i: (seen[id(i)], i.started)) if began else None
