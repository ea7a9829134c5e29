"""A wall-clock deadline on one HTTP exchange: connect, status line, headers and body together.

requests' and urllib3's timeouts bound each socket operation, not the exchange: a server that
drips its status line or headers one byte every 0.5 s never trips a 1 s read timeout and holds
the request for as long as it likes (issue 14, item 1). `with Deadline(seconds):` around an
exchange made through a DeadlineAdapter's session bounds it: the adapter's connections register
with the deadline of their thread, and one watchdog thread shuts their sockets down when it
passes (or at once on `cut()`: the daemon stopping). A shut-down socket wakes the blocked read
with an end of file, so the exchange fails in the caller's own thread; `expired` tells the
caller that it was the deadline, not the server, that ended it.

The watchdog holds each new connection's socket from the moment it is created, before its TCP
connect and its TLS handshake: the connection's socket object is handed to the TLS layer (and
detached) during the handshake, so the deadline keeps a duplicate of its descriptor instead,
whose shutdown ends the connect or the handshake alike (on Linux a shutdown also aborts a
connect in progress). Each step's socket timeout is also at most what is left of the deadline
(CPython bounds a whole handshake by it). The host name lookup is inside the deadline too:
getaddrinfo cannot be interrupted, so it runs on a few resolver threads of the deadline's own
and the exchange stops waiting for it when the deadline passes or is cut (see _Resolver).

Used by the source fetcher (monitor/fetch.py) and every HTTP receiver (alerts/notifiers).
"""
from __future__ import annotations

import heapq
import ipaddress
import itertools
import queue
import socket
import sys
import threading
import time
from socket import getaddrinfo

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, LocationParseError, NameResolutionError, NewConnectionError
from urllib3.util.connection import allowed_gai_family

_local = threading.local()


def _shutdown(connection) -> None:
    sock = getattr(connection, "sock", None)
    if sock is None:
        return
    try:
        # socket.socket's own shutdown, also for an SSLSocket: its override drops the TLS object
        # under the feet of the thread that is reading
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except (OSError, TypeError, ValueError):
        pass


def _shutdown_socket(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class Deadline:
    """`with Deadline(seconds) as deadline:` bounds the HTTP exchanges of this thread made
    through DeadlineAdapter sessions inside the block."""

    def __init__(self, seconds: float):
        self.at = time.monotonic() + max(0.0, seconds)
        self.expired = False
        self._connections: list = []
        self._sockets: list[socket.socket] = []   # duplicates of new connections' descriptors
        self._waiters: list[threading.Event] = []  # host name lookups waited for, woken by cut()
        self._lock = threading.Lock()
        self._done = False

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def attach(self, connection) -> None:
        with self._lock:
            if self._done:
                return
            if all(c is not connection for c in self._connections):
                self._connections.append(connection)
            if self.expired:
                _shutdown(connection)

    def watch(self, sock: socket.socket) -> None:
        """Watch a socket from its creation (before connect and the TLS handshake). The
        deadline keeps a duplicate of its descriptor, closed when the block exits: the TLS
        layer detaches the socket object it wraps, and a shutdown through the duplicate reaches
        the same connection whichever object owns it by then."""
        try:
            handle = sock.dup()
        except OSError:
            return
        with self._lock:
            if self._done:
                handle.close()
                return
            self._sockets.append(handle)
            if self.expired:
                _shutdown_socket(handle)

    def wake_on_cut(self, waiter: threading.Event) -> None:
        """Set `waiter` when the exchange is cut (a host name lookup waits on it)."""
        with self._lock:
            self._waiters.append(waiter)
            if self.expired:
                waiter.set()

    def cut(self) -> None:
        """End the exchange now (the watchdog at the deadline; the daemon when it stops)."""
        with self._lock:
            # under the lock: once the block has exited its connections may serve someone else
            if self._done:
                return
            self.expired = True
            for connection in self._connections:
                _shutdown(connection)
            for handle in self._sockets:
                _shutdown_socket(handle)
            for waiter in self._waiters:
                waiter.set()

    def __enter__(self) -> "Deadline":
        self._outer = getattr(_local, "deadline", None)
        _local.deadline = self
        _WATCHDOG.add(self)
        return self

    def __exit__(self, *exc) -> None:
        with self._lock:
            self._done = True
            self._connections.clear()
            self._waiters.clear()
            for handle in self._sockets:
                handle.close()
            self._sockets.clear()
        _local.deadline = self._outer


class _Watchdog:
    """One daemon thread for every deadline of the process (not a timer thread per request)."""

    def __init__(self):
        self._heap: list[tuple[float, int, Deadline]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, deadline: Deadline) -> None:
        with self._cond:
            heapq.heappush(self._heap, (deadline.at, next(self._seq), deadline))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="http-deadlines", daemon=True)
                self._thread.start()
            if self._heap[0][2] is deadline:
                # only an earlier deadline changes the watchdog's sleep (requests of one
                # timeout arrive in deadline order: most adds wake nobody)
                self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0][2]._done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)[2].cut()


_WATCHDOG = _Watchdog()


class LookupTimeout(socket.gaierror):
    """The host name lookup did not finish inside the deadline."""


class _Lookup:
    __slots__ = ("args", "done", "result", "error", "abandoned")

    def __init__(self, args: tuple):
        self.args = args
        self.done = threading.Event()
        self.result: list | None = None
        self.error: BaseException | None = None
        self.abandoned = False


class _Resolver:
    """Host name lookups bounded by the deadline. getaddrinfo cannot be interrupted and a
    resolver that never answers holds it for the resolver's own timeouts (5 s per server and
    attempt by default, longer as configured): an exchange would wait that long past its
    deadline, and a daemon told to stop would wait with it. So a lookup runs on one of at most
    THREADS resolver threads (daemon threads: one stuck in the C library never holds the
    process at exit) and the exchange waits for it only until the deadline passes or is cut.
    A lookup given up on finishes, or stays stuck, in its thread; once every thread is stuck,
    new lookups wait in the queue, still bounded, and none is started after its exchange gave
    up. A numeric address needs no lookup and is resolved in the caller's thread."""

    THREADS = 4

    def __init__(self):
        self._jobs: queue.SimpleQueue[_Lookup] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._idle = 0

    def lookup(self, host: str, port: int, family: int, deadline: Deadline) -> list:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            return getaddrinfo(host, port, family, socket.SOCK_STREAM)
        job = _Lookup((host, port, family, socket.SOCK_STREAM))
        deadline.wake_on_cut(job.done)
        self._submit(job)
        job.done.wait(deadline.remaining())
        if job.result is not None:
            return job.result
        if job.error is not None:
            raise job.error
        job.abandoned = True
        raise LookupTimeout(socket.EAI_AGAIN, f"the lookup of {host} did not finish within the timeout")

    def _submit(self, job: _Lookup) -> None:
        with self._lock:
            # resolver threads never end (a stuck one stays stuck): at most THREADS are made
            if self._idle == 0 and len(self._threads) < self.THREADS:
                thread = threading.Thread(target=self._run, name="dns-lookups", daemon=True)
                self._threads.append(thread)
                self._idle += 1
                thread.start()
        self._jobs.put(job)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job.abandoned or job.done.is_set():
                continue         # its exchange gave up (or was cut) before a thread was free
            with self._lock:
                self._idle -= 1
            try:
                job.result = getaddrinfo(*job.args)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting exchange
                job.error = exc
            finally:
                with self._lock:
                    self._idle += 1
                job.done.set()


_RESOLVER = _Resolver()


def _create_connection(address: tuple[str, int], timeout, source_address, socket_options,
                       deadline: Deadline) -> socket.socket:
    """urllib3.util.connection.create_connection, with each socket watched by the deadline
    from its creation and each attempt's timeout at most what is left of the deadline."""
    host, port = address
    if host.startswith("["):
        host = host.strip("[]")
    try:
        host.encode("idna")
    except UnicodeError:
        raise LocationParseError(f"'{host}', label empty or too long") from None
    error: OSError | None = None
    for family, kind, proto, _, sockaddr in _RESOLVER.lookup(host, port, allowed_gai_family(), deadline):
        if deadline.expired or deadline.remaining() <= 0:
            break
        sock = None
        try:
            sock = socket.socket(family, kind, proto)
            deadline.watch(sock)
            for option in socket_options or ():
                sock.setsockopt(*option)
            left = deadline.remaining()
            sock.settimeout(max(0.001, left if timeout is None else min(timeout, left)))
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            error = exc
            if sock is not None:
                sock.close()
    if error is not None:
        raise error
    if deadline.expired or deadline.remaining() <= 0:
        raise socket.timeout("the deadline passed before a connection was made")
    raise OSError("getaddrinfo returns an empty list")


class _Guarded:
    """A urllib3 connection that registers with its thread's deadline: its socket from its
    creation (the TCP connect and the TLS handshake are inside the deadline), the connection
    when it sends a request (a kept-alive connection is reused without connecting again)."""

    def _new_conn(self) -> socket.socket:
        deadline = getattr(_local, "deadline", None)
        if deadline is None:
            return super()._new_conn()
        timeout = self.timeout if isinstance(self.timeout, (int, float)) else None
        try:
            sock = _create_connection((self._dns_host, self.port), timeout, self.source_address,
                                      self.socket_options, deadline)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        except socket.timeout as exc:
            raise ConnectTimeoutError(self, f"Connection to {self.host} timed out. (connect timeout={timeout})") from exc
        except OSError as exc:
            raise NewConnectionError(self, f"Failed to establish a new connection: {exc}") from exc
        sys.audit("http.client.connect", self, self.host, self.port)
        return sock

    def connect(self):
        super().connect()
        deadline = getattr(_local, "deadline", None)
        if deadline is not None:
            deadline.attach(self)

    def request(self, *args, **kwargs):
        deadline = getattr(_local, "deadline", None)
        if deadline is not None:
            deadline.attach(self)
        return super().request(*args, **kwargs)


class _HTTPConnection(_Guarded, HTTPConnection):
    pass


class _HTTPSConnection(_Guarded, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class DeadlineAdapter(HTTPAdapter):
    """An HTTPAdapter whose connections obey the thread's Deadline."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
