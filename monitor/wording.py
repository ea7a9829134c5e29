"""How countwatch words durations, moments and zones for people: detector summaries, alert
messages and the post-incident review all import from here, so "1h 54m" and "23:06 WIB
(16:06 UTC)" mean the same wherever they are read. Times are shown in the source's own zone
beside UTC, because on-call reads KPU's "23:00 WIB" and our logs' UTC side by side."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

# Indonesia's zones have names everybody there uses; zoneinfo only knows them as +07 etc.
# KPU's `ts` carries no zone: it is WIB (UTC+7), Jakarta's time.
WIB = ZoneInfo("Asia/Jakarta")

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


def tz_zone_name(moment: datetime, zone: tzinfo) -> str:
    return moment.astimezone(zone).tzname() or str(zone)


def when(moment: datetime | None, zone: tzinfo, with_date: bool = True) -> str:
    """`22 Feb 23:06 WIB (16:06 UTC)`."""
    if moment is None:
        return "an unknown time"
    local = moment.astimezone(zone)
    utc = moment.astimezone(timezone.utc)
    day = f"{local.day} {local:%b} " if with_date else ""
    utc_day = f"{utc.day} {utc:%b} " if with_date and utc.date() != local.date() else ""
    return f"{day}{local:%H:%M} {zone_name(moment, zone)} ({utc_day}{utc:%H:%M} UTC)"


def both(moment: datetime | None, zone: tzinfo, seconds: bool = True) -> str:
    """`27 Jun 2018 23:15:00 WIB (16:15:00 UTC)`; the UTC side carries its date only when it
    differs from the local one, which keeps table cells short without hiding a day change."""
    if moment is None:
        return "—"
    clock = "%H:%M:%S" if seconds else "%H:%M"
    local = moment.astimezone(zone)
    universal = moment.astimezone(timezone.utc)
    utc_text = universal.strftime(clock if universal.date() == local.date() else "%d %b " + clock)
    return f"{local.strftime('%d %b %Y ' + clock)} {tz_zone_name(moment, zone)} ({utc_text} UTC)"


def fmt_time(moment: datetime | None, zone: str) -> str:
    """`2018-06-27 22:15 WIB (15:15 UTC)`; the UTC date is added when it differs."""
    if moment is None:
        return "-"
    local = moment.astimezone(ZoneInfo(zone))
    utc = moment.astimezone(timezone.utc)
    utc_part = f"{utc:%H:%M} UTC" if utc.date() == local.date() else f"{utc:%Y-%m-%d %H:%M} UTC"
    if zone == "UTC":
        return f"{utc:%Y-%m-%d %H:%M} UTC"
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()} ({utc_part})"


def local_iso(moment: datetime | None, zone: tzinfo) -> str | None:
    """ISO 8601 with the source's offset, as the source meant it (`2024-02-22T23:00:15+07:00`)."""
    if moment is None:
        return None
    return moment.astimezone(zone).isoformat()


def summary_duration(seconds: float) -> str:
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


def review_duration(delta: timedelta | float | None) -> str:
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


def message_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(max(seconds, 0)))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes:02d}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m {secs:02d}s" if secs else f"{minutes}m"
    return f"{secs}s"


def count(value: float | int | None) -> str:
    if value is None:
        return "?"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{int(value):,}"


def percent(ratio: float | None) -> str:
    return "?%" if ratio is None else f"{100 * ratio:.2f}%"
