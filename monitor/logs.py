"""Logging: structlog, JSON lines when not on a terminal (always JSON in the log file),
readable console output on one. The logs are the incident record (DESIGN.md, Logs).

Every line has `timestamp` (ISO 8601 UTC, from the injected clock so that demo, simulate and
replay logs carry scenario time), `level`, `event` and `instance`.
"""
from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path
from typing import Any

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
        file_handler = logging.handlers.RotatingFileHandler(file, maxBytes=max_bytes, backupCount=backups,
                                                            encoding="utf-8")
        file_handler.setFormatter(json_formatter)
        root.addHandler(file_handler)
    root.setLevel(getattr(logging, level.upper()))
    # Libraries chatter at INFO (APScheduler's "Running job ..." every poll): keep them quiet.
    for noisy in ("apscheduler", "urllib3", "slack_sdk"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str = "countwatch", **bound: Any):
    return structlog.get_logger(name).bind(**bound) if bound else structlog.get_logger(name)
