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


def zone_name(moment: datetime, zone: tzinfo | str) -> str:
    """`WIB`, `WITA`, `WIT` in Indonesia; the zone's own abbreviation (`EST`) elsewhere."""
    local = moment.astimezone(_zone(zone))
    offset = local.utcoffset() or timedelta(0)
    seconds = int(offset.total_seconds())
    if seconds in _ZONE_NAMES:
        return _ZONE_NAMES[seconds]
    name = local.tzname()
    if name and not name.startswith(("+", "-")):
        return name
    sign = "+" if seconds >= 0 else "-"
    return f"UTC{sign}{abs(seconds) // 3600}" + (f":{abs(seconds) % 3600 // 60:02d}" if seconds % 3600 else "")


def _zone(zone: tzinfo | str) -> tzinfo:
    return ZoneInfo(zone) if isinstance(zone, str) else zone


def when(moment: datetime | None, zone: tzinfo | str, *, date: bool = True, year: bool = False,
         seconds: bool = False, missing: str = "—") -> str:
    """`22 Feb 23:06 WIB (16:06 UTC)`; with `year` and `seconds`, `27 Jun 2018 23:15:00 WIB
    (16:15:00 UTC)`. The UTC side carries its date only when it differs from the local one,
    which keeps table cells short without hiding a day change."""
    if moment is None:
        return missing
    zone = _zone(zone)
    clock = "%H:%M:%S" if seconds else "%H:%M"
    local = moment.astimezone(zone)
    universal = moment.astimezone(timezone.utc)
    day = f"{local.day} {local:%b} " + (f"{local.year} " if year else "") if date else ""
    utc_day = f"{universal.day} {universal:%b} " if date and universal.date() != local.date() else ""
    if zone is timezone.utc or getattr(zone, "key", None) == "UTC":
        return f"{day}{universal.strftime(clock)} UTC"
    return f"{day}{local.strftime(clock)} {zone_name(moment, zone)} ({utc_day}{universal.strftime(clock)} UTC)"


def local_iso(moment: datetime | None, zone: tzinfo | str) -> str | None:
    """ISO 8601 with the source's offset, as the source meant it (`2024-02-22T23:00:15+07:00`)."""
    if moment is None:
        return None
    return moment.astimezone(_zone(zone)).isoformat(timespec="seconds")


def duration(value: timedelta | float | None) -> str:
    """`45s`, `12m 05s`, `45m`, `3h 20m`, `3d 4h`: the one way countwatch says how long, in detector
    summaries, alert messages and the review alike. Negative values (clocks that disagree)
    keep their sign rather than being hidden."""
    if value is None:
        return "—"
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    sign = "-" if seconds < 0 else ""
    seconds = round(abs(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        text = f"{days}d {hours}h" if hours else f"{days}d"
    elif hours:
        text = f"{hours}h {minutes:02d}m" if minutes else f"{hours}h"
    elif minutes:
        text = f"{minutes}m {secs:02d}s" if secs else f"{minutes}m"
    else:
        text = f"{secs}s"
    return sign + text


def count(value: float | int | None) -> str:
    if value is None:
        return "?"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{int(value):,}"


def pace(value: float | None) -> str:
    """A rate people compare: whole numbers from 10 up (`4,739`), two significant digits below
    (`0.16`, `2.4`), so that +2 TPS over 12 hours reads 0.16/h, not 0/h."""
    if value is None:
        return "?"
    return f"{value:,.0f}" if abs(value) >= 10 else f"{value:.2g}"


def percent(ratio: float | None) -> str:
    return "?%" if ratio is None else f"{100 * ratio:.2f}%"
