"""KPU Sirekap 2024 (`hhcw` documents of sirekap-obj-data / sirekappilkada-obj-data).

Shapes, all seen in real documents (tests/fixtures/kpu):
- Pemilu aggregate (national .. desa): `ts`, `progres` {total, progres}, `chart` {candidate:
  votes, persen}, `table` {child code: {candidate: votes, persen, psu, status_progress}}.
  Most children are known only by `persen` (two decimals), some (an early province 95) by
  nothing else at all.
- Pilkada aggregate: the same wrapped in `tungsura`: `tungsura.chart` carries its own
  `progres` {total, persen, progres}, and each `tungsura.table` row has its own `progres`.
- TPS (13-digit code): `chart` (null until the TPS reports; with a junk `"null": null` key),
  `administrasi` (null until the form is read) and `ts`.
"""
from __future__ import annotations

from datetime import tzinfo
from typing import Any

from ..model import RegionCount, is_station
from .common import (MAX_CANDIDATE_ID, MAX_CANDIDATES, MAX_COUNT, MAX_PERCENT, Fields, children_table, count, obj,
                     opt_count, percent, schema, show, source_ts, votes_of)
from .regions import TPS_LEVEL, is_sirekap_code, sirekap_level


def parse(doc: Any, region: str, zone: tzinfo) -> Fields:
    if not isinstance(doc, dict):
        raise schema(f"expected a JSON object, got {show(doc)}")
    level = sirekap_level(region)
    if "tungsura" in doc:
        tungsura = obj(doc, "tungsura", "")
        if level == TPS_LEVEL:
            return _tps(doc, tungsura, zone)
        return _pilkada(doc, tungsura, level, zone)
    if level == TPS_LEVEL:
        return _tps(doc, doc, zone)
    if level is not None or "progres" in doc:
        return _pemilu(doc, level, zone)
    # A region code we cannot place (not BPS-shaped): go by the document's own shape.
    if "chart" in doc and ("administrasi" in doc or "images" in doc):
        return _tps(doc, doc, zone)
    raise schema("not a Sirekap document: neither `progres` (aggregate) nor `administrasi` (TPS)")


def _pemilu(doc: dict, level: int | None, zone: tzinfo) -> Fields:
    published_at = source_ts(doc, zone)
    progres = obj(doc, "progres", "")
    # chart and table must be present (a rename must not pass as "no votes yet") but may be
    # null: early in a count a region may have nothing to show.
    chart = obj(doc, "chart", "", nullable=True)
    table = obj(doc, "table", "", nullable=True)
    return dict(
        published_at=published_at,
        stations=count(progres.get("total"), "progres.total"),
        stations_reported=count(progres.get("progres"), "progres.progres"),
        votes=votes_of(chart, "chart") if chart else {},
        percent=percent(chart.get("persen"), "chart.persen") if chart else None,
        children=_children(table, "table") if table else {},
        level=level,
    )


def _pilkada(doc: dict, tungsura: dict, level: int | None, zone: tzinfo) -> Fields:
    published_at = source_ts(doc, zone)
    chart = obj(tungsura, "chart", "tungsura.", nullable=True)
    table = obj(tungsura, "table", "tungsura.", nullable=True)
    # The chart's own progres carries the percentage; the top-level one (same numbers in
    # every real document) stands in when the chart has none.
    progres, where = (chart.get("progres"), "tungsura.chart.progres") if chart else (None, "")
    if progres is None:
        progres, where = doc.get("progres"), "progres"
    if not isinstance(progres, dict):
        raise schema("tungsura.chart.progres and progres are both missing or not objects")
    return dict(
        published_at=published_at,
        stations=count(progres.get("total"), f"{where}.total"),
        stations_reported=count(progres.get("progres"), f"{where}.progres"),
        votes=votes_of(chart, "tungsura.chart") if chart else {},
        percent=percent(progres.get("persen"), f"{where}.persen"),
        children=_children(table, "tungsura.table") if table else {},
        level=level,
    )


def _children(table: dict, where: str) -> dict[str, RegionCount]:
    children: dict[str, RegionCount] = {}
    for code, row in children_table(table, where).items():
        # Only region codes become children: the code goes into URLs and metric labels, so
        # anything else in the table (junk keys) is skipped rather than trusted.
        if not is_sirekap_code(code):
            continue
        if row is None:
            children[code] = RegionCount()          # listed, nothing known yet
            continue
        if not isinstance(row, dict):
            raise schema(f"{where}[{code!r}]: expected an object, got {show(row)}")
        child = _plain_child(code, row)
        children[code] = child if child is not None else _child(code, row, f"{where}[{code!r}]")
    return children


# Keys of a table row that are not candidates (all seen in real documents).
_ROW_KEYS = frozenset(("psu", "persen", "status_progress", "progres"))


def _plain_child(code: str, row: dict) -> RegionCount | None:
    """The row of a well-formed table in one pass (a national tree has 820,161 TPS rows and
    83,731 desa rows per cold pass): the same RegionCount as _child, or None for anything
    out of the ordinary, which _child then reads, names and refuses as it always did."""
    votes: dict[str, int] = {}
    for key, value in row.items():
        if key in _ROW_KEYS:
            continue
        if value is None:
            if key.isdigit() or key == "null":
                continue
            return None
        if (type(value) is not int or not 0 <= value <= MAX_COUNT or not key.isascii() or not key.isdigit()
                or len(key) > MAX_CANDIDATE_ID):
            return None
        votes[key] = value
    if len(votes) > MAX_CANDIDATES:
        return None
    pct = row.get("persen")
    if pct is not None:
        if type(pct) is not float and type(pct) is not int or not 0 <= pct <= MAX_PERCENT:
            return None
        pct = float(pct)
    progres = row.get("progres")
    if progres is not None:
        if type(progres) is not dict:
            return None
        total, reported = progres.get("total"), progres.get("progres")
        if (type(total) is not int or type(reported) is not int or not 0 <= total <= MAX_COUNT
                or not 0 <= reported <= MAX_COUNT):
            return None
        if pct is None:
            inner = progres.get("persen")
            if inner is not None:
                if type(inner) is not float and type(inner) is not int or not 0 <= inner <= MAX_PERCENT:
                    return None
                pct = float(inner)
        return RegionCount(stations=total, stations_reported=reported, percent=pct, votes=votes)
    if is_station(code=code):
        return RegionCount(stations=1, stations_reported=1 if pct == 100.0 else 0 if pct == 0.0 else None,
                           percent=pct, votes=votes)
    return RegionCount(percent=pct, votes=votes)


def _child(code: str, row: dict, where: str) -> RegionCount:
    votes = votes_of(row, where)
    progres = row.get("progres")
    if progres is not None:                         # Pilkada rows count their stations
        if not isinstance(progres, dict):
            raise schema(f"{where}.progres: expected an object, got {show(progres)}")
        pct = percent(row.get("persen"), f"{where}.persen")
        return RegionCount(
            stations=count(progres.get("total"), f"{where}.progres.total"),
            stations_reported=count(progres.get("progres"), f"{where}.progres.progres"),
            percent=pct if pct is not None else percent(progres.get("persen"), f"{where}.progres.persen"),
            votes=votes,
        )
    pct = percent(row.get("persen"), f"{where}.persen")
    if is_station(code=code):
        # A TPS row of a desa table is one station, and its persen is 100 (in) or 0 (not
        # yet): that is an exact count, so the children add up to the desa's progres.
        reported = 1 if pct == 100.0 else 0 if pct == 0.0 else None
        return RegionCount(stations=1, stations_reported=reported, percent=pct, votes=votes)
    return RegionCount(percent=pct, votes=votes)


def _tps(doc: dict, inner: dict, zone: tzinfo) -> Fields:
    """A TPS document. `inner` holds the chart: the document itself (Pemilu) or its
    `tungsura` (Pilkada TPS documents, known from scrapers rather than a real fixture)."""
    published_at = source_ts(doc, zone)
    chart = obj(inner, "chart", "tungsura." if inner is not doc else "", nullable=True)
    votes = votes_of(chart, "chart") if chart else {}
    adm = doc.get("administrasi", inner.get("administrasi"))
    if adm is not None and not isinstance(adm, dict):
        raise schema(f"administrasi: expected an object or null, got {show(adm)}")
    adm = adm or {}
    registered = opt_count(adm.get("pemilih_dpt_j"), "administrasi.pemilih_dpt_j")
    return dict(
        published_at=published_at,
        # A TPS is one station; it has reported once its chart holds any candidate's votes
        # (null chart, or only the junk "null" key: not yet).
        stations=1,
        stations_reported=1 if votes else 0,
        votes=votes,
        # 0 registered voters is how an unread form shows up next to real votes: unknown,
        # not a TPS with no voters (that would make every vote look like over_capacity).
        registered_voters=registered or None,
        valid_votes=opt_count(adm.get("suara_sah"), "administrasi.suara_sah"),
        invalid_votes=opt_count(adm.get("suara_tidak_sah"), "administrasi.suara_tidak_sah"),
        level=TPS_LEVEL,
    )
