"""Wording shared by the rules' summaries: durations, counts and times in the source's own
zone beside UTC, because on-call reads KPU's "23:00 WIB" and our logs' UTC side by side."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo

# Indonesia's zones have names everybody there uses; zoneinfo only knows them as +07 etc.
_ZONE_NAMES = {7 * 3600: "WIB", 8 * 3600: "WITA", 9 * 3600: "WIT"}


def zone_name(moment: datetime, zone: tzinfo) -> str:
    local = moment.astimezone(zone)
    offset = local.utcoffset() or timedelta(0)
    seconds = int(offset.total_seconds())
    if seconds in _ZONE_NAMES:
        return _ZONE_NAMES[seconds]
    name = local.tzname()
    if name and not name.startswith(("+", "-")):
        return name
    sign = "+" if seconds >= 0 else "-"
    return f"UTC{sign}{abs(seconds) // 3600}" + (f":{abs(seconds) % 3600 // 60:02d}" if seconds % 3600 else "")


def when(moment: datetime | None, zone: tzinfo, with_date: bool = True) -> str:
    """`22 Feb 23:06 WIB (16:06 UTC)`."""
    if moment is None:
        return "an unknown time"
    local = moment.astimezone(zone)
    utc = moment.astimezone(timezone.utc)
    day = f"{local.day} {local:%b} " if with_date else ""
    utc_day = f"{utc.day} {utc:%b} " if with_date and utc.date() != local.date() else ""
    return f"{day}{local:%H:%M} {zone_name(moment, zone)} ({utc_day}{utc:%H:%M} UTC)"


def local_iso(moment: datetime | None, zone: tzinfo) -> str | None:
    """ISO 8601 with the source's offset, as the source meant it (`2024-02-22T23:00:15+07:00`)."""
    if moment is None:
        return None
    return moment.astimezone(zone).isoformat()


def duration(seconds: float) -> str:
    """`45s`, `12m`, `2h 05m`, `3d 4h`: precise enough for a page, short enough to read."""
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f"{seconds:.0f}s"
    minutes = seconds / 60
    if minutes < 90:
        return f"{minutes:.0f}m"
    hours, minutes = divmod(int(round(minutes)), 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def count(value: float | int | None) -> str:
    if value is None:
        return "?"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{int(value):,}"


def percent(ratio: float | None) -> str:
    return "?%" if ratio is None else f"{100 * ratio:.2f}%"


def signed(value: float | int) -> str:
    return ("+" if value >= 0 else "-") + count(abs(value))
