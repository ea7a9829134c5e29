"""The recording format (DESIGN.md): one JSON line per poll of one source/region.

Written by `countwatch run --record FILE`, read by `countwatch replay`. Version 1:
  {"v": 1, "at": "...Z", "source": "...", "region": "0", "ok": true, "published_at": ...,
   "stations": N, "stations_reported": N, "votes": {...}, "children": {...}}
  {"v": 1, "at": "...Z", "source": "...", "region": "0", "ok": false, "error": "timeout"}
  {"v": 1, "at": "...Z", "source": "...", "region": "0", "ok": true, "not_modified": true}
The last is a 304 (the previous snapshot still stands): it carries no numbers, but its time does
count — a stall is called at a poll, and a recording without its 304s would call it late.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import IO, Any, Iterator

from .model import FAILURES, Poll, RegionCount, Snapshot, iso_utc, parse_iso

VERSION = 1
_OPTIONAL = ("registered_voters", "valid_votes", "invalid_votes", "percent", "name", "level")


class RecordingError(ValueError):
    """A line that is not a version-1 recording line; the message names the line."""


def poll_to_record(poll: Poll) -> dict[str, Any]:
    """The recording line of a poll."""
    line: dict[str, Any] = {"v": VERSION, "at": iso_utc(poll.at), "source": poll.source,
                            "region": poll.region}
    if poll.result == "not_modified":
        line.update(ok=True, not_modified=True)
        return line
    if not poll.ok:
        line.update(ok=False, error=poll.result)
        if poll.detail:
            line["detail"] = poll.detail
        return line
    snap = poll.snapshot
    assert snap is not None
    line.update(ok=True, published_at=snap.published_at.isoformat() if snap.published_at else None,
                stations=snap.stations, stations_reported=snap.stations_reported,
                votes=dict(snap.votes))
    for key in _OPTIONAL:
        value = getattr(snap, key)
        if value is not None:
            line[key] = value
    if snap.children:
        line["children"] = {code: child.to_json() for code, child in snap.children.items()}
    return line


def record_to_poll(line: dict[str, Any]) -> Poll:
    if line.get("v") != VERSION:
        raise RecordingError(f"unsupported recording version {line.get('v')!r}")
    try:
        at = parse_iso(line["at"])
        source, region = str(line["source"]), str(line["region"])
        if not line["ok"]:
            error = line.get("error", "schema")
            if error not in FAILURES:
                raise RecordingError(f"unknown error class {error!r}")
            return Poll(source=source, region=region, at=at, result=error, detail=line.get("detail"))
        if line.get("not_modified") is True:
            return Poll(source=source, region=region, at=at, result="not_modified")
        snapshot = Snapshot(
            source=source, region=region, at=at,
            published_at=parse_iso(line.get("published_at")),
            stations=line.get("stations"), stations_reported=line.get("stations_reported"),
            votes=line.get("votes") or {},
            children={str(k): RegionCount.from_json(v) for k, v in (line.get("children") or {}).items()},
            **{key: line.get(key) for key in _OPTIONAL},
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, RecordingError):
            raise
        raise RecordingError(f"{type(exc).__name__}: {exc}") from exc
    return Poll(source=source, region=region, at=at, result="ok", snapshot=snapshot)


def read_recording(path: str | Path) -> Iterator[Poll]:
    """Polls of a recording file in file order. A bad line raises RecordingError naming it."""
    with open(path, encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                yield record_to_poll(json.loads(text))
            except (json.JSONDecodeError, RecordingError) as exc:
                raise RecordingError(f"{path}:{number}: {exc}") from exc


class RecordingWriter:
    """Appends polls to a recording, one flushed line each (a crash loses at most the line
    being written). Thread-safe: several source jobs share one file."""

    def __init__(self, path: str | Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._handle: IO[str] = open(path, "a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, poll: Poll) -> None:
        line = poll_to_record(poll)
        text = json.dumps(line, separators=(",", ":"), ensure_ascii=False)
        with self._lock:
            self._handle.write(text + "\n")
            self._handle.flush()

    def close(self) -> None:
        with self._lock:
            self._handle.close()
