"""The post-incident review: countwatch's JSON logs rebuilt into incidents (last advance,
detector events, notifications, outage spans, catch-up, resolution), rendered as Markdown,
HTML or JSON, with a progress chart. See docs/timeline.md."""
from __future__ import annotations

from .command import add_parser, review, run, write_report

__all__ = ["add_parser", "review", "run", "write_report"]
