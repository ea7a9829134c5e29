"""A credential read from the config (a webhook URL, a bot token, a header, a password).

It is a `str`, so it goes wherever a string goes, but it never shows itself: repr, str and
format print a mask, so a value that slips into a log line, a metric label, a traceback or a
report reads `***`. The one place that needs the value (the HTTP call) asks for it with
`.reveal()`; monitor/logs.py masks it again for renderers that write a str's raw value.
"""
from __future__ import annotations


class Secret(str):
    """A string that never shows itself; `.reveal()` at the one place that needs the value."""

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __format__(self, spec: str) -> str:
        return "***"

    def reveal(self) -> str:
        return str.__str__(self)
