"""Words and numbers for people: the one-sentence headline, the facts of an alert, times in
the source's local zone beside UTC, durations, and Slack escaping. Shared by every notifier
so the console, Slack and webhooks say the same thing."""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Iterable

from monitor.model import parse_iso
from monitor.wording import duration, when

from .notification import Member, Notification

CAUSE_PHRASES = {
    "publisher_stopped": "the publisher appears to have stopped",
    "count_stopped": "the count stopped advancing",
    "region_stalled": "the count stopped advancing",
    "pipeline_stuck": "the source's timestamp moves but its count does not",
    "outage": "the source cannot be reached",
}
MAX_LISTED = 8   # regions named in a headline before "and N more"


# Look-alikes for mrkdwn's markers where they could open or close bold, italic, strike or code.
_MARKERS = {"*": "\u2217", "_": "\uff3f", "~": "\u223c", "`": "\u02cb"}
_MARKER = re.compile(r"(?<![0-9A-Za-z])[*_~]|[*_~](?![0-9A-Za-z])|`")
_LINE_BREAKS = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


def escape_slack(text: Any) -> str:
    """Text (a source's names, error pages, detector summaries) made inert in Slack mrkdwn:
    `&`, `<` and `>` escaped, so it cannot make mentions or links; line breaks flattened, so
    it cannot start a quote or a code block; `*`, `_`, `~` at a word's edge and every backtick
    replaced by look-alikes, so it cannot make bold, italic, strike or code (`stale_source`
    keeps its underscore: mid-word markers format nothing). Bare URLs and @names are left
    alone here: slack_blocks sends every mrkdwn text `verbatim`, so Slack does not link them.
    Not for URLs (see slack_blocks._link)."""
    text = _LINE_BREAKS.sub(" ", str(text))
    text = _MARKER.sub(lambda match: _MARKERS[match.group()], text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else None
    if isinstance(value, str):
        try:
            return parse_iso(value)
        except ValueError:
            return None
    return None


def region_label(member: Member) -> str:
    """`Kab. Bandung (3204)`: the name people know, the code beside it; the code alone when
    no name is known."""
    details = member.event.details
    name = details.get("region_name") or details.get("name")
    return f"{name} ({member.event.region})" if name else member.event.region


def _regions(members: Iterable[Member], qualified: bool = False) -> str:
    """The members' regions, "source/region" when they come from several sources."""
    labels = list(dict.fromkeys(f"{m.event.source}/{region_label(m)}" if qualified else region_label(m)
                                for m in members))
    shown = ", ".join(labels[:MAX_LISTED])
    return shown + (f" and {len(labels) - MAX_LISTED} more" if len(labels) > MAX_LISTED else "")


def headline(notification: Notification) -> str:
    """What is wrong (or was), in one sentence; a race's display name first, since its source
    name (pilkada2024-pkwkk-3204) is a code people do not read as "Pilbup Bandung 2024"."""
    text = _headline(notification)
    return f"{notification.title} · {text}" if notification.title and notification.status != "test" else text


def _headline(notification: Notification) -> str:
    members = notification.members
    if notification.status == "test":
        return f"Test notification from countwatch ({notification.instance}) to receiver {notification.receiver}; no action needed."
    reminder = bool(members) and all(m.change == "repeat" for m in members)
    if len(members) == 1 and reminder:
        # the summary was true when the alert was news ("data is now 18m old"): say it anew
        text = current_summary(members[0], notification.created_at, notification.timezone, notification.units)
    elif len(members) == 1:
        event = members[0].event
        text = event.summary or f"{event.rule} on {event.source} region {event.region}"
        if region_label(members[0]) != event.region:
            text = f"{region_label(members[0])}: {text}"
    else:
        # A firing notification names what is still wrong; members resolved in it come after.
        ended = [m for m in members if m.change == "resolved"] if notification.status == "firing" else []
        current = [m for m in members if m not in ended] or members
        # Several sources only in an outage of their common host (grouped by host).
        sources = list(dict.fromkeys(m.event.source for m in members))
        several = len(sources) > 1
        regions = {(m.event.source, m.event.region) for m in current}
        rules = sorted({m.event.rule for m in current})
        phrase = CAUSE_PHRASES.get(notification.cause, notification.cause.replace("_", " "))
        if several:
            text = f"{', '.join(sources)}: {phrase} ({len(regions)} series: {_regions(current, True)})"
        elif len(regions) == 1:
            text = f"{notification.source}/{_regions(current)}: {phrase} ({', '.join(rules)})"
        else:
            text = f"{notification.source}: {phrase} in {len(regions)} regions: {_regions(current)}"
        if ended:
            text += f"; resolved: {_regions(ended, several)}"
    began = min((m.event.since for m in members if m.event.since), default=notification.opened_at)
    began = min(began, notification.opened_at)
    if notification.status == "resolved":
        # measured to the resolution the detectors saw, as the review measures it, not to
        # whenever the message left (group_wait, a retry)
        ended = max((ended_at(m.event) for m in members if m.change == "resolved"), default=notification.created_at)
        return f"Resolved after {duration((ended - began).total_seconds())}: {text}"
    if reminder:
        return f"Still open after {duration((notification.created_at - began).total_seconds())}: {text}"
    return text


def ended_at(event) -> datetime:
    """When a resolved condition really ended: an outage at its first good poll (the detector
    waits for a few more before it resolves), anything else at its resolution."""
    recovered = _moment(event.details.get("recovered_at"))
    return recovered if recovered is not None and recovered <= event.at else event.at


# What ended, as the "… lasted" fact names it.
_LASTED = {"stall": "Stall", "region_stall": "Stall", "stale_source": "Stale timestamp", "outage": "Outage",
           "latency": "Slow responses", "lagging": "Lag", "not_started": "Wait for the count"}


def lasted_label(rule: str) -> str:
    """`Stall lasted`, `Outage lasted`: the label of a resolved member's length."""
    return f"{_LASTED.get(rule, rule.replace('_', ' ').capitalize())} lasted"


def current_summary(member: Member, now: datetime, zone: str, units: str = "TPS") -> str:
    """An open alert's state as of `now`, from the facts its event carries, for reminders."""
    event, d = member.event, member.event.details
    place = f"{event.source}/{region_label(member)}"
    if event.rule in ("stall", "region_stall"):
        since = _moment(d.get("last_advance_at")) or event.since
        if since is not None:
            what = "polling stations" if units == "TPS" else units
            return f"no new {what} at {place} for {duration((now - since).total_seconds())} (since {when(since, zone)})"
    if event.rule == "stale_source":
        published = _moment(d.get("last_published_at"))
        if published is not None:
            return (f"{place} still serves data published {when(published, zone)}, "
                    f"now {duration((now - published).total_seconds())} old")
    if event.rule == "outage" and event.since is not None:
        return f"{place} unreachable for {duration((now - event.since).total_seconds())} (since {when(event.since, zone)})"
    return event.summary or f"{event.rule} on {place}"


def figures_of(notification: Notification) -> Member | None:
    """The member whose figures speak for a notification: of a group, the widest region (the
    province over its kab/kota: the group's own figure), else the lead."""
    members = notification.members
    if not members:
        return None
    if len({(m.event.source, m.event.region) for m in members}) == 1:
        return notification.lead
    return min(members, key=lambda m: (m.change == "resolved", len(m.event.region), m.event.region))


def facts(member: Member, zone: str, now: datetime, units: str = "TPS") -> list[tuple[str, str]]:
    """The evidence of one alert as (label, value) pairs, in the order people read them."""
    event = member.event
    d = event.details
    out: list[tuple[str, str]] = []
    ratio = d.get("progress_ratio")
    reported, stations = d.get("stations_reported"), d.get("stations")
    if isinstance(ratio, (int, float)) or isinstance(reported, int):
        text = f"{ratio * 100:.2f}%" if isinstance(ratio, (int, float)) else ""
        if isinstance(reported, int) and isinstance(stations, int):
            text = (text + " " if text else "") + f"({reported:,} of {stations:,} {units} reported)"
        out.append(("Progress", text))
    last_advance = _moment(d.get("last_advance_at")) or (event.since if event.rule in ("stall", "region_stall") else None)
    if last_advance is not None:
        out.append(("Last advance", when(last_advance, zone, missing='-')))
    published = _moment(d.get("last_published_at"))
    if published is not None:
        out.append(("Source timestamp", when(published, zone, missing='-')))
    if member.change == "resolved" and event.since is not None:
        # Named for its rule: a group's headline measures the incident from its earliest member
        # ("Resolved after 11h 31m", from the stale timestamp), these figures one member (the
        # stall, 11h 29m); a bare "Lasted" beside it read as a contradiction.
        out.append((lasted_label(event.rule), duration((ended_at(event) - event.since).total_seconds())))
    elif isinstance(d.get("stalled_seconds"), (int, float)):
        stalled = d["stalled_seconds"] + max(0.0, (now - event.at).total_seconds())
        out.append(("Stalled for", duration(stalled)))
    elif event.since is not None and event.state != "observed":
        out.append(("For", duration((now - event.since).total_seconds())))
    if isinstance(d.get("threshold_seconds"), (int, float)):
        text = f"warning after {duration(d['threshold_seconds'])}"
        if isinstance(d.get("critical_seconds"), (int, float)):
            text += f", critical after {duration(d['critical_seconds'])}"
        if d.get("threshold_reason"):
            text += f" ({d['threshold_reason']})"
        out.append(("Threshold", text))
    if isinstance(d.get("catch_up_stations"), int):
        out.append(("Catch-up", f"+{d['catch_up_stations']:,} {units} in one update"))
    if d.get("failures") is not None:
        # A count of the event's moment: a member riding along in a later message (or a
        # reminder) would read "for 1h 54m; failed polls 9" as nine failures in all that time.
        failures = str(d["failures"])
        if member.change != "resolved" and (now - event.at).total_seconds() >= 60:
            failures += f" by {when(event.at, zone, missing='-')}"
        out.append(("Failed polls", failures))
    if d.get("error_classes"):
        classes = d["error_classes"]
        text = (", ".join(f"{k}: {v}" for k, v in classes.items()) if hasattr(classes, "items")
                else ", ".join(map(str, classes)))
        out.append(("Errors", text))
    if d.get("last_error"):
        out.append(("Last error", str(d["last_error"])))
    return out


def member_line(member: Member, now: datetime | None = None, zone: str = "UTC", units: str = "TPS") -> str:
    """`stall Jawa Barat (32) [warning, new]: summary` for lists of members; a member that
    only rides along (still open) is described as of `now`."""
    event = member.event
    change = {"first": "new", "escalated": "ESCALATED", "resolved": "resolved", "repeat": "still open",
              "observed": "observed"}.get(member.change, member.change)
    summary = (current_summary(member, now, zone, units) if member.change == "repeat" and now is not None
               else event.summary)
    return f"{event.rule} {region_label(member)} [{event.severity}, {change}]: {summary}"
