"""The review as one self-contained HTML page (the chart is linked, not embedded, so the page
stays small and the PNG can be attached to a ticket on its own)."""
from __future__ import annotations

from html import escape
from typing import Any

from .build import Row, Timeline, summary_times
from .fmt import both, duration, redact, zone_name
from .render import (DEFINITIONS, SUMMARY_COLUMNS, _facts, _incident_title, alert_ids, header_lines, local_cell,
                     utc_cell)

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 78em; color: #222; }
table { border-collapse: collapse; margin: .6em 0 1.2em; }
th, td { border: 1px solid #ccc; padding: .25em .5em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.kind-firing, td.kind-escalated, td.kind-reopened { color: #b00; } td.kind-resolved { color: #070; }
td.kind-outage { color: #a40; } td.kind-notification { color: #035; }
img { max-width: 100%; border: 1px solid #ddd; }
"""


# Row kinds the style knows; anything else (a `state` a log line made up) is "other", so a
# log field never reaches an attribute even escaped.
KINDS = ("last_advance", "firing", "escalated", "repeat", "reopened", "resolved", "observed", "notification", "outage",
         "recovered", "catch_up", "context")


def _e(value: Any) -> str:
    """Text for an element's content or a quoted attribute: every one of & < > " ' escaped."""
    return escape(redact(value), quote=True)


def _kind_class(kind: str) -> str:
    return f"kind-{kind if kind in KINDS else 'other'}"


def _table(headers: list[str], rows: list[list[Any]], classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for index, row in enumerate(rows):
        css = f' class="{_e(classes[index])}"' if classes else ""
        body.append("<tr>" + "".join(f"<td{css}>{_e(c)}</td>" for c in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _rows(rows: list[Row], timeline: Timeline) -> str:
    if not rows:
        return "<p><em>No events.</em></p>"
    zone = timeline.zone
    label = f"Time ({zone_name(rows[0].at, zone)})"
    return _table([label, "UTC", "Instance", "Event"],
                  [[local_cell(r.at, zone), utc_cell(r.at), r.instance, r.text] for r in rows],
                  [_kind_class(r.kind) for r in rows])


def render_html(timeline: Timeline, chart: dict[str, Any]) -> str:
    zone = timeline.zone
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>countwatch post-incident review</title>",
             f"<style>{STYLE}</style></head><body><h1>countwatch post-incident review</h1><ul>"]
    parts += [f"<li>{_e(line)}</li>" for line in header_lines(timeline)]
    parts.append("</ul><h2>Summary</h2>")
    if timeline.incidents:
        rows = []
        for incident in timeline.incidents:
            cells = summary_times(incident, zone, timeline.last)
            rows.append([incident.id, alert_ids(incident), " + ".join(incident.rules), incident.place,
                         incident.severity, cells["started"], cells["detected"], cells["notified"],
                         cells["resolved"], cells["time_to_detect"], cells["time_to_notify"], cells["length"]])
        parts.append(_table(list(SUMMARY_COLUMNS), rows))
        parts.append(f"<p>{_e(DEFINITIONS.replace('*', '').replace('`', ''))}</p>")
    else:
        parts.append("<p>No incident in these logs: no detector fired.</p>")
    parts.append("<h2>Progress chart</h2>")
    if chart.get("path"):
        parts.append(f"<p><img src='{escape(chart['link'], quote=True)}' "
                     "alt='progress of the count, stalls and outages shaded, alerts marked'></p>")
    else:
        parts.append(f"<p><em>Chart skipped: {_e(chart.get('reason', 'not requested'))}.</em></p>")
    parts.append("<h2>Incidents</h2>")
    for incident in timeline.incidents:
        parts.append(f"<h3>{_e(_incident_title(incident))}</h3><ul>")
        parts += [f"<li>{_e(fact)}</li>" for fact in _facts(incident, timeline)]
        parts.append("</ul>" + _rows(incident.extra.get("rows", []), timeline))
    if not timeline.incidents:
        parts.append("<p>None.</p>")
    if timeline.outages:
        parts.append("<h2>Outage spans (runs of failed polls)</h2>")
        parts.append(_table(
            ["Source/region", "Instance", "From", "Until", "Length", "Failed polls", "Results"],
            [[f"{s.source}/{s.region}", s.instance, both(s.start, zone),
              both(s.recovered, zone) if s.recovered else f"still failing at {both(s.last_failed, zone)}",
              duration(s.end - s.start), s.polls, ", ".join(f"{k} ×{v}" for k, v in sorted(s.results.items()))]
             for s in timeline.outages]))
    if timeline.observations:
        parts.append("<h2>Other observations (severity info)</h2>")
        parts.append(_table(["Time", "Instance", "Rule", "Source/region", "What"],
                            [[both(o.at, zone), o.instance, o.get("rule"), f"{o.get('source')}/{o.get('region')}",
                              o.get("summary", "")] for o in timeline.observations]))
    parts.append("<h2>Instances</h2>")
    parts.append(_table(["Instance", "Lines", "First line", "Last line", "Clock offset"],
                        [[name, f"{info['lines']:,}", both(info["first"], zone), both(info["last"], zone),
                          info["offset_text"]] for name, info in sorted(timeline.instances.items())]))
    if timeline.context:
        parts.append("<h2>Other log events</h2>" + _rows(timeline.context, timeline))
    parts.append("</body></html>\n")
    return "\n".join(parts)
