"""The simulator's scenario model, without HTTP: the electorate, the script of jabar-2018 and
steady, and the documents' shapes and sums."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from monitor.simulator import SCENARIOS, get_scenario
from monitor.simulator.documents import Target, render, resolve
from monitor.simulator.electorate import Electorate, electorate
from monitor.simulator.geography import CANDIDATE_IDS, KAB_KOTA
from monitor.simulator.scenarios import (INFLATED_DESA, INFLATED_DESA_PATH, INFLATED_TPS, INFLATED_TPS_PATH,
                                         wib)

# Key sets of real Sirekap 2024 documents (github.com/ridwaanhall/pemilu2024.kpu.go.id,
# pemilu/hhcw/ppwp.json ... /1101012001/1101012001001.json, commit a85d172) and of the real
# TPS sample of github.com/hendragunawanipb/sample_pemilu2024 (commit 30f93b8).
AGGREGATE_KEYS = {"ts", "psu", "mode", "chart", "table", "progres"}
PROGRES_KEYS = {"total", "progres"}
ROW_KEYS = {"psu", "persen", "status_progress"} | set(CANDIDATE_IDS)
ROW_KEYS_NOT_IN = {"psu", "persen", "status_progress"}
TPS_KEYS = {"mode", "chart", "images", "administrasi", "psu", "ts", "status_suara", "status_adm"}
ADMINISTRASI_KEYS = {
    "suara_sah", "suara_total", "pemilih_dpt_j", "pemilih_dpt_l", "pemilih_dpt_p", "pengguna_dpt_j",
    "pengguna_dpt_l", "pengguna_dpt_p", "pengguna_dptb_j", "pengguna_dptb_l", "pengguna_dptb_p",
    "suara_tidak_sah", "pengguna_total_j", "pengguna_total_l", "pengguna_total_p", "pengguna_non_dpt_j",
    "pengguna_non_dpt_l", "pengguna_non_dpt_p",
}
TS = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")


@pytest.fixture(scope="module")
def jabar():
    return get_scenario("jabar-2018")


def doc_at(scenario, path, moment):
    publication = scenario.publication_at(moment)
    target = resolve(scenario.model.electorate, path)
    assert target is not None, path
    return render(scenario.model, target, publication.at, publication.ts)[0]


def test_electorate_is_west_java_2018_sized_and_deterministic():
    first = electorate(2018)
    assert first.regions["32"].stations == 74_962
    assert first.regions["32"].children == tuple(code for code, _, _ in KAB_KOTA)
    assert len(first.regions["32"].children) == 27
    levels = {}
    for region in first.regions.values():
        levels[region.level] = levels.get(region.level, 0) + 1
    assert 550 <= levels[3] <= 700          # 627 kecamatan in 2018
    assert 5_500 <= levels[4] <= 6_500      # 5,957 desa/kelurahan in 2018
    # Children partition their parent's TPS.
    kab = first.regions["3204"]
    assert sum(first.regions[c].stations for c in kab.children) == kab.stations
    # Only the scripted TPS may be over capacity: every generated one fits its registered
    # voters, and those fit Pilkada's legal maximum of 600.
    assert max(first.registered) <= 600 and min(first.registered) >= 220
    for i in range(0, len(first.rank), 97):
        assert sum(first.tps_votes(i)) + first.invalid[i] <= first.registered[i]
    again = Electorate(2018)
    assert again.rank == first.rank and again.votes == first.votes
    assert Electorate(7).rank != first.rank


def test_get_scenario_names_and_unknown():
    assert set(SCENARIOS) == {"jabar-2018", "steady", "live"}
    with pytest.raises(ValueError) as info:
        get_scenario("jabar-2019")
    for name in SCENARIOS:
        assert name in str(info.value)


def test_jabar_times_and_sources(jabar):
    assert jabar.start == wib(27, 17) and jabar.end == wib(28, 10)
    assert jabar.start.utcoffset() == timedelta(0)
    assert (jabar.end - jabar.start).total_seconds() / jabar.default_speed < 120
    paths = {s["path"]: s for s in jabar.sources}
    assert paths["/pemilu/hhcw/pkwkp/32.json"]["depth"] == 1
    assert paths[INFLATED_DESA_PATH]["region"] == INFLATED_DESA
    for source in jabar.sources:
        assert source["kind"] == "sirekap"
        assert set(source) == {"name", "kind", "path", "region", "depth", "interval", "timeout", "retries", "detection"}
        assert source["detection"] == {"max_votes_per_station": 600}


def test_jabar_incidents_are_the_2018_night(jabar):
    by_kind = {i.kind: i for i in jabar.incidents}
    assert set(by_kind) == {"freeze", "outage", "jump", "over_capacity"}
    freeze, outage, jump = by_kind["freeze"], by_kind["outage"], by_kind["jump"]
    assert freeze.start == wib(27, 21, 0, 15) and freeze.end == wib(28, 8, 30, 15)
    assert outage.start == wib(27, 23, 50) and outage.end == wib(28, 1, 30)
    assert freeze.start < outage.start < outage.end < freeze.end      # back up, still frozen
    assert [p["mode"] for p in outage.details["phases"]] == ["503", "timeout", "502"]
    assert jump.start == freeze.end
    for incident in jabar.incidents:
        assert incident.start.tzinfo is not None and incident.start.utcoffset() == timedelta(0)
    # The jump's numbers are what the site shows either side of the resume.
    before = jabar.state_at(wib(28, 8, 30))
    after = jabar.state_at(wib(28, 8, 31))
    assert jump.details["stations_reported_before"] == before.stations_reported
    assert jump.details["stations_reported_after"] == after.stations_reported
    assert after.stations_reported - before.stations_reported > 10_000


def test_count_runs_before_the_freeze_every_five_minutes(jabar):
    states = [jabar.state_at(wib(27, 17) + timedelta(minutes=5 * k, seconds=20)) for k in range(48)]
    for earlier, later in zip(states, states[1:]):
        assert later.published_at - earlier.published_at == timedelta(minutes=5)
        assert later.stations_reported > earlier.stations_reported
        assert all(later.votes[c] >= earlier.votes[c] for c in CANDIDATE_IDS)
    assert states[0].published_at == wib(27, 17, 0, 15)


def test_freeze_holds_timestamp_and_counts_until_the_resume(jabar):
    frozen = jabar.state_at(wib(27, 21, 1))
    assert frozen.published_at == wib(27, 21, 0, 15)
    for moment in (wib(27, 22), wib(28, 0, 30), wib(28, 5), wib(28, 8, 30, 14)):
        state = jabar.state_at(moment)
        assert state == frozen
    body = doc_at(jabar, "/pemilu/hhcw/pkwkp/32/3273.json", wib(27, 21, 1))
    assert doc_at(jabar, "/pemilu/hhcw/pkwkp/32/3273.json", wib(28, 6)) == body
    assert body["ts"] == "2018-06-27 21:00:15"
    resumed = jabar.state_at(wib(28, 8, 30, 15))
    assert resumed.published_at == wib(28, 8, 30, 15)
    assert doc_at(jabar, "/pemilu/hhcw/pkwkp/32.json", wib(28, 8, 31))["ts"] == "2018-06-28 08:30:15"


def test_outage_phases(jabar):
    assert jabar.outage_at(wib(27, 23, 49, 59)) is None
    assert jabar.outage_at(wib(27, 23, 50)).mode == "503"
    assert jabar.outage_at(wib(28, 0, 30)).mode == "timeout"
    assert jabar.outage_at(wib(28, 0, 30)).until == wib(28, 1)
    assert jabar.outage_at(wib(28, 1, 10)).mode == "502"
    assert jabar.outage_at(wib(28, 1, 30)) is None


def test_steady_publishes_all_night_more_slowly():
    steady = get_scenario("steady")
    assert steady.incidents == []
    assert steady.outage_at(wib(28, 0, 30)) is None
    night = [steady.state_at(wib(28, 2) + timedelta(minutes=5 * k, seconds=20)).published_at for k in range(12)]
    assert sorted(set(night)) == [wib(28, 2, 0, 15), wib(28, 2, 15, 15), wib(28, 2, 30, 15), wib(28, 2, 45, 15)]
    assert steady.state_at(wib(28, 6, 6)).published_at == wib(28, 6, 5, 15)      # 5-minute steps again
    evening = steady.state_at(wib(27, 20, 1)).stations_reported - steady.state_at(wib(27, 19, 1)).stations_reported
    overnight = steady.state_at(wib(28, 3, 1)).stations_reported - steady.state_at(wib(28, 2, 1)).stations_reported
    assert 0 < overnight < evening / 3
    reported = [steady.state_at(steady.start + timedelta(minutes=10 * k)).stations_reported for k in range(103)]
    assert reported == sorted(reported) and reported[-1] > reported[0]


def _row_stations(doc):
    return doc["progres"]["progres"], doc["progres"]["total"]


@pytest.mark.parametrize("moment", [wib(27, 17, 3), wib(27, 20, 1), wib(28, 9, 59)])
def test_sums_agree_at_every_level(jabar, moment):
    province = doc_at(jabar, "/pemilu/hhcw/pkwkp/32.json", moment)
    reported = total = 0
    votes = dict.fromkeys(CANDIDATE_IDS, 0)
    for kab, row in province["table"].items():
        kab_doc = doc_at(jabar, f"/pemilu/hhcw/pkwkp/32/{kab}.json", moment)
        n, t = _row_stations(kab_doc)
        reported, total = reported + n, total + t
        assert row["persen"] == round(100 * n / t, 2)
        for c in CANDIDATE_IDS:
            assert row[c] == kab_doc["chart"][c]
            votes[c] += kab_doc["chart"][c]
    assert (reported, total) == _row_stations(province) and total == 74_962
    assert votes == {c: province["chart"][c] for c in CANDIDATE_IDS}
    assert province["chart"]["persen"] == round(100 * reported / total, 2)
    # Down the chain to the inflated TPS: each table row is the child's chart.
    chain = ["32", "3204", "320405", INFLATED_DESA]
    for depth in range(1, len(chain)):
        parent = doc_at(jabar, "/pemilu/hhcw/pkwkp/" + "/".join(chain[:depth]) + ".json", moment)
        child = doc_at(jabar, "/pemilu/hhcw/pkwkp/" + "/".join(chain[:depth + 1]) + ".json", moment)
        row = parent["table"][chain[depth]]
        n, t = _row_stations(child)
        assert row["persen"] == (round(100 * n / t, 2) if n else 0)
        assert all(row.get(c, 0) == child["chart"][c] for c in CANDIDATE_IDS)
        assert sum(child["table"][k].get(c, 0) for k in child["table"] for c in CANDIDATE_IDS) == \
            sum(child["chart"][c] for c in CANDIDATE_IDS)
    desa = doc_at(jabar, INFLATED_DESA_PATH, moment)
    tps_in = 0
    for code, row in desa["table"].items():
        tps = doc_at(jabar, f"/pemilu/hhcw/pkwkp/32/3204/320405/{INFLATED_DESA}/{code}.json", moment)
        if row["status_progress"]:
            tps_in += 1
            assert row["persen"] == 100
            assert {c: row[c] for c in CANDIDATE_IDS} == {c: tps["chart"][c] for c in CANDIDATE_IDS}
        else:
            assert row == {"psu": "Reguler", "persen": 0, "status_progress": False}
            assert tps["chart"] is None
    assert desa["progres"] == {"total": len(desa["table"]), "progres": tps_in}


def test_documents_have_the_real_shape(jabar):
    moment = wib(27, 20, 1)
    for path in ("/pemilu/hhcw/pkwkp/32.json", "/pemilu/hhcw/pkwkp/32/3279.json",
                 "/pemilu/hhcw/pkwkp/32/3279/327901.json", INFLATED_DESA_PATH):
        doc = doc_at(jabar, path, moment)
        assert set(doc) == AGGREGATE_KEYS, path
        assert TS.match(doc["ts"]) and doc["ts"] == "2018-06-27 20:00:15"
        assert doc["psu"] == "Reguler" and doc["mode"] == "hhcw"
        assert set(doc["progres"]) == PROGRES_KEYS
        assert set(doc["chart"]) == set(CANDIDATE_IDS) | {"persen"}
        assert isinstance(doc["chart"]["persen"], float)
        assert all(isinstance(doc["chart"][c], int) for c in CANDIDATE_IDS)
        for code, row in doc["table"].items():
            assert code.isdigit()
            assert set(row) == (ROW_KEYS if row["status_progress"] else ROW_KEYS_NOT_IN), (path, code)
            assert row["psu"] == "Reguler"
    inflated = doc_at(jabar, INFLATED_TPS_PATH, moment)
    assert set(inflated) == TPS_KEYS
    assert set(inflated["chart"]) == {"null"} | set(CANDIDATE_IDS) and inflated["chart"]["null"] is None
    assert set(inflated["administrasi"]) == ADMINISTRASI_KEYS
    assert len(inflated["images"]) == 3 and all(".invalid/" in url for url in inflated["images"])
    assert inflated["status_suara"] is True and inflated["status_adm"] is True
    assert inflated["ts"] == "2018-06-27 19:40:00"


def test_inflated_tps_appears_at_its_scripted_time(jabar):
    before = doc_at(jabar, INFLATED_TPS_PATH, wib(27, 19, 40, 14))
    assert before["chart"] is None and before["administrasi"] is None and before["status_suara"] is False
    assert doc_at(jabar, INFLATED_DESA_PATH, wib(27, 19, 40, 14))["table"][INFLATED_TPS]["status_progress"] is False
    after = doc_at(jabar, INFLATED_TPS_PATH, wib(27, 19, 40, 15))
    votes = sum(after["chart"][c] for c in CANDIDATE_IDS)
    assert votes == 1223
    assert after["administrasi"]["pemilih_dpt_j"] == 213 and after["administrasi"]["suara_sah"] == 185
    row = doc_at(jabar, INFLATED_DESA_PATH, wib(27, 19, 40, 15))["table"][INFLATED_TPS]
    assert sum(row[c] for c in CANDIDATE_IDS) == 1223 and row["persen"] == 100
    incident = next(i for i in jabar.incidents if i.kind == "over_capacity")
    assert incident.start == wib(27, 19, 40) and incident.details["region"] == INFLATED_TPS
    # Still there, unchanged, after the night.
    assert doc_at(jabar, INFLATED_TPS_PATH, wib(28, 9))["chart"] == after["chart"]


def test_decoys_are_missing_data_not_over_capacity(jabar):
    moment = wib(27, 21)
    zero = doc_at(jabar, "/pemilu/hhcw/pkwkp/32/3204/320405/3204052003/3204052003004.json", moment)
    assert zero["administrasi"]["pemilih_dpt_j"] == 0 and sum(zero["chart"][c] for c in CANDIDATE_IDS) > 0
    unread = doc_at(jabar, "/pemilu/hhcw/pkwkp/32/3204/320405/3204052003/3204052003010.json", moment)
    assert unread["administrasi"] is None and unread["status_adm"] is False and unread["chart"]["1800001"] >= 0
    assert {d["region"] for d in jabar.decoys} == {"3204052003004", "3204052003010"}


def test_ordinary_tps_administrasi_adds_up(jabar):
    moment = wib(28, 9)
    desa = doc_at(jabar, "/pemilu/hhcw/pkwkp/32/3273/327301/3273011001.json", moment)
    checked = 0
    for code, row in desa["table"].items():
        tps = doc_at(jabar, f"/pemilu/hhcw/pkwkp/32/3273/327301/3273011001/{code}.json", moment)
        admin = tps["administrasi"]
        if admin is None:
            continue
        checked += 1
        assert admin["suara_sah"] == sum(tps["chart"][c] for c in CANDIDATE_IDS)
        assert admin["suara_total"] == admin["suara_sah"] + admin["suara_tidak_sah"] == admin["pengguna_total_j"]
        assert admin["suara_total"] <= admin["pemilih_dpt_j"] <= 600
        assert admin["pemilih_dpt_l"] + admin["pemilih_dpt_p"] == admin["pemilih_dpt_j"]
        assert TS.match(tps["ts"])
    assert checked > 0


@pytest.mark.parametrize("path", [
    "/pemilu/hhcw/pkwkp/3204.json",                      # an ancestor missing
    "/pemilu/hhcw/pkwkp/32/3299.json",                   # no such kab/kota
    "/pemilu/hhcw/pkwkp/32/3204/327301.json",            # a kecamatan of another kab/kota
    "/pemilu/hhcw/pkwkp/32/3204/320405/3204052003/3204052003999.json",
    "/pemilu/hhcw/ppwp.json",
    "/pemilu/hhcw/pkwkp/32",
])
def test_unknown_paths_resolve_to_nothing(path):
    assert resolve(electorate(2018), path) is None


def test_wilayah_lists_children():
    scenario = get_scenario("steady")
    kabs = doc_at(scenario, "/wilayah/pemilu/pkwkp/32.json", wib(27, 18))
    assert [k["kode"] for k in kabs] == [code for code, _, _ in KAB_KOTA]
    assert kabs[3] == {"nama": "BANDUNG", "id": 3204, "kode": "3204", "tingkat": 2}
    assert resolve(scenario.model.electorate, "/wilayah/pemilu/pkwkp/32/3204.json") == Target("wilayah", "3204")
