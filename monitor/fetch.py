"""HTTP fetching for one source: one requests.Session, conditional GET, a body cap that holds
after decompression, bounded retries inside the poll's time budget, and every failure
turned into one of the classes of DESIGN.md (`timeout`, `connect`, `dns`, `tls`, `http_403`,
`http_4xx`, `http_5xx`, `too_large`).

Latency and deadlines use time.monotonic(): they are about the network, on the wall clock,
whatever clock the detectors run on.
"""
from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests
from urllib3.exceptions import HTTPError as Urllib3HTTPError, NameResolutionError, ProtocolError

from . import __version__
from .config import SourceConfig
from .deadline import Deadline, DeadlineAdapter, LookupTimeout

USER_AGENT = f"countwatch/{__version__} (vote-count progress monitor; +https://github.com/countwatch/countwatch)"
MAX_REDIRECTS = 5
_RETRYABLE = ("timeout", "connect", "dns", "http_5xx")
_CHUNK = 64 * 1024


class FetchError(Exception):
    """A classified failure; `result` is the polls_total label, `detail` a short reason."""

    def __init__(self, result: str, detail: str):
        super().__init__(f"{result}: {detail}")
        self.result = result
        self.detail = detail


@dataclass(frozen=True)
class Fetched:
    url: str
    status: int                 # 200, or 304 for not modified
    body: bytes | None          # None when not modified
    content_type: str | None
    etag: str | None
    last_modified: str | None
    attempts: int

    @property
    def not_modified(self) -> bool:
        return self.status == 304


class RateLimiter:
    """Token bucket: at most `rate` requests per second, bursts of one second's worth. rate 0
    means no limit. Shared by the threads of one source, and by the sources of one host
    (HostLimits)."""

    def __init__(self, rate: float):
        self.rate = rate
        self._lock = threading.Lock()
        self._next_free = time.monotonic()

    def acquire(self, stop: threading.Event | None = None) -> None:
        if self.rate <= 0:
            return
        with self._lock:
            now = time.monotonic()
            # allow a burst of up to one second's worth of requests
            start = max(self._next_free, now - 1.0)
            self._next_free = start + 1.0 / self.rate
            wait = start - now
        if wait > 0:
            if stop is not None:
                stop.wait(wait)
            else:
                time.sleep(wait)


class HostLimits:
    """The token buckets of one daemon, one per host: `rate_limit` is what a host sees from
    this instance however many sources (contests, trees) it serves. Sources of one host share
    its bucket at the lowest of their limits; a source with rate_limit 0 is not limited."""

    def __init__(self, sources) -> None:
        rates: dict[str, float] = {}
        for source in sources:
            if source.rate_limit > 0:
                host = source.host
                rates[host] = min(rates.get(host, source.rate_limit), source.rate_limit)
        self._buckets = {host: RateLimiter(rate) for host, rate in rates.items()}

    def for_source(self, source) -> RateLimiter:
        """The bucket of one of the sources this was built from."""
        if source.rate_limit <= 0:
            return RateLimiter(0)
        return self._buckets[source.host]


def _classify(exc: Exception) -> FetchError:
    """requests/urllib3 exceptions -> failure classes. Order matters: SSLError and the
    timeouts are subclasses of ConnectionError."""
    text = type(exc).__name__
    if isinstance(exc, requests.exceptions.SSLError):
        return FetchError("tls", f"TLS handshake or certificate failed ({text})")
    if isinstance(exc, (requests.exceptions.Timeout, socket.timeout)):
        return FetchError("timeout", f"no answer within the timeout ({text})")
    if isinstance(exc, requests.exceptions.ConnectionError):
        if any(isinstance(cause, (NameResolutionError, socket.gaierror)) for cause in _chain(exc)):
            return FetchError("dns", "host name did not resolve")
        if "Read timed out" in str(exc):
            return FetchError("timeout", "read timed out")
        return FetchError("connect", f"connection failed ({text})")
    if isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError,
                        ProtocolError, Urllib3HTTPError)):
        return FetchError("connect", f"connection broke while reading ({text})")
    return FetchError("connect", f"request failed ({text})")


def _chain(exc: BaseException | None, depth: int = 10):
    """An exception and what caused it, as requests and urllib3 wrap them (the cause, the
    context, or an exception handed as the first argument), at most `depth` deep."""
    while exc is not None and depth > 0:
        yield exc
        depth -= 1
        exc = exc.__cause__ or exc.__context__ or (exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None)


def _lookup_timed_out(exc: BaseException | None) -> bool:
    """Whether a LookupTimeout (the deadline gave up on the host name lookup) is in the chain."""
    return any(isinstance(cause, LookupTimeout) for cause in _chain(exc))


def _refused_redirect(origin, here, there) -> str | None:
    """Why a redirect is not followed, or None. Another host could be handed our headers
    (tokens) and is not how KPU moves documents; https -> http would send them in clear text.
    Schemes are compared, not host:port strings (default ports hide a scheme change)."""
    if there.scheme not in ("http", "https"):
        return f"redirect to another host refused (a {there.scheme}: URL)"
    if (there.hostname or "").lower() != (origin.hostname or "").lower():
        return f"redirect to another host refused ({there.hostname or 'no host'})"
    if here.scheme == "https" and there.scheme == "http":
        return "redirect from https to http refused (a downgrade would send our headers in clear text)"
    upgrade = here.scheme == "http" and there.scheme == "https" and here.port is None and there.port is None
    if _port(there) != _port(here) and not upgrade:
        return f"redirect to another port refused ({there.hostname}:{_port(there)})"
    return None


def _port(parts) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


def _status_class(status: int) -> str:
    if status == 403:
        return "http_403"
    if 400 <= status < 500:
        return "http_4xx"
    return "http_5xx"


class Fetcher:
    """Fetches documents of one source. Thread-safe: a tree source fetches with
    `concurrency` threads through one Session (its pool is sized to match)."""

    def __init__(self, source: SourceConfig, stop: threading.Event | None = None,
                 rate_limiter: RateLimiter | None = None):
        self.source = source
        self.stop = stop or threading.Event()
        self.session = requests.Session()
        # Environment proxies would silently reroute a monitor's traffic; configure them
        # explicitly if ever needed.
        self.session.trust_env = False
        adapter = DeadlineAdapter(pool_connections=4, pool_maxsize=max(4, source.concurrency), max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json",
                                     "Accept-Encoding": "gzip, deflate"})
        for name, value in source.headers.items():
            self.session.headers[name] = value.reveal() if hasattr(value, "reveal") else value
        self.rate_limiter = rate_limiter or RateLimiter(source.rate_limit)
        self._in_flight: set[Deadline] = set()
        self._in_flight_lock = threading.Lock()
        self._closed = False

    def close(self) -> None:
        """Abandon the requests in flight (their threads see a timeout at once) and close."""
        with self._in_flight_lock:
            self._closed = True
            in_flight = list(self._in_flight)
        for deadline in in_flight:
            deadline.cut()
        self.session.close()

    def fetch(self, url: str, budget: float | None = None,
              validators: tuple[str | None, str | None] | None = None) -> Fetched:
        """GET with retries on transient failures (timeout, connect, dns, 5xx), backing off
        0.5 s, 1 s, 2 s... but never past the budget (default: the source's timeout times
        the attempts). Raises FetchError with the last failure.

        `validators`: the (ETag, Last-Modified) of the conditional GET, kept by the caller (the
        tree walker: one int per document, and only once the body parsed: a broken document
        must not be hidden behind a 304); None: an unconditional GET."""
        source = self.source
        budget = budget if budget is not None else source.timeout * (source.retries + 1)
        deadline = time.monotonic() + budget
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._fetch_once(url, deadline, attempt, validators)
            except FetchError as error:
                backoff = 0.5 * 2 ** (attempt - 1)
                retry = (error.result in _RETRYABLE and attempt <= source.retries
                         and time.monotonic() + backoff + 0.1 < deadline and not self.stop.is_set())
                if not retry:
                    raise
                self.stop.wait(backoff)

    def _fetch_once(self, url: str, deadline: float, attempt: int,
                    validators: tuple[str | None, str | None] | None = None) -> Fetched:
        """One attempt: the request, its redirects and the body, all inside one wall-clock
        bound of `timeout` (or what is left of the poll's budget)."""
        self.rate_limiter.acquire(self.stop)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchError("timeout", "poll time budget used up")
        bound = min(self.source.timeout, remaining)
        with Deadline(bound) as guard:
            with self._in_flight_lock:
                if self._closed:
                    raise FetchError("timeout", "abandoned: the daemon is stopping")
                self._in_flight.add(guard)
            try:
                return self._exchange(url, guard, attempt, validators)
            except Exception as exc:  # noqa: BLE001 - every transport failure is classified
                if guard.expired or guard.remaining() <= 0:
                    if _lookup_timed_out(exc):
                        # the name never resolved in time: the resolver's fault, not the server's
                        raise FetchError("dns", f"host name lookup not finished within the timeout ({bound:.3g}s)") from None
                    # the deadline shut the socket (or the socket's own timeout came first):
                    # the server was too slow for the whole exchange, whatever part it was in
                    raise FetchError("timeout", f"no complete answer within the timeout ({bound:.3g}s)") from None
                raise (exc if isinstance(exc, FetchError) else _classify(exc)) from None
            finally:
                with self._in_flight_lock:
                    self._in_flight.discard(guard)

    def _exchange(self, url: str, guard: Deadline, attempt: int,
                  validators: tuple[str | None, str | None] | None = None) -> Fetched:
        headers = {}
        etag, last_modified = validators or (None, None)
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        origin = urlsplit(url)
        current = url
        for hop in range(MAX_REDIRECTS + 1):
            if hop:
                self.rate_limiter.acquire(self.stop)
            timeout = max(0.001, guard.remaining())
            try:
                response = self.session.get(current, headers=headers, timeout=(timeout, timeout),
                                            stream=True, allow_redirects=False)
            except Exception as exc:  # noqa: BLE001 - every transport failure is classified
                if guard.expired:
                    raise
                raise _classify(exc) from None
            with response:
                if response.is_redirect:
                    target = urljoin(current, response.headers.get("Location", ""))
                    refused = _refused_redirect(origin, urlsplit(current), urlsplit(target))
                    if refused:
                        raise FetchError("http_4xx", refused)
                    current = target
                    continue
                if response.status_code == 304:
                    return Fetched(url, 304, None, None, etag, last_modified, attempt)
                if response.status_code != 200:
                    raise FetchError(_status_class(response.status_code), f"HTTP {response.status_code}")
                body = self._read_capped(response, guard)
                return Fetched(url, 200, body, response.headers.get("Content-Type"),
                               response.headers.get("ETag"), response.headers.get("Last-Modified"), attempt)
        raise FetchError("http_4xx", f"more than {MAX_REDIRECTS} redirects (loop?)")

    def _read_capped(self, response: requests.Response, guard: Deadline) -> bytes:
        """Read the body, decompressed, refusing more than max_body_bytes (the Deadline ends a
        slow drip: a server must not hold the poll past its timeout)."""
        limit = self.source.max_body_bytes
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > limit and "gzip" not in response.headers.get("Content-Encoding", ""):
            raise FetchError("too_large", f"body of {int(declared)} bytes over the {limit}-byte cap")
        chunks: list[bytes] = []
        size = 0
        try:
            # read1 returns what one socket read brings, so a slow drip is checked against
            # the deadline every few bytes instead of blocking until a full chunk arrives.
            while chunk := response.raw.read1(_CHUNK, decode_content=True):
                size += len(chunk)
                if size > limit:
                    raise FetchError("too_large", f"body over the {limit}-byte cap (after decompression)")
                if guard.expired:
                    raise FetchError("timeout", "body still arriving at the end of the timeout")
                chunks.append(chunk)
        except FetchError:
            raise
        except Exception as exc:  # noqa: BLE001
            if guard.expired:
                raise
            raise _classify(exc) from None
        if guard.expired:
            # the deadline's shutdown reads as an end of file: a body without a length would
            # look complete, truncated
            raise FetchError("timeout", "body still arriving at the end of the timeout")
        return b"".join(chunks)
