"""What the outside sees of one source's judgements: its metric series and its log lines
(the canonical `poll` line of every request, a `detector.event` line per event). Nothing
here fetches or judges; monitor/poll.py hands it each Poll with its series' state.
"""
from __future__ import annotations

import structlog

from .config import SourceConfig
from .detectors import SeriesState
from .metrics import Metrics
from .model import Event, Poll

log = structlog.get_logger("countwatch.poll")

class Exporter:
    def __init__(self, source: SourceConfig, metrics: Metrics):
        self.source = source
        self.metrics = metrics
        self._candidates: dict[str, frozenset[str]] = {}       # region -> candidates exported
        self._polls: dict = {}                                 # result -> its polls_total child
        self._duration = None
        metrics.init_source(source.name)

    def request(self, poll: Poll, depth: int) -> None:
        """What every request adds, whoever owns the region: this instance's load on the
        source and whether it reaches the top document (a shard that cannot is blind)."""
        m, name = self.metrics, self.source.name
        counter = self._polls.get(poll.result)
        if counter is None:    # labels() looked up once per result, not once per document
            counter = self._polls[poll.result] = m.polls.labels(source=name, result=poll.result)
        counter.inc()
        if poll.latency_seconds is not None:
            if self._duration is None:
                self._duration = m.poll_duration_seconds.labels(source=name)
            self._duration.observe(poll.latency_seconds)
        if depth == 0:
            m.up.labels(source=name).set(1 if poll.ok else 0)
            if poll.ok:
                m.last_success_timestamp_seconds.labels(source=name).set(poll.at.timestamp())

    def series(self, poll: Poll, state: SeriesState, depth: int) -> None:
        """The region's own gauges: what its document (or its parent's row) said, and the
        stall clock and threshold the Prometheus rules compare. Down to export_depth only:
        deeper regions are judged, logged and alerted, but have no series (cardinality)."""
        if depth > self.source.export_depth:
            return
        m, name = self.metrics, self.source.name
        region = poll.region
        snap = poll.snapshot
        if snap is not None:
            if snap.stations is not None:
                m.stations.labels(source=name, region=region).set(snap.stations)
            if snap.stations_reported is not None:
                m.stations_reported.labels(source=name, region=region).set(snap.stations_reported)
            if snap.progress_ratio is not None:
                m.progress_ratio.labels(source=name, region=region).set(snap.progress_ratio)
            self._votes(region, snap.votes)
            if snap.published_at is not None:
                m.source_published_timestamp_seconds.labels(source=name, region=region).set(
                    snap.published_at.timestamp())
        if state.last_advance_at is not None:
            m.last_advance_timestamp_seconds.labels(source=name, region=region).set(state.last_advance_at.timestamp())
        if state.stall_thresholds is not None:   # in force after the poll the Judge just took in
            m.stall_threshold_seconds.labels(source=name, region=region).set(state.stall_thresholds.warning)

    def _votes(self, region: str, votes) -> None:
        """The region's candidates as the document lists them now: candidates that left it
        leave /metrics too, so a source that renames its ids every poll cannot grow the label
        sets beyond one document's (at most MAX_CANDIDATES, docs/reliability.md)."""
        name, current = self.source.name, frozenset(votes)
        for candidate in self._candidates.get(region, frozenset()) - current:
            self.metrics.votes.remove(name, region, candidate)
        self._candidates[region] = current
        for candidate, count in votes.items():
            self.metrics.votes.labels(source=name, region=region, candidate=candidate).set(count)

    def forget(self, region: str) -> None:
        """A region that is gone leaves /metrics with its state."""
        m, name = self.metrics, self.source.name
        for gauge in (m.stations, m.stations_reported, m.progress_ratio, m.source_published_timestamp_seconds,
                      m.last_advance_timestamp_seconds, m.stall_threshold_seconds):
            try:
                gauge.remove(name, region)
            except KeyError:
                pass
        for candidate in self._candidates.pop(region, frozenset()):
            try:
                m.votes.remove(name, region, candidate)
            except KeyError:
                pass

    def poll_line(self, poll: Poll, pass_id: str, changed: bool) -> None:
        snap = poll.snapshot
        log.info("poll", source=poll.source, region=poll.region, poll_id=pass_id, result=poll.result,
                 latency=round(poll.latency_seconds or 0.0, 4),
                 stations_reported=snap.stations_reported if snap else None,
                 stations=snap.stations if snap else None, changed=changed,
                 **({"detail": poll.detail} if poll.detail else {}))

    def event(self, event: Event, pass_id: str | None) -> None:
        if event.state in ("firing", "escalated", "observed"):
            self.metrics.anomalies.labels(source=event.source, rule=event.rule).inc()
        fields = event.to_json()
        fields.pop("at")   # the line's timestamp is the event's time (same clock)
        level = "warning" if event.severity == "critical" and event.state != "resolved" else "info"
        getattr(log, level)("detector.event", poll_id=pass_id, event_at=event.to_json()["at"], **fields)
