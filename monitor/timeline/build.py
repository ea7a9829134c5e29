"""From log records to the review's content: incidents with their event-by-event rows, outage
spans, the progress series, and what was read. Renderers only format a `Timeline`."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

from . import incidents as inc
from ..model import progress_ratio
from .fmt import both, duration, redact
from .polls import OutageSpan, PollPoint, by_series, catch_up, last_advance, outage_spans, poll_intervals, poll_points
from .records import LogRecord, ReadStats

# lines worth a row outside any incident: an instance starting or stopping, a job failing
CONTEXT_EVENTS = ("daemon.", "job.error", "state.error", "receiver.", "outbox.")


@dataclass(frozen=True)
class Row:
    at: datetime
    instance: str
    kind: str          # last_advance | firing | escalated | repeat | reopened | resolved | observed | notification |
                       # outage | recovered | catch_up | context
    text: str


@dataclass
class Timeline:
    zone: tzinfo
    stats: ReadStats
    instances: dict[str, dict[str, Any]]
    incidents: list[inc.ReviewIncident]
    observations: list[LogRecord]
    outages: list[OutageSpan]
    context: list[Row]
    series: dict[tuple[str, str], list[PollPoint]]
    first: datetime | None
    last: datetime | None
    window: tuple[datetime | None, datetime | None] = (None, None)
    filters: dict[str, str | None] = field(default_factory=dict)
    clock_note: str = ""
    names: dict[tuple[str, str], str] = field(default_factory=dict)   # from the daemon's region.named lines

    def place(self, source: str, region: str) -> str:
        name = self.names.get((source, region))
        return f"{source}: {name} ({region})" if name else f"{source}/{region}"


def _pct(reported: int | None, stations: int | None) -> str:
    ratio = progress_ratio(stations, reported)
    return "?" if ratio is None else f"{100.0 * ratio:.2f}%"


def _count(point: PollPoint, units: str = "stations") -> str:
    if point.stations:
        return f"{point.stations_reported:,} of {point.stations:,} {units} ({_pct(point.stations_reported, point.stations)})"
    return f"{point.stations_reported:,} {units}"


def build_timeline(records: list[LogRecord], stats: ReadStats, zone: tzinfo, *,
                   instances: dict[str, dict[str, Any]] | None = None, source: str | None = None,
                   region: str | None = None, start: datetime | None = None, end: datetime | None = None,
                   clock_note: str = "", skew: timedelta = timedelta(0), incident_id: str | None = None) -> Timeline:
    """`skew`: how far apart the instances' clocks may be (for matching one anomaly seen by
    several instances)."""
    first = records[0].at if records else None
    last = records[-1].at if records else None
    points = poll_points(records)
    series_polls = by_series(points)
    spans = outage_spans(points)
    cycles, observed = inc.lifecycles(records)
    end_of_log = last or datetime.max
    incidents = inc.merge(cycles, end_of_log)
    grace = poll_intervals(series_polls)
    # What a time in the review is precise to: one pass of the source. A tree's document is
    # fetched only when its parent's table says it changed, so its own polls can be hours
    # apart while every pass would have seen a change: the source's quickest series (its top
    # document, read every pass) gives the pass.
    passes: dict[str, timedelta] = {}
    for (name, _), gap in grace.items():
        if gap > timedelta(0) and gap < passes.get(name, timedelta.max):
            passes[name] = gap
    singles, notes = inc.attach_observed(incidents, observed, end_of_log, grace, skew)
    incidents.extend(singles)
    incidents.sort(key=lambda i: (i.started, i.source, i.region))
    loose = inc.attach_notifications(incidents, records)
    names = {(str(r.get("source")), str(r.get("region"))): str(r.get("name")) for r in records
             if r.event == "region.named" and r.get("name")}
    # What each source counts, as its alerts said it ("TPS", "precincts"): the daemon's start
    # line names it; a log from before that says "stations".
    units: dict[str, str] = {}
    for r in records:
        if r.event == "daemon.started" and isinstance(r.get("units"), dict):
            units.update({str(k): str(v) for k, v in r.get("units").items()})
    for number, incident in enumerate(incidents, 1):
        incident.id = f"#{number}"
        incident.extra["units"] = units.get(incident.source, "stations")
        if (incident.source, incident.region) in names:
            incident.extra["region_name"] = names[(incident.source, incident.region)]
        _enrich(incident, series_polls, spans, grace, passes, end_of_log)

    if incident_id is not None:
        # an alert incident id (as Slack and the console show it) or the review's own number
        chosen = [i for i in incidents if incident_id in i.alert_ids or i.id in (incident_id, f"#{incident_id}")]
        source = source or (chosen[0].source if chosen else "\0none")
        region = region or (chosen[0].region if len({i.region for i in chosen}) == 1 else None)
        incidents = chosen

    def wanted(src: str | None, reg: str | None) -> bool:
        return (source is None or src == source) and (region is None or reg == region)

    def in_window(a: datetime, b: datetime) -> bool:
        return (start is None or b >= start) and (end is None or a <= end)

    context = [_context_row(r) for r in records if r.event.startswith(CONTEXT_EVENTS)]
    context += [_notification_row(r, unmatched=True) for r in loose]
    return Timeline(
        zone=zone, stats=stats, instances=instances or {},
        incidents=[i for i in incidents if wanted(i.source, i.region)
                   and in_window(i.started, i.end_or(end_of_log))],
        observations=[o for o in notes if wanted(o.get("source"), o.get("region")) and in_window(o.at, o.at)],
        outages=[s for s in spans if wanted(s.source, s.region) and in_window(s.start, s.end)],
        context=sorted((c for c in context if in_window(c.at, c.at)), key=lambda c: (c.at, c.instance)),
        series=_chart_series(series_polls, wanted, in_window),
        first=first, last=last, window=(start, end), filters={"source": source, "region": region, "incident": incident_id},
        clock_note=clock_note, names=names)


def _chart_series(series_polls, wanted, in_window) -> dict[tuple[str, str], list[PollPoint]]:
    """Per (source, region), the polls of the instance that polled it most: mixing instances
    in one line would zig-zag by their clock difference."""
    best: dict[tuple[str, str], list[PollPoint]] = {}
    for (_, src, reg), polls in series_polls.items():
        if not wanted(src, reg):
            continue
        kept = [p for p in polls if in_window(p.at, p.at)]
        if len(kept) > len(best.get((src, reg), [])):
            best[(src, reg)] = kept
    return best


def _enrich(incident: inc.ReviewIncident, series_polls, spans: list[OutageSpan], grace, passes,
            end_of_log: datetime) -> None:
    """The poll-side facts of an incident: last advance, catch-up, outage spans, its rows."""
    extra = incident.extra
    instance = incident.detecting_instance
    polls = series_polls.get((instance, incident.source, incident.region), [])
    extra["poll_interval"] = grace.get((incident.source, incident.region), timedelta(0))
    extra["precision"] = passes.get(incident.source, extra["poll_interval"])
    detected = incident.detected
    span_end = incident.end_or(end_of_log)
    # the last advance and the catch-up are a stall's story; an outage's end is its recovery
    stall = incident.stoppage and detected is not None
    extra["last_advance"] = last_advance(polls, detected) if stall else None
    resumed = catch_up(polls, detected) if stall else None
    if resumed is not None and resumed[0].at > span_end + extra["poll_interval"]:
        resumed = None   # the count moved only after the incident was closed: not its catch-up
    extra["catch_up"] = resumed
    extra["outages"] = [s for s in spans if s.source == incident.source and s.overlaps(incident.started, span_end)]
    extra["ended"] = _ended(incident, extra)
    extra["rows"] = _rows(incident)


def _ended(incident: inc.ReviewIncident, extra: dict) -> datetime | None:
    """When the condition itself ended, as the polls saw it: the catch-up poll of a stall, the
    first ok poll after an outage's failures. The `resolved` event can come later (an outage
    detector waits for a few good polls so a flapping site gives one incident); the review's
    length runs to this moment. Falls back on `resolved` when the polls do not say."""
    resolved = incident.resolved
    if resolved is None or incident.point:
        return resolved
    if incident.stoppage and extra.get("catch_up") is not None:
        return min(resolved, extra["catch_up"][0].at)
    if incident.lifecycles[0].family == "outage":
        # the detector measured the outage (first failed poll -> first good poll, by the polls'
        # own start times) and said so in its resolution: the review repeats that span rather
        # than re-measuring it from poll lines, which are stamped when the poll has finished
        said = _recovered_at(incident)
        if said is not None and said <= resolved:
            return said
        recoveries = [s.recovered for s in extra.get("outages", [])
                      if s.region == incident.region and s.recovered is not None and s.recovered <= resolved]
        if recoveries:
            return max(recoveries)
    return resolved


def _recovered_at(incident: inc.ReviewIncident) -> datetime | None:
    """The first good poll after the failures, as the outage detector's resolution states it."""
    for event in (e for lifecycle in incident.lifecycles for e in lifecycle.events):
        details = event.get("details")
        if event.get("state") == "resolved" and isinstance(details, dict) and isinstance(details.get("recovered_at"), str):
            return inc.time_of(details["recovered_at"])
    return None


def _rows(incident: inc.ReviewIncident) -> list[Row]:
    units = incident.extra.get("units", "stations")
    rows: list[Row] = []
    extra = incident.extra
    advance: PollPoint | None = extra.get("last_advance")
    if advance is not None:
        rows.append(Row(advance.at, advance.instance, "last_advance",
                        f"last poll that saw the count advance: {_count(advance, units)}"))
    seen_open: set[tuple] = set()
    for event in incident.events:
        rows.append(_detector_row(event, seen_open))
    for span in extra.get("outages", []):
        results = ", ".join(f"{k} ×{v}" for k, v in sorted(span.results.items()))
        rows.append(Row(span.start, span.instance, "outage",
                        f"polls of {span.source}/{span.region} failing ({results})"))
        if span.recovered is not None:
            rows.append(Row(span.recovered, span.instance, "recovered",
                            f"polls of {span.source}/{span.region} succeed again after "
                            f"{duration(span.recovered - span.start)} ({span.polls} failed polls)"))
    resumed = extra.get("catch_up")
    if resumed is not None:
        point, added, before = resumed
        since_advance = f", {duration(point.at - advance.at)} after the last advance" if advance else ""
        rows.append(Row(point.at, point.instance, "catch_up",
                        f"count resumed: +{added:,} {units} ({_pct(before.stations_reported, before.stations)} → "
                        f"{_pct(point.stations_reported, point.stations)}){since_advance}"))
    rows.extend(_notification_row(n) for n in incident.notifications)
    order = {"last_advance": 0, "outage": 1, "firing": 2, "escalated": 2, "repeat": 2, "reopened": 2, "recovered": 3,
             "catch_up": 3, "observed": 4, "resolved": 5, "notification": 6}
    return sorted(rows, key=lambda r: (r.at, order.get(r.kind, 9), r.instance))


def _detector_row(event: LogRecord, seen_open: set[tuple]) -> Row:
    state = str(event.get("state"))
    key = (event.instance, event.get("rule"))
    kind = state
    if state == "firing":
        kind = "repeat" if key in seen_open else "reopened" if ("resolved",) + key in seen_open else "firing"
        seen_open.add(key)
    elif state == "resolved":
        seen_open.discard(key)
        seen_open.add(("resolved",) + key)
    verb = {"repeat": "fires again", "reopened": "fires again after it resolved: the incident reopens"}.get(kind, state)
    text = f"{event.get('rule')} {verb} ({event.get('severity')})"
    summary = event.get("summary")
    if summary:
        text += f": {redact(summary)}"
    details = event.get("details") if isinstance(event.get("details"), dict) else {}
    published = details.get("last_published_at")
    if isinstance(published, str):
        # the source's own clock, as it wrote it (KPU: WIB): the other side of `since`
        text = f"{text.rstrip('.')}; source's last publication {published}"
    return Row(event.at, event.instance, kind, text)


def _notification_row(record: LogRecord, unmatched: bool = False) -> Row:
    if record.event == "incident.opened":
        return Row(record.at, record.instance, "notification",
                   redact(f"alert incident {record.get('incident')} opened for {record.get('receiver')} "
                          f"(group {', '.join(map(str, record.get('group') or []))})"))
    verb = record.event.split(".", 1)[1]
    text = f"notification {verb}"
    if record.get("receiver"):
        text += f" → {record.get('receiver')}"
    if record.get("reason"):
        text += f" ({record.get('reason')})"
    for key in ("error", "detail", "attempts", "silence"):
        value = record.get(key)
        if value not in (None, "", []):
            text += f"; {key}: {value if not isinstance(value, list) else len(value)}"
    if unmatched:
        text += f"; alert {record.get('alert_key') or record.get('key') or '?'} (no incident in the log)"
    return Row(record.at, record.instance, "notification", redact(text))


def _context_row(record: LogRecord) -> Row:
    parts = [record.event]
    for key in ("source", "error", "signal", "receiver", "reason", "operation"):
        if record.get(key) not in (None, ""):
            parts.append(f"{key}={record.get(key)}")
    return Row(record.at, record.instance, "context", redact(" ".join(parts)))


def summary_times(incident: inc.ReviewIncident, zone: tzinfo, end_of_log: datetime | None) -> dict[str, str]:
    """The summary table's cells of one incident (the same in every format)."""
    started, detected, notified, resolved = incident.started, incident.detected, incident.notified, incident.resolved
    ended = incident.extra.get("ended", resolved)
    if incident.point:
        length_text, resolved_text = "— (seen once)", "— (seen once)"
    elif resolved:
        length_text, resolved_text = duration(ended - started), both(resolved, zone)
    else:
        length_text = f"≥ {duration(end_of_log - started)} (open at end of log)" if end_of_log else "open"
        resolved_text = "open"
    return {
        "started": both(started, zone), "detected": both(detected, zone), "notified": both(notified, zone),
        "resolved": resolved_text, "ended": both(ended, zone) if ended and not incident.point else "—",
        "time_to_detect": duration(detected - started) if detected else "—",
        "time_to_notify": duration(notified - started) if notified else "—",
        "length": length_text,
    }
