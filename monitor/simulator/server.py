"""The simulator's HTTP server: KPU's documents on loopback, as a scenario says at the clock's
time, with the conditional-GET and gzip behaviour of the real object store and the scripted
outages (5xx pages, connections that hang past the client's timeout).
"""
from __future__ import annotations

import gzip
import hashlib
import ipaddress
import json
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import structlog

from ..clock import Clock
from .documents import render, resolve
from .scenario import Outage, Scenario

log = structlog.get_logger("countwatch.simulator")

_ERROR_PAGES = {
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
}


@dataclass
class Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    hang: Outage | None = None      # set: hold the connection instead of answering


@dataclass(frozen=True)
class _Rendered:
    body: bytes
    etag: str
    last_modified: float
    gzipped: bytes


class SimulatorServer:
    """Serves `scenario` on `host:port` (port 0: a free one) at `clock`'s time.

    `hang_seconds` bounds how long a simulated timeout holds a connection (wall seconds): long
    enough to outlast the client's read timeout, short enough to free the thread. A hang also
    ends when the site stops hanging (then the held request gets its answer, late) and on
    `stop()`."""

    def __init__(self, scenario: Scenario, clock: Clock, host: str = "127.0.0.1", port: int = 0,
                 hang_seconds: float = 5.0, cache_size: int = 2048):
        if not _is_loopback(host):
            raise ValueError(f"the simulator serves on loopback only, not {host!r}")
        self.scenario = scenario
        self.clock = clock
        self.host = host
        self.port = port
        self.hang_seconds = hang_seconds
        self._cache: OrderedDict[tuple[str, int], _Rendered] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        self._stopping = threading.Event()
        self._hanging = 0
        self._hanging_lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> "SimulatorServer":
        self.scenario.begin(self.clock.now())
        self._stopping.clear()
        httpd = _HTTPServer((self.host, self.port), _Handler)
        httpd.simulator = self
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"simulator:{self.port}", daemon=True)
        self._thread.start()
        log.info("simulator.started", scenario=self.scenario.name, url=self.base_url)
        return self

    def stop(self) -> None:
        """Stop within a second: hanging handlers wake up, the accept loop ends, the socket
        closes. Handler threads are daemons and are not waited for."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None
        log.info("simulator.stopped", scenario=self.scenario.name)

    def __enter__(self) -> "SimulatorServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def url_for(self, path: str) -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)

    @property
    def stopping(self) -> threading.Event:
        return self._stopping

    # -- requests (no sockets here: the handler below only moves bytes) ---------------------
    def respond(self, method: str, target: str, headers: dict[str, str]) -> Response:
        url = urlsplit(target)
        path = url.path
        if path.startswith("/_control/"):
            return self._control(method, path[len("/_control/"):], dict(parse_qsl(url.query)))
        if method not in ("GET", "HEAD"):
            return _json(405, {"error": f"{method} not allowed"}, {"Allow": "GET, HEAD"})
        outage = self.scenario.outage_at(self.clock.now())
        if outage is not None:
            if outage.mode == "timeout":
                return Response(0, hang=outage)
            return _html_error(int(outage.mode))
        return self._document(path, headers)

    @property
    def hanging(self) -> int:
        """Connections held by a simulated timeout right now."""
        with self._hanging_lock:
            return self._hanging

    def hold(self) -> None:
        """Hold the calling handler's connection as a hanging server would: until
        `hang_seconds` have passed, the site stops hanging (the scripted phase ends, or
        /_control/ok), or the server stops."""
        with self._hanging_lock:
            self._hanging += 1
        try:
            deadline = time.monotonic() + self.hang_seconds
            while not self._stopping.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stopping.wait(min(0.05, remaining)):
                    break
                outage = self.scenario.outage_at(self.clock.now())
                if outage is None or outage.mode != "timeout":
                    break
        finally:
            with self._hanging_lock:
                self._hanging -= 1

    def after_hang(self, method: str, target: str, headers: dict[str, str]) -> Response | None:
        """What a held connection gets once its hang is over: the answer, if the site is back
        by then (a slow answer); None (the connection is dropped) if it is still hanging."""
        if self._stopping.is_set():
            return None
        response = self.respond(method, target, headers)
        return None if response.hang else response

    def _document(self, path: str, headers: dict[str, str]) -> Response:
        publication = self.scenario.publication_at(self.clock.now())
        target = resolve(self.scenario.model.electorate, path) if publication else None
        if target is None:
            return _text(404, "404 Not Found\n")
        rendered = self._rendered(path, target, publication)
        common = {"ETag": rendered.etag, "Last-Modified": formatdate(rendered.last_modified, usegmt=True),
                  "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
        if _not_modified(headers, rendered):
            return Response(304, common)
        body = rendered.body
        common["Content-Type"] = "application/json"
        if _accepts_gzip(headers.get("accept-encoding", "")):
            body = rendered.gzipped
            common["Content-Encoding"] = "gzip"
        return Response(200, common, body)

    def _rendered(self, path: str, target, publication) -> _Rendered:
        # One rendering per (document, publication): the demo polls the same few documents
        # many times between two publications.
        key = (path, publication.index)
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        doc, last_modified = render(self.scenario.model, target, publication.at, publication.ts)
        body = json.dumps(doc, separators=(",", ":")).encode()
        etag = '"' + hashlib.sha1(body).hexdigest()[:20] + '"'
        rendered = _Rendered(body, etag, float(int(last_modified)), gzip.compress(body, mtime=0))
        with self._cache_lock:
            self._cache[key] = rendered
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return rendered

    def _control(self, method: str, action: str, params: dict[str, str]) -> Response:
        if not self.scenario.controllable:
            return _json(404, {"ok": False, "error": f"scenario {self.scenario.name} has no control endpoints"})
        if action != "status" and method != "POST":
            return _json(405, {"ok": False, "error": "control actions are POSTs"}, {"Allow": "POST"})
        try:
            state = self.scenario.control(action, params, self.clock.now())
        except LookupError as exc:
            return _json(404, {"ok": False, "error": str(exc)})
        except ValueError as exc:
            return _json(400, {"ok": False, "error": str(exc)})
        log.info("simulator.control", action=action, params=params, frozen=state.get("frozen"),
                 outage=state.get("outage"))
        return _json(200, state)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 overflows when the daemon's concurrent polls arrive
    # while the GIL is busy (demo: both in one process); overflowing SYNs read as timeouts.
    request_queue_size = 128
    simulator: SimulatorServer

    def handle_error(self, request, client_address) -> None:
        # socketserver prints tracebacks to stderr; a client hanging up is routine here.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            log.debug("simulator.client_gone", error=type(exc).__name__)
        else:
            log.error("simulator.handler_failed", client=client_address[0], exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"       # keep-alive, as the real site and requests.Session use
    server_version = "countwatch-simulator"
    sys_version = ""
    timeout = 5                         # idle keep-alive connections give their thread back

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(min(length, 65536))
        self._serve("POST")

    def _serve(self, method: str) -> None:
        sim: SimulatorServer = self.server.simulator
        if sim.stopping.is_set():
            self.close_connection = True
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        response = sim.respond(method, self.path, headers)
        if response.hang is not None:
            sim.hold()
            response = sim.after_hang(method, self.path, headers)
            if response is None:
                self.close_connection = True    # the client has long given up; drop it
                return
        try:
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            if response.status != 304:             # a 304 has no body and says nothing of its length
                self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if method != "HEAD" and response.status != 304:
                self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            # A late answer to a client that timed out and left: what a hang is for.
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("simulator.request", line=format % args)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _accepts_gzip(value: str) -> bool:
    for token in value.split(","):
        name, _, params = token.strip().partition(";")
        if name.strip().lower() in ("gzip", "*"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def _not_modified(headers: dict[str, str], rendered: _Rendered) -> bool:
    """RFC 9110: If-None-Match wins over If-Modified-Since when both are sent."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
        return "*" in tags or rendered.etag in tags
    since = headers.get("if-modified-since")
    if since:
        try:
            return rendered.last_modified <= parsedate_to_datetime(since).timestamp()
        except (TypeError, ValueError):
            return False
    return False


def _json(status: int, payload: dict[str, Any], extra: dict[str, str] | None = None) -> Response:
    headers = {"Content-Type": "application/json", "Cache-Control": "no-store", **(extra or {})}
    return Response(status, headers, json.dumps(payload).encode())


def _text(status: int, text: str) -> Response:
    return Response(status, {"Content-Type": "text/plain; charset=utf-8"}, text.encode())


def _html_error(status: int) -> Response:
    """The page a reverse proxy in front of a dead backend sends."""
    title = f"{status} {_ERROR_PAGES[status]}"
    body = (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n"
            f"<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n").encode()
    headers = {"Content-Type": "text/html", "Cache-Control": "no-store"}
    if status == 503:
        headers["Retry-After"] = "120"
    return Response(status, headers, body)
