"""What every source adapter shares: the one error type, decoding the body, and the checks that
turn untrusted JSON values into counts, percentages and timestamps.

The checks are about the document's *shape*, not about whether its numbers agree with each
other: a negative count, a string, NaN or 1e30 where a count belongs means the document is not
what we expect (`schema`); stations_reported > stations or votes above registered voters is
a well-formed document saying something wrong, which the detectors report. A missing value
stays None: turning "unknown" into 0 would look like a count going backwards.

Speed matters (a national tree is 83,731 desa documents per pass), so values are checked with
`type(x) is int` and plain comparisons, and the parsed JSON is read in place, never copied.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from datetime import datetime, timezone, tzinfo
from typing import Any, Mapping

# Above any electorate on earth (India: ~1e9 voters) yet far below the absurd values a broken
# feed produces (1e30, 2**63); one bound serves every count so the json kind works elsewhere.
MAX_COUNT = 10**10
# A percentage above 100 is a contradiction for the `inconsistent` detector to report; far
# beyond it the value is not a percentage at all.
MAX_PERCENT = 10_000.0
# Publication times outside these years cannot be real and would overflow datetime
# arithmetic downstream (year 1 minus a time zone offset).
MIN_YEAR, MAX_YEAR = 1970, 2100
# Label-set caps (docs/reliability.md): every candidate of an exported region becomes a
# `countwatch_votes` series and every child a fetch, so a hostile document must not name
# 100,000 of either. Real documents stay far below: a Sirekap chart has 3 pairs (Pemilu) or
# about 24 parties (Pileg); the biggest real table, a desa's TPS list, a few hundred rows.
MAX_CANDIDATES = 1_000
MAX_CHILDREN = 10_000
MAX_CANDIDATE_ID = 64          # characters; a label value, where Sirekap's ids have 6 digits
MAX_CHILD_CODE = 64            # characters; a child code goes into URLs, metric labels and logs
_DETAIL_MAX = 200


@dataclass(frozen=True)
class ParseLimits:
    """What one document may cost to parse, counted on the raw bytes before json.loads (a fast
    scan): values (commas + 1) and containers (`{` and `[`). Braces and commas inside strings
    count too, which only errs on the safe side. Python's objects cost 50-100 bytes a value
    against 2-3 bytes of JSON (`{},`), so a 32 MB body of `[{},{},...]` took RSS from 43 MB to
    about 800 MB before these bounds (issue 14, item 9)."""
    values: int
    containers: int


# Sirekap and Situng documents: the largest real ones (tests/fixtures, ../shared/data/kpu) have
# 651 values and 142 containers (a 23 KB Pilkada document); a Pileg desa table of a few hundred
# TPS x 24 parties is ~12,000 values. 100,000 / 20,000 is a margin of 8x over that and 150x
# over the largest seen; the worst document within it costs ~10 MB of objects.
KPU_LIMITS = ParseLimits(values=100_000, containers=20_000)
# `json` feeds are anyone's and may be large (MAX_CHILDREN children with their votes): ten
# times the KPU bound; the worst document within it costs ~100 MB of objects.
JSON_LIMITS = ParseLimits(values=1_000_000, containers=200_000)
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title", re.IGNORECASE | re.DOTALL)

RESULTS = ("invalid_json", "schema", "too_large")

# What an adapter's parse() returns: Snapshot keyword arguments; parse_document adds
# source, region and at.
Fields = dict[str, Any]


class DocumentError(Exception):
    """The fetched document is unusable. `result` is the poll result class ("invalid_json":
    not JSON at all; "schema": JSON of the wrong shape) and `detail` a short reason that never
    quotes more than a few characters of the body."""

    def __init__(self, result: str, detail: str):
        if result not in RESULTS:
            raise ValueError(f"DocumentError result must be one of {RESULTS}, got {result!r}")
        self.result = result
        self.detail = trim(detail)
        super().__init__(f"{result}: {self.detail}")


def trim(text: str, limit: int = _DETAIL_MAX) -> str:
    # Control characters from a hostile body must not break a log line or a Slack message.
    text = "".join(ch if ch.isprintable() else " " for ch in text[: limit * 2])
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def show(value: Any) -> str:
    """A value named briefly for a detail message (strings are cut, containers not dumped)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "string " + repr(value[:24] + ("…" if len(value) > 24 else ""))
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, float):
        return f"float {value!r}"
    if isinstance(value, int):
        return f"{value}" if abs(value) < 10**15 else "a huge integer"
    return type(value).__name__


def load_json(body: bytes | str, content_type: str | None = None, limits: ParseLimits = JSON_LIMITS) -> Any:
    """json.loads once, with each way it can fail sorted into invalid_json or schema, and a
    document that would cost more than `limits` to parse refused as too_large.

    orjson first (a third of the stdlib's cost with the duplicate-key hook, which a national
    pass pays 91,561 times): its document is taken only when it provably has no duplicate
    key (below). Anything else, a duplicate, an error, a body orjson reads differently
    (UTF-16, a BOM, NaN, a 100-digit integer), goes the stdlib way, whose answer is today's."""
    if not body or body.isspace():
        raise DocumentError("invalid_json", "empty body" + _ctype(content_type))
    comma, opening, bracket = (",", "{", "[") if isinstance(body, str) else (b",", b"{", b"[")
    values = body.count(comma) + 1
    if values > limits.values:
        raise DocumentError("too_large", f"{values:,} values in one document, over the parse cap of "
                                         f"{limits.values:,}")
    containers = body.count(opening) + body.count(bracket)
    if containers > limits.containers:
        raise DocumentError("too_large", f"{containers:,} objects and arrays in one document, over the parse cap "
                                         f"of {limits.containers:,}")
    if _orjson_loads is not None:
        try:
            doc = _orjson_loads(body)
        except Exception:  # noqa: BLE001 - any refusal: the stdlib decides, and names it
            doc = _NOT_READ
        if doc is not _NOT_READ and _key_marks(body) == _keys(doc):
            return doc
    try:
        return json.loads(body, object_pairs_hook=_no_duplicates)
    except RecursionError:
        # Valid JSON, but nested deeper than any real document: a shape problem.
        raise DocumentError("schema", "JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise DocumentError("invalid_json", _not_json(body, content_type, exc)) from None
    except UnicodeDecodeError:
        raise DocumentError("invalid_json", "body is not UTF-8 text" + _ctype(content_type)) from None
    except ValueError as exc:
        # Python refuses integers longer than 4,300 digits: JSON, but not a count of anything.
        raise DocumentError("schema", f"unreadable number ({exc})") from None


try:
    from orjson import loads as _orjson_loads
except ImportError:           # the stdlib alone gives the same answers, slower
    _orjson_loads = None
_NOT_READ = object()


def _key_marks(body: bytes | str) -> int:
    """`":` in the text: at least one per key of every object (a key is a string followed by
    a colon), more when a string value contains one or a key is spaced from its colon."""
    return body.count(b'":') if isinstance(body, (bytes, bytearray)) else body.count('":')


def _keys(doc: Any) -> int:
    """Keys of every object in `doc`. Equal to _key_marks only when every key mark is a key
    kept by the parser: then no key was dropped as a duplicate."""
    if type(doc) is not dict and type(doc) is not list:
        return 0
    keys, stack = 0, [doc]
    pop, push = stack.pop, stack.append
    while stack:
        value = pop()
        if type(value) is dict:
            keys += len(value)
            value = value.values()
        for item in value:
            if type(item) is dict or type(item) is list:
                push(item)
    return keys


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    # json.loads keeps the last of two equal keys, another parser (a proxy, a browser, KPU's
    # own page) may show the first: such a document says two things at once, so it is refused.
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise DocumentError("schema", f"duplicate key {duplicate[:40]!r} in one object")
    return result


def children_table(table: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    """A children table within MAX_CHILDREN rows (checked before any row is read)."""
    if len(table) > MAX_CHILDREN:
        raise schema(f"{where}: {len(table):,} rows, more than the cap of {MAX_CHILDREN:,}")
    return table


def _ctype(content_type: str | None) -> str:
    return f" (content-type {trim(content_type, 60)})" if content_type else ""


def _not_json(body: bytes | str, content_type: str | None, exc: json.JSONDecodeError) -> str:
    head = body[:2048] if isinstance(body, bytes) else body[:2048].encode("utf-8", "replace")
    if head.lstrip().startswith(b"<"):
        # An error page served with status 200 (proxies, maintenance pages): its title is the
        # most useful thing to show ops, and it is short.
        match = _TITLE.search(head)
        title = f": {match.group(1).decode('utf-8', 'replace').strip()[:60]!r}" if match else ""
        return f"HTML/XML page instead of JSON{title}{_ctype(content_type)}"
    # A cut inside a string is reported where the string starts, but it runs to the end too.
    if exc.pos >= len(exc.doc.rstrip()) or exc.msg.startswith("Unterminated string"):
        return f"truncated JSON: ends after {len(body)} bytes ({exc.msg}){_ctype(content_type)}"
    return f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}{_ctype(content_type)}"


def schema(detail: str) -> DocumentError:
    return DocumentError("schema", detail)


def obj(container: Mapping[str, Any], key: str, where: str, nullable: bool = False) -> dict | None:
    """container[key] that must be present and an object (or null when `nullable`)."""
    if key not in container:
        raise schema(f"{where}{key} is missing")
    value = container[key]
    if isinstance(value, dict) or (value is None and nullable):
        return value
    raise schema(f"{where}{key}: expected an object, got {show(value)}")


def count(value: Any, what: str) -> int:
    """A required non-negative integer count."""
    if type(value) is int and 0 <= value <= MAX_COUNT:
        return value
    if value is None:
        raise schema(f"{what} is missing")
    raise schema(f"{what}: expected a count (integer 0..{MAX_COUNT:.0e}), got {show(value)}")


def opt_count(value: Any, what: str) -> int | None:
    return None if value is None else count(value, what)


def percent(value: Any, what: str) -> float | None:
    """An optional percentage; None stays None. NaN fails both comparisons."""
    if value is None:
        return None
    if type(value) in (int, float) and 0 <= value <= MAX_PERCENT:
        return float(value)
    raise schema(f"{what}: expected a percentage, got {show(value)}")


def is_code(key: str) -> bool:
    # ASCII only: str.isdigit() also accepts '²' and Arabic-Indic digits.
    return key.isascii() and key.isdigit()


def votes_of(row: Mapping[str, Any], where: str) -> dict[str, int]:
    """Candidate votes of a chart or table row: the keys that are candidate ids (digits).

    Other keys (`persen`, `psu`, `status_progress`, `progres`, the junk `"null": null` of TPS
    charts, anything KPU adds later) are not candidates. A candidate whose value is null is
    left out, not counted as 0: we do not know their votes."""
    votes: dict[str, int] = {}
    for key, value in row.items():
        if value is None or not is_code(key):
            continue
        if type(value) is int and 0 <= value <= MAX_COUNT:
            votes[key] = value
        else:
            raise schema(f"{where}[{key!r}]: expected a vote count, got {show(value)}")
    return capped_votes(votes, where)


def capped_votes(votes: dict[str, int], where: str) -> dict[str, int]:
    """Votes within the label-set caps: MAX_CANDIDATES ids of at most MAX_CANDIDATE_ID characters."""
    if len(votes) > MAX_CANDIDATES:
        raise schema(f"{where}: {len(votes):,} candidates, more than the cap of {MAX_CANDIDATES:,}")
    for key in votes:
        if len(key) > MAX_CANDIDATE_ID:
            raise schema(f"{where}: a candidate id of {len(key):,} characters (at most {MAX_CANDIDATE_ID})")
    return votes


def timestamp(value: Any, zone: tzinfo, what: str) -> datetime:
    """A source timestamp: ISO 8601 or KPU's `YYYY-MM-DD HH:MM:SS`; naive ones are read in the
    source's zone (KPU's `ts` is WIB with no marker). The zone is kept, as the source meant it."""
    if not isinstance(value, str):
        raise schema(f"{what}: expected a timestamp string, got {show(value)}")
    moment = _parsed(value, zone)
    if moment is None:
        raise schema(f"{what}: not a timestamp: {show(value)}")
    return in_range(moment, what)


# Sirekap stamps every document of a publication alike, so the series of a tree share one
# datetime per publication (each series keeps its document's: 48 B apiece, 178,333 of them in
# a Pilkada's races) instead of each parsing its own copy; datetimes are immutable.
@lru_cache(maxsize=64)
def _parsed(value: str, zone: tzinfo) -> datetime | None:
    """The text read as a datetime in `zone` when it names none (None: not ISO 8601)."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment


def source_ts(doc: Mapping[str, Any], zone: tzinfo) -> datetime:
    """KPU's required `ts`. Required because without it the stale_source detector would be
    silently blind, and a renamed timestamp is the kind of schema change ops must hear about."""
    if "ts" not in doc:
        raise schema("ts is missing")
    return timestamp(doc["ts"], zone, "ts")


def unix_timestamp(value: int | float, what: str) -> datetime:
    try:
        moment = datetime.fromtimestamp(value, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise schema(f"{what}: not a Unix time: {show(value)}") from None
    return in_range(moment, what)


def in_range(moment: datetime, what: str) -> datetime:
    if not MIN_YEAR <= moment.year <= MAX_YEAR:
        raise schema(f"{what}: year {moment.year} is out of range {MIN_YEAR}-{MAX_YEAR}")
    return moment
