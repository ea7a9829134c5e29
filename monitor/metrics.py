"""Every metric countwatch exports, declared once, here, with help text and unit suffix.

`METRICS` is the table (DESIGN.md's core metrics plus a few of our own); `Metrics` builds them
on a registry (a fresh CollectorRegistry per test) and a test checks that /metrics shows
exactly this table. Dashboards and alert rules use these names: rename nothing lightly.
"""
from __future__ import annotations

import base64
import hmac
import ssl
import threading
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Callable, Iterable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, make_wsgi_app

from .model import POLL_RESULTS

PREFIX = "countwatch_"

# `_created` series double every counter and histogram and no dashboard or rule uses them.
disable_created_metrics()


@dataclass(frozen=True)
class MetricSpec:
    name: str           # without the prefix; counters without `_total` (client_python adds it)
    kind: str           # gauge | counter | histogram
    help: str
    labels: tuple[str, ...] = ()


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("up", "gauge", "1 when the last poll of the source's top document worked, else 0.", ("source",)),
    MetricSpec("polls", "counter", "Documents polled, by result (ok, not_modified or the failure class).",
               ("source", "result")),
    MetricSpec("poll_duration_seconds", "histogram", "Time to fetch and parse one document.", ("source",)),
    MetricSpec("last_success_timestamp_seconds", "gauge", "Unix time of the source's last successful poll.",
               ("source",)),
    MetricSpec("stations", "gauge", "Polling stations (TPS) of the region in total.", ("source", "region")),
    MetricSpec("stations_reported", "gauge", "Polling stations (TPS) of the region whose data is in.",
               ("source", "region")),
    MetricSpec("progress_ratio", "gauge", "Stations reported over stations (0..1), or the published percentage / 100.",
               ("source", "region")),
    MetricSpec("votes", "gauge", "Votes per candidate in the region, as published.", ("source", "region", "candidate")),
    MetricSpec("source_published_timestamp_seconds", "gauge",
               "The source's own timestamp of its data (Unix time, zone applied).", ("source", "region")),
    MetricSpec("last_advance_timestamp_seconds", "gauge",
               "Unix time (our clock) of the poll that last saw stations reported increase.", ("source", "region")),
    MetricSpec("stall_threshold_seconds", "gauge",
               "Current warning threshold of the stall rule: time without an advance before it fires.",
               ("source", "region")),
    MetricSpec("alert_active", "gauge", "1 while a detector alert is open (silenced ones included).",
               ("source", "region", "rule", "severity")),
    MetricSpec("anomalies", "counter", "Detector events (firing, escalated, observed) by rule.", ("source", "rule")),
    MetricSpec("notifications", "counter", "Notification attempts by receiver and result "
               "(sent, failed, retry, silenced, grouped, disabled).", ("receiver", "result")),
    MetricSpec("outbox_pending", "gauge", "Notifications written to the outbox and not yet sent."),
    MetricSpec("outbox_oldest_pending_age_seconds", "gauge", "Age of the oldest unsent notification (0 when none)."),
    MetricSpec("receiver_disabled", "gauge", "1 when a receiver was disabled by a permanent error.", ("receiver",)),
    MetricSpec("state_errors", "counter", "Failures of the state database (locked, read-only, full); "
               "detection continues in memory.", ("operation",)),
    MetricSpec("state_quarantined", "counter", "Rows of the state database that could not be read (bad JSON, "
               "wrong shape, bad date), moved to the state_quarantine table; their series start fresh.", ("table",)),
    MetricSpec("log_lines_lost", "counter", "Log lines the log file could not take (disk full, I/O error); "
               "said on the console at most once a minute."),
    MetricSpec("series", "gauge", "Series (regions) of the source the detectors hold state for.", ("source",)),
    MetricSpec("series_refused", "counter", "Regions not judged because the source holds max_series series "
               "already (logged as series.capped).", ("source",)),
    MetricSpec("job_errors", "counter", "Unexpected errors inside a poll job (logged, never fatal).", ("source",)),
    MetricSpec("region_info", "gauge", "Always 1; the display name of a region (KPU's wilayah lists, or "
               "the source's own) for dashboards to join on source and region.", ("source", "region", "name")),
    MetricSpec("build_info", "gauge", "Always 1; labels carry the version and the [daemon] instance name "
               "(countwatch_instance: Prometheus keeps `instance` for the scrape target).", ("version", "countwatch_instance")),
)

_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _build(spec: MetricSpec, registry: CollectorRegistry):
    name = PREFIX + spec.name
    if spec.kind == "gauge":
        return Gauge(name, spec.help, spec.labels, registry=registry)
    if spec.kind == "counter":
        return Counter(name, spec.help, spec.labels, registry=registry)
    return Histogram(name, spec.help, spec.labels, buckets=_BUCKETS, registry=registry)


class Metrics:
    """The metric objects of the table on one registry, each an attribute named as its spec
    (`metrics.polls` is `countwatch_polls_total`)."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        built = {spec.name: _build(spec, self.registry) for spec in METRICS}
        self.up: Gauge = built.pop("up")
        self.polls: Counter = built.pop("polls")
        self.poll_duration_seconds: Histogram = built.pop("poll_duration_seconds")
        self.last_success_timestamp_seconds: Gauge = built.pop("last_success_timestamp_seconds")
        self.stations: Gauge = built.pop("stations")
        self.stations_reported: Gauge = built.pop("stations_reported")
        self.progress_ratio: Gauge = built.pop("progress_ratio")
        self.votes: Gauge = built.pop("votes")
        self.source_published_timestamp_seconds: Gauge = built.pop("source_published_timestamp_seconds")
        self.last_advance_timestamp_seconds: Gauge = built.pop("last_advance_timestamp_seconds")
        self.stall_threshold_seconds: Gauge = built.pop("stall_threshold_seconds")
        self.alert_active: Gauge = built.pop("alert_active")
        self.anomalies: Counter = built.pop("anomalies")
        self.notifications: Counter = built.pop("notifications")
        self.outbox_pending: Gauge = built.pop("outbox_pending")
        self.outbox_oldest_pending_age_seconds: Gauge = built.pop("outbox_oldest_pending_age_seconds")
        self.receiver_disabled: Gauge = built.pop("receiver_disabled")
        self.state_errors: Counter = built.pop("state_errors")
        self.state_quarantined: Counter = built.pop("state_quarantined")
        self.log_lines_lost: Counter = built.pop("log_lines_lost")
        self.series: Gauge = built.pop("series")
        self.series_refused: Counter = built.pop("series_refused")
        self.job_errors: Counter = built.pop("job_errors")
        self.region_info: Gauge = built.pop("region_info")
        self.build_info: Gauge = built.pop("build_info")
        # a metric added to the table needs its attribute here, or nothing could reach it
        if built:
            raise RuntimeError(f"metrics without an attribute: {sorted(built)}")

    def init_source(self, source: str) -> None:
        """Create the known label sets at start-up so series exist (at 0) before the first poll."""
        self.up.labels(source=source).set(0)
        for result in POLL_RESULTS:
            self.polls.labels(source=source, result=result)
        self.poll_duration_seconds.labels(source=source)
        self.job_errors.labels(source=source)
        self.series.labels(source=source).set(0)
        self.series_refused.labels(source=source)

    def init_receiver(self, receiver: str, results: Iterable[str]) -> None:
        for result in results:
            self.notifications.labels(receiver=receiver, result=result)
        self.receiver_disabled.labels(receiver=receiver).set(0)


def exposition_names(specs: Iterable[MetricSpec] = METRICS) -> set[str]:
    """The metric family names /metrics shows for the table (counters get `_total`)."""
    return {PREFIX + s.name + ("_total" if s.kind == "counter" else "") for s in specs}


# Connections served at once. Prometheus holds one per scrape; a flood of slow clients got a
# thread each (688 in issue 14): beyond this many, a connection is closed at once instead.
MAX_HTTP_CLIENTS = 16
# The paths served; anything else is a 404 (a scanner learns nothing, a typo is told).
HTTP_PATHS = ("/metrics", "/healthz")


class _QuietHandler(WSGIRequestHandler):
    # A client that connects and says nothing (or never finishes a TLS handshake) holds one
    # of the MAX_HTTP_CLIENTS slots for at most this long.
    timeout = 10

    def log_message(self, format: str, *args) -> None:  # scrapes are not incident records
        pass


class _ThreadingWSGIServer(ThreadingHTTPServer, WSGIServer):
    daemon_threads = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._slots = threading.BoundedSemaphore(MAX_HTTP_CLIENTS)

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)       # every slot taken: refused, not queued
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address) -> None:
        # A plain-HTTP client on the TLS port, a scanner, a reset: the client's problem, and
        # socketserver would print a traceback to stderr for each one.
        pass


def metrics_app(registry: CollectorRegistry, health: Callable[[], tuple[bool, str]],
                basic_auth: tuple[str, str] | None = None):
    """WSGI app: /metrics (prometheus-client), /healthz (200 when healthy, 503 otherwise), and a
    404 for every other path (after the credentials check: an unauthenticated client learns
    nothing about the paths)."""
    prometheus = make_wsgi_app(registry)
    expected = None
    if basic_auth is not None:
        user, password = basic_auth
        expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def app(environ, start_response):
        if expected is not None and not hmac.compare_digest(
                environ.get("HTTP_AUTHORIZATION", "").encode(), expected.encode()):
            start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="countwatch"'),
                                                ("Content-Type", "text/plain")])
            return [b"unauthorized\n"]
        path = environ.get("PATH_INFO")
        if path not in HTTP_PATHS:
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"not found: countwatch serves /metrics and /healthz\n"]
        if path == "/healthz":
            healthy, text = health()
            start_response("200 OK" if healthy else "503 Service Unavailable",
                           [("Content-Type", "text/plain; charset=utf-8")])
            return [(text + "\n").encode()]
        return prometheus(environ, start_response)

    return app


def serve_metrics(listen: str, app, tls: tuple[str, str] | None = None) -> tuple[WSGIServer, threading.Thread]:
    """Serve the app on host:port in a daemon thread; port 0 picks a free one
    (read it back from `server.server_port`). `tls` = (certificate chain file, key file)
    serves HTTPS only."""
    host, _, port = listen.rpartition(":")
    server = make_server(host or "127.0.0.1", int(port), app, _ThreadingWSGIServer, handler_class=_QuietHandler)
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(*tls)
        # The handshake happens on the first read in the request's own thread, not in the
        # accept loop, where one silent client would stall every scrape.
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    thread = threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True)
    thread.start()
    return server, thread
