"""regression, correction, over_capacity and inconsistent, on real KPU documents where there
are real examples (tests/fixtures/kpu, see its PROVENANCE.md)."""
from __future__ import annotations

import json

import pytest

from monitor.config import SourceConfig
from monitor.evaluation.builders import T0, at, drive, ok
from monitor.model import Poll, RegionCount
from monitor.sources import parse_document

SIREKAP = SourceConfig(name="kpu", kind="sirekap", url="https://sirekap-obj-data.kpu.go.id/pemilu/hhcw/ppwp.json")
TPS_DIR = "kpu/sirekap2024/pemilu/hhcw/ppwp/31/3101/310101"


def document(fixtures, relative: str, region: str, when=T0) -> Poll:
    body = (fixtures / relative).read_bytes()
    if "national_snapshots" in relative:
        body = json.dumps(json.loads(body)["raw_data"]).encode()
    snapshot = parse_document(SIREKAP, region, body, when)
    return Poll(source="kpu", region=region, at=when, result="ok", snapshot=snapshot)


def rules(events, name):
    return [e for e in events if e.rule == name]


def test_stations_reported_going_down_is_a_regression_sized_like_a_correction():
    # One unit of 500 taken back (a precinct withdrawn for a recount) is info: never a page.
    # Twenty of 500 (4%, above correction_share) is news.
    _, _, small = drive([ok(at(0), 500), ok(at(60), 499)])
    _, _, large = drive([ok(at(0), 500), ok(at(60), 480)])
    assert [(e.state, e.severity, e.details["decrease"]) for e in rules(small, "regression")] == [("observed", "info", 1)]
    regression = rules(large, "regression")
    assert [(e.state, e.severity, e.details["decrease"]) for e in regression] == [("observed", "warning", 20)]
    assert regression[0].details["decrease_share"] == 0.04 and "4.0% of what was reported" in regression[0].summary


def test_a_reset_to_zero_is_one_regression_warning_carrying_the_votes_not_a_correction_beside_it():
    # Minnesota 2020 at 16:10 UTC on 3 Nov: its test data (98 of 4,110) cleared to zero.
    before = {"biden": 601, "trump": 380, "other": 5_942}
    _, _, events = drive([ok(at(0), 98, 4110, votes=before),
                          ok(at(600), 0, 4110, votes={"biden": 0, "trump": 0, "other": 0})])
    assert [(e.rule, e.severity) for e in events] == [("regression", "warning")]
    assert events[0].details["votes"]["total_decrease"] == 6_923
    assert events[0].details["decrease_share"] == 1.0
    assert "and its votes with them" in events[0].summary


def test_a_growing_total_is_not_a_regression():
    _, _, events = drive([ok(at(0), 643_067, 823_236), ok(at(60), 643_067, 823_378)])
    assert rules(events, "regression") == []


def test_an_older_timestamp_is_a_regression_of_the_source():
    _, _, events = drive([ok(at(0), 500, published=at(-60)), ok(at(60), 500, published=at(-3600))])
    assert [e.details["kind"] for e in rules(events, "regression")] == ["timestamp"]


def test_votes_going_down_is_an_info_correction():
    # 26 Mar 2024 23:30 WIB in the real recording: -11 / -144 / -33.
    before = {"100025": 40_971_917, "100026": 96_214_835, "100027": 27_040_911}
    after = {"100025": 40_971_906, "100026": 96_214_691, "100027": 27_040_878}
    _, _, events = drive([ok(at(0), 648_979, 823_378, votes=before), ok(at(60), 648_979, 823_378, votes=after)])
    correction = rules(events, "correction")
    assert [(e.state, e.severity) for e in correction] == [("observed", "info")]
    assert dict(correction[0].details["decreases"]) == {"100025": -11, "100026": -144, "100027": -33}
    assert correction[0].details["total_decrease"] == 188


def test_the_real_ocr_inflated_tps_is_over_capacity(fixtures):
    # 3101011003008: 1,223 votes on 213 registered voters (the OCR misread of 2024).
    poll = document(fixtures, f"{TPS_DIR}/3101011003/3101011003008.json", "3101011003008")
    _, state, events = drive([poll])
    over = rules(events, "over_capacity")
    assert [(e.state, e.severity) for e in over] == [("firing", "warning")]
    offender = over[0].details["offenders"][0]
    assert offender == {"region": "3101011003008", "votes": 1223, "limit": 218,
                        "why": "213 registered voters + 2% reserve"}
    assert "shows 1,223 votes where at most 218 are possible (213 registered voters + 2% reserve)" in over[0].summary


@pytest.mark.parametrize("votes, registered, fires", [(218, 213, False), (219, 213, True),
                                                       (306, None, False), (307, None, True),
                                                       (500, 0, True)])
def test_capacity_boundary(votes, registered, fires):
    # limit = ceil(213 x 1.02) = 218 with registered voters; ceil(300 x 1.02) = 306 per TPS without
    # (0 registered is an unread form: unknown, so only the legal maximum applies).
    poll = ok(at(0), 1, 1, votes={"1": votes}, registered=registered or None)
    _, _, events = drive([poll])
    assert bool(rules(events, "over_capacity")) is fires


def test_the_limit_per_tps_says_its_reserve_and_none_without_one():
    poll = ok(at(0), 1, 1, votes={"1": 1223})
    _, _, events = drive([poll])
    assert "where at most 306 are possible (1 TPS of at most 300 voters + 2% reserve)" in rules(events, "over_capacity")[0].summary
    from monitor.cli import parse_config
    from monitor.detectors import Judge
    cfg = parse_config({"detection": {"capacity_slack": 0.0},
                        "sources": [{"name": "kpu-ppwp", "kind": "sirekap", "url": "http://127.0.0.1:9/ppwp.json"}]})
    _, _, events = drive([poll], judge=Judge(cfg))
    assert "where at most 300 are possible (1 TPS of at most 300 voters)." in rules(events, "over_capacity")[0].summary


def test_over_capacity_resolves_when_the_tps_is_corrected():
    bad = ok(at(0), 1, 1, votes={"1": 1223}, registered=213)
    fixed = ok(at(60), 1, 1, votes={"1": 180}, registered=213)
    _, state, events = drive([bad, fixed])
    assert [e.state for e in rules(events, "over_capacity")] == ["firing", "resolved"]
    assert "over_capacity" not in state.open_alerts


def test_a_child_tps_row_over_the_legal_maximum(fixtures):
    children = {"1101012001001": RegionCount(stations=1, stations_reported=1, votes={"1": 150}),
                "1101012001002": RegionCount(stations=1, stations_reported=1, votes={"1": 941})}
    _, _, events = drive([ok(at(0), 2, 10, votes={"1": 1091}, children=children)])
    over = rules(events, "over_capacity")
    assert [o["region"] for o in over[0].details["offenders"]] == ["1101012001002"]


@pytest.mark.parametrize("tps, summed, valid", [("3101011001/3101011001003", 243, 235),
                                                 ("3101011003/3101011003001", 136, 246),
                                                 ("3101011003/3101011003008", 1223, 185)])
def test_real_tps_whose_candidates_do_not_add_up(fixtures, tps, summed, valid):
    region = tps.split("/")[1]
    _, _, events = drive([document(fixtures, f"{TPS_DIR}/{tps}.json", region)])
    inconsistent = rules(events, "inconsistent")
    assert len(inconsistent) == 1
    assert inconsistent[0].details["checks"][0]["check"] == "candidates_vs_valid"
    assert f"{summed:,}" in inconsistent[0].summary and f"{valid:,}" in inconsistent[0].summary


def test_real_consistent_documents_raise_nothing(fixtures):
    national = document(fixtures, "kpu/sirekap2024/pemilu/hhcw/ppwp.json", "0")
    kabupaten = document(fixtures, "kpu/sirekap2024/pemilu/hhcw/ppwp/11/1101.json", "1101")
    tps = document(fixtures, f"{TPS_DIR}/3101011001/3101011001001.json", "3101011001001")
    for poll in (national, kabupaten, tps):
        _, _, events = drive([poll])
        assert [e for e in events if e.rule in ("inconsistent", "over_capacity")] == []


def test_reported_over_total_and_percent_disagreeing():
    _, _, events = drive([ok(at(0), 1001, 1000, percent=100.1)])
    checks = [c["check"] for c in rules(events, "inconsistent")[0].details["checks"]]
    assert checks == ["reported_over_total"]
    # 500/1000 is 50.00%; 0.011 points of tolerance covers KPU's two-decimal rounding.
    assert rules(drive([ok(at(0), 500, 1000, percent=50.01)])[2], "inconsistent") == []
    late = rules(drive([ok(at(0), 500, 1000, percent=50.02)])[2], "inconsistent")
    assert [c["check"] for c in late[0].details["checks"]] == ["percent_vs_progress"]


def test_children_that_do_not_add_up_to_the_parent():
    children = {"11": RegionCount(percent=50.0, votes={"1": 600, "2": 400}),
                "12": RegionCount(percent=40.0, votes={"1": 400, "2": 500})}
    _, _, events = drive([ok(at(0), 10, 20, votes={"1": 1000, "2": 1000}, children=children)])
    checks = rules(events, "inconsistent")[0].details["checks"]
    assert [(c["check"], c["candidate"]) for c in checks] == [("children_vs_parent", "2")]
