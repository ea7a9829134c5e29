"""Source adapters: a fetched document (bytes) -> monitor.model.Snapshot.

    parse_document(source, region, body, at, content_type=None) -> Snapshot
    child_url(source, parent_url, parent_region, child_code) -> str
    level_of(kind, region_code) -> int | None
    DocumentError(result, detail)       result: "invalid_json" | "schema" | "too_large"

parse_document never raises anything but DocumentError for any body (a hypothesis test feeds
it arbitrary bytes and JSON), so the poll job can count every failure under its class.
"""
from __future__ import annotations

from datetime import datetime

from ..config import SourceConfig
from ..model import Snapshot
from . import jsonfeed, sirekap, situng2019
from .common import JSON_LIMITS, KPU_LIMITS, DocumentError, load_json
from .regions import child_url, level_of

__all__ = ["DocumentError", "child_url", "level_of", "parse_document"]


def parse_document(source: SourceConfig, region: str, body: bytes, at: datetime,
                   content_type: str | None = None) -> Snapshot:
    """Parse one document of `source` about `region`, fetched at `at` (aware, our clock).

    The body is tried as JSON whatever `content_type` says (object stores label JSON
    `binary/octet-stream`); the content type only goes into the error detail. What a document
    may cost to parse is bounded per kind (common.KPU_LIMITS, common.JSON_LIMITS)."""
    doc = load_json(body, content_type, JSON_LIMITS if source.kind == "json" else KPU_LIMITS)
    zone = source.zone
    if source.kind == "sirekap":
        fields = sirekap.parse(doc, region, zone)
    elif source.kind == "situng2019":
        fields = situng2019.parse(doc, region, zone)
    elif source.kind == "json":
        fields = jsonfeed.parse(doc, source.mapping, zone)
    else:
        raise ValueError(f"unknown source kind {source.kind!r}")   # config validation prevents it
    return Snapshot(source=source.name, region=region, at=at, **fields)
