"""Wording shared by the rules' summaries; it lives in monitor/wording.py, with the alert
messages' and the review's, so every reader sees one way of saying a time or a duration."""
from __future__ import annotations

from ..wording import count, local_iso, percent, when, zone_name
from ..wording import summary_duration as duration

__all__ = ["count", "duration", "local_iso", "percent", "when", "zone_name"]
