"""The tree walker of one source: which documents a pass fetches, in what order, fetched and
parsed into Polls; which children are skipped because their row in the parent's table did not
move; which shard owns what. It judges nothing and exports nothing: monitor/poll.py wires it
to the judge and the exporter.

A pass starts at the top document and descends only into children whose row in the parent's
table changed since the last pass (a child whose row did not change is handed back as
`Unchanged`, to be judged without a request). Requests of one level run in parallel, up to
`concurrency`, through the source's rate limit; parsing runs in the caller's thread (the
pass's), so the detectors never see two threads. A level is fetched in chunks of
LEVEL_CHUNK documents and at most LEVEL_BYTES of bodies, so memory holds a chunk of documents,
not a level of 83,731 desa.

A child whose last fetch failed is fetched again on the next pass even if its row did not
change (its ancestors too, so the pass reaches it), or one 503 would hide it until its row
moves.
"""
from __future__ import annotations

import threading
import time
import zlib
from array import array
from concurrent.futures import CancelledError, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Iterator

from .clock import Clock
from .config import SourceConfig
from .fetch import Fetched, Fetcher, FetchError, RateLimiter
from .model import Poll, RegionCount, Snapshot
from .sources import DocumentError, child_url, level_of, parse_document

# Where a tree splits between shards: levels below the top document (kab/kota of a national
# tree: 514 units, the largest ~1% of the TPS, so shards come out even; provinces would not:
# West Java alone is 17%). Shallower sources split at their own depth.
SHARD_DEPTH = 2
# Documents fetched by the pool before the judge takes them. Memory holds one chunk, not a
# level (83,731 desa with their TPS tables); judging between chunks rather than while the
# fetch threads run costs less CPU (bench/scaling.py measured 1.0 vs 1.3 ms per document
# when the judge thread fought eight fetch threads for the interpreter lock).
LEVEL_CHUNK = 2048
# ...and bytes: a chunk's bodies stop being fetched once they add up to this (the rest of the
# chunk goes in the next round), so a tree of 4 MB children holds LEVEL_BYTES plus one body per
# fetch thread, not 2,048 x max_body (1.6 GB in issue 14, item 10). Real KPU documents (5-25
# KB) fill a chunk with ~50 MB at most: their chunks are never split.
LEVEL_BYTES = 64 * 1024 * 1024


class _Bytes:
    """The bodies fetched so far in one round of a chunk (shared by the fetch threads)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def spent(self) -> bool:
        return self.used >= self.limit

    def add(self, fetched) -> None:
        body = getattr(fetched, "body", None)
        if body:
            with self._lock:
                self.used += len(body)


@dataclass(frozen=True)
class Shard:
    """`--shard K/N`: this instance watches the regions at the split level whose code hashes
    (CRC-32, stable across machines and runs, unlike Python's salted hash()) to K - 1 modulo
    N, and everything below them. Above the split every shard fetches the documents to know
    where to descend; each such region is judged for real by its own hash's shard only."""

    index: int          # 1..count
    count: int

    @classmethod
    def parse(cls, text: str) -> "Shard":
        index, sep, count = text.partition("/")
        if not sep or not index.isdigit() or not count.isdigit() or not 1 <= int(index) <= int(count):
            raise ValueError(f"expected K/N with 1 <= K <= N (e.g. 1/2), got {text!r}")
        return cls(int(index), int(count))

    def owns(self, region: str) -> bool:
        return zlib.crc32(region.encode()) % self.count == self.index - 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class Target:
    url: str
    region: str
    depth: int          # levels below the source's top document
    parent: "Target | None" = None


@dataclass
class Fetch:
    """A document the pass requested: its Poll (parsed, or the classified failure)."""
    target: Target
    poll: Poll
    changed: bool = False          # the document says something else than at the last pass


@dataclass
class Unchanged:
    """A child whose row in its parent's table did not move: judged without a request.
    `published` is the parent's new publication time when the parent was just republished."""
    target: Target
    published: datetime | None


def row_print(row: RegionCount) -> int:
    """A child's row in its parent's table, reduced to what says whether it moved: the
    tables kept between passes (and saved, so a restart need not fetch every child) are
    these numbers, not the rows (a national tree's kecamatan tables hold 83,731 desa rows)."""
    return zlib.crc32(repr((row.stations, row.stations_reported, row.percent,
                            sorted(row.votes.items()))).encode())


def fingerprint(snapshot: Snapshot) -> int:
    """What makes a document 'changed' for the poll log and the history table, as one
    number (kept per region between passes: a hash, not the tuple, saves ~140 B a region;
    hash() is salted per process, and these never leave it)."""
    return hash((snapshot.published_at, snapshot.stations, snapshot.stations_reported,
                 tuple(sorted(snapshot.votes.items())), snapshot.percent))


# What the walker keeps of a document between passes is ONE int: the low 64 bits are its
# fingerprint, the bits above them the validator of the next conditional GET, exactly as the
# server sent it: a marker byte (ETag or Last-Modified) and the header's latin-1 bytes. Its
# URL is not kept (it is its parent's URL and its code, derived again when it is fetched), nor
# a (ETag, Last-Modified) pair: with an ETag, If-Modified-Since is ignored by the server
# (RFC 9110, 13.1.3), so the ETag alone is kept when there is one. Per document that is one
# ~56 B int where the URL, the pair, the ETag's str, the fingerprint and two dict entries were
# ~370 B (bench/scaling.py's election: 178,333 documents).
_PRINT_BITS = 64
_PRINT_MASK = (1 << _PRINT_BITS) - 1
_ETAG, _LAST_MODIFIED = 1, 2
_NO_VALIDATORS = (None, None)


def kept(printed: int, etag: str | None, last_modified: str | None) -> int:
    """A document's fingerprint and validator as the one int the walker keeps."""
    value = printed & _PRINT_MASK
    marker, text = (_ETAG, etag) if etag else (_LAST_MODIFIED, last_modified) if last_modified else (0, None)
    if marker:
        try:
            raw = text.encode("latin-1")     # header values are latin-1 (http.client)
        except UnicodeEncodeError:
            return value                     # unconditional GETs: slower, never wrong
        value |= int.from_bytes(bytes((marker,)) + raw, "big") << _PRINT_BITS
    return value


def validators_of(value: int | None) -> tuple[str | None, str | None]:
    """The (ETag, Last-Modified) of the conditional GET from the int `kept` made."""
    if value is None:
        return _NO_VALIDATORS
    packed = value >> _PRINT_BITS
    if not packed:
        return _NO_VALIDATORS
    raw = packed.to_bytes((packed.bit_length() + 7) // 8, "big")
    text = raw[1:].decode("latin-1")
    return (text, None) if raw[0] == _ETAG else (None, text)


class Table:
    """A parent's table as the walker keeps it between passes: its children's codes in the
    document's order and one CRC-32 row print each (a tuple and an array: ~12 B a child,
    where a dict of ints was ~80 B). Compares equal to the {code: print} dict it stands for
    (the store saves and loads that dict)."""

    __slots__ = ("codes", "prints")

    def __init__(self, codes: tuple[str, ...], prints: array):
        self.codes = codes
        self.prints = prints

    @classmethod
    def of(cls, rows: dict[str, int]) -> "Table":
        return cls(tuple(rows), array("I", rows.values()))

    def items(self):
        return zip(self.codes, self.prints)

    def as_dict(self) -> dict[str, int]:
        return dict(zip(self.codes, self.prints))

    def __iter__(self):
        return iter(self.codes)

    def __len__(self) -> int:
        return len(self.codes)

    def __eq__(self, other) -> bool:
        if isinstance(other, Table):
            return self.prints == other.prints and self.codes == other.codes
        if isinstance(other, dict):
            return self.as_dict() == other
        return NotImplemented

    __hash__ = None

    def __repr__(self) -> str:
        return f"Table({self.as_dict()!r})"


_EMPTY = Table((), array("I"))


class TreeWalker:
    """Walks `source`'s tree pass after pass; keeps what it needs between passes (the
    parents' tables as row prints, each document's fingerprint and validator, what to fetch again)."""

    def __init__(self, source: SourceConfig, clock: Clock, stop: threading.Event | None = None,
                 shard: Shard | None = None, rate_limiter: RateLimiter | None = None,
                 pool: ThreadPoolExecutor | None = None, fetcher: Fetcher | None = None):
        self.source = source
        self.clock = clock
        self.stop = stop or threading.Event()
        self.shard = shard
        self.split = min(SHARD_DEPTH, source.depth)
        if source.race is not None:
            # a race rooted below the national level splits at the kab/kota level all the same
            self.split = min(max(SHARD_DEPTH - (level_of(source.kind, source.region) or 0), 0), source.depth)
        # the walker's own fetcher, or one shared by the races of an election (one connection
        # pool to the host instead of 545)
        self.fetcher = fetcher or Fetcher(source, self.stop, rate_limiter)
        self.children: dict[str, Table] = {}        # parent region -> its children's row prints
        self.tables_changed: dict[str, Table] = {}  # since the last take_tables()
        self.documents: dict[str, int] = {}         # region -> fingerprint and validator (kept())
        self.revisit: set[str] = set()     # failed last pass, or an ancestor of one: fetch again
        self.vanished: list[str] = []      # children that left their parent's table this pass
        # the fetch threads: the walker's own, or one pool shared by the races of an election
        self._pool = pool or ThreadPoolExecutor(max_workers=source.concurrency,
                                                thread_name_prefix=f"fetch-{source.name}")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.fetcher.close()

    def owns(self, target: Target) -> bool:
        """Does this instance judge `target` for real (export, log, alert)? Without a shard,
        always; above the split, only the shard its own code hashes to; below, only regions
        of this shard are ever reached (descend filters at the split)."""
        return self.shard is None or target.depth > self.split or self.shard.owns(target.region)

    def take_tables(self) -> dict[str, Table]:
        """The parents' tables that changed since the last call (for the store)."""
        tables, self.tables_changed = self.tables_changed, {}
        return tables

    def restore_tables(self, tables: dict[str, dict[str, int]]) -> None:
        """The parents' tables as the store saved them ({parent: {child: print}}). A table
        whose prints are not CRC-32s is left out: its children are fetched, as after a cold start."""
        self.children = {}
        for region, rows in tables.items():
            try:
                self.children[region] = Table.of(rows)
            except (OverflowError, TypeError):
                continue

    def take_vanished(self) -> list[str]:
        """Every region below the children that left their parents' tables since the last
        call, the children included; what the walker kept about them is gone."""
        gone, self.vanished = self.vanished, []
        out: list[str] = []
        while gone:
            region = gone.pop()
            out.append(region)
            gone.extend(self.children.pop(region, ()))
            self.tables_changed.pop(region, None)
            self.documents.pop(region, None)
            self.revisit.discard(region)
        return out

    # --- one pass -----------------------------------------------------------------------
    def walk(self, known: Callable[[str], bool]) -> Iterator[Fetch | Unchanged]:
        """One pass, level by level: every fetched document (a Fetch), and after each the
        children of it that are not fetched (Unchanged). The caller judges each before the
        next is produced. `known(region)`: does the caller already hold a series for it (a
        child never judged is fetched even if its row did not move)."""
        revisit, self.revisit = self.revisit, set()
        frontier = [Target(self.source.url, self.source.region, 0)]
        completed = False
        try:
            while frontier and not self.stop.is_set():
                next_frontier: list[Target] = []
                for fetch in self._fetch_level(frontier):
                    if not fetch.poll.ok:
                        ancestor = fetch.target
                        while ancestor is not None:
                            self.revisit.add(ancestor.region)
                            ancestor = ancestor.parent
                    yield fetch
                    yield from self._descend(fetch, known, revisit, next_frontier)
                frontier = next_frontier
            completed = not self.stop.is_set()
        finally:
            if not completed:
                self.revisit |= revisit        # an interrupted pass may not have reached them

    def _fetch_level(self, targets: list[Target]) -> Iterator[Fetch]:
        """Fetches in the order of `targets`, fetched by the pool in chunks (bounded
        memory: a chunk of documents, not a level of 83,731 desa) and parsed here, in the
        caller's thread, just before they are judged: the pool's threads only wait on the
        network (parsing there too cost ~5% more CPU per document in bench/scaling.py, the
        threads contending for the interpreter lock)."""
        if len(targets) == 1:
            got = self._get(targets[0])
            if self.stop.is_set():
                return          # cut by the daemon stopping: not an answer of the source
            yield self._read(targets[0], got)
            return
        try:
            for start in range(0, len(targets), LEVEL_CHUNK):
                if self.stop.is_set():
                    return
                chunk = targets[start:start + LEVEL_CHUNK]
                while chunk:
                    if self.stop.is_set():
                        return
                    budget = _Bytes(LEVEL_BYTES)
                    first = chunk[0]
                    got = list(self._pool.map(lambda target: self._get_within(target, budget, target is first),
                                              chunk))
                    if self.stop.is_set():
                        return  # cut by the daemon stopping: not answers of the source
                    done = 0
                    for target, result in zip(chunk, got):
                        if result is None:        # not fetched: this round's bytes were spent
                            break
                        yield self._read(target, result)
                        got[done] = None          # the body goes once it is parsed
                        done += 1
                    chunk = chunk[done:]
        except CancelledError:
            return      # close() cancelled the pool's queue: the daemon is stopping

    def _get_within(self, target: Target, budget: _Bytes, first: bool) -> tuple[Fetched | FetchError, float] | None:
        """_get, unless the round's bytes are spent (None: fetched in the next round; the
        round's first target always is, so every round makes progress)."""
        if budget.spent() and not first:
            return None
        got = self._get(target)
        budget.add(got[0])
        return got

    def _get(self, target: Target) -> tuple[Fetched | FetchError, float]:
        """The network part of a poll (a pool thread): the document or the classified
        failure, and the seconds it took."""
        started = time.monotonic()
        try:
            fetched: Fetched | FetchError = self.fetcher.fetch(
                target.url, validators=validators_of(self.documents.get(target.region)))
        except FetchError as error:
            fetched = error
        return fetched, time.monotonic() - started

    def _read(self, target: Target, got: tuple[Fetched | FetchError, float]) -> Fetch:
        """The rest of a poll (the caller's thread): parse, and the Poll with fetch + parse time."""
        fetched, seconds = got
        started = time.monotonic()
        source = self.source
        # one instant for the document and its poll (a series keeps both: one datetime, not two)
        now = self.clock.now()
        result, snapshot, detail = "ok", None, None
        try:
            if isinstance(fetched, FetchError):
                raise fetched
            if fetched.not_modified:
                result = "not_modified"
            else:
                snapshot = parse_document(source, target.region, fetched.body, now, fetched.content_type)
        except FetchError as error:
            result, detail = error.result, error.detail
        except DocumentError as error:
            result, detail = error.result, error.detail
        latency = seconds + time.monotonic() - started
        poll = Poll(source.name, target.region, now, result, snapshot, detail, latency)
        changed = False
        if snapshot is not None:
            # The validator is kept only once the body parsed: a broken document must not be
            # hidden behind a 304 (one that broke keeps the last good one's).
            printed = fingerprint(snapshot) & _PRINT_MASK
            before = self.documents.get(target.region)
            changed = before is None or before & _PRINT_MASK != printed
            self.documents[target.region] = kept(printed, fetched.etag, fetched.last_modified)
        return Fetch(target, poll, changed)

    def _descend(self, fetch: Fetch, known: Callable[[str], bool], revisit: set[str],
                 next_frontier: list[Target]) -> Iterator[Unchanged]:
        """Children to fetch next (onto `next_frontier`): those whose table row changed, and
        those to `revisit`. Unchanged ones are yielded, to be judged without a request, so
        their stall clocks keep running; their own children are not (a frozen province is
        one stall, not 500)."""
        target, poll = fetch.target, fetch.poll
        if target.depth >= self.source.depth:
            return
        published = None
        if poll.result == "not_modified":
            table = self.children.get(target.region, _EMPTY)
            before = table.prints     # the parent did not change, so no child's row did
        elif poll.snapshot is None:
            return
        else:
            previous = self.children.get(target.region)
            rows = poll.snapshot.children
            codes = tuple(rows)
            prints = array("I", [row_print(row) for row in rows.values()])
            if previous is None:
                before = None
            elif previous.codes == codes:
                codes = previous.codes      # the codes kept already (the series' keys), not new copies
                before = previous.prints    # same children, same order: row by row
            else:
                old = previous.as_dict()
                before = [old.get(code) for code in codes]
                self.vanished.extend(code for code in previous.codes if code not in rows)
            if previous is None or prints != previous.prints or codes is not previous.codes:
                table = self.children[target.region] = self.tables_changed[target.region] = Table(codes, prints)
            else:
                table = previous
            published = poll.snapshot.published_at
        depth = target.depth + 1
        for index, (code, row) in enumerate(table.items()):
            if self.shard is not None and depth == self.split and not self.shard.owns(code):
                continue          # another shard's subtree
            if before is not None and before[index] == row and known(code) and code not in revisit:
                yield Unchanged(Target("", code, depth, target), published)
                continue
            try:
                url = child_url(self.source, target.url, target.region, code)
            except ValueError:
                continue
            next_frontier.append(Target(url, code, depth, target))
