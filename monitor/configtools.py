"""Small readers shared by every config section (monitor's and alerts'): durations, sizes,
environment-variable expansion, and the Problems collector that lets validation
report every mistake in one message instead of stopping at the first."""
from __future__ import annotations

import os
import re
from typing import Any, Callable, Mapping, TypeVar

T = TypeVar("T")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# The longest duration any key accepts. Every duration ends up added to a datetime or given to
# the scheduler, and "3000000d" passed check-config only to overflow at run time (issue #14);
# nothing countwatch schedules, silences or retains needs more than a year.
MAX_DURATION_SECONDS = 365 * 86400.0
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2,
               "gib": 1024**3}
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(ValueError):
    """Raised once with every problem found; str() is the message for the user."""

    def __init__(self, problems: list[str], path: str | None = None):
        self.problems = problems
        where = f"{path}: " if path else ""
        super().__init__(f"{where}{len(problems)} problem(s) in config:\n  - " + "\n  - ".join(problems))


class Problems:
    """Collects config problems, each naming its key (`sources[0].interval: ...`)."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, key: str, message: str) -> None:
        self.items.append(f"{key}: {message}")

    def raise_if_any(self, path: str | None = None) -> None:
        if self.items:
            raise ConfigError(self.items, path)

    def unknown_keys(self, table: Mapping[str, Any], where: str, known: set[str]) -> None:
        for key in table:
            if key not in known:
                self.add(f"{where}.{key}" if where else key, f"unknown key (known: {', '.join(sorted(known))})")

    # typed readers: return the value, or the default after recording a problem
    def get(self, table: Mapping[str, Any], key: str, where: str, kind: type | tuple, default: Any,
            required: bool = False) -> Any:
        full = f"{where}.{key}" if where else key
        if key not in table:
            if required:
                self.add(full, "is required")
            return default
        value = table[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            self.add(full, f"must be {names}, got {type(value).__name__} {value!r}")
            return default
        return value

    def convert(self, table: Mapping[str, Any], key: str, where: str, parse: Callable[[Any], T],
                default: T, required: bool = False) -> T:
        full = f"{where}.{key}" if where else key
        if key not in table:
            if required:
                self.add(full, "is required")
            return default
        try:
            return parse(table[key])
        except (ValueError, TypeError) as exc:
            self.add(full, str(exc))
            return default


def parse_duration(value: Any) -> float:
    """"500ms", "60s", "5m", "2h", "30d" -> seconds. Bare numbers are refused: a duration
    without a unit is the classic config mistake. At most MAX_DURATION_SECONDS (365d)."""
    if not isinstance(value, str):
        raise ValueError(f"must be a duration string like \"60s\" or \"5m\", got {value!r}")
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"must be a duration like \"500ms\", \"60s\", \"5m\", \"2h\", \"1d\"; got {value!r}")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if not seconds <= MAX_DURATION_SECONDS:
        raise ValueError(f"must be at most 365d, got {value!r}")
    return seconds


def parse_size(value: Any) -> int:
    """"20MB", "512KiB" or a byte count -> bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str) or not (match := _SIZE.match(value)):
        raise ValueError(f"must be a size like \"20MB\" or \"512KiB\", got {value!r}")
    return int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "B").lower()])


def expand_env(value: str, key: str, problems: Problems, environ: Mapping[str, str] | None = None) -> str:
    """Replace ${VAR} from the environment; a missing variable is a problem naming the key
    and the variable (never its would-be value)."""
    env = os.environ if environ is None else environ

    def substitute(match: re.Match) -> str:
        name = match.group(1)
        if name not in env:
            problems.add(key, f"environment variable {name} is not set")
            return ""
        if not env[name]:
            # `SLACK_WEBHOOK_URL=` would otherwise pass here and fail at the first send
            problems.add(key, f"environment variable {name} is empty")
            return ""
        return env[name]

    return _ENV.sub(substitute, value)


def mentions_env(value: Any) -> bool:
    return isinstance(value, str) and bool(_ENV.search(value))
