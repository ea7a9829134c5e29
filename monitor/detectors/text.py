"""Wording shared by the rules' summaries; it lives in monitor/wording.py, with the alert
messages' and the review's, so every reader sees one way of saying a time or a duration."""
from __future__ import annotations

from datetime import datetime, tzinfo

from .. import wording
from ..wording import count, duration, local_iso, pace, percent, zone_name

__all__ = ["count", "duration", "local_iso", "pace", "percent", "when", "zone_name"]


def when(moment: datetime | None, zone: tzinfo, with_date: bool = True) -> str:
    """`22 Feb 23:06 WIB (16:06 UTC)`."""
    return wording.when(moment, zone, date=with_date, missing="an unknown time")
