"""Options of the detectors: `[detection]` in the config, and per source `detection = {...}`.

Every option has a default that works for KPU's Sirekap without configuration; docs/detection.md
says why each default is what it is. A per-source table overrides only the keys it names: the
parsed options remember which keys were given (`explicit`) and `merged()` lays them over the
global ones.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from ..configtools import Problems, parse_duration
from ..model import RULE_FAMILIES     # every registered rule (monitor/detectors/rules.py)


@dataclass(frozen=True)
class DetectionOptions:
    # -- stall / stale_source: adaptive thresholds (docs/detection.md, "Stall") --
    false_alarm_budget: float = 30 * 86400.0  # one false stall alert per this much normal counting per series
    stall_prior: float = 2 * 3600.0           # warning threshold while a series has too little history
    stall_floor: float = 5 * 60.0             # never warn sooner than this after the last advance
    stall_ceiling: float = 12 * 3600.0        # never warn later than this for a source of unknown pace (a habit,
                                              # a tail or a cadenced walk of its own hours raises it: thresholds.py)
    critical_ceiling: float = 24 * 3600.0     # the critical threshold's cap (kept above the warning's)
    stall_min_gaps: int = 6                   # advances needed before the learned threshold replaces the prior
    stall_window: int = 48                    # recent gaps kept per series (two days of an hourly source)
    complete_ratio: float = 1.0               # progress at or above this is a finished count: no stall
    # -- the count's lifecycle: not_started -> counting -> tail -> complete --
    counting_starts: datetime | None = None   # before this moment the count has not started: no stall
    start_grace: float = 30 * 60.0            # counting_starts passed this long ago with nothing counted: not_started
    tail_ratio: float = 0.9                   # from this progress on the pace is expected in proportion to what remains
    # -- outage --
    outage_failures: int = 3                  # consecutive failed polls that open an outage
    outage_window: int = 10                   # polls in the failure-ratio window
    outage_ratio: float = 0.5                 # failure share of the window that opens an outage
    outage_recovery: int = 3                  # consecutive good polls that close it (hysteresis)
    outage_critical: float = 15 * 60.0        # an outage this old is critical
    # -- latency --
    latency_factor: float = 4.0               # median latency this many times its baseline is degraded
    latency_min: float = 2.0                  # ...and at least this many seconds
    # -- jump --
    jump_factor: float = 10.0                 # robust z (median/MAD of recent increments) of a jump
    jump_min_ratio: float = 5.0               # ...and at least this many times the median increment
    jump_min_share: float = 0.001             # ...and at least this share of the series' stations (materiality)
    share_tolerance: float = 0.001            # vote-share shift allowed beyond what a batch can explain
    # -- consistency --
    max_votes_per_station: int = 300          # legal maximum voters per TPS (Pemilu 2019/2024; Pilkada 600);
                                              # 0: no legal maximum (a json source's default)
    capacity_slack: float = 0.02              # reserve ballots above registered voters (2% by law)
    children_tolerance: float = 0.005         # children's vote sums may differ from the parent's by this share
    percent_tolerance: float = 0.011         # percentage points between `persen` and reported/total
    correction_share: float = 0.02            # votes corrected down by this share of the region's votes: a warning
    # -- region_stall / lagging --
    region_min_expected: float = 3.0          # floor of the expected child changes (the budget sets the rest)
    lagging_share: float = 0.5                # a child below this share of its parent's progress...
    lagging_pace: float = 0.1                 # ...gaining less than this share of what the parent's pace brings it
    # -- divergence --
    divergence_tolerance: float = 0.002       # relative difference of votes at equal stations reported
    divergence_max_lag: float = 30 * 60.0     # a mirror may trail the other by this long
    disable: tuple[str, ...] = ()             # rule names switched off
    explicit: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    def merged(self, override: "DetectionOptions | None") -> "DetectionOptions":
        """These options with the keys a per-source table named taken from `override`."""
        if override is None or not override.explicit:
            return self
        return replace(self, **{name: getattr(override, name) for name in override.explicit})

    def enabled(self, rule: str) -> bool:
        return rule not in self.disable


def _duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"must be greater than zero, got {value!r}")
    return seconds


def _count(low: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"must be an integer of at least {low}, got {value!r}")
        return value
    return parse


def _number(low: float, high: float | None = None, open_low: bool = False) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError(f"must be a number, got {value!r}")
        if value < low or (open_low and value == low) or (high is not None and value > high):
            bound = f"{'above' if open_low else 'at least'} {low:g}" + (f" and at most {high:g}" if high else "")
            raise ValueError(f"must be {bound}, got {value!r}")
        return float(value)
    return parse


def _moment(value: Any) -> datetime:
    """An ISO 8601 date and time with its zone (TOML's own datetimes too)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"must be an ISO 8601 time like 2024-02-14T13:00:00+07:00, got {value!r}") from None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError(f"must be a date and time with its zone (e.g. +07:00 or Z), got {value!r}")
    return value.astimezone(timezone.utc)


def _rules(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"must be a list of rule names, got {value!r}")
    unknown = [v for v in value if v not in RULE_FAMILIES]
    if unknown:
        raise ValueError(f"unknown rule(s) {', '.join(map(repr, unknown))} (known: {', '.join(RULE_FAMILIES)})")
    return tuple(value)


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "false_alarm_budget": _duration, "stall_prior": _duration, "stall_floor": _duration,
    "stall_ceiling": _duration, "critical_ceiling": _duration,
    "stall_min_gaps": _count(2), "stall_window": _count(8), "complete_ratio": _number(0.0, 1.0, open_low=True),
    "counting_starts": _moment, "start_grace": _duration, "tail_ratio": _number(0.0, 1.0, open_low=True),
    "correction_share": _number(0.0, 1.0, open_low=True),
    "lagging_share": _number(0.0, 1.0, open_low=True), "lagging_pace": _number(0.0, 1.0, open_low=True),
    "outage_failures": _count(1), "outage_window": _count(2), "outage_ratio": _number(0.0, 1.0, open_low=True),
    "outage_recovery": _count(1), "outage_critical": _duration,
    "latency_factor": _number(1.0, open_low=True), "latency_min": _duration,
    "jump_factor": _number(0.0, open_low=True), "jump_min_ratio": _number(1.0), "jump_min_share": _number(0.0, 1.0),
    "share_tolerance": _number(0.0, 1.0),
    "max_votes_per_station": _count(0), "capacity_slack": _number(0.0, 10.0),
    "children_tolerance": _number(0.0, 1.0), "percent_tolerance": _number(0.0, 100.0),
    "region_min_expected": _number(1.0),
    "divergence_tolerance": _number(0.0, 1.0), "divergence_max_lag": _duration,
    "disable": _rules,
}
assert set(_PARSERS) == {f.name for f in fields(DetectionOptions)} - {"explicit"}


def parse_detection_options(raw: Mapping[str, Any], where: str, problems: Problems) -> DetectionOptions:
    """Validate a `[detection]` table (or a source's `detection = {...}`); `{}` gives the
    defaults. Problems are added to `problems` naming `where.key`; the defaults stand in."""
    problems.unknown_keys(raw, where, set(_PARSERS))
    values: dict[str, Any] = {}
    for key, parse in _PARSERS.items():
        if key in raw:
            before = len(problems.items)
            value = problems.convert(raw, key, where, parse, None)
            if len(problems.items) == before:
                values[key] = value
    options = DetectionOptions(**values, explicit=frozenset(values))
    if options.stall_floor > options.stall_ceiling:
        problems.add(f"{where}.stall_floor", f"must not exceed stall_ceiling ({options.stall_ceiling:g}s)")
    if options.critical_ceiling < options.stall_ceiling:
        problems.add(f"{where}.critical_ceiling", f"must be at least stall_ceiling ({options.stall_ceiling:g}s)")
    return options


__all__ = ["DetectionOptions", "parse_detection_options"]
