"""Unusable documents are classified, never crash: the constructed broken fixtures give the
right class, and hypothesis shows that arbitrary bytes, arbitrary JSON and real documents with
any one value replaced raise nothing but DocumentError."""
from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from monitor.config import SourceConfig
from monitor.model import Snapshot
from monitor.sources import DocumentError, parse_document

FIXTURES = Path(__file__).parent / "fixtures"
BROKEN = FIXTURES / "broken"
KPU = FIXTURES / "kpu"
AT = datetime(2024, 3, 7, 8, 5, tzinfo=timezone.utc)
SIREKAP = SourceConfig(name="kpu-ppwp", kind="sirekap", url="https://sirekap-obj-data.kpu.go.id/pemilu/hhcw/ppwp.json")
SITUNG = SourceConfig(name="situng", kind="situng2019", url="https://pemilu2019.kpu.go.id/static/json/hhcw/ppwp.json")
FEED = SourceConfig(name="feed", kind="json", url="http://127.0.0.1/feed.json", mapping={
    "reported": "progres.progres", "total": "progres.total", "percent": "chart.persen",
    "published_at": "ts", "votes": "chart", "children": "table", "child_percent": "persen",
    "child_votes": "votes", "child_reported": "progres.progres", "child_total": "progres.total",
    "child_name": "nama", "name": "nama", "registered_voters": "administrasi.pemilih_dpt_j",
    "valid_votes": "administrasi.suara_sah", "invalid_votes": "administrasi.suara_tidak_sah"})
TPS = "1101012001001"


@pytest.mark.parametrize("name, region, result, fragment", [
    ("html_error_200.html", "0", "invalid_json", "HTML/XML page instead of JSON: '502 Bad Gateway' (content-type text/html)"),
    ("html_maintenance.html", "0", "invalid_json", "'Sirekap sedang dalam pemeliharaan'"),
    ("truncated_ppwp.json", "0", "invalid_json", "truncated JSON"),
    ("empty.json", "0", "invalid_json", "empty body"),
    ("strings_for_counts_ppwp.json", "0", "schema", "progres.total: expected a count"),
    ("string_vote_in_table_ppwp.json", "0", "schema", "table['32']['100026']: expected a vote count, got string '12.811.247'"),
    ("nan_reported_ppwp.json", "0", "schema", "progres.progres: expected a count (integer 0..1e+10), got float nan"),
    ("nan_vote_ppwp.json", "0", "schema", "chart['100025']"),
    ("negative_reported_ppwp.json", "0", "schema", "got -643124"),
    ("float_total_ppwp.json", "0", "schema", "got float 823378.0"),
    ("huge_vote_ppwp.json", "0", "schema", "got float 1e+30"),
    ("bool_reported_ppwp.json", "0", "schema", "got true"),
    ("changed_schema_ppwp.json", "0", "schema", "ts is missing"),
    ("missing_ts_ppwp.json", "0", "schema", "ts is missing"),
    ("bad_ts_ppwp.json", "0", "schema", "ts: not a timestamp"),
    ("table_is_list_ppwp.json", "0", "schema", "table: expected an object, got a list"),
    ("list_not_object.json", "0", "schema", "expected a JSON object, got a list"),
    ("string_vote_tps.json", TPS, "schema", "chart['100025']"),
    ("negative_registered_tps.json", TPS, "schema", "administrasi.pemilih_dpt_j"),
    ("missing_chart_tps.json", TPS, "schema", "chart is missing"),
    ("pilkada_without_progres.json", "32", "schema", "progres"),
    ("pilkada_float_child_reported.json", "32", "schema", "tungsura.table['3201'].progres.progres"),
])
def test_broken_documents_are_classified(name, region, result, fragment):
    content_type = "text/html" if name.endswith(".html") else "application/json"
    with pytest.raises(DocumentError) as caught:
        parse_document(SIREKAP, region, (BROKEN / name).read_bytes(), AT, content_type)
    assert caught.value.result == result
    assert fragment in caught.value.detail
    assert len(caught.value.detail) <= 200


def test_changed_schema_still_fails_when_ts_is_kept():
    doc = json.loads((BROKEN / "changed_schema_ppwp.json").read_text())
    doc["ts"] = doc.pop("timestamp")
    with pytest.raises(DocumentError) as caught:
        parse_document(SIREKAP, "0", json.dumps(doc).encode(), AT)
    assert (caught.value.result, caught.value.detail) == ("schema", "progres is missing")


def test_detail_never_carries_the_body():
    secretish = b"<html><body>" + b"token=abcdef0123456789 " * 500 + b"</body></html>"
    with pytest.raises(DocumentError) as caught:
        parse_document(SIREKAP, "0", secretish, AT, "text/html")
    assert "token=" not in caught.value.detail
    garbage = b"{" + b'"k": 1, ' * 1000 + b"oops"
    with pytest.raises(DocumentError) as caught:
        parse_document(SIREKAP, "0", garbage, AT)
    assert caught.value.result == "invalid_json" and '"k"' not in caught.value.detail


@pytest.mark.parametrize("body, result", [
    (b"\xff\xfe\x00", "invalid_json"),                      # not UTF-8 (nor UTF-16)
    (b"[" * 10_000, "schema"),                              # JSON nested beyond reason
    (b"[" * 100_000, "too_large"),                          # more arrays than a document may cost
    (b"1" * 5000, "schema"),                                # an integer of 5,000 digits
    (b"   \n\t ", "invalid_json"),
    (b'{"ts": "2024-03-07 15:00:16"} trailing', "invalid_json"),
])
def test_odd_bodies(body, result):
    with pytest.raises(DocumentError) as caught:
        parse_document(SIREKAP, "0", body, AT)
    assert caught.value.result == result


def test_utf8_bom_is_accepted():
    body = b"\xef\xbb\xbf" + (KPU / "sirekap2024/pemilu/hhcw/ppwp.json").read_bytes()
    assert parse_document(SIREKAP, "0", body, AT).stations == 823378


def test_document_error_refuses_unknown_classes():
    with pytest.raises(ValueError):
        DocumentError("timeout", "not a document problem")


# --- hypothesis: nothing but DocumentError, whatever arrives ---------------------------------

KEYS = st.sampled_from(["ts", "progres", "total", "persen", "chart", "table", "tungsura", "psu",
                        "administrasi", "pemilih_dpt_j", "suara_sah", "suara_tidak_sah", "progress",
                        "proses", "pemilih_j", "images", "100025", "21", "11", "26141", "-99",
                        "1101012001001", "null", "nama", "votes", "status_progress"]) | st.text(max_size=12)
LEAVES = (st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70)
          | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20)
          | st.sampled_from(["2024-03-07 15:00:16", "0001-01-01 00:00:00", "9999-12-31T23:59:59-23:59",
                             "2024-02-30 10:00:00", "2024-03-07T15:00:16Z", "\ud800", "1e309"]))
JSON_VALUES = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(KEYS, inner, max_size=5), max_leaves=25)
REGIONS = st.sampled_from(["0", "32", "1101", "1101012001", TPS, "26141", "-99", "x", ""])
SOURCES = st.sampled_from([SIREKAP, SITUNG, FEED])
REAL_DOCS = [json.loads(p.read_text()) for p in [
    KPU / "sirekap2024/pemilu/hhcw/ppwp.json",
    KPU / "sirekap2024/pemilu/hhcw/ppwp/11/1101/110101/1101012001.json",
    KPU / "sirekap2024/pemilu/hhcw/ppwp/11/1101/110101/1101012001/1101012001001.json",
    KPU / "pilkada2024/pkwkp_32_32_commit-481f1a6_ts-2024-11-28T1015.json",
    KPU / "situng2019/situng2019_tps_document_example.json",
    KPU / "situng2019/static/json/hhcw/ppwp/26141.json",
]]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parses_or_classifies(source: SourceConfig, region: str, body: bytes) -> None:
    try:
        snap = parse_document(source, region, body, AT)
    except DocumentError as exc:
        assert exc.result in ("invalid_json", "schema")
        assert 0 < len(exc.detail) <= 200
        return
    assert isinstance(snap, Snapshot)
    for value in (snap.stations, snap.stations_reported, *snap.votes.values()):
        assert value is None or (type(value) is int and value >= 0)
    assert snap.percent is None or math.isfinite(snap.percent)
    if snap.published_at is not None:
        snap.published_at.astimezone(timezone.utc)          # usable in arithmetic downstream


@FUZZ
@given(source=SOURCES, region=REGIONS, body=st.binary(max_size=300))
def test_arbitrary_bytes(source, region, body):
    parses_or_classifies(source, region, body)


@FUZZ
@given(source=SOURCES, region=REGIONS, value=JSON_VALUES)
def test_arbitrary_json(source, region, value):
    parses_or_classifies(source, region, json.dumps(value).encode("utf-8", "surrogatepass"))


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, child in node.items():
            yield from _paths(child, prefix + (key,))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _paths(child, prefix + (index,))


@st.composite
def mutated_documents(draw):
    doc = json.loads(json.dumps(draw(st.sampled_from(REAL_DOCS))))
    path = draw(st.sampled_from(list(_paths(doc))))
    value = draw(JSON_VALUES)
    if not path:
        return value
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    if draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


@FUZZ
@given(source=SOURCES, region=REGIONS, doc=mutated_documents())
def test_real_documents_with_one_value_replaced(source, region, doc):
    parses_or_classifies(source, region, json.dumps(doc).encode("utf-8", "surrogatepass"))


@FUZZ
@given(source=SOURCES, region=REGIONS, doc=mutated_documents(), cut=st.integers(min_value=0, max_value=4000))
def test_truncated_real_documents(source, region, doc, cut):
    parses_or_classifies(source, region, json.dumps(doc).encode("utf-8", "surrogatepass")[:cut])
