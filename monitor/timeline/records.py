"""Reading countwatch's JSON log files: plain, rotated (`.1`, `.2`, ...) and gzipped, from one
or several instances, into one list of records ordered for the review.

A line is countwatch's when it is a JSON object with the four fields every line carries
(DESIGN.md, Logs): `timestamp` (ISO 8601 with a zone), `level`, `event`, `instance`.
Anything else (a stack trace printed by a wrapper, another program's JSON, a line cut by a
crash) is counted and skipped, never fatal: the morning after, a partial record beats none.

Order (see docs/timeline.md): by each line's own time, then instance name, then the line's
position in its instance's stream (oldest rotated file first), so one instance's lines that
share a timestamp keep the order they were written in.
"""
from __future__ import annotations

import gzip
import json
import re
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterator, Mapping

from ..recording import ImplausibleTime, plausible_time

REQUIRED = ("timestamp", "level", "event", "instance")
# Fields the review groups, matches or sorts by: a list or an object there is not a countwatch
# line however well-formed the rest is (it used to raise TypeError deep in the rebuild).
SCALARS = ("source", "region", "rule", "state", "severity", "receiver", "reason", "notification", "alert_key",
           "key", "incident", "poll_id", "result", "stations", "stations_reported", "summary")
_ROTATED = re.compile(r"^(?P<base>.*?)(?:\.(?P<n>\d+))?(?P<gz>\.gz)?$")


@dataclass(frozen=True)
class LogRecord:
    at: datetime                     # the line's time on its instance's clock (aware)
    instance: str
    event: str
    fields: Mapping[str, Any]
    origin: str                      # "file:line", for a reviewer who wants the raw line
    seq: int                         # position in its instance's stream

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)

    def shifted(self, offset: timedelta) -> "LogRecord":
        return LogRecord(self.at - offset, self.instance, self.event, self.fields, self.origin, self.seq)

    @property
    def sort_key(self) -> tuple:
        return (self.at, self.instance, self.seq)


@dataclass
class ReadStats:
    files: list[str] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)   # (path, why)
    lines: int = 0
    records: int = 0
    foreign: int = 0
    truncated: int = 0
    duplicates: int = 0
    absurd: int = 0                  # countwatch-shaped lines with an impossible value (skipped)
    notes: list[str] = field(default_factory=list)
    first_absurd: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"files": self.files, "unreadable": [{"path": p, "error": e} for p, e in self.unreadable],
                "lines": self.lines, "records": self.records, "foreign": self.foreign,
                "truncated": self.truncated, "duplicates": self.duplicates, "absurd": self.absurd,
                "notes": self.notes}

    def skip_absurd(self, origin: str, why: str) -> None:
        """Counted every time, described once: the note names the first such line."""
        self.absurd += 1
        if self.absurd == 1:
            self.first_absurd = f"{origin}: {why}"


def expand_paths(paths: list[Path]) -> list[Path]:
    """Directories stand for the log files in them; rotated siblings are ordered oldest first
    (`x.log.3.gz`, `x.log.2`, `x.log.1`, `x.log`) so each instance's stream reads in order."""
    out: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            out.extend(sorted((p for p in path.iterdir() if p.is_file() and ".log" in p.name), key=_age_key))
        else:
            out.append(path)
    seen: set[Path] = set()
    unique = []
    for path in sorted(out, key=_age_key):
        resolved = path.resolve() if path.exists() else path
        if resolved not in seen:
            seen.add(resolved)
            unique.append(path)
    return unique


def with_rotated(paths: list[Path]) -> list[Path]:
    """Each file together with its rotated siblings (`x.log.1`, `x.log.2.gz`, ...): what a
    caller holding only the live file's name (the demo) means by "the log"."""
    out: list[Path] = []
    for path in map(Path, paths):
        out.append(path)
        if path.parent.is_dir():
            out.extend(p for p in path.parent.iterdir()
                       if p != path and _ROTATED.match(str(p)).group("base") == str(path) and p.is_file())
    return out


def _age_key(path: Path) -> tuple:
    match = _ROTATED.match(str(path))
    base, number = match.group("base"), match.group("n")
    # a higher rotation number is older; the live file (no number) is the newest
    return (base, -(int(number) if number else 0))


def read_logs(paths: list[Path]) -> tuple[list[LogRecord], ReadStats]:
    stats = ReadStats()
    records: list[LogRecord] = []
    seq: dict[str, int] = {}
    seen_lines: set[bytes] = set()
    for path in expand_paths(paths):
        try:
            lines = list(_lines(path, stats))
        except OSError as error:
            stats.unreadable.append((str(path), error.strerror or str(error)))
            continue
        stats.files.append(str(path))
        for number, raw, last_without_newline in lines:
            stats.lines += 1
            if not raw.strip():
                continue
            try:
                record = _parse(raw, f"{path}:{number}", seq)
            except AbsurdLine as why:
                stats.skip_absurd(f"{path}:{number}", str(why))
                continue
            if record is None:
                if last_without_newline:
                    stats.truncated += 1
                else:
                    stats.foreign += 1
                continue
            if raw in seen_lines:
                # the same line twice: a rotated file given together with a copy of itself
                stats.duplicates += 1
                continue
            seen_lines.add(raw)
            records.append(record)
    stats.records = len(records)
    if stats.absurd:
        stats.notes.append(f"Skipped {stats.absurd:,} line(s) with an impossible value; the first: "
                           f"{stats.first_absurd}.")
    records.sort(key=lambda r: r.sort_key)
    return records, stats


def _lines(path: Path, stats: ReadStats) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, raw line without newline, is it a last line with no newline)."""
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"   # by content: rotation tools differ in naming
    opener = gzip.open if gzipped else open
    previous: bytes | None = None
    number = 0
    with opener(path, "rb") as handle:
        try:
            for raw in handle:
                if previous is not None:
                    yield number, previous.rstrip(b"\r\n"), False
                number += 1
                previous = raw
        except (EOFError, zlib.error, gzip.BadGzipFile) as error:
            # a gzip cut short (copied while being written): keep what decompressed
            stats.notes.append(f"{path}: compressed stream ends early ({error}); read up to line {number}")
    if previous is not None:
        yield number, previous.rstrip(b"\r\n"), not previous.endswith(b"\n")


class AbsurdLine(ValueError):
    """A countwatch line (the four fields are there) whose values no countwatch wrote: a year
    of 9999, JSON nested a hundred thousand deep, an object where a name goes."""


def _parse(raw: bytes, origin: str, seq: dict[str, int]) -> LogRecord | None:
    """The record of one line; None for a line that is not countwatch's; AbsurdLine for one
    that claims to be but cannot be reviewed."""
    try:
        data = json.loads(raw.decode("utf-8", errors="replace"))
    except RecursionError:
        raise AbsurdLine("JSON nested too deeply") from None
    except ValueError:
        return None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in REQUIRED):
        return None
    try:
        at = plausible_time(data["timestamp"], "timestamp")
        if data["event"] == "detector.event" and data.get("event_at"):
            at = plausible_time(data["event_at"], "event_at")
    except ImplausibleTime as error:
        raise AbsurdLine(str(error)) from None
    except ValueError:
        return None
    try:
        if isinstance(data.get("since"), str):
            plausible_time(data["since"], "since")
    except ImplausibleTime as error:
        raise AbsurdLine(str(error)) from None
    except ValueError:
        pass     # an unreadable `since` is ignored where it is read (incidents._since)
    for key in SCALARS:
        if isinstance(data.get(key), (dict, list)):
            raise AbsurdLine(f"{key} is a JSON {'object' if isinstance(data[key], dict) else 'array'}")
    instance = data["instance"]
    seq[instance] = seq.get(instance, 0) + 1
    return LogRecord(at, instance, data["event"], data, origin, seq[instance])
