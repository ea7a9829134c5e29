"""Hostile things on loopback for the reliability tests: bodies that never end, a gzip bomb
made on demand, a port that never completes a connect, and KPU-shaped documents to break.

tests/feed.py serves what fits in memory; what does not (a multi-GB body, a gzip bomb that
inflates to 10 GB) is generated here chunk by chunk while the client reads, and the server
counts what it produced, so a test can show that the client stopped early.
"""
from __future__ import annotations

import io
import json
import resource
import socket
import threading
import zlib
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.feed import QuietHTTPServer

GB = 1000**3
_CHUNK = 256 * 1024


def province_doc(reported: int, ts: str = "2024-02-15 20:00:15", total: int = 1000,
                 candidates: dict[str, int] | None = None, table: Any = None, **extra: Any) -> dict:
    """A Sirekap Pemilu aggregate for province 32 (the shape of tests/fixtures' real ones)."""
    chart = dict(candidates if candidates is not None else {"100025": 7 * reported, "100026": 5 * reported})
    chart["persen"] = round(100 * reported / total, 2)
    if table is None:
        # the children add up to the chart, so the consistency rules have nothing to say
        table = {"3201": {"100025": 3 * reported, "100026": 2 * reported, "persen": 40.0, "psu": "Reguler"},
                 "3202": {"100025": 4 * reported, "100026": 3 * reported, "persen": 45.0, "psu": "Reguler"}}
    doc = {"ts": ts, "psu": "Reguler", "mode": "hhcw", "chart": chart, "table": table,
           "progres": {"total": total, "progres": reported}}
    doc.update(extra)
    return doc


def body(doc: Any) -> bytes:
    return json.dumps(doc).encode()


class StreamServer:
    """Paths: /endless (200, no length, bytes until the client leaves), /declared-5gb
    (Content-Length 5 GB), /gzip-bomb (gzip that inflates to 10 GB of JSON-ish text).
    `produced[path]` is how many uncompressed bytes were generated for that path."""

    def __init__(self):
        self.produced: dict[str, int] = {}
        self._stop = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"      # close-delimited bodies: no length needed

            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path.split("?")[0]
                try:
                    if path == "/endless":
                        owner._stream(self, path, {}, limit=100 * GB)
                    elif path == "/declared-5gb":
                        owner._stream(self, path, {"Content-Length": str(5 * GB)}, limit=5 * GB)
                    elif path == "/gzip-bomb":
                        owner._stream(self, path, {"Content-Encoding": "gzip"}, limit=10 * GB, gzip=True)
                    else:
                        self.send_error(404)
                except (BrokenPipeError, ConnectionResetError):
                    pass   # the client hung up: that is the point

        self.server = QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def _stream(self, handler, path: str, headers: dict[str, str], limit: int, gzip: bool = False) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        compressor = zlib.compressobj(9, zlib.DEFLATED, 31) if gzip else None
        filler = b'{"pad": "' + b"0" * (_CHUNK - 9)
        sent = 0
        self.produced[path] = 0
        # Bounded twice: by `limit` and by the server stopping; the client leaving ends it first.
        while sent < limit and not self._stop.is_set():
            data = compressor.compress(filler) if compressor else filler
            if data:
                handler.wfile.write(data)
            sent += len(filler)
            self.produced[path] = sent

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def __enter__(self) -> "StreamServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()


class SilentPort:
    """A listening port whose accept queue is full, so a connect() never completes: the
    connect-timeout case, on loopback. (listen(0) queues one connection; we take it.)"""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.port = self.listener.getsockname()[1]
        self.fillers: list[socket.socket] = []

    def __enter__(self) -> "SilentPort":
        for _ in range(8):          # bounded: the queue is full after one or two
            filler = socket.socket()
            filler.settimeout(0.3)
            try:
                filler.connect(("127.0.0.1", self.port))
            except OSError:
                filler.close()
                break
            self.fillers.append(filler)
        return self

    def url(self, path: str = "/ppwp.json") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __exit__(self, *exc) -> None:
        for filler in self.fillers:
            filler.close()
        self.listener.close()


def closed_port_url() -> str:
    """A loopback URL nobody listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/ppwp.json"


def self_signed(directory) -> tuple[str, str]:
    """A certificate and key for 127.0.0.1 (openssl's command line), for loopback TLS servers."""
    import subprocess

    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


def log_lines(buffer: io.StringIO) -> list[dict]:
    """The JSON log lines written so far (configure_logging("json", stream=buffer))."""
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]


def series(registry, family: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of one metric family: (sample name, labels, value)."""
    out = []
    for metric in registry.collect():
        if metric.name == family:
            out += [(s.name, dict(s.labels), s.value) for s in metric.samples]
    return out


def label_sets(registry) -> set[tuple[str, tuple]]:
    """Every exported (sample name, label set): what a scrape would create series for."""
    return {(s.name, tuple(sorted(s.labels.items()))) for metric in registry.collect() for s in metric.samples}


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc), for bounds sampled in a test."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * resource.getpagesize()


class RawSocketServer:
    """A loopback listener that hands each connection to `_serve` on a thread of its own: the
    servers below speak HTTP byte by byte (dripping, peeking at TLS), which http.server can't."""

    def __init__(self, name: str, backlog: int, reuse: bool = False):
        self._stop = threading.Event()
        self.listener = socket.socket()
        if reuse:
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(backlog)
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, name=name, daemon=True)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.listener.close()


def read_head(conn: socket.socket) -> tuple[str, dict[str, str]] | None:
    """The request line and headers of one request (None: the client left first)."""
    head = b""
    while b"\r\n\r\n" not in head and len(head) < 65536:
        data = conn.recv(4096)
        if not data:
            return None
        head += data
    lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    return lines[0], dict(line.split(": ", 1) for line in lines[1:] if ": " in line)


class DripServer(RawSocketServer):
    """A loopback server that answers every request, GET or POST, with a status line and
    headers dripped one byte every `interval` seconds, without end (an endless header line):
    the hang of issue 14 item 1, which a per-read timeout never catches. `hung_up` counts
    the connections the client closed; `requests` keeps each request's head (method, path,
    headers) to check what a client sent."""

    HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Drip: "

    def __init__(self, interval: float = 0.5, tls: tuple[str, str] | None = None):
        import ssl

        self.interval = interval
        self.context = None
        if tls is not None:                     # (certificate, key): the same drip over TLS
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.load_cert_chain(*tls)
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.hung_up = 0
        self._lock = threading.Lock()
        super().__init__("drip-server", 64, reuse=True)

    def url(self, path: str = "/ppwp.json") -> str:
        return f"{'https' if self.context else 'http'}://127.0.0.1:{self.port}{path}"

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        if self.context is not None:
            try:
                conn = self.context.wrap_socket(conn, server_side=True)
            except OSError:
                conn.close()
                return
        with conn:
            try:
                request = read_head(conn)
            except OSError:
                return
            if request is None:
                return
            line, headers = request
            method, _, rest = line.partition(" ")
            with self._lock:
                self.requests.append((f"{method} {rest.rsplit(' ', 1)[0]}", headers))
            stream = self.HEAD
            i = 0
            while not self._stop.wait(self.interval):
                byte = stream[i:i + 1] if i < len(stream) else b"a"
                i += 1
                try:
                    conn.sendall(byte)
                except OSError:
                    with self._lock:
                        self.hung_up += 1
                    return


class ScriptedReceiver:
    """A loopback HTTP endpoint that records every request (method, path, headers, body) and
    answers each with the next scripted (status, headers, body), the last one repeating: a
    receiver that lies (200 `invalid_token`), redirects (302 to another port), and so on."""

    def __init__(self, *answers: tuple[int, dict[str, str], bytes]):
        self.answers = list(answers) or [(200, {}, b"ok")]
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self):
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner.requests.append((self.command, self.path, dict(self.headers.items()), data))
                status, headers, content = owner.answers.pop(0) if len(owner.answers) > 1 else owner.answers[0]
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PUT = _answer

        self.server = QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def __enter__(self) -> "ScriptedReceiver":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class DualSchemeServer(RawSocketServer):
    """One loopback port that speaks HTTPS and plain HTTP (it peeks at the first byte: 0x16
    opens a TLS handshake), so https://127.0.0.1:P/ and http://127.0.0.1:P/ are "the same
    host:port" as strings: the downgrade of issue 14 item 8. Over TLS it redirects every path
    to the same URL over http; over plain HTTP it serves `body`. `requests` records
    (scheme, path, headers)."""

    def __init__(self, cert: str, key: str, body: bytes):
        import ssl

        self.body = body
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(cert, key)
        super().__init__("dual-scheme", 16)

    def url(self, scheme: str, path: str = "/ppwp.json") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(5)
            scheme = "https" if conn.recv(1, socket.MSG_PEEK) == b"\x16" else "http"
            if scheme == "https":
                conn = self._context.wrap_socket(conn, server_side=True)
            with conn:
                request = read_head(conn)
                if request is None:
                    return
                line, headers = request
                path = line.split(" ")[1]
                self.requests.append((scheme, path, headers))
                if scheme == "https":
                    answer = (f"HTTP/1.1 302 Found\r\nLocation: {self.url('http', path)}\r\n"
                              "Content-Length: 0\r\nConnection: close\r\n\r\n").encode()
                else:
                    answer = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(self.body)}"
                              "\r\nConnection: close\r\n\r\n").encode() + self.body
                conn.sendall(answer)
        except OSError:
            pass


class HandshakeDripServer(RawSocketServer):
    """A loopback port that takes the TCP connection and the client's TLS ClientHello, then
    never finishes the handshake: it drips a ServerHello record one byte every `interval`
    seconds for `duration` seconds (mode "drip": the record header announces 16 KB, so the
    client's TLS layer keeps waiting for the rest), or answers nothing at all (mode "mute").
    Per-read timeouts never fire on a drip; only a deadline over the whole handshake ends it.
    `hellos` counts the ClientHellos received, `hung_up` the connections the client closed
    (or shut down) while the server was still dripping."""

    RECORD = b"\x16\x03\x03\x40\x00\x02\x00\x3f\xfc\x03\x03"    # handshake record, ServerHello...

    def __init__(self, interval: float = 0.5, duration: float = 60.0, mode: str = "drip"):
        self.interval = interval
        self.duration = duration
        self.mode = mode
        self.hellos = 0
        self.hung_up = 0
        self._lock = threading.Lock()
        super().__init__("handshake-drip", 64, reuse=True)

    def url(self, path: str = "/ppwp.json") -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                hello = conn.recv(16384)
            except OSError:
                return
            if not hello.startswith(b"\x16"):
                return
            with self._lock:
                self.hellos += 1
            conn.settimeout(self.interval)
            sent = 0
            steps = int(self.duration / self.interval)
            for _ in range(steps):
                if self._stop.is_set():
                    return
                try:
                    if self.mode == "drip":
                        conn.sendall(self.RECORD[sent:sent + 1] if sent < len(self.RECORD) else b"\x00")
                        sent += 1
                        self._stop.wait(self.interval)
                    elif conn.recv(1) == b"":      # mute: wait, noticing the client leave
                        raise ConnectionResetError
                except socket.timeout:
                    continue
                except OSError:
                    with self._lock:
                        self.hung_up += 1
                    return
