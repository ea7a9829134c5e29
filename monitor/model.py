"""The typed values that join the stages: Snapshot (what a source published), Poll (one
attempt to read it, ok or failed) and Event (what a detector concluded).

Everything here is immutable and carries aware UTC datetimes for our clock (`at`) and the
source's own, zone-aware timestamp (`published_at`) exactly as the source meant it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any, Mapping

# Failure classes of a poll. They are the `result` label of countwatch_polls_total and the
# `error` field of a failed recording line; keep them in step with DESIGN.md.
POLL_RESULTS = (
    "ok", "not_modified", "timeout", "connect", "dns", "tls", "http_403", "http_4xx",
    "http_5xx", "too_large", "invalid_json", "schema",
)
FAILURES = tuple(r for r in POLL_RESULTS if r not in ("ok", "not_modified"))

EVENT_STATES = ("firing", "escalated", "resolved", "observed")
SEVERITIES = ("info", "warning", "critical")
STATION_LEVEL = 5                    # a polling station (TPS): 0 national ... 4 desa, 5 TPS

# The family of each rule (DESIGN.md): rules of one family describe one kind of trouble, so
# alerting groups and inhibits by it and the timeline merges by it. The detectors stamp it on
# every event (`details.family`); readers take it from there. This table is filled by the
# detectors' one registration of each rule (monitor.detectors.rules, imported with the
# detectors, and so by every program that reads a config): it is where the detectors look
# the family up, and the reading of events written before it was stamped.
RULE_FAMILIES: dict[str, str] = {}
STOPPAGE = "stoppage"


def severity_rank(severity: str | None) -> int:
    """info < warning < critical; anything else below them all."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else -1


def family_of(rule: str, details: Mapping[str, Any] | None = None) -> str:
    """The family an event's detector gave it, else the rule's (events logged before the
    detectors stamped it); a rule of no known family is its own."""
    family = (details or {}).get("family")
    if isinstance(family, str) and family:
        return family
    return RULE_FAMILIES.get(rule, rule)


def cause_of(rule: str, details: Mapping[str, Any] | None = None) -> str:
    """The detector's `cause`, else one inferred for events that name none: a stoppage is a
    stopped count, anything else its own rule."""
    cause = (details or {}).get("cause")
    if isinstance(cause, str) and cause:
        return cause
    return "count_stopped" if family_of(rule, details) == STOPPAGE else rule


def progress_ratio(stations: int | None, stations_reported: int | None, percent: float | None = None) -> float | None:
    """Stations reported over stations; the published percentage / 100 when counts are absent."""
    if stations and stations_reported is not None:
        return stations_reported / stations
    return None if percent is None else percent / 100.0


def is_station(*, level: int | None = None, stations: int | None = None, code: str | None = None) -> bool:
    """Is this a single polling station (TPS), which reports once and neither stalls nor jumps?
    By the document's level when it gives one, else by a table row of exactly one station,
    else by the shape of a Sirekap TPS code (13 digits)."""
    if level is not None:
        return level >= STATION_LEVEL
    if stations is not None:
        return stations == 1
    return code is not None and len(code) == 13 and code.isdigit()


def utc(dt: datetime) -> datetime:
    """Aware UTC; naive datetimes are refused rather than guessed."""
    if dt.tzinfo is None:
        raise ValueError(f"naive datetime {dt!r}: pass an aware datetime")
    return dt.astimezone(timezone.utc)


def iso_utc(dt: datetime | None) -> str | None:
    """`2024-02-22T16:06:14Z` (sub-second precision kept only when present)."""
    if dt is None:
        return None
    dt = utc(dt)
    text = dt.isoformat(timespec="milliseconds" if dt.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def parse_iso(text: str | None) -> datetime | None:
    """Read an ISO 8601 timestamp written by us (`Z` or an offset); None stays None."""
    if text is None:
        return None
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        raise ValueError(f"timestamp without zone: {text!r}")
    return dt


def _frozen(mapping: Mapping | None) -> Mapping:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class RegionCount:
    """One child row of a parent document's table (a province in the national table, a TPS in
    a desa table). Sirekap publishes most children only as a percentage, so station counts are
    optional and `percent` may be all we know."""

    stations: int | None = None
    stations_reported: int | None = None
    percent: float | None = None
    votes: Mapping[str, int] = field(default_factory=dict)
    name: str | None = None
    registered_voters: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "votes", _frozen(self.votes))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("stations", "stations_reported", "percent", "name", "registered_voters"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out["votes"] = dict(self.votes)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "RegionCount":
        return cls(
            stations=data.get("stations"),
            stations_reported=data.get("stations_reported"),
            percent=data.get("percent"),
            votes=data.get("votes") or {},
            name=data.get("name"),
            registered_voters=data.get("registered_voters"),
        )


@dataclass(frozen=True)
class Snapshot:
    """What one document of one source said about one region at one moment.

    `stations` / `stations_reported` are polling stations (TPS) in total and with data in.
    None means the document did not say; a source adapter never turns "unknown" into 0.
    """

    source: str
    region: str
    at: datetime                      # our clock, UTC: when we fetched it
    published_at: datetime | None     # the source's own timestamp, zone-aware
    stations: int | None
    stations_reported: int | None
    votes: Mapping[str, int] = field(default_factory=dict)
    children: Mapping[str, RegionCount] = field(default_factory=dict)
    percent: float | None = None
    registered_voters: int | None = None
    valid_votes: int | None = None
    invalid_votes: int | None = None
    name: str | None = None
    level: int | None = None          # 0 national, 1 provinsi, 2 kab/kota, 3 kecamatan, 4 desa, 5 TPS

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", utc(self.at))
        object.__setattr__(self, "votes", _frozen(self.votes))
        object.__setattr__(self, "children", _frozen(self.children))

    @property
    def progress_ratio(self) -> float | None:
        return progress_ratio(self.stations, self.stations_reported, self.percent)

    @property
    def total_votes(self) -> int:
        return sum(self.votes.values())


@dataclass(frozen=True)
class Poll:
    """One attempt to read one (source, region): a Snapshot when it worked, a classified
    failure when it did not. `not_modified` (HTTP 304) is ok with no new snapshot."""

    source: str
    region: str
    at: datetime
    result: str                       # one of POLL_RESULTS
    snapshot: Snapshot | None = None
    detail: str | None = None         # human-readable reason of a failure
    latency_seconds: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", utc(self.at))
        if self.result not in POLL_RESULTS:
            raise ValueError(f"unknown poll result {self.result!r}")
        if self.result == "ok" and self.snapshot is None:
            raise ValueError("an ok poll carries a snapshot")

    @property
    def ok(self) -> bool:
        return self.result in ("ok", "not_modified")


@dataclass(frozen=True)
class Event:
    """A detector's conclusion, in the format of DESIGN.md's event contract."""

    at: datetime
    rule: str
    state: str
    severity: str
    source: str
    region: str
    summary: str
    since: datetime | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", utc(self.at))
        if self.since is not None:
            object.__setattr__(self, "since", utc(self.since))
        if self.state not in EVENT_STATES:
            raise ValueError(f"unknown event state {self.state!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}")
        object.__setattr__(self, "details", _frozen(self.details))

    @property
    def key(self) -> tuple[str, str, str]:
        """The alert key: one open alert per (rule, source, region)."""
        return (self.rule, self.source, self.region)

    @property
    def family(self) -> str:
        return family_of(self.rule, self.details)

    @property
    def cause(self) -> str:
        return cause_of(self.rule, self.details)

    def to_json(self) -> dict[str, Any]:
        return {
            "at": iso_utc(self.at),
            "rule": self.rule,
            "state": self.state,
            "severity": self.severity,
            "source": self.source,
            "region": self.region,
            "since": iso_utc(self.since),
            "summary": self.summary,
            "details": _plain(self.details),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Event":
        return cls(
            at=parse_iso(data["at"]),
            rule=data["rule"],
            state=data["state"],
            severity=data["severity"],
            source=data["source"],
            region=data["region"],
            since=parse_iso(data.get("since")),
            summary=data.get("summary", ""),
            details=data.get("details") or {},
        )


def _plain(value: Any) -> Any:
    """Mapping proxies and datetimes made JSON-ready (details may carry either)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return iso_utc(value) if value.tzinfo else value.isoformat()
    return value
