"""Silences and maintenance windows: who is not told about what, and when.

A silence is a matcher plus a time window: one-off (`starts_at`..`ends_at`) or recurring
(a daily local-time window such as a planned overnight pause, optionally on some weekdays).
Config silences come from `[[silences]]`; run-time ones from `countwatch silence add` are
stored in the state database and read back by the running daemon. A silence only stops
sends: the alert stays open, in the logs and in countwatch_alert_active.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping
from zoneinfo import ZoneInfo

from monitor.model import iso_utc, parse_iso

from .matching import Matcher

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Silence:
    id: str
    matcher: Matcher
    comment: str = ""
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    daily: tuple[int, int] | None = None        # minutes after local midnight: [start, end)
    weekdays: frozenset[int] | None = None      # 0 = Monday; the day the window starts
    timezone: str = "Asia/Jakarta"
    origin: str = "config"                      # config | runtime
    created_by: str = ""
    created_at: datetime | None = field(default=None, compare=False)
    expired_at: datetime | None = None          # a run-time silence expired by hand

    def active(self, now: datetime) -> bool:
        if self.expired_at is not None and now >= self.expired_at:
            return False
        if self.starts_at is not None and now < self.starts_at:
            return False
        if self.ends_at is not None and now >= self.ends_at:
            return False
        if self.daily is None:
            return True
        local = now.astimezone(ZoneInfo(self.timezone))
        minute = local.hour * 60 + local.minute
        start, end = self.daily
        if start < end:
            inside, window_day = start <= minute < end, local
        elif minute >= start:          # a window that crosses midnight, evening part
            inside, window_day = True, local
        else:                          # ... and its morning part belongs to yesterday's window
            inside, window_day = minute < end, local - timedelta(days=1)
        return inside and (self.weekdays is None or window_day.weekday() in self.weekdays)

    def finished(self, now: datetime) -> bool:
        """Never active again (list and metrics leave it out)."""
        return ((self.expired_at is not None and now >= self.expired_at)
                or (self.ends_at is not None and now >= self.ends_at))

    def window(self) -> str:
        parts = []
        if self.starts_at or self.ends_at:
            parts.append(f"{iso_utc(self.starts_at) or '-'} .. {iso_utc(self.ends_at) or '-'}")
        if self.daily is not None:
            start, end = self.daily
            days = ",".join(WEEKDAYS[d] for d in sorted(self.weekdays)) if self.weekdays else "daily"
            parts.append(f"{days} {start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d} {self.timezone}")
        return "; ".join(parts) or "always"

    def to_row(self) -> dict[str, Any]:
        return {"id": self.id, "matchers": self.matcher.to_json(), "comment": self.comment,
                "starts_at": iso_utc(self.starts_at), "ends_at": iso_utc(self.ends_at),
                "created_by": self.created_by, "created_at": iso_utc(self.created_at),
                "expired_at": iso_utc(self.expired_at)}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "Silence":
        return cls(id=row["id"], matcher=Matcher.from_json(row["matchers"]), comment=row.get("comment") or "",
                   starts_at=parse_iso(row.get("starts_at")), ends_at=parse_iso(row.get("ends_at")),
                   origin="runtime", created_by=row.get("created_by") or "",
                   created_at=parse_iso(row.get("created_at")), expired_at=parse_iso(row.get("expired_at")))


def silenced_by(silences: Iterable[Silence], labels: Mapping[str, str], now: datetime) -> Silence | None:
    for silence in silences:
        if silence.active(now) and silence.matcher.matches(labels):
            return silence
    return None


def parse_daily(text: Any) -> tuple[int, int]:
    """"23:00-06:00" -> (1380, 360); a window may cross midnight but not be empty."""
    if not isinstance(text, str) or text.count("-") != 1:
        raise ValueError(f"must be a local time window like \"23:00-06:00\", got {text!r}")
    minutes = []
    for part in text.split("-"):
        hours, sep, mins = part.strip().partition(":")
        if not sep or not hours.isdigit() or not mins.isdigit() or int(hours) > 24 or int(mins) > 59:
            raise ValueError(f"must be a local time window like \"23:00-06:00\", got {text!r}")
        minutes.append(min(int(hours) * 60 + int(mins), 24 * 60))
    if minutes[0] == minutes[1]:
        raise ValueError(f"window {text!r} is empty")
    return minutes[0] % (24 * 60), minutes[1] if minutes[1] != 24 * 60 else 24 * 60


def as_aware(value: Any, zone: str) -> datetime:
    """A TOML datetime (offset or local) or an ISO string; local times are read in `zone`."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if not isinstance(value, datetime):
        raise ValueError(f"must be a date-time like 2024-02-17T19:30:00+07:00, got {value!r}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(zone))
    return value.astimezone(timezone.utc)
