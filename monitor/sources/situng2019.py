"""KPU Situng 2019 (pemilu2019.kpu.go.id/static/json/hhcw/...).

Only a TPS document survives (tests/fixtures/kpu/situng2019/situng2019_tps_document_example.json):
`chart` {candidate: votes}, `suara_sah`, `suara_tidak_sah`, `pemilih_j` (registered),
`pengguna_j` (turned out), `ts`. Aggregates are known by their field names: `progress`
{total, proses}, `chart`, `table` {region id: {candidate: votes}}, `ts`. Region ids are
KPU-internal numbers (West Java = 26141, overseas = -99), not BPS codes.
"""
from __future__ import annotations

import re
from datetime import tzinfo
from typing import Any

from ..model import RegionCount
from .common import Fields, children_table, count, obj, opt_count, percent, schema, show, source_ts, votes_of
from .regions import TPS_LEVEL, situng2019_level

_ID = re.compile(r"-?[0-9]{1,9}\Z")
_TPS_MARKERS = ("suara_sah", "pemilih_j", "suara_tidak_sah")


def parse(doc: Any, region: str, zone: tzinfo) -> Fields:
    if not isinstance(doc, dict):
        raise schema(f"expected a JSON object, got {show(doc)}")
    if "progress" in doc:
        return _aggregate(doc, region, zone)
    if any(key in doc for key in _TPS_MARKERS):
        return _tps(doc, zone)
    raise schema("not a Situng 2019 document: neither `progress` (aggregate) nor `suara_sah` (TPS)")


def _aggregate(doc: dict, region: str, zone: tzinfo) -> Fields:
    published_at = source_ts(doc, zone)
    progress = obj(doc, "progress", "")
    chart = obj(doc, "chart", "", nullable=True)
    table = obj(doc, "table", "", nullable=True)
    children: dict[str, RegionCount] = {}
    for code, row in children_table(table or {}, "table").items():
        if not _ID.match(code):
            continue                                   # ids go into URLs: trust only ids
        if row is None:
            children[code] = RegionCount()
            continue
        if not isinstance(row, dict):
            raise schema(f"table[{code!r}]: expected an object, got {show(row)}")
        where = f"table[{code!r}]"
        children[code] = RegionCount(votes=votes_of(row, where), percent=percent(row.get("persen"), f"{where}.persen"))
    return dict(
        published_at=published_at,
        stations=count(progress.get("total"), "progress.total"),
        stations_reported=count(progress.get("proses"), "progress.proses"),
        votes=votes_of(chart, "chart") if chart else {},
        children=children,
        level=situng2019_level(region),
    )


def _tps(doc: dict, zone: tzinfo) -> Fields:
    published_at = source_ts(doc, zone)
    chart = obj(doc, "chart", "", nullable=True)
    votes = votes_of(chart, "chart") if chart else {}
    registered = opt_count(doc.get("pemilih_j"), "pemilih_j")
    return dict(
        published_at=published_at,
        stations=1,
        stations_reported=1 if votes else 0,
        votes=votes,
        registered_voters=registered or None,          # 0 = not read from the form: unknown
        valid_votes=opt_count(doc.get("suara_sah"), "suara_sah"),
        invalid_votes=opt_count(doc.get("suara_tidak_sah"), "suara_tidak_sah"),
        level=TPS_LEVEL,
    )
