"""Detector events as the detectors emit them (monitor.model.Event), and small configs, for
the alerting tests: a fake of everything upstream of alerts/."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from monitor.cli import parse_config
from monitor.model import Event

NIGHT = datetime(2018, 6, 27, 15, 0, tzinfo=timezone.utc)   # 22:00 WIB, the Pilgub Jabar night
SOURCE = "kpu-jabar"


def config(receivers: list[dict] | None = None, routes: list[dict] | None = None, alerting: dict | None = None,
           silences: list[dict] | None = None, state_dir: str = "var/test", environ: dict | None = None,
           more_sources: list[dict] = ()):
    raw: dict[str, Any] = {
        "daemon": {"state_dir": state_dir, "timezone": "Asia/Jakarta", "instance": "test"},
        "sources": [{"name": SOURCE, "kind": "sirekap", "url": "https://user:pw@pilkada.example/jabar.json?key=k"},
                    {"name": "kpu-ppwp", "kind": "sirekap", "url": "https://sirekap.example/ppwp.json"},
                    *more_sources],
        "alerting": {"group_wait": "0s", "group_interval": "1m", "retry_initial": "10s", "retry_max": "1m",
                     **(alerting or {})},
    }
    if receivers is not None:
        raw["receivers"] = receivers
    if routes is not None:
        raw["routes"] = routes
    if silences is not None:
        raw["silences"] = silences
    return parse_config(raw, environ=environ or {})


def event(rule: str = "stall", state: str = "firing", severity: str = "warning", region: str = "32",
          at: datetime = NIGHT, source: str = SOURCE, summary: str | None = None, since: datetime | None = None,
          **details: Any) -> Event:
    if since is None and state != "observed":
        since = at - timedelta(hours=1)
    return Event(at=at, rule=rule, state=state, severity=severity, source=source, region=region,
                 summary=summary or f"{rule} {state} in region {region}", since=since, details=details)


def stall(region: str = "32", at: datetime = NIGHT, state: str = "firing", severity: str = "warning", **details):
    base = {"stations": 74962, "stations_reported": 50123, "progress_ratio": 50123 / 74962,
            "last_advance_at": "2018-06-27T14:00:00Z", "last_published_at": "2018-06-27T21:00:15+07:00",
            "stalled_seconds": 3600, "threshold_seconds": 2700, "critical_seconds": 10800,
            "threshold_reason": "3x the usual gap between updates"}
    if state == "resolved":
        base = {"catch_up_stations": 1200}
    return event("stall", state, severity, region, at, summary=details.pop("summary", None) or
                 (f"Count in region {region} has not advanced for 1h" if state != "resolved"
                  else f"Count in region {region} advancing again"), **{**base, **details})
