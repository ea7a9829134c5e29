"""`live`: a feed on wall time for the tests that run a real Prometheus or Alertmanager.

It publishes every `period` seconds (1 s by default) from the moment a server starts serving
it, the count rising linearly from 5 % to 98 % over `duration`. Nothing is scripted: freezes
and outages are switched at run time through the control endpoints, and every switch is
written down as ground truth in `incidents`.
"""
from __future__ import annotations

import math
import threading
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from ..model import iso_utc
from .count import CountModel
from .curve import EntryCurve
from .electorate import electorate
from .geography import PROVINCE_CODE
from .scenario import OUTAGE_MODES, GroundTruth, Outage, Publication, Scenario
from .scenarios import PROVINCE_PATH, SEED

CONTROL_ACTIONS = ("freeze", "resume", "outage", "ok", "status")


class LiveScenario(Scenario):
    controllable = True

    def __init__(self, period: float = 1.0, duration: timedelta = timedelta(hours=1),
                 start: datetime | None = None, seed: int = SEED):
        if period < 1.0:
            # `ts` has whole seconds: two publications inside one second would share it.
            raise ValueError("live publishes at most once a second")
        self.period = period
        self.duration = duration
        self.seed = seed
        self._lock = threading.Lock()
        self._held: Publication | None = None
        self._outage: str | None = None
        self._incidents: list[GroundTruth] = []
        self._open: dict[str, int] = {}          # kind -> index in _incidents of the open one
        sources = [{"name": "kpu-live", "kind": "sirekap", "path": PROVINCE_PATH, "region": PROVINCE_CODE,
                    "depth": 1, "interval": "1s", "timeout": "1s"}]
        super().__init__(name="live", description="wall-clock feed publishing every second; freeze and "
                         "outage switched through /_control", model=None, start=None, end=None,
                         default_speed=1.0, sources=sources)
        if start is not None:
            self.begin(start)

    def begin(self, now: datetime) -> None:
        with self._lock:
            if self.start is not None:
                return
            origin = datetime.fromtimestamp(math.floor(now.timestamp()), timezone.utc)
            self.start = origin
            self.end = origin + self.duration
            curve = EntryCurve([(origin - timedelta(minutes=10), 0.0), (origin, 0.05), (self.end, 0.98)])
            self.model = CountModel(electorate(self.seed), curve)

    @property
    def incidents(self) -> list[GroundTruth]:
        with self._lock:
            return list(self._incidents)

    def _scheduled(self, now: datetime) -> Publication | None:
        if self.start is None:
            raise RuntimeError("the live scenario has not begun: start a server on it first")
        index = math.floor((now - self.start).total_seconds() / self.period)
        if index < 0:
            return None
        return Publication(index, self.start.timestamp() + index * self.period)

    def publication_at(self, now: datetime) -> Publication | None:
        with self._lock:
            return self._held or self._scheduled(now)

    def outage_at(self, now: datetime) -> Outage | None:
        with self._lock:
            return Outage(self._outage, None) if self._outage else None

    # -- run-time control ----------------------------------------------------------------
    def control(self, action: str, params: Mapping[str, str], now: datetime) -> dict[str, Any]:
        """Apply one control action; ValueError for a bad parameter, LookupError for an
        unknown action. Returns the state after it."""
        if action not in CONTROL_ACTIONS:
            raise LookupError(f"unknown control action {action!r}; known: {', '.join(CONTROL_ACTIONS)}")
        with self._lock:
            if action == "freeze" and self._held is None:
                self._held = self._scheduled(now)
                state = self.model.state(PROVINCE_CODE, self._held.at) if self._held else None
                self._open_incident("freeze", self._held.published_at if self._held else now, {
                    "last_published_at": iso_utc(self._held.published_at) if self._held else None,
                    "stations_reported": state.stations_reported if state else 0,
                    "expected_rules": ["stall", "stale_source"]})
            elif action == "resume" and self._held is not None:
                before = self.model.state(PROVINCE_CODE, self._held.at)
                self._held = None
                self._close_incident("freeze", now)
                current = self._scheduled(now)
                after = self.model.state(PROVINCE_CODE, current.at) if current else before
                self._incidents.append(GroundTruth("jump", now, now, {
                    "stations_reported_before": before.stations_reported,
                    "stations_reported_after": after.stations_reported,
                    "delta": after.stations_reported - before.stations_reported,
                    "expected_rules": ["jump"]}))
            elif action == "outage":
                mode = params.get("mode", "503")
                if mode not in OUTAGE_MODES:
                    raise ValueError(f"mode must be one of {', '.join(OUTAGE_MODES)}, not {mode!r}")
                if self._outage != mode:
                    self._close_incident("outage", now)
                    self._outage = mode
                    self._open_incident("outage", now, {"mode": mode, "expected_rules": ["outage"]})
            elif action == "ok" and self._outage is not None:
                self._outage = None
                self._close_incident("outage", now)
            return self._status(now)

    def _open_incident(self, kind: str, start: datetime, details: dict[str, Any]) -> None:
        self._open[kind] = len(self._incidents)
        self._incidents.append(GroundTruth(kind, start, None, details))

    def _close_incident(self, kind: str, end: datetime) -> None:
        index = self._open.pop(kind, None)
        if index is not None:
            self._incidents[index] = replace(self._incidents[index], end=end)

    def _status(self, now: datetime) -> dict[str, Any]:
        publication = self._held or self._scheduled(now)
        state = self.model.state(PROVINCE_CODE, publication.at) if publication else None
        return {
            "ok": True,
            "scenario": self.name,
            "now": iso_utc(now),
            "frozen": self._held is not None,
            "outage": self._outage,
            "published_at": iso_utc(publication.published_at) if publication else None,
            "ts": publication.ts if publication else None,
            "stations": state.stations if state else None,
            "stations_reported": state.stations_reported if state else None,
            "incidents": [incident.to_json() for incident in self._incidents],
        }
