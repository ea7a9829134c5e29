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
from datetime import datetime, timezone
from typing import IO, Any, Callable, Iterator

from .model import FAILURES, Poll, RegionCount, Snapshot, iso_utc, parse_iso

VERSION = 1
_OPTIONAL = ("registered_voters", "valid_votes", "invalid_votes", "percent", "name", "level")
_COUNTS = ("stations", "stations_reported", "registered_voters", "valid_votes", "invalid_votes")
# Times a recording (or a log line) may carry. Outside them the detectors' and the reports'
# date arithmetic overflows (a year of 9999 or 0001 ended `replay` and `timeline`, issue #14).
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(3000, 1, 1, tzinfo=timezone.utc)
_LARGEST = 2 ** 53


class RecordingError(ValueError):
    """A line that is not a version-1 recording line; the message names the line."""


class ImplausibleTime(ValueError):
    """A well-formed time outside EARLIEST..LATEST."""


def plausible_time(text: Any, key: str) -> datetime:
    """An ISO time with a zone between EARLIEST and LATEST; ValueError naming `key` otherwise
    (ImplausibleTime when it is a time, only not one countwatch could have written)."""
    if not isinstance(text, str):
        raise ValueError(f"{key} must be an ISO time string, got {type(text).__name__}")
    moment = parse_iso(text)
    try:
        inside = EARLIEST <= moment < LATEST
    except OverflowError:
        inside = False
    if not inside:
        raise ImplausibleTime(f"{key} {text!r} is outside {EARLIEST.year}-{LATEST.year - 1}")
    return moment


def _check_shape(line: dict[str, Any], where: str = "") -> None:
    """Each field has the type the detectors compute with: a wrong one ("stations": "x",
    "level": "tps") made every rule raise its own TypeError (issue #14)."""
    for key in _COUNTS + ("level",):
        if not _integer(line.get(key)):
            raise RecordingError(f"{where}{key} must be an integer, got {line.get(key)!r:.40}")
    percent = line.get("percent")
    if percent is not None and (not isinstance(percent, (int, float)) or isinstance(percent, bool)
                                or not abs(percent) <= _LARGEST):
        raise RecordingError(f"{where}percent must be a number, got {percent!r:.40}")
    if line.get("name") is not None and not isinstance(line.get("name"), str):
        raise RecordingError(f"{where}name must be a string")
    votes = line.get("votes")
    if votes is not None and not (isinstance(votes, dict) and all(_integer(v) for v in votes.values())):
        raise RecordingError(f"{where}votes must map candidates to integers")


def _integer(value: Any) -> bool:
    """None, or an int a float holds exactly (metrics and ratios are floats)."""
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and abs(value) <= _LARGEST)


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
        at = plausible_time(line["at"], "at")
        source, region = line["source"], line["region"]
        if not isinstance(source, str) or not isinstance(region, (str, int)) or isinstance(region, bool):
            raise RecordingError("source and region must be strings")
        region = str(region)
        if not line["ok"]:
            error = line.get("error", "schema")
            if error not in FAILURES:
                raise RecordingError(f"unknown error class {error!r}")
            if line.get("detail") is not None and not isinstance(line.get("detail"), str):
                raise RecordingError("detail must be a string")
            return Poll(source=source, region=region, at=at, result=error, detail=line.get("detail"))
        if line.get("not_modified") is True:
            return Poll(source=source, region=region, at=at, result="not_modified")
        _check_shape(line)
        children = line.get("children") or {}
        if not isinstance(children, dict) or not all(isinstance(c, dict) for c in children.values()):
            raise RecordingError("children must map region codes to tables")
        for code, child in children.items():
            _check_shape(child, f"children[{code!r:.20}].")
        published = line.get("published_at")
        snapshot = Snapshot(
            source=source, region=region, at=at,
            published_at=None if published is None else plausible_time(published, "published_at"),
            stations=line.get("stations"), stations_reported=line.get("stations_reported"),
            votes=line.get("votes") or {},
            children={str(k): RegionCount.from_json(v) for k, v in children.items()},
            **{key: line.get(key) for key in _OPTIONAL},
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, RecordingError):
            raise
        raise RecordingError(f"{type(exc).__name__}: {exc}") from exc
    return Poll(source=source, region=region, at=at, result="ok", snapshot=snapshot)


def read_recording(path: str | Path, on_bad: Callable[[RecordingError], None] | None = None,
                   fast: Callable[[str], Poll | None] | None = None) -> Iterator[Poll]:
    """Polls of a recording file in file order. A bad line raises RecordingError naming it;
    with `on_bad`, the error is handed to it instead and the line is skipped. `fast` may
    read a line first (replay's quicker reader): when it returns None, the line is read here."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, text in enumerate(handle, start=1):
            if fast is not None:
                poll = fast(text)
                if poll is not None:
                    yield poll
                    continue
            if not text.strip():
                continue
            try:
                try:
                    data = json.loads(text)
                except RecursionError:
                    raise RecordingError("JSON nested too deeply") from None
                if not isinstance(data, dict):
                    raise RecordingError(f"not a JSON object but {type(data).__name__}")
                poll = record_to_poll(data)
            except (json.JSONDecodeError, RecordingError) as exc:
                error = RecordingError(f"{path}:{number}: {exc}")
                if on_bad is None:
                    raise error from exc
                on_bad(error)
                continue
            yield poll


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
