"""Formatting shared by every renderer: a moment in the source's local time beside UTC, a
duration a reviewer reads at a glance, and the redaction that keeps secrets out of reports."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

from ..model import iso_utc

# Logs mask Secret values already, but a notifier's error text or a URL in a `detail` can
# still carry a webhook path or a token; a report is pasted into wider channels than logs.
_SECRET_PATTERNS = (
    (re.compile(r"https?://hooks\.slack(?:-gov)?\.com/[^\s;,'\"<>()|]*", re.I), "***"),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]+", re.I), "***"),
    (re.compile(r"\bxapp-[A-Za-z0-9-]+", re.I), "***"),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 ***"),
    (re.compile(r"(?i)([?&](?:token|access_token|api_key|apikey|key|secret|sig|signature)=)[^&\s\"']+"), r"\1***"),
    (re.compile(r"(?i)(https?://)[^/\s:@]+:[^/\s@]+@"), r"\1***@"),   # user:password@ in a URL
)


def redact(text: Any) -> str:
    text = "" if text is None else str(text)
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_value(value: Any) -> Any:
    """Redact every string inside a JSON-like value."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {str(k): redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v) for v in value]
    return value


def zone_name(moment: datetime, zone: tzinfo) -> str:
    return moment.astimezone(zone).tzname() or str(zone)


def both(moment: datetime | None, zone: tzinfo, seconds: bool = True) -> str:
    """`27 Jun 2018 23:15:00 WIB (16:15:00 UTC)`; the UTC side carries its date only when it
    differs from the local one, which keeps table cells short without hiding a day change."""
    if moment is None:
        return "—"
    clock = "%H:%M:%S" if seconds else "%H:%M"
    local = moment.astimezone(zone)
    universal = moment.astimezone(timezone.utc)
    utc_text = universal.strftime(clock if universal.date() == local.date() else "%d %b " + clock)
    return f"{local.strftime('%d %b %Y ' + clock)} {zone_name(moment, zone)} ({utc_text} UTC)"


def local_iso(moment: datetime | None, zone: tzinfo) -> str | None:
    return None if moment is None else moment.astimezone(zone).isoformat(timespec="seconds")


def utc_iso(moment: datetime | None) -> str | None:
    return iso_utc(moment)


def duration(delta: timedelta | float | None) -> str:
    """`45s`, `12m 05s`, `3h 20m`, `1d 04h`; negative values (clocks that disagree) keep
    their sign rather than being hidden."""
    if delta is None:
        return "—"
    seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
    sign = "-" if seconds < 0 else ""
    seconds = round(abs(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        text = f"{days}d {hours:02d}h"
    elif hours:
        text = f"{hours}h {minutes:02d}m"
    elif minutes:
        text = f"{minutes}m {secs:02d}s"
    else:
        text = f"{secs}s"
    return sign + text
