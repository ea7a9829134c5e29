"""Config of the alerting stages: [[receivers]], [[routes]], [[silences]], [alerting].

Placeholder owned by the alerting work (issue 4)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from monitor.configtools import Problems


@dataclass(frozen=True)
class AlertingConfig:
    receivers: tuple = ()
    routes: tuple = ()


def parse_alerting(raw: Mapping[str, Any], problems: Problems, environ: Mapping[str, str] | None = None,
                   source_names: tuple[str, ...] = ()) -> AlertingConfig:
    return AlertingConfig()
