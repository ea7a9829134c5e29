"""Logging: structlog, JSON lines when not on a terminal (always JSON in the log file),
readable console output on one. The logs are the incident record (DESIGN.md, Logs).

Every line has `timestamp` (ISO 8601 UTC, from the injected clock so that demo, simulate and
replay logs carry scenario time), `level`, `event` and `instance`.
"""
from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import structlog

from .clock import Clock, WallClock
from .model import iso_utc
from .secret import Secret

_state: dict[str, Any] = {"clock": WallClock(), "instance": "countwatch"}


def _add_timestamp(logger, method_name: str, event_dict: dict) -> dict:
    event_dict.setdefault("timestamp", iso_utc(_state["clock"].now()))
    return event_dict


def _add_instance(logger, method_name: str, event_dict: dict) -> dict:
    event_dict.setdefault("instance", _state["instance"])
    return event_dict


def _mask_secrets(logger, method_name: str, event_dict: dict) -> dict:
    """A Secret that reaches a log line prints as *** whatever the renderer does with it, also
    inside a dict or list: the JSON renderer writes a str subclass's raw value."""
    for key, value in event_dict.items():
        event_dict[key] = _masked(value)
    return event_dict


def _masked(value: Any) -> Any:
    if isinstance(value, Secret):
        return "***"
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(v) for v in value]
    return value


LOST_NOTICE_SECONDS = 60.0   # while lines are being lost, say so at most once a minute


class _LostLines:
    """Log lines the file could not take (disk full, I/O error), counted for the lifetime of
    the process; `countwatch_log_lines_lost_total` follows it once the daemon attaches it."""

    def __init__(self) -> None:
        self.total = 0
        self._lock = threading.Lock()
        self._sink: Callable[[float], None] | None = None

    def add(self, n: int = 1) -> None:
        with self._lock:
            self.total += n
            sink = self._sink
        if sink is not None:
            sink(n)

    def attach(self, sink: Callable[[float], None]) -> None:
        """Send every lost line to `sink` (a Counter's inc), those lost so far included."""
        with self._lock:
            self._sink = sink
            so_far = self.total
        if so_far:
            sink(so_far)


lost_lines = _LostLines()


class _SparingFileHandler(logging.handlers.RotatingFileHandler):
    """The log file, which may fill its disk. The stdlib prints a ~3 KB '--- Logging error ---'
    traceback on stderr for every line it could not write (53 in a minute on a full disk);
    here a lost line is counted (`lost_lines`), a `log.lines_lost` line says so on the console
    at most once a minute, and when writing works again a `log.recovered` line in the file
    says how many lines are missing and since when."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._failing_since: float | None = None   # wall time of the first lost line of this outage
        self._lost_in_outage = 0
        self._lost_unsaid = 0
        self._said_at = float("-inf")
        self._error = ""
        self._failed_now = False
        self._saying = False

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            super().handleError(record)
            return
        self._failed_now = True
        lost_lines.add()
        if self._failing_since is None:
            self._failing_since = time.time()
        self._lost_in_outage += 1
        self._lost_unsaid += 1
        self._error = f"{type(error).__name__}: {error}"
        # Drop the stream with whatever it buffered: a retry of that buffer would put half a
        # line (or a line twice) in the file. The next line reopens the file.
        stream, self.stream = self.stream, None
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass

    def _open(self):
        stream = super()._open()
        # a line the disk cut in two must not swallow the next one
        try:
            if stream.tell() > 0:
                with open(self.baseFilename, "rb") as tail:
                    tail.seek(-1, os.SEEK_END)
                    if tail.read(1) != b"\n":
                        stream.write("\n")
        except OSError:
            pass
        return stream

    def emit(self, record: logging.LogRecord) -> None:
        self._failed_now = False
        super().emit(record)
        if self._saying:
            return
        if self._failed_now:
            if time.monotonic() - self._said_at >= LOST_NOTICE_SECONDS:
                self._said_at = time.monotonic()
                lost, self._lost_unsaid = self._lost_unsaid, 0
                self._say(logging.ERROR, "log.lines_lost", lost=lost, lost_total=lost_lines.total,
                          file=self.baseFilename, error=self._error,
                          consequence="log lines are dropped (counted in countwatch_log_lines_lost_total); "
                                      "detection and alerting continue")
        elif self._failing_since is not None:
            lost, since = self._lost_in_outage, self._failing_since
            self._failing_since, self._lost_in_outage, self._lost_unsaid = None, 0, 0
            self._said_at = float("-inf")
            self._say(logging.WARNING, "log.recovered", lost=lost, lost_total=lost_lines.total,
                      file=self.baseFilename, lost_since=iso_utc(datetime.fromtimestamp(since, timezone.utc)))

    def _say(self, level: int, event: str, **fields: Any) -> None:
        """One line through the normal path (console and this file), never recursively."""
        self._saying = True
        try:
            structlog.get_logger("countwatch.logs").log(level, event, **fields)
        finally:
            self._saying = False


class _RenderOnce(structlog.stdlib.ProcessorFormatter):
    """Renders a record once per formatter. The stdlib asks every handler's formatter, and
    RotatingFileHandler.shouldRollover formats the record once more just to measure it: a
    poll line was rendered to JSON three times (a third of countwatch's own CPU per document,
    docs/scaling.md)."""

    def format(self, record: logging.LogRecord) -> str:
        cache = record.__dict__.setdefault("_countwatch_rendered", {})
        text = cache.get(id(self))
        if text is None:
            text = cache[id(self)] = super().format(record)
        return text


def configure_logging(fmt: str = "auto", file: Path | None = None, level: str = "info",
                      instance: str = "countwatch", clock: Clock | None = None,
                      max_bytes: int = 50_000_000, backups: int = 5, stream=None) -> None:
    """Route structlog through the stdlib so the console and the (rotated) file can render
    differently: the file is always JSON lines."""
    stream = stream or sys.stderr
    _state["instance"] = instance
    if clock is not None:
        _state["clock"] = clock
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        _add_timestamp,
        _add_instance,
        _mask_secrets,
    ]
    structlog.configure(
        processors=shared + [structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    json_renderer = structlog.processors.JSONRenderer(sort_keys=False, ensure_ascii=False)
    console = fmt == "console" or (fmt == "auto" and getattr(stream, "isatty", lambda: False)())

    def formatter(renderer) -> structlog.stdlib.ProcessorFormatter:
        return _RenderOnce(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        structlog.processors.format_exc_info, renderer],
            foreign_pre_chain=shared,
        )

    json_formatter = formatter(json_renderer)

    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    console_handler = logging.StreamHandler(stream)
    # Both JSON (no terminal): one formatter, so a line is rendered once for both handlers.
    console_handler.setFormatter(formatter(structlog.dev.ConsoleRenderer(colors=False)) if console
                                 else json_formatter)
    root.addHandler(console_handler)
    if file is not None:
        Path(file).parent.mkdir(parents=True, exist_ok=True)
        file_handler = _SparingFileHandler(file, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        file_handler.setFormatter(json_formatter)
        root.addHandler(file_handler)
    root.setLevel(getattr(logging, level.upper()))
    # Libraries chatter at INFO (APScheduler's "Running job ..." every poll): keep them quiet.
    for noisy in ("apscheduler", "urllib3", "slack_sdk"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str = "countwatch", **bound: Any):
    return structlog.get_logger(name).bind(**bound) if bound else structlog.get_logger(name)
