"""The review as Markdown (to paste into a post-mortem) and as JSON (for other tools).

Both carry the same facts in the same order: what was read, the summary table, the chart,
each incident with its event-by-event rows, outage spans, observations, instances."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

from .build import Row, Timeline, summary_times
from .fmt import both, duration, local_iso, redact, redact_value, utc_iso, zone_name
from .incidents import ReviewIncident

SUMMARY_COLUMNS = ("Incident", "Alert id", "Rules", "Source/region", "Severity", "Started", "Detected", "Notified",
                   "Resolved", "Time to detect", "Time to notify", "Length")
DEFINITIONS = (
    "*Started*: when the condition began on our clock — for a stall, the poll that last saw the count "
    "advance (the detector's `since`); for an outage, the first failed poll. *Detected*: the first "
    "firing event. *Notified*: the first notification sent about it (resolution messages excluded). "
    "*Resolved*: the resolved event (an outage waits for a few good polls, so it can follow the end). "
    "*Time to detect* and *time to notify* are measured from *started*; *length* runs from started to "
    "the end as the polls saw it (a stall's catch-up poll, the first good poll after an outage)."
)


def md_cell(text: Any) -> str:
    """Log text as Markdown shows it and nothing more: HTML is escaped (Markdown passes raw
    HTML through, so a log field could add a tag), brackets cannot start a link, a pipe cannot
    end a cell, a newline cannot end a row."""
    text = redact(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("[", "\\[").replace("]", "\\]").replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def local_cell(moment: datetime, zone: tzinfo) -> str:
    return moment.astimezone(zone).strftime("%d %b %Y %H:%M:%S")


def utc_cell(moment: datetime) -> str:
    # whole seconds, like the local cell beside it (the JSON keeps the milliseconds)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def chart_markdown(chart: dict[str, Any]) -> str:
    if chart.get("path"):
        return f"![progress of the count, stalls and outages shaded, alerts marked]({chart['link']})"
    return f"_Chart skipped: {md_cell(chart.get('reason', 'not requested'))}._"


def header_lines(timeline: Timeline) -> list[str]:
    stats, zone = timeline.stats, timeline.zone
    sample = timeline.first or datetime.now().astimezone()
    lines = [
        f"Read {len(stats.files)} file(s), {stats.records:,} countwatch lines from "
        f"{len(timeline.instances)} instance(s) ({', '.join(sorted(timeline.instances)) or 'none'}); "
        f"skipped {stats.foreign:,} foreign line(s), {stats.truncated:,} truncated, "
        f"{stats.duplicates:,} duplicate(s).",
        f"Covers {both(timeline.first, zone)} → {both(timeline.last, zone)}.",
        f"Times are in the source's local time ({zone_name(sample, zone)}, {zone}) with UTC beside them.",
    ]
    for path, error in stats.unreadable:
        lines.append(f"Could not read {path}: {error}.")
    lines.extend(stats.notes)
    filters = {k: v for k, v in timeline.filters.items() if v}
    start, end = timeline.window
    if filters or start or end:
        parts = [f"{k} = {v}" for k, v in filters.items()]
        if start:
            parts.append(f"from {both(start, zone)}")
        if end:
            parts.append(f"to {both(end, zone)}")
        lines.append("Filtered: " + ", ".join(parts) + ".")
    if timeline.clock_note:
        lines.append(timeline.clock_note)
    return lines


def alert_ids(incident: ReviewIncident) -> str:
    """The alert incident ids (as in Slack, the console and the webhook) the review found."""
    return ", ".join(incident.alert_ids) or "—"


def _incident_title(incident: ReviewIncident) -> str:
    ids = f" — alert incident {', '.join(incident.alert_ids)}" if incident.alert_ids else ""
    return f"{incident.id} {' + '.join(incident.rules)} on {incident.place} ({incident.severity}){ids}"


def _facts(incident: ReviewIncident, timeline: Timeline) -> list[str]:
    zone, extra = timeline.zone, incident.extra
    cells = summary_times(incident, zone, timeline.last)
    facts = [f"Started: {cells['started']}"]
    advance = extra.get("last_advance")
    if advance is not None:
        facts.append(f"Last advance seen in the polls: {both(advance.at, zone)} ({advance.instance})")
    facts.append(f"Detected: {cells['detected']} — after {cells['time_to_detect']}"
                 + (f" by {incident.detecting_instance}" if incident.detecting_instance else ""))
    sent = incident.sent
    receivers = sorted({str(n.get("receiver")) for n in sent if n.get("receiver")})
    facts.append(f"Notified: {cells['notified']} — after {cells['time_to_notify']}"
                 + (f"; {len(sent)} message(s) sent to {', '.join(receivers)}" if sent else ""))
    resumed = extra.get("catch_up")
    if resumed is not None:
        point, added, _ = resumed
        facts.append(f"Count resumed: {both(point.at, zone)}, +{added:,} {extra.get('units', 'stations')} in one update")
    if extra.get("outages"):
        total = sum((s.end - s.start for s in extra["outages"]), start=timedelta(0))
        facts.append(f"Outage spans inside it: {len(extra['outages'])}, {duration(total)} of failed polls")
    if incident.reopened:
        facts.append("Reopened: " + ", ".join(both(t, zone) for t in incident.reopened)
                     + " (a rule fired again after it had resolved)")
    if not incident.point:
        if incident.resolved is not None:
            facts.append(f"Over: {cells['ended']} (the first poll that saw it end)")
        facts.append(f"Resolved: {cells['resolved']} — length {cells['length']}")
    if extra.get("precision"):
        facts.append(f"Poll interval: {duration(extra['precision'])} (times above are as precise as one poll of the source)")
    return facts


def render_markdown(timeline: Timeline, chart: dict[str, Any]) -> str:
    zone = timeline.zone
    out = ["# countwatch post-incident review", ""]
    out += [f"- {md_cell(line)}" for line in header_lines(timeline)]
    out += ["", "## Summary", ""]
    if timeline.incidents:
        out.append("| " + " | ".join(SUMMARY_COLUMNS) + " |")
        out.append("|" + "---|" * len(SUMMARY_COLUMNS))
        for incident in timeline.incidents:
            cells = summary_times(incident, zone, timeline.last)
            row = [incident.id, alert_ids(incident), " + ".join(incident.rules), incident.place,
                   incident.severity, cells["started"], cells["detected"], cells["notified"], cells["resolved"],
                   cells["time_to_detect"], cells["time_to_notify"], cells["length"]]
            out.append("| " + " | ".join(md_cell(c) for c in row) + " |")
        out += ["", DEFINITIONS]
    else:
        out.append("No incident in these logs: no detector fired.")
    out += ["", "## Progress chart", "", chart_markdown(chart), "", "## Incidents"]
    for incident in timeline.incidents:
        out += ["", f"### {md_cell(_incident_title(incident))}", ""]
        out += [f"- {md_cell(fact)}" for fact in _facts(incident, timeline)]
        out += ["", _rows_table(incident.extra.get("rows", []), zone)]
    if not timeline.incidents:
        out += ["", "None."]
    if timeline.outages:
        out += ["", "## Outage spans (runs of failed polls)", "",
                "| Source/region | Instance | From | Until | Length | Failed polls | Results |", "|---|---|---|---|---|---|---|"]
        for span in timeline.outages:
            until = both(span.recovered, zone) if span.recovered else f"still failing at {both(span.last_failed, zone)}"
            results = ", ".join(f"{k} ×{v}" for k, v in sorted(span.results.items()))
            out.append("| " + " | ".join(md_cell(c) for c in (
                f"{span.source}/{span.region}", span.instance, both(span.start, zone), until,
                duration(span.end - span.start), span.polls, results)) + " |")
    if timeline.observations:
        out += ["", "## Other observations (severity info)", "", "| Time | Instance | Rule | Source/region | What |",
                "|---|---|---|---|---|"]
        for note in timeline.observations:
            out.append("| " + " | ".join(md_cell(c) for c in (
                both(note.at, zone), note.instance, note.get("rule"), f"{note.get('source')}/{note.get('region')}",
                note.get("summary", ""))) + " |")
    out += ["", "## Instances", "", "| Instance | Lines | First line | Last line | Clock offset |", "|---|---|---|---|---|"]
    for name, info in sorted(timeline.instances.items()):
        out.append("| " + " | ".join(md_cell(c) for c in (
            name, f"{info['lines']:,}", both(info["first"], zone), both(info["last"], zone), info["offset_text"])) + " |")
    if timeline.context:
        out += ["", "## Other log events", "", _rows_table(timeline.context, zone)]
    return "\n".join(out) + "\n"


def _rows_table(rows: list[Row], zone: tzinfo) -> str:
    if not rows:
        return "_No events._"
    sample = rows[0].at
    lines = [f"| Time ({zone_name(sample, zone)}) | UTC | Instance | Event |", "|---|---|---|---|"]
    for row in rows:
        lines.append("| " + " | ".join(md_cell(c) for c in (
            local_cell(row.at, zone), utc_cell(row.at), row.instance, row.text)) + " |")
    return "\n".join(lines)


def _moment(moment: datetime | None, zone: tzinfo) -> dict[str, str | None] | None:
    return None if moment is None else {"utc": utc_iso(moment), "local": local_iso(moment, zone)}


def render_json(timeline: Timeline, chart: dict[str, Any]) -> str:
    zone = timeline.zone

    def incident_json(incident: ReviewIncident) -> dict[str, Any]:
        started, detected, notified, resolved = (incident.started, incident.detected, incident.notified,
                                                  incident.resolved)
        resumed = incident.extra.get("catch_up")
        advance = incident.extra.get("last_advance")
        ended = None if incident.point else incident.extra.get("ended")
        return {
            "id": incident.id, "alert_ids": incident.alert_ids, "rules": incident.rules, "source": incident.source,
            "region": incident.region, "region_name": incident.extra.get("region_name"),
            "severity": incident.severity, "started": _moment(started, zone), "detected": _moment(detected, zone),
            "notified": _moment(notified, zone), "resolved": _moment(resolved, zone),
            "ended": _moment(ended, zone), "open": resolved is None, "point": incident.point,
            "time_to_detect_seconds": (detected - started).total_seconds() if detected else None,
            "time_to_notify_seconds": (notified - started).total_seconds() if notified else None,
            "length_seconds": (ended - started).total_seconds() if ended else None,
            "last_advance": None if advance is None else {
                **_moment(advance.at, zone), "instance": advance.instance,
                "stations_reported": advance.stations_reported, "stations": advance.stations},
            "catch_up": None if resumed is None else {
                **_moment(resumed[0].at, zone), "instance": resumed[0].instance, "added": resumed[1],
                "stations_reported": resumed[0].stations_reported, "stations": resumed[0].stations},
            "outages": [span_json(s) for s in incident.extra.get("outages", [])],
            "events": [row_json(r) for r in incident.extra.get("rows", [])],
        }

    def span_json(span) -> dict[str, Any]:
        return {"source": span.source, "region": span.region, "instance": span.instance,
                "start": _moment(span.start, zone), "recovered": _moment(span.recovered, zone),
                "last_failed": _moment(span.last_failed, zone), "results": span.results}

    def row_json(row: Row) -> dict[str, Any]:
        return {**_moment(row.at, zone), "instance": row.instance, "kind": row.kind, "text": row.text}

    data = {
        "timezone": str(zone),
        "read": timeline.stats.to_json(),
        "covers": {"first": _moment(timeline.first, zone), "last": _moment(timeline.last, zone)},
        "filters": {**timeline.filters, "from": utc_iso(timeline.window[0]), "to": utc_iso(timeline.window[1])},
        "clock_note": timeline.clock_note,
        "instances": {name: {"lines": info["lines"], "first": _moment(info["first"], zone),
                             "last": _moment(info["last"], zone), "offset_seconds": info.get("offset_seconds"),
                             "offset_samples": info.get("samples")}
                      for name, info in sorted(timeline.instances.items())},
        "chart": {k: v for k, v in chart.items() if k != "link"},
        "incidents": [incident_json(i) for i in timeline.incidents],
        "outages": [span_json(s) for s in timeline.outages],
        "observations": [{**_moment(o.at, zone), "instance": o.instance, "rule": o.get("rule"),
                          "source": o.get("source"), "region": o.get("region"), "summary": o.get("summary")}
                         for o in timeline.observations],
        "context": [row_json(r) for r in timeline.context],
    }
    return json.dumps(redact_value(data), indent=2, ensure_ascii=False) + "\n"
