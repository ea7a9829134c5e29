"""Source adapters: a fetched document (bytes) -> monitor.model.Snapshot.

    parse_document(source, region, body, at, content_type=None) -> Snapshot
    child_url(source, parent_url, parent_region, child_code) -> str
    level_of(kind, region_code) -> int | None
    DocumentError(result, detail)       result: "invalid_json" | "schema" | "too_large"

parse_document never raises anything but DocumentError for any body (a hypothesis test feeds
it arbitrary bytes and JSON), so the poll job can count every failure under its class.

`KINDS` is the one list of source kinds: how each kind's documents are parsed, what one may
cost, how its region codes nest and what it counts. monitor/config.py checks `kind` against it
and takes the kind's defaults from it; parse_document, level_of and child_url (the walker's
descent) dispatch on it. A new kind is a module in this package and one entry below.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable

from ..model import Snapshot
from . import jsonfeed, regions, sirekap, situng2019
from .common import JSON_LIMITS, KPU_LIMITS, DocumentError, Fields, ParseLimits, load_json

if TYPE_CHECKING:   # monitor.config imports this table; the adapters take its SourceConfig
    from ..config import SourceConfig

__all__ = ["DocumentError", "KINDS", "SourceKind", "child_url", "level_of", "parse_document"]


def _no_level(region_code: str) -> int | None:
    return None


@dataclass(frozen=True)
class SourceKind:
    parse: Callable[[Any, "SourceConfig", str], Fields]   # (decoded JSON, source, region) -> Snapshot fields
    limits: ParseLimits                                    # what one document may cost to parse (common.py)
    level_of: Callable[[str], int | None] = _no_level      # region code -> level; None: the code does not say
    # (parent_url, parent_region, child_code) -> the child's URL, ValueError for a code that cannot
    # be one; None: the kind has no tree (depth = 0)
    child_url: Callable[[str, str, str], str] | None = None
    units: str = "polling stations"    # what it counts, when the source does not name its `units`
    station_limit: bool = False        # KPU's legal maximum per TPS (`max_votes_per_station`) holds
    bps_names: bool = False            # its codes are BPS codes, named by the packaged wilayah lists


def _sirekap(doc: Any, source: "SourceConfig", region: str) -> Fields:
    return sirekap.parse(doc, region, source.zone)


def _situng2019(doc: Any, source: "SourceConfig", region: str) -> Fields:
    return situng2019.parse(doc, region, source.zone)


def _json(doc: Any, source: "SourceConfig", region: str) -> Fields:
    return jsonfeed.parse(doc, source.mapping, source.zone)


KINDS: dict[str, SourceKind] = {
    "sirekap": SourceKind(_sirekap, KPU_LIMITS, regions.sirekap_level, regions.sirekap_child_url,
                          units="TPS", station_limit=True, bps_names=True),
    "situng2019": SourceKind(_situng2019, KPU_LIMITS, regions.situng2019_level, regions.situng2019_child_url,
                             units="TPS", station_limit=True),
    "json": SourceKind(_json, JSON_LIMITS),
}


def parse_document(source: "SourceConfig", region: str, body: bytes, at: datetime,
                   content_type: str | None = None) -> Snapshot:
    """Parse one document of `source` about `region`, fetched at `at` (aware, our clock).

    The body is tried as JSON whatever `content_type` says (object stores label JSON
    `binary/octet-stream`); the content type only goes into the error detail. What a document
    may cost to parse is bounded per kind (common.KPU_LIMITS, common.JSON_LIMITS)."""
    kind = KINDS.get(source.kind)
    if kind is None:
        raise ValueError(f"unknown source kind {source.kind!r}")   # config validation prevents it
    doc = load_json(body, content_type, kind.limits)
    return Snapshot(source=source.name, region=region, at=at, **kind.parse(doc, source, region))


def level_of(kind: str, region_code: str) -> int | None:
    """0 national, 1 provinsi, 2 kab/kota, 3 kecamatan, 4 desa, 5 TPS; None when the code does
    not say (a json source, a Situng 2019 id below province level, an odd code)."""
    known = KINDS.get(kind)
    return known.level_of(region_code) if known is not None else None


def child_url(source: "SourceConfig", parent_url: str, parent_region: str, child_code: str) -> str:
    """The URL of `child_code`'s document, below the document at `parent_url`.

    Child codes come from the fetched document, i.e. from the network: only well-formed codes
    are put into a URL (no `/`, `..` or query tricks), and a Sirekap child must sit exactly one
    level below its parent. Raises ValueError otherwise, and for kinds with no child scheme
    (json: use depth = 0 there)."""
    known = KINDS.get(source.kind)
    if known is None or known.child_url is None:
        raise ValueError(f"{source.kind!r} sources have no child URL scheme (set depth = 0)")
    return known.child_url(parent_url, parent_region, child_code)
