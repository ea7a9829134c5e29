"""`outage` (our polls fail) and `latency` (they work, slowly).

An outage opens on consecutive failures or on a failure share over a window of polls, so a
site that fails every other poll is down too. It closes after a run of good polls (whose
required length doubles with every relapse inside the incident) once the window holds at most
half the failures that open one: a flapping site gives one incident, not one per flap. Failures are counted by class (DNS, connect, timeout, TLS, HTTP
403 / 4xx / 5xx, too large, invalid body, schema) because "timeouts" and "403 Forbidden" call
for different people.
"""
from __future__ import annotations

from datetime import datetime
from statistics import median

from ..model import Event, iso_utc
from .base import Rule, label, lifecycle
from .history import History
from .options import DetectionOptions
from .series import SeriesState
from .text import duration, when

MAX_DOUBLINGS = 5


def recovery_needed(state: SeriesState, options: DetectionOptions) -> int:
    return options.outage_recovery * 2 ** min(state.flaps, MAX_DOUBLINGS)


def failures_in_window(state: SeriesState) -> int:
    return bin(state.window_bits).count("1")


class OutageRule(Rule):
    name = "outage"

    def __call__(self, h: History, now: datetime) -> list[Event]:
        o, state = self.options, h.state
        opened = h.open_alerts.get("outage")
        in_window = failures_in_window(state)
        failures = sum(state.error_classes.values())
        details = {"failures": failures, "consecutive_failures": state.fail_streak,
                   "failures_in_window": in_window, "window": state.window_len,
                   "error_classes": dict(state.error_classes), "last_error": state.last_error,
                   "cause": "outage"}
        classes = ", ".join(f"{name} ×{n}" for name, n in sorted(state.error_classes.items(), key=lambda kv: -kv[1]))
        if opened is not None:
            if h.poll.ok:
                # Hysteresis: a run of good polls (doubled per relapse) and a window that has
                # mostly forgotten the failures; a site failing every few polls stays one incident.
                if state.ok_streak < recovery_needed(state, o) or in_window > int(o.outage_ratio * o.outage_window / 2):
                    return []
                # the failures ended at the first good poll, not when the hysteresis let go:
                # the same span the review measures (first failed poll -> first good poll)
                answering = state.answering_since if state.answering_since and state.answering_since <= now else now
                down = (answering - opened.since).total_seconds() if opened.since else 0.0
                details["downtime_seconds"] = round(down, 3)
                details["recovered_at"] = iso_utc(answering)
                summary = (f"{label(h)} answers again since {when(answering, h.zone)} after {duration(down)} of "
                           f"failures ({failures} failed polls: {classes}).")
                return lifecycle(h, now, "outage", "outage", None, None, details, {"resolved": summary})
            severity = self._severity(state, now)
            escalated = (f"{label(h)} still unreachable after {duration((now - opened.since).total_seconds())}: "
                         f"{failures} failed polls ({classes}); last error {state.last_error}.")
            return lifecycle(h, now, "outage", "outage", severity, opened.since, details, {"escalated": escalated})
        if h.poll.ok:
            return []
        by_streak = state.fail_streak >= o.outage_failures
        by_ratio = (state.window_len >= o.outage_window and in_window >= o.outage_failures
                    and in_window >= o.outage_ratio * o.outage_window)
        if not (by_streak or by_ratio):
            return []
        since = state.failing_since or now
        how = (f"{state.fail_streak} failed polls in a row" if by_streak
               else f"{in_window} of the last {state.window_len} polls failed")
        firing = (f"{label(h)} unreachable: {how} since {when(since, h.zone)} ({classes}); "
                  f"last error {state.last_error}.")
        return lifecycle(h, now, "outage", "outage", self._severity(state, now), since, details, {"firing": firing})

    def _severity(self, state: SeriesState, now: datetime) -> str:
        since = state.failing_since or now
        return "critical" if (now - since).total_seconds() >= self.options.outage_critical else "warning"


class LatencyRule(Rule):
    name = "latency"
    MIN_SAMPLES = 5

    def __call__(self, h: History, now: datetime) -> list[Event]:
        state, o = h.state, self.options
        if not h.poll.ok or h.poll.latency_seconds is None or state.latency_base is None:
            return []
        if len(state.latencies) < self.MIN_SAMPLES:
            return []
        typical = median(state.latencies)
        base = state.latency_base
        opened = h.open_alerts.get("latency")
        limit = max(o.latency_factor * base, o.latency_min)
        # Hysteresis: it must come down to twice the baseline before the alert closes.
        degraded = typical >= limit if opened is None else typical >= max(2 * base, o.latency_min / 2)
        details = {"latency_seconds": round(typical, 3), "baseline_seconds": round(base, 3),
                   "limit_seconds": round(limit, 3), "samples": len(state.latencies)}
        firing = (f"{label(h)} answers slowly: median {typical:.1f}s over the last {len(state.latencies)} polls "
                  f"against a usual {base:.2f}s.")
        resolved = f"{label(h)} answers at normal speed again (median {typical:.2f}s, usual {base:.2f}s)."
        return lifecycle(h, now, "latency", "latency", "warning" if degraded else None, now, details,
                         {"firing": firing, "resolved": resolved})
