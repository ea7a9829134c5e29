"""The log: one JSON line per call in the file and on a non-terminal stderr, rendered once."""
from __future__ import annotations

import io
import json

import structlog

from monitor.logs import configure_logging


def test_a_line_is_rendered_once_for_stderr_and_the_rotating_file(tmp_path, monkeypatch):
    calls = []
    render = structlog.processors.JSONRenderer.__call__

    def counting(self, logger, name, event_dict):
        calls.append(event_dict.get("event"))
        return render(self, logger, name, event_dict)
    monkeypatch.setattr(structlog.processors.JSONRenderer, "__call__", counting)
    stderr = io.StringIO()                       # not a terminal: JSON there too
    configure_logging("auto", tmp_path / "countwatch.log", "info", "t", stream=stderr, max_bytes=10_000)
    try:
        log = structlog.get_logger("countwatch.poll")
        for k in range(3):
            log.info("poll", source="kpu", region="32", result="ok", n=k)
    finally:
        configure_logging("console", None, "info", "t", stream=io.StringIO())
    # Three lines, each rendered once although two handlers and the rollover check read it.
    assert calls == ["poll", "poll", "poll"]
    for text in (stderr.getvalue(), (tmp_path / "countwatch.log").read_text()):
        lines = [json.loads(line) for line in text.splitlines()]
        assert [(line["event"], line["n"]) for line in lines] == [("poll", 0), ("poll", 1), ("poll", 2)]
