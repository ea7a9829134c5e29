"""Situng 2019 adapter: the real TPS document and the constructed aggregates (national and
West Java = 26141) built from the real national numbers of the last version."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from monitor.config import SourceConfig
from monitor.sources import DocumentError, parse_document

SITUNG = Path(__file__).parent / "fixtures" / "kpu" / "situng2019"
HHCW = SITUNG / "static" / "json" / "hhcw"
AT = datetime(2019, 5, 2, 14, 20, tzinfo=timezone.utc)
SOURCE = SourceConfig(name="situng-ppwp", kind="situng2019",
                      url="https://pemilu2019.kpu.go.id/static/json/hhcw/ppwp.json")


def parse(path: Path, region: str):
    return parse_document(SOURCE, region, path.read_bytes(), AT)


def test_real_tps_document():
    snap = parse(SITUNG / "situng2019_tps_document_example.json", "900001")
    assert snap.published_at == datetime(2019, 4, 19, 16, 0, 3, tzinfo=timezone.utc)
    assert snap.votes == {"21": 19, "22": 133}
    assert (snap.stations, snap.stations_reported, snap.level) == (1, 1, 5)
    assert (snap.registered_voters, snap.valid_votes, snap.invalid_votes) == (179, 132, 1)
    # its candidates add up to 152 against 132 valid votes: parsed as published
    assert snap.total_votes == 152


def test_constructed_national_aggregate():
    snap = parse(HHCW / "ppwp.json", "0")
    assert snap.published_at == datetime(2019, 5, 2, 14, 15, 4, tzinfo=timezone.utc)
    assert (snap.stations, snap.stations_reported, snap.level) == (813350, 509266, 0)
    assert round(snap.progress_ratio * 100, 5) == 62.61339
    assert snap.votes == {"21": 53613575, "22": 42315139}
    assert len(snap.children) == 35
    assert "26141" in snap.children and "-99" in snap.children   # overseas has a negative id
    assert snap.children["26141"].votes == {"21": 9159780, "22": 7229463}


def test_constructed_west_java_aggregate():
    snap = parse(HHCW / "ppwp" / "26141.json", "26141")
    assert snap.level == 1
    assert (snap.stations, snap.stations_reported) == (138959, 87007)
    assert snap.votes == {"21": 9159780, "22": 7229463}
    assert len(snap.children) == 27


def test_tps_not_yet_reported():
    doc = json.loads((SITUNG / "situng2019_tps_document_example.json").read_text())
    doc.update(chart=None, suara_sah=None, suara_tidak_sah=None, pemilih_j=0)
    snap = parse_document(SOURCE, "900001", json.dumps(doc).encode(), AT)
    assert (snap.stations, snap.stations_reported, snap.votes) == (1, 0, {})
    assert (snap.registered_voters, snap.valid_votes) == (None, None)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["progress"].pop("proses"), "progress.proses is missing"),
    (lambda d: d["progress"].update(total="813350"), "progress.total"),
    (lambda d: d["table"]["26141"].update({"21": -1}), "table['26141']"),
    (lambda d: d.pop("progress") and d.pop("chart"), "neither"),
])
def test_broken_aggregates_are_schema_errors(edit, message):
    doc = json.loads((HHCW / "ppwp.json").read_text())
    edit(doc)
    with pytest.raises(DocumentError) as caught:
        parse_document(SOURCE, "0", json.dumps(doc).encode(), AT)
    assert caught.value.result == "schema"
    assert message in caught.value.detail
