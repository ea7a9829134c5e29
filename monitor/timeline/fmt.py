"""Formatting shared by every renderer: a moment in the source's local time beside UTC, a
duration a reviewer reads at a glance, and the redaction that keeps secrets out of reports."""
from __future__ import annotations

import re
from datetime import datetime, tzinfo
from typing import Any

from ..model import iso_utc
from ..wording import duration, local_iso, when, zone_name

__all__ = ["both", "duration", "local_iso", "redact", "redact_value", "utc_iso", "zone_name"]

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


def both(moment: datetime | None, zone: tzinfo, seconds: bool = True) -> str:
    """A report's moment: `27 Jun 2018 23:15:00 WIB (16:15:00 UTC)`."""
    return when(moment, zone, year=True, seconds=seconds)


def utc_iso(moment: datetime | None) -> str | None:
    return iso_utc(moment)
