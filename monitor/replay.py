"""`countwatch replay FILE [-c CONFIG]`: a recording through exactly the Judge the daemon uses, in
the recording's own time, printing events as JSONL.

Time comes only from the recording: each line is judged at its own `at`, so a gap between
lines is no evidence either way (nothing is evaluated inside it). Without -c the defaults
apply; with it, the config's [detection] and per-source overrides do.
"""
from __future__ import annotations

import json
import sys
from datetime import datetime
from functools import lru_cache
from typing import Iterable, Iterator

from math import copysign
from types import MappingProxyType

from orjson import loads as _orjson_loads

from .detectors import Judge
from .model import Event, Poll, RegionCount, Snapshot, utc
from .recording import (_OPTIONAL, VERSION, RecordingError, _check_shape, plausible_time,
                        record_to_poll)


def fast_poll(text: str) -> Poll | None:
    """A recording line read faster than read_recording reads it, or None: orjson decodes it,
    and its children (a desa line carries a row per TPS) are checked and built in one loop;
    everything else about the line is record_to_poll's, unchanged. Any line out of the
    ordinary gives None, and read_recording reads it (and names what is wrong) as always."""
    try:
        data = _orjson_loads(text)
    except Exception:  # noqa: BLE001 - not for us to classify
        return None
    if type(data) is not dict:
        return None
    children = data.get("children")
    if type(children) is not dict or not children:
        return None
    rows = _children(children)
    if rows is None:
        return None
    del data["children"]                  # the decoded line is ours alone
    try:
        poll = _document_poll(data, rows)
        if poll is not None:
            return poll
        poll = record_to_poll(data)
    except (RecordingError, KeyError, TypeError, ValueError):
        return None
    if poll.snapshot is None:
        return None
    # The snapshot was just made, and nobody else holds it or `rows`: its children are set
    # in place (what Snapshot's __post_init__ does with a copy; dataclasses.replace made two).
    object.__setattr__(poll.snapshot, "children", MappingProxyType(rows))
    return poll


_DOCUMENT_KEYS = frozenset(("v", "at", "source", "region", "ok", "published_at", "stations", "stations_reported",
                            "votes") + _OPTIONAL)


# A pass's lines share their `at`, a publication its time: each distinct text is read once
# (datetimes are immutable).
@lru_cache(maxsize=4096)
def _time(text, key: str) -> datetime:
    """plausible_time(), in UTC for the poll's `at`."""
    return utc(plausible_time(text, key)) if key == "at" else plausible_time(text, key)


def _document_poll(data: dict, rows: dict) -> Poll | None:
    """record_to_poll() of a plain document line (the fields it names, of the types it reads;
    None for any other, which record_to_poll reads): the same Poll and Snapshot, made without
    their __init__ (frozen dataclasses: a setattr, a copy of the votes and a time conversion
    each), its times read once per distinct text and the votes and rows, decoded for this line
    alone, not copied."""
    if data.get("v") != VERSION or data.get("ok") is not True or not _DOCUMENT_KEYS.issuperset(data):
        return None
    source, region, at, published = data.get("source"), data.get("region"), data.get("at"), data.get("published_at")
    votes = data.get("votes")
    if (type(source) is not str or type(region) is not str or type(at) is not str
            or (published is not None and type(published) is not str) or (votes is not None and type(votes) is not dict)):
        return None
    _check_shape(data)
    at = _time(at, "at")
    snapshot = _new(Snapshot)
    snapshot.__dict__.update(
        source=source, region=region, at=at, published_at=None if published is None else _time(published, "published_at"),
        stations=data.get("stations"), stations_reported=data.get("stations_reported"),
        votes=MappingProxyType(votes or {}), children=MappingProxyType(rows),
        **{key: data.get(key) for key in _OPTIONAL})
    poll = _new(Poll)
    poll.__dict__.update(source=source, region=region, at=at, result="ok", snapshot=snapshot, detail=None,
                         latency_seconds=None)
    return poll


_CHILD_KEYS = frozenset(("stations", "stations_reported", "percent", "votes"))
_LARGEST = 2 ** 53
_new_row = _new = object.__new__
# Rows without votes are few distinct values (a TPS not in yet: 1 station, 0 reported, 0%),
# and immutable: one object each.
_EMPTY_ROWS: dict[tuple, RegionCount] = {}


def _row(stations, reported, percent, votes) -> RegionCount:
    """RegionCount(stations, reported, percent, votes) without its __init__ (frozen dataclass:
    six object.__setattr__ and a copy of the votes): the same fields, equal objects. `votes`
    is a dict just decoded that nobody else holds."""
    row = _new_row(RegionCount)
    fields = row.__dict__
    fields["stations"] = stations
    fields["stations_reported"] = reported
    fields["percent"] = percent
    fields["votes"] = MappingProxyType(votes)
    fields["name"] = None
    fields["registered_voters"] = None
    return row


def _children(children: dict) -> dict[str, RegionCount] | None:
    """RegionCount.from_json of every row, or None unless every row is plainly well-formed
    (what recording._check_shape accepts, in its most common shapes only)."""
    rows = {}
    for code, row in children.items():
        if type(row) is not dict or not _CHILD_KEYS.issuperset(row):
            return None
        stations, reported, percent, votes = (row.get("stations"), row.get("stations_reported"),
                                              row.get("percent"), row.get("votes"))
        if stations is not None and (type(stations) is not int or not -_LARGEST <= stations <= _LARGEST):
            return None
        if reported is not None and (type(reported) is not int or not -_LARGEST <= reported <= _LARGEST):
            return None
        if percent is not None and (type(percent) is not float and type(percent) is not int
                                    or not -_LARGEST <= percent <= _LARGEST):
            return None
        if votes:
            if type(votes) is not dict:
                return None
            for value in votes.values():
                if type(value) is not int or not -_LARGEST <= value <= _LARGEST:
                    return None
            rows[code] = _row(stations, reported, percent, votes)
            continue
        if votes is not None and type(votes) is not dict:
            return None                   # a falsy non-mapping (0, "", []): the reference reader names it
        key = (type(stations), stations, type(reported), reported, type(percent), percent,
               percent is not None and copysign(1.0, percent))        # -0.0 is not 0.0 to print
        shared = _EMPTY_ROWS.get(key)
        if shared is None:
            shared = _row(stations, reported, percent, {})
            if len(_EMPTY_ROWS) < 1024:
                _EMPTY_ROWS[key] = shared
        rows[code] = shared
    return rows


def replay(polls: Iterable[Poll], config=None) -> Iterator[Event]:
    """Events of `polls` in order, one SeriesState per (source, region), no wall clock."""
    judge = Judge(config)
    states = {}
    for poll in polls:
        key = (poll.source, poll.region)
        state = states.get(key)
        if state is None:
            state = states[key] = judge.restore(poll.source, poll.region, None)
        yield from judge.observe(state, poll)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "replay", help="run a recording through the detectors in its own time; events as JSONL on stdout")
    parser.add_argument("file", help="recording (JSONL, one poll per line; `-` for stdin)")
    parser.add_argument("-c", "--config", help="config file (TOML) for [detection] and per-source options")
    parser.set_defaults(func=run)


def run(args) -> int:
    """Exit 0 when the recording was replayed, 2 for a bad config or a file without one good
    recording line, 1 otherwise. A bad line is skipped and counted; one stderr line at the end
    says how many and names the first (one absurd line must not cost the night's replay)."""
    from .configtools import ConfigError
    from .recording import RecordingError, read_recording

    config = None
    if getattr(args, "config", None):
        from .cli import load_config
        try:
            config = load_config(args.config, secrets=False)   # replay sends nothing
        except ConfigError as exc:
            print(f"countwatch replay: {exc}", file=sys.stderr)
            return 2
    path = "/dev/stdin" if args.file == "-" else args.file
    out = sys.stdout
    bad: list[RecordingError] = []      # the first bad line; `skipped` counts them all
    good = skipped = 0

    def skip(error: RecordingError) -> None:
        nonlocal skipped
        skipped += 1
        if not bad:
            bad.append(error)

    def counted(polls):
        nonlocal good
        for poll in polls:
            good += 1
            yield poll

    try:
        for event in replay(counted(read_recording(path, on_bad=skip, fast=fast_poll)), config):
            out.write(json.dumps(event.to_json(), ensure_ascii=False, separators=(",", ":")) + "\n")
        out.flush()
    except FileNotFoundError:
        print(f"countwatch replay: {args.file}: no such file", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `countwatch replay x | head`: the reader is gone, which is not our failure.
        sys.stderr.close()
        return 0
    except OSError as exc:
        print(f"countwatch replay: {exc}", file=sys.stderr)
        return 1
    if bad:
        print(f"countwatch replay: skipped {skipped} bad recording line(s) of {skipped + good}; "
              f"the first: {bad[0]}", file=sys.stderr)
        if not good:
            return 2
    return 0
