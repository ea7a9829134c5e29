"""A series' bounded history (SeriesState) and the read-only view the rules get (History).

One series is one (source, region). Its state keeps what the rules need and no more, because
a national tree has ~90k series and all of them are saved after every pass: the content now
in force (`Reading`), recent gaps between advances and between publications, recent
publication lags and increments, failure counters, child-region trackers and the open alerts.
`to_json()` is compact (a leaf series stays well under 1 KB) and `from_json()` restores it.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any, Mapping

from ..model import Event, Poll, Snapshot, iso_utc, parse_iso, progress_ratio
from .diurnal import Rhythm

LAG_KEEP = 24                      # a day of hourly publications: night polls lag more
STEP_KEEP = 24
LATENCY_KEEP = 8
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Reading:
    """What the series' document said, reduced to what the rules compare over time."""

    at: datetime                         # our clock: the poll that first saw this content
    published_at: datetime | None
    stations: int | None
    stations_reported: int | None
    percent: float | None
    votes: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, snapshot: Snapshot) -> "Reading":
        return cls(snapshot.at, snapshot.published_at, snapshot.stations, snapshot.stations_reported,
                   snapshot.percent, dict(snapshot.votes))

    @property
    def progress(self) -> float | None:
        """The number that must grow: stations reported, or the percentage when that is all
        the source gives."""
        if self.stations_reported is not None:
            return self.stations_reported
        return self.percent

    @property
    def progress_ratio(self) -> float | None:
        return progress_ratio(self.stations, self.stations_reported, self.percent)

    def same_content(self, snapshot: Snapshot) -> bool:
        return (snapshot.stations_reported == self.stations_reported and snapshot.stations == self.stations
                and snapshot.percent == self.percent and snapshot.published_at == self.published_at
                and snapshot.votes == self.votes)

    def to_json(self) -> list:
        return [_epoch(self.at), self.published_at.isoformat() if self.published_at else None,
                self.stations, self.stations_reported, self.percent, dict(self.votes)]

    @classmethod
    def from_json(cls, data: list) -> "Reading":
        at, published, stations, reported, pct, votes = data
        return cls(_from_epoch(at), parse_iso(published), stations, reported, pct, votes or {})


@dataclass
class ChildTrack:
    """One child region as its parent's table shows it, for region_stall. Progress of a
    child is measured against the parent's advance (stations), not the clock, so a slow night
    or a national freeze does not look like a child standing still."""

    signature: int                 # hash of (reported, percent, votes) as last seen
    parent_mark: float             # parent's stations reported when the child last changed
    changed_at: float              # epoch seconds (our clock) of that change
    changes: int = 0               # changes seen (the first sighting is not one)
    spacing: float | None = None   # EWMA of parent stations advanced between two child changes
    percent: float | None = None
    complete: bool = False

    def to_json(self) -> list:
        return [self.signature, self.parent_mark, _compact(self.changed_at), self.changes,
                self.spacing, self.percent, int(self.complete)]

    @classmethod
    def from_json(cls, data: list) -> "ChildTrack":
        sig, mark, changed_at, changes, spacing, pct, complete = data
        return cls(sig, mark, float(changed_at), changes, spacing, pct, bool(complete))


class SeriesState:
    """Mutable, owned by the Judge (the only stateful shell); rules only read it."""

    def __init__(self, source: str, region: str):
        self.source = source
        self.region = region
        self.first_at: datetime | None = None
        self.last_at: datetime | None = None
        self.current: Reading | None = None
        self.high_water: float | None = None          # most progress ever seen (a flapping cache is no advance)
        # Progress counted at most WINSOR usual steps per advance: region_stall's yardstick, so
        # that one child's catch-up does not make its quiet siblings look overdue.
        self.paced: float | None = None
        self.last_advance_at: datetime | None = None
        self.last_advance_published_at: datetime | None = None
        self.advance_gaps: list[float] = []
        self.steps: list[float] = []                  # recent increments of progress per advance
        self.pub_gaps: list[float] = []
        self.pub_seen_at: datetime | None = None      # our clock when the current published_at appeared
        self.lags: list[float] = []                   # publication -> our poll that saw it
        self.blind = 0                                # bits: polls failed since the last advance / publication
        self.rhythm = Rhythm()                        # advances and watched time per local hour
        self.poll_gap: float | None = None            # EWMA of our polling interval
        self.learned_poll_gap: float | None = None    # ...as it was when the gaps last changed
        self.fail_streak = 0
        self.ok_streak = 0
        self.flaps = 0                                # ok-then-fail turns inside an outage (hysteresis)
        self.window_bits = 0                          # recent polls, 1 = failed, newest in bit 0
        self.window_len = 0
        self.failing_since: datetime | None = None
        self.error_classes: dict[str, int] = {}
        self.last_error: str | None = None
        self.latencies: list[float] = []
        self.latency_base: float | None = None
        self.children: dict[str, ChildTrack] = {}
        self.open_alerts: dict[str, Event] = {}
        self.version = 0                              # bumped when gaps change: thresholds are cached on it
        self.cache: dict[str, Any] = {}

    def rebase(self, seconds: float) -> None:
        """Move every moment of *our* clock by `seconds` (the source's timestamps stay): for a
        state saved under a clock that was later stepped back, whose polls would otherwise all
        be "older than the last one judged" until the clock caught up. Durations inside the
        state (gaps, lags, the daily rhythm) are unchanged."""
        delta = timedelta(seconds=seconds)

        def move(moment: datetime | None) -> datetime | None:
            return None if moment is None else moment + delta
        self.first_at, self.last_at = move(self.first_at), move(self.last_at)
        self.last_advance_at, self.pub_seen_at = move(self.last_advance_at), move(self.pub_seen_at)
        self.failing_since = move(self.failing_since)
        if self.current is not None:
            self.current = replace(self.current, at=self.current.at + delta)
        for track in self.children.values():
            track.changed_at = round(track.changed_at + seconds, 3)
        self.open_alerts = {key: replace(event, at=event.at + delta, since=move(event.since))
                            for key, event in self.open_alerts.items()}
        self.cache.clear()

    # -- what the metrics read --
    @property
    def progress_ratio(self) -> float | None:
        return None if self.current is None else self.current.progress_ratio

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"v": 1, "source": self.source, "region": self.region,
                               "first": _epoch(self.first_at), "last": _epoch(self.last_at)}
        if self.current is not None:
            out["cur"] = self.current.to_json()
        if self.high_water is not None:
            out["hw"] = self.high_water
        if self.paced is not None and self.paced != self.high_water:
            out["paced"] = self.paced
        if self.last_advance_at is not None or self.last_advance_published_at is not None:
            out["adv"] = [_epoch(self.last_advance_at), _epoch(self.last_advance_published_at)]
        for key, values in (("gaps", self.advance_gaps), ("steps", self.steps), ("pgaps", self.pub_gaps),
                            ("lags", self.lags), ("lat", self.latencies)):
            if values:
                out[key] = [_compact(v) for v in values]
        if self.pub_seen_at is not None:
            out["pseen"] = _epoch(self.pub_seen_at)
        if self.blind:
            out["blind"] = self.blind
        if any(self.rhythm.exposure):
            out["day"] = self.rhythm.to_json()
        if self.poll_gap is not None:
            out["pgap"] = _compact(self.poll_gap)
        if self.learned_poll_gap is not None:
            out["lpgap"] = _compact(self.learned_poll_gap)
        if self.window_len:
            out["fails"] = [self.fail_streak, self.ok_streak, self.flaps, self.window_bits, self.window_len,
                            _epoch(self.failing_since), self.error_classes, self.last_error]
        if self.latency_base is not None:
            out["latb"] = self.latency_base
        if self.children:
            out["kids"] = {code: track.to_json() for code, track in self.children.items()}
        if self.open_alerts:
            out["open"] = {key: event.to_json() for key, event in self.open_alerts.items()}
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "SeriesState":
        state = cls(data["source"], data["region"])
        state.first_at = _from_epoch(data.get("first"))
        state.last_at = _from_epoch(data.get("last"))
        if "cur" in data:
            state.current = Reading.from_json(data["cur"])
        state.high_water = data.get("hw")
        state.paced = data.get("paced", state.high_water)   # states saved before it counted in high water
        if "adv" in data:
            state.last_advance_at = _from_epoch(data["adv"][0])
            state.last_advance_published_at = _from_epoch(data["adv"][1])
        state.advance_gaps = list(data.get("gaps", []))
        state.steps = list(data.get("steps", []))
        state.pub_gaps = list(data.get("pgaps", []))
        state.lags = list(data.get("lags", []))
        state.latencies = list(data.get("lat", []))
        state.pub_seen_at = _from_epoch(data.get("pseen"))
        state.blind = data.get("blind", 0)
        if "day" in data:
            state.rhythm = Rhythm.from_json(data["day"])
        state.poll_gap = data.get("pgap")
        state.learned_poll_gap = data.get("lpgap")
        if "fails" in data:
            (state.fail_streak, state.ok_streak, state.flaps, state.window_bits, state.window_len,
             failing_since, errors, state.last_error) = data["fails"]
            state.failing_since = _from_epoch(failing_since)
            state.error_classes = dict(errors)
        state.latency_base = data.get("latb")
        state.children = {code: ChildTrack.from_json(v) for code, v in data.get("kids", {}).items()}
        state.open_alerts = {key: Event.from_json(v) for key, v in data.get("open", {}).items()}
        return state


@dataclass(frozen=True)
class MirrorView:
    """The latest reading of the same region at a mirror source, and when it reached each of
    its recent progress values (for the lag between the two)."""

    source: str
    reading: Reading
    advances: tuple[tuple[float, float], ...]      # the mirror's (epoch seconds, progress), oldest first
    own_advances: tuple[tuple[float, float], ...]  # the same for the series being judged


@dataclass(frozen=True)
class History:
    """What a rule sees at one poll: the poll, the content before and after it, and the
    series' state after the Judge appended the poll (read-only by convention)."""

    poll: Poll
    state: SeriesState
    previous: Reading | None              # content in force before this poll
    current: Reading | None               # content in force after it
    changed: bool                         # this poll brought new content
    advance: float                        # progress gained over the high-water mark (0: none)
    advance_gap: float | None             # our-clock seconds since the previous advance, at an advance
    source_gap: float | None              # the same on the source's clock, when it dates its data
    stall: Any                            # Thresholds in force for the stall (before this poll's advance)
    stale: Any                            # Thresholds for the source's timestamp, or None
    zone: tzinfo
    complete: bool                        # the count is finished: no stall alerts
    ancestor_stalled: bool = False        # a parent series has an open stall (a national freeze)
    mirror: MirrorView | None = None
    new_publication: bool = False
    incident: bool = False                # this advance ended an incident (not learned from)

    @property
    def snapshot(self) -> Snapshot | None:
        return self.poll.snapshot

    @property
    def source(self) -> str:
        return self.state.source

    @property
    def region(self) -> str:
        return self.state.region

    @property
    def open_alerts(self) -> Mapping[str, Event]:
        return self.state.open_alerts


def _epoch(moment: datetime | None) -> float | int | None:
    """Seconds since 1970 (UTC): an int when whole, else exact to the microsecond."""
    if moment is None:
        return None
    micros = (moment - _EPOCH) // timedelta(microseconds=1)
    return micros // 1_000_000 if micros % 1_000_000 == 0 else micros / 1e6


def _from_epoch(value: float | int | None) -> datetime | None:
    if value is None:
        return None
    return _EPOCH + timedelta(microseconds=round(value * 1_000_000))


def _compact(value: float) -> float | int:
    """Values are quantized when they enter the state (Judge), so JSON keeps them exactly."""
    return int(value) if float(value).is_integer() else value


__all__ = ["ChildTrack", "History", "MirrorView", "Reading", "SeriesState", "iso_utc"]
