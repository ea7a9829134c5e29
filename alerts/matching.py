"""Label matchers shared by routes and silences, and the labels of an event.

A matcher is `{label = "glob"}` or `{label = ["glob", ...]}`: every named label must match one
of its globs (shell-style, `fnmatchcase`), so `region = "32*"` covers West Java and everything
below it. An empty matcher matches everything.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from types import MappingProxyType
from typing import Any, Mapping

from monitor.model import SEVERITIES, Event, severity_rank
from monitor.configtools import Problems

LABELS = ("severity", "source", "region", "rule", "cause")


def cause_of(event: Event) -> str:
    """The detector's own `cause` (every event names one; see monitor.model.cause_of for
    events logged before they did). Which rules go together is the detectors' `family`."""
    return event.cause


def labels_of(event: Event) -> dict[str, str]:
    return {"severity": event.severity, "source": event.source, "region": event.region,
            "rule": event.rule, "cause": cause_of(event)}


@dataclass(frozen=True)
class Matcher:
    labels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(any(fnmatchcase(str(labels.get(name, "")), glob) for glob in globs)
                   for name, globs in self.labels.items())

    def names(self, label: str) -> bool:
        return label in self.labels

    def describe(self) -> str:
        if not self.labels:
            return "everything"
        return ", ".join(f"{name}={'|'.join(globs)}" for name, globs in self.labels.items())

    def to_json(self) -> dict[str, list[str]]:
        return {name: list(globs) for name, globs in self.labels.items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Matcher":
        return cls({str(k): tuple(v) if isinstance(v, (list, tuple)) else (str(v),) for k, v in data.items()})


def parse_matcher(raw: Any, where: str, problems: Problems, source_names: tuple[str, ...] = ()) -> Matcher:
    """Read a `match` table, naming every problem (unknown label, bad severity, unknown source)."""
    if not isinstance(raw, Mapping):
        problems.add(where, f"must be a table like {{ severity = \"critical\" }}, got {raw!r}")
        return Matcher()
    labels: dict[str, tuple[str, ...]] = {}
    for name, value in raw.items():
        key = f"{where}.{name}"
        if name not in LABELS:
            problems.add(key, f"unknown label (known: {', '.join(LABELS)})")
            continue
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str) and v for v in values):
            problems.add(key, f"must be a non-empty string or a list of them, got {value!r}")
            continue
        for glob in values:
            exact = not any(ch in glob for ch in "*?[")
            if name == "severity" and exact and glob not in SEVERITIES:
                problems.add(key, f"must be one of {', '.join(SEVERITIES)}, got {glob!r}")
            if name == "source" and exact and source_names and not any(fnmatchcase(glob, known)
                                                                        for known in source_names):
                problems.add(key, f"no source named {glob!r} (sources: {', '.join(sorted(source_names))})")
        labels[name] = tuple(values)
    return Matcher(labels)


def parse_match_args(pairs: list[str], source_names: tuple[str, ...] = ()) -> Matcher:
    """`--match region=32 --match rule=stall` (the CLI); raises ValueError naming the bad pair."""
    problems = Problems()
    raw: dict[str, list[str]] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name or not value:
            raise ValueError(f"--match {pair!r}: expected LABEL=VALUE, e.g. region=32")
        raw.setdefault(name.strip(), []).append(value.strip())
    matcher = parse_matcher(raw, "--match", problems, source_names)
    if problems.items:
        raise ValueError("; ".join(problems.items))
    return matcher


__all__ = ["LABELS", "Matcher", "cause_of", "labels_of", "parse_match_args", "parse_matcher", "severity_rank"]
