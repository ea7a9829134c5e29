"""Options of the detectors (`[detection]` in the config, and per source `detection = {...}`).

Placeholder owned by the detectors work (issue 3): it will grow the stall budget, floors,
ceilings and per-rule options."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..configtools import Problems


@dataclass(frozen=True)
class DetectionOptions:
    pass


def parse_detection_options(raw: Mapping[str, Any], where: str, problems: Problems) -> DetectionOptions:
    problems.unknown_keys(raw, where, set())
    return DetectionOptions()
