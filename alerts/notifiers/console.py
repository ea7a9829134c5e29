"""The console receiver: one readable line per notification on stdout (what `countwatch demo`
shows), times in the source's zone beside UTC. No escaping: a terminal parses no markup."""
from __future__ import annotations

import sys
from typing import TextIO

from ..config import ReceiverConfig
from monitor.wording import when

from ..format import facts, figures_of, headline, region_label
from ..notification import Notification, Receipt

_WORD = {"resolved": "RESOLVED", "test": "TEST"}


class ConsoleNotifier:
    kind = "console"

    def __init__(self, receiver: ReceiverConfig, stream: TextIO | None = None):
        self.name = receiver.name
        self._stream = stream   # None: whatever sys.stdout is at send time (pytest's capsys works)

    def notify(self, notification: Notification) -> Receipt | None:
        word = _WORD.get(notification.status, notification.severity.upper())
        lead = figures_of(notification)
        evidence = ""
        if lead is not None:
            wanted = ("Progress", "Last advance", "Stalled for", "For", "Failed polls")
            shown = [f"{label.lower()} {value}" for label, value in facts(lead, notification.timezone,
                                                                         notification.created_at, notification.units)
                     if label in wanted or label.endswith(" lasted")]
            if shown and len({(m.event.source, m.event.region) for m in notification.members}) > 1:
                shown[0] = f"{lead.event.source}/{region_label(lead)}: {shown[0]}"   # whose figures these are
            evidence = (" | " + "; ".join(shown)) if shown else ""
        duplicate = " (possible duplicate)" if notification.possible_duplicate else ""
        line = (f"[{when(notification.created_at, notification.timezone, missing='-')}] {word:<8} {notification.reason:<9} "
                f"{headline(notification)}{evidence} | incident {notification.incident}{duplicate}")
        stream = self._stream or sys.stdout
        print(" ".join(line.splitlines()), file=stream, flush=True)
        return None
