"""How far apart the clocks of several instances are, estimated from what they saw.

Two instances polling the same (source, region) each see a new count (a new value of
stations_reported) at their first poll after it was published. Each sighting lags the
publication by between zero and one poll interval, so for every new value the difference of
the two first sightings is the clock offset plus a phase error below one interval; the median
over many values estimates the offset. It is therefore only meaningful beyond about one poll
interval, which is the size of skew that reorders a review (an NTP-synchronised pair is far
closer and needs nothing).
"""
from __future__ import annotations

from datetime import timedelta
from statistics import median

from .records import LogRecord

MIN_SAMPLES = 3


def first_sightings(records: list[LogRecord]) -> dict[str, dict[tuple, object]]:
    """instance -> {(source, region, stations_reported): time first seen}, values that changed only."""
    seen: dict[str, dict[tuple, object]] = {}
    last: dict[tuple, int] = {}
    for record in records:
        if record.event != "poll" or record.get("stations_reported") is None:
            continue
        series = (record.instance, record.get("source"), record.get("region"))
        value = record.get("stations_reported")
        if last.get(series) == value:
            continue
        # the first value an instance sees is not a change it witnessed: it may be hours old
        if series in last:
            seen.setdefault(record.instance, {}).setdefault((series[1], series[2], value), record.at)
        last[series] = value
    return seen


def estimate_offsets(records: list[LogRecord]) -> dict[str, dict]:
    """instance -> {"offset_seconds": float | None, "samples": int, "reference": str}.

    The reference is the instance with the most sightings (ties: the first by name); its
    offset is 0. Positive means the instance's clock is ahead of the reference's."""
    seen = first_sightings(records)
    instances = sorted({r.instance for r in records})
    if not instances:
        return {}
    reference = max(instances, key=lambda name: (len(seen.get(name, {})), -instances.index(name)))
    result: dict[str, dict] = {}
    for name in instances:
        if name == reference:
            result[name] = {"offset_seconds": 0.0, "samples": len(seen.get(name, {})), "reference": reference}
            continue
        common = set(seen.get(name, {})) & set(seen.get(reference, {}))
        diffs = [(seen[name][k] - seen[reference][k]).total_seconds() for k in common]
        offset = median(diffs) if len(diffs) >= MIN_SAMPLES else None
        result[name] = {"offset_seconds": offset, "samples": len(diffs), "reference": reference}
    return result


def align(records: list[LogRecord], offsets: dict[str, dict]) -> list[LogRecord]:
    """Records moved onto the reference instance's clock, re-sorted."""
    out = []
    for record in records:
        offset = (offsets.get(record.instance) or {}).get("offset_seconds")
        out.append(record.shifted(timedelta(seconds=offset)) if offset else record)
    out.sort(key=lambda r: r.sort_key)
    return out
