"""A real HTTP server on loopback whose answers tests script per path: documents, status
codes, redirects, slow drips, oversized and gzip bodies. Used by the fetch, poll and
reliability tests (the KPU documents it serves come from tests/fixtures)."""
from __future__ import annotations

import gzip
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


class QuietHTTPServer(ThreadingHTTPServer):
    """socketserver prints a traceback to stderr when a client hangs up mid-request (a fetch
    that timed out, a test that closed its session): routine here, so not printed. Anything
    else still is."""

    def handle_error(self, request, client_address) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0            # seconds before the status line (a hanging server)
    drip: float = 0.0             # seconds between body bytes (a slow-drip server)
    gzip: bool = False
    etag: str | None = None       # answer 304 to a matching If-None-Match


class Feed:
    """`feed.set(path, Reply(...))` or `feed.set(path, callable(handler) -> Reply)`."""

    def __init__(self):
        self.routes: dict[str, Reply | Callable[[BaseHTTPRequestHandler], Reply]] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._stop = threading.Event()
        feed = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                feed.requests.append((self.path, dict(self.headers)))
                route = feed.routes.get(self.path.split("?")[0])
                if route is None:
                    reply = Reply(404, b"not found")
                else:
                    reply = route(self) if callable(route) else route
                if reply.delay and feed._stop.wait(reply.delay):
                    return
                if reply.etag and self.headers.get("If-None-Match") == reply.etag:
                    self.send_response(304)
                    self.send_header("ETag", reply.etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = gzip.compress(reply.body) if reply.gzip else reply.body
                self.send_response(reply.status)
                headers = {"Content-Type": "application/json", **reply.headers}
                if reply.gzip:
                    headers["Content-Encoding"] = "gzip"
                if reply.etag:
                    headers["ETag"] = reply.etag
                headers.setdefault("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                try:
                    if reply.drip:
                        for i in range(len(body)):
                            if feed._stop.wait(reply.drip):
                                return
                            self.wfile.write(body[i:i + 1])
                            self.wfile.flush()
                    else:
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def set(self, path: str, reply) -> None:
        self.routes[path] = reply

    def __enter__(self) -> "Feed":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, step: float = 0.05) -> bool:
    """Poll a condition with a bounded deadline (tests never assert on timings)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
