"""Sirekap 2024 adapter against real KPU documents (tests/fixtures/kpu/sirekap2024, pilkada2024):
every level from national to TPS, Pemilu and Pilkada, with KPU's own numbers asserted."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from monitor.config import SourceConfig
from monitor.recording import poll_to_record, record_to_poll
from monitor.model import Poll
from monitor.sources import parse_document

KPU = Path(__file__).parent / "fixtures" / "kpu"
HHCW = KPU / "sirekap2024" / "pemilu" / "hhcw"
PILKADA = KPU / "pilkada2024"
AT = datetime(2024, 3, 7, 8, 5, 0, tzinfo=timezone.utc)
SOURCE = SourceConfig(name="kpu-ppwp", kind="sirekap", url="https://sirekap-obj-data.kpu.go.id/pemilu/hhcw/ppwp.json")
PILGUB = SourceConfig(name="kpu-pilgub-jabar", kind="sirekap", region="32",
                      url="https://sirekappilkada-obj-data.kpu.go.id/pilkada/hhcw/pkwkp/32.json")


def tps_path(code: str) -> Path:
    return HHCW / "ppwp" / code[:2] / code[:4] / code[:6] / code[:10] / f"{code}.json"


def parse(path: Path, region: str, source: SourceConfig = SOURCE):
    return parse_document(source, region, path.read_bytes(), AT, "application/json")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def test_national_document():
    snap = parse(HHCW / "ppwp.json", "0")
    assert snap.source == "kpu-ppwp" and snap.region == "0" and snap.at == AT
    # ts "2024-03-07 15:00:16" is WIB: 08:00:16 UTC, and the zone is kept as KPU meant it
    assert snap.published_at == utc(2024, 3, 7, 8, 0, 16)
    assert snap.published_at.utcoffset() == timedelta(hours=7)
    assert (snap.stations, snap.stations_reported) == (823378, 643124)
    assert snap.votes == {"100025": 31374310, "100026": 75357899, "100027": 21374165}
    assert "persen" not in snap.votes
    assert snap.percent == 78.11
    assert snap.level == 0
    assert len(snap.children) == 39
    assert "99" in snap.children and "32" in snap.children
    west_java = snap.children["32"]
    # provinces are known by votes and a two-decimal percentage only, never by station counts
    assert west_java.percent == 75.89
    assert west_java.votes == {"100025": 6910661, "100026": 12811247, "100027": 2149923}
    assert west_java.stations is None and west_java.stations_reported is None
    assert snap.progress_ratio == pytest.approx(643124 / 823378)


@pytest.mark.parametrize("name, ts_utc, stations, reported, persen", [
    ("votes_nationwide_dd92f8e0864e_fetched-2024-02-18T1434Z.json", utc(2024, 2, 17, 12, 30, 11), 823236, 548354, 66.61),
    ("votes_nationwide_7dbe69e3a7b8_fetched-2024-02-22T1606Z.json", utc(2024, 2, 22, 16, 0, 15), 823236, 619579, 75.26),
    ("votes_nationwide_0e1855be13fb_fetched-2024-02-24T1605Z.json", utc(2024, 2, 24, 16, 0, 15), 823236, 630132, 76.54),
    ("votes_nationwide_179f7f1fa6a8_fetched-2024-05-03T1208Z.json", utc(2024, 4, 2, 17, 0, 15), 823378, 648979, 78.82),
])
def test_national_snapshots_of_the_freezes(name, ts_utc, stations, reported, persen):
    wrapped = json.loads((KPU / "sirekap2024" / "national_snapshots" / name).read_text())
    body = json.dumps(wrapped["raw_data"]).encode()
    snap = parse_document(SOURCE, "0", body, AT)
    assert snap.published_at == ts_utc
    assert (snap.stations, snap.stations_reported, snap.percent) == (stations, reported, persen)
    assert len(snap.children) == 39


def test_the_10553_station_jump_after_the_second_freeze_is_in_the_real_documents():
    before = json.loads((KPU / "sirekap2024/national_snapshots/votes_nationwide_7dbe69e3a7b8_fetched-2024-02-22T1606Z.json").read_text())
    after = json.loads((KPU / "sirekap2024/national_snapshots/votes_nationwide_0e1855be13fb_fetched-2024-02-24T1605Z.json").read_text())
    a = parse_document(SOURCE, "0", json.dumps(before["raw_data"]).encode(), AT)
    b = parse_document(SOURCE, "0", json.dumps(after["raw_data"]).encode(), AT)
    assert b.stations_reported - a.stations_reported == 10553


def test_province_known_only_by_percentage_has_no_votes_not_zero_votes():
    # 17 Feb 2024: Papua Pegunungan (95) was published with `persen` and nothing else
    wrapped = json.loads((KPU / "sirekap2024/national_snapshots/votes_nationwide_dd92f8e0864e_fetched-2024-02-18T1434Z.json").read_text())
    snap = parse_document(SOURCE, "0", json.dumps(wrapped["raw_data"]).encode(), AT)
    papua_pegunungan = snap.children["95"]
    assert papua_pegunungan.percent == 0.05
    assert dict(papua_pegunungan.votes) == {}
    assert papua_pegunungan.stations is None


def test_kabupaten_document():
    snap = parse(HHCW / "ppwp" / "11" / "1101.json", "1101")
    assert snap.published_at == utc(2024, 2, 26, 2, 0, 15)
    assert (snap.stations, snap.stations_reported, snap.percent, snap.level) == (697, 637, 91.39, 2)
    assert snap.votes == {"100025": 111762, "100026": 20829, "100027": 2372}
    assert len(snap.children) == 18 and all(len(code) == 6 for code in snap.children)
    assert snap.children["110101"].votes == {"100025": 2883, "100026": 458, "100027": 46}


def test_kecamatan_document():
    snap = parse(HHCW / "ppwp/11/1101/110101.json", "110101")
    assert (snap.stations, snap.stations_reported, snap.level) == (15, 15, 3)
    assert len(snap.children) == 7
    assert snap.children["1101012001"].votes == {"100025": 555, "100026": 94, "100027": 15}
    assert snap.children["1101012001"].percent == 100.0


def test_desa_document_with_three_tps_children():
    snap = parse(HHCW / "ppwp/11/1101/110101/1101012001.json", "1101012001")
    assert snap.published_at == utc(2024, 2, 22, 10, 0, 16)
    assert (snap.stations, snap.stations_reported, snap.level) == (3, 3, 4)
    assert sorted(snap.children) == ["1101012001001", "1101012001002", "1101012001003"]
    first = snap.children["1101012001001"]
    assert first.votes == {"100025": 144, "100026": 19, "100027": 2}
    # a TPS row is one station, and persen 100 means it is in: the children add up
    assert (first.stations, first.stations_reported) == (1, 1)
    assert sum(c.stations_reported for c in snap.children.values()) == snap.stations_reported
    assert sum(c.votes["100025"] for c in snap.children.values()) == snap.votes["100025"] == 555


def test_tps_document():
    snap = parse(tps_path("1101012001001"), "1101012001001")
    assert snap.published_at == utc(2024, 2, 20, 6, 0, 0)
    # the junk `"null": null` key of TPS charts is not a candidate
    assert snap.votes == {"100025": 144, "100026": 19, "100027": 2}
    assert (snap.stations, snap.stations_reported, snap.level) == (1, 1, 5)
    assert (snap.registered_voters, snap.valid_votes, snap.invalid_votes) == (284, 165, 1)
    assert snap.children == {}


def test_tps_not_reported_has_no_votes_and_unknown_administration():
    snap = parse(tps_path("3101011001004"), "3101011001004")   # chart null, administrasi null
    assert (snap.stations, snap.stations_reported) == (1, 0)
    assert snap.votes == {}
    assert (snap.registered_voters, snap.valid_votes, snap.invalid_votes) == (None, None, None)
    assert snap.published_at == utc(2024, 2, 15, 0, 0, 44)


def test_tps_with_votes_but_administrasi_null():
    snap = parse(tps_path("3101011001008"), "3101011001008")
    assert snap.votes == {"100025": 100, "100026": 81, "100027": 30}
    assert snap.stations_reported == 1
    assert snap.registered_voters is None and snap.valid_votes is None


def test_tps_with_administration_read_but_no_chart_yet():
    snap = parse(tps_path("3101011003006"), "3101011003006")
    assert (snap.stations_reported, snap.votes) == (0, {})
    assert (snap.registered_voters, snap.valid_votes, snap.invalid_votes) == (203, 157, 4)


def test_zero_registered_voters_is_unknown_not_zero():
    snap = parse(tps_path("3101011001013"), "3101011001013")     # pemilih_dpt_j: 0, votes in
    assert snap.registered_voters is None
    assert snap.total_votes == 206 and snap.valid_votes == 206


def test_ocr_inflated_tps_parses_as_published():
    # 1,223 votes on 213 registered voters: wrong, but well-formed; over_capacity reports it
    snap = parse(tps_path("3101011003008"), "3101011003008")
    assert snap.votes == {"100025": 71, "100026": 641, "100027": 511}
    assert snap.total_votes == 1223
    assert (snap.registered_voters, snap.valid_votes) == (213, 185)


def test_all_53_real_tps_documents_parse():
    paths = sorted((HHCW / "ppwp" / "31").rglob("*.json"))
    assert len(paths) == 53
    snaps = {p.stem: parse(p, p.stem) for p in paths}
    reported = [s for s in snaps.values() if s.stations_reported == 1]
    assert len(reported) == 46 and all(s.votes for s in reported)
    assert all(s.level == 5 and s.stations == 1 for s in snaps.values())
    # three TPS whose candidates do not add up to suara_sah (the inconsistent detector's job)
    mismatched = sorted(code for code, s in snaps.items()
                        if s.valid_votes is not None and s.votes and s.total_votes != s.valid_votes)
    assert mismatched == ["3101011001003", "3101011003001", "3101011003008"]


@pytest.mark.parametrize("name, ts_utc, reported, persen", [
    ("pkwkp_32_32_commit-9e11531_ts-2024-11-28T0100.json", utc(2024, 11, 27, 18, 0, 0), 72775, 98.53),
    ("pkwkp_32_32_commit-481f1a6_ts-2024-11-28T1015.json", utc(2024, 11, 28, 3, 15, 4), 73088, 98.95),
])
def test_pilkada_west_java_governor_province_level(name, ts_utc, reported, persen):
    snap = parse(PILKADA / name, "32", PILGUB)
    assert snap.published_at == ts_utc
    assert (snap.stations, snap.stations_reported, snap.percent, snap.level) == (73862, reported, persen, 1)
    assert set(snap.votes) == {"1000026", "1000027", "1000028", "1000029"}
    assert "progres" not in snap.votes
    assert len(snap.children) == 27 and all(len(code) == 4 for code in snap.children)


def test_pilkada_children_carry_station_counts():
    snap = parse(PILKADA / "pkwkp_32_32_commit-481f1a6_ts-2024-11-28T1015.json", "32", PILGUB)
    bogor = snap.children["3201"]
    assert (bogor.stations, bogor.stations_reported, bogor.percent) == (7908, 7755, 98.07)
    assert bogor.votes == {"1000026": 240990, "1000027": 167206, "1000028": 371633, "1000029": 1307273}
    assert sum(c.stations for c in snap.children.values()) == 73862
    assert sum(c.stations_reported for c in snap.children.values()) == 73088


@pytest.mark.parametrize("name, votes_of_1000608_or_29", [
    ("pkwkp_32_3273_commit-481f1a6.json", ("1000029", 698232)),     # Pilgub Jabar in Bandung
    ("pkwkk_32_3273_commit-481f1a6.json", ("1000608", 523000)),     # Pilwalkot Bandung
])
def test_pilkada_kota_bandung_level(name, votes_of_1000608_or_29):
    snap = parse(PILKADA / name, "3273", PILGUB)
    candidate, votes = votes_of_1000608_or_29
    assert snap.published_at == utc(2024, 11, 28, 1, 45, 0)
    assert (snap.stations, snap.stations_reported, snap.percent, snap.level) == (3590, 3590, 100.0, 2)
    assert snap.votes[candidate] == votes
    assert len(snap.children) == 30
    assert (snap.children["327301"].stations, snap.children["327301"].stations_reported) == (103, 103)


def test_source_timezone_decides_how_naive_ts_is_read():
    wita = SourceConfig(name="x", kind="sirekap", url=SOURCE.url, timezone="Asia/Makassar")
    snap = parse_document(wita, "0", (HHCW / "ppwp.json").read_bytes(), AT)
    assert snap.published_at == utc(2024, 3, 7, 7, 0, 16)


def test_parsed_snapshot_round_trips_through_the_recording_format():
    snap = parse(HHCW / "ppwp/11/1101/110101/1101012001.json", "1101012001")
    line = poll_to_record(Poll(source="kpu-ppwp", region="1101012001", at=AT, result="ok", snapshot=snap))
    back = record_to_poll(json.loads(json.dumps(line))).snapshot
    assert back.published_at == snap.published_at
    assert (back.stations, back.stations_reported, back.level) == (3, 3, 4)
    assert back.children["1101012001002"].votes == {"100025": 209, "100026": 37, "100027": 6}
