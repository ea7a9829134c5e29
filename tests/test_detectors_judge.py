"""The Judge's interface for the poll job: restore / observe / to_json / thresholds / open
alerts, options per source, and the [detection] config table."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

from monitor.cli import parse_config
from monitor.configtools import ConfigError, Problems
from monitor.detectors import DetectionOptions, Judge, parse_detection_options
from monitor.detectors.thresholds import ADVANCE, Seen, detect_cadence, learn
from monitor.evaluation.builders import T0, at, cadenced, drive, failed, not_modified, ok


def config(detection=None, source_detection=None, name="kpu-ppwp"):
    source = {"name": name, "kind": "sirekap", "url": "https://sirekap-obj-data.kpu.go.id/pemilu/hhcw/ppwp.json"}
    if source_detection is not None:
        source["detection"] = source_detection
    raw = {"sources": [source]}
    if detection is not None:
        raw["detection"] = detection
    return parse_config(raw)


def test_defaults_from_an_empty_table():
    problems = Problems()
    options = parse_detection_options({}, "detection", problems)
    assert problems.items == []
    assert options == DetectionOptions()
    assert options.false_alarm_budget == 30 * 86400 and options.stall_prior == 7200
    assert options.max_votes_per_station == 300 and options.complete_ratio == 1.0


def test_every_problem_is_reported_with_its_key():
    with pytest.raises(ConfigError) as raised:
        config({"stall_floor": "10", "outage_failures": 0, "disable": ["stal"], "nope": 1,
                "stall_ceiling": "1h", "critical_ceiling": "30m"})
    message = str(raised.value)
    for key in ("detection.stall_floor", "detection.outage_failures", "detection.disable", "detection.nope",
                "detection.critical_ceiling"):
        assert key in message


def test_a_source_overrides_only_the_keys_it_names():
    cfg = config({"stall_prior": "1h", "max_votes_per_station": 600}, {"max_votes_per_station": 300})
    judge = Judge(cfg)
    options = judge.options("kpu-ppwp")
    assert options.stall_prior == 3600            # from [detection]
    assert options.max_votes_per_station == 300   # from the source's own table
    assert judge.options("unknown-source") == cfg.detection


def test_disabled_rules_do_not_run():
    judge = Judge(config({"disable": ["stale_source", "correction"]}))
    _, _, events = drive([ok(T0, 5, published=T0 - timedelta(days=2), source="kpu-ppwp")], judge=judge)
    assert events == []


def test_judge_without_config_and_with_an_unnamed_source_uses_defaults():
    for judge in (Judge(None), Judge(config())):
        _, state, events = drive([ok(at(0), 5), ok(at(7200), 5)], judge=judge)
        assert [e.rule for e in events] == ["stall"]
        assert judge.stall_thresholds(state) == (7200.0, 14400.0)


def test_observe_refuses_a_poll_of_another_series():
    judge = Judge(None)
    state = judge.restore("src", "0", None)
    with pytest.raises(ValueError):
        judge.observe(state, ok(at(0), 5, region="11"))
    with pytest.raises(ValueError):
        judge.restore("src", "11", state.to_json())


def test_state_round_trips_through_json_with_open_alerts():
    judge, state, _ = drive(cadenced(13) + [failed(at(13 * 3600 + i * 60)) for i in range(1, 5)])
    assert set(state.open_alerts) == {"outage"}
    blob = json.loads(json.dumps(state.to_json()))
    again = Judge(None).restore("src", "0", blob)
    assert again.to_json() == state.to_json()
    assert again.open_alerts["outage"].to_json() == state.open_alerts["outage"].to_json()
    assert again.last_advance_at == state.last_advance_at
    assert Judge(None).stall_thresholds(again) == judge.stall_thresholds(state)


def test_a_leaf_series_state_is_well_under_a_kilobyte():
    # A desa-level series: a few TPS, a handful of updates in its life.
    polls = [ok(at(3600 * i), i, 12, published=at(3600 * i - 60), votes={"100025": 50 * i, "100026": 90 * i,
                                                                          "100027": 30 * i}) for i in range(8)]
    _, state, _ = drive(polls)
    assert len(json.dumps(state.to_json(), separators=(",", ":"))) < 700


def test_series_share_what_they_have_not_learned_and_what_they_learned_alike():
    # In memory (docs/scaling.md): a series that has recorded no rhythm holds the shared,
    # read-only one; siblings that push the same gap onto the same ring hold one tuple.
    from monitor.detectors.diurnal import UNRECORDED
    from monitor.detectors.series import SeriesState, _push, _same

    fresh = SeriesState("src", "1")
    assert fresh.rhythm is UNRECORDED and fresh.advance_gaps == ()
    with pytest.raises(TypeError):
        UNRECORDED.record(0.0, 60.0, 0.0, None, 1.0)
    _, state, _ = drive(cadenced(13))
    assert state.rhythm is not UNRECORDED and any(state.rhythm.exposure)
    again = Judge(None).restore("src", "0", json.loads(json.dumps(state.to_json())))
    assert again.to_json() == state.to_json() and again.advance_gaps == state.advance_gaps
    assert Judge(None).restore("src", "1", SeriesState("src", "1").to_json()).rhythm is UNRECORDED
    one, two = _push((), 900.0, 48, shared=True), _push((), 900.0, 48, shared=True)
    assert one is two and one == (900.0,)
    assert _push(one, 900.0, 48, shared=True) is _push(two, 900.0, 48, shared=True)
    # exact: a value of another type, or a zero, is never given a tuple made for another
    assert type(_push((), 900, 48, shared=True)[0]) is int
    assert str(_push((), -0.0001, 48, shared=True)[0]) == "-0.0"
    assert _push((1.0, 2.0, 3.0), 4.0, 3, shared=True) == (2.0, 3.0, 4.0)
    assert _push((), 1.5, 48) is not _push((), 1.5, 48)     # only when asked
    assert _same(0.125) is _same(float("0.125")) and _same(7200) == 7200 and type(_same(7200)) is int
    assert str(_same(-0.0)) == "-0.0"


def test_a_readings_votes_read_like_the_dict_they_were():
    from types import MappingProxyType

    from monitor.detectors.history import NO_VOTES, Reading, Votes

    counts = {"100025": 123456, "100026": 234567, "100027": 34567}
    votes = Votes.of(MappingProxyType(counts))
    assert votes == counts and counts == votes and MappingProxyType(counts) == votes
    assert votes != {**counts, "100027": 1} and votes != {"100025": 123456} and votes != [1]
    assert list(votes) == list(counts) and list(votes.items()) == list(counts.items())
    assert sum(votes.values()) == 392590 and votes.get("x") is None and "100026" in votes
    assert [type(v) for v in votes.values()] == [int] * 3 and repr(votes) == repr(counts)
    assert Votes.of({"100027": 34567, "100025": 123456, "100026": 234567}) == votes   # order aside
    assert Votes.of(dict(counts))._keys is votes._keys           # one tuple of candidates per race
    assert Votes.of({}) is NO_VOTES and NO_VOTES == {}
    odd = Votes.of({"a": True, "b": 2.5, "c": 2**70})              # kept as they were, types and all
    assert [type(v) for v in odd.values()] == [bool, float, int] and odd["c"] == 2**70
    with pytest.raises(TypeError):
        hash(votes)
    with pytest.raises(KeyError):
        votes["x"]
    reading = Reading.from_json(json.loads(json.dumps(Reading(T0, T0, 10, 5, None, votes).to_json())))
    assert reading.votes == counts and reading.to_json()[-1] == counts


def test_a_busy_series_state_stays_bounded():
    _, state, _ = drive(cadenced(500))
    size = len(json.dumps(state.to_json(), separators=(",", ":")))
    assert len(state.advance_gaps) == 48 and size < 1500


def test_not_modified_means_the_same_document_at_a_new_time():
    judge, state, _ = drive(cadenced(13))
    warning, _ = judge.stall_thresholds(state)
    events = judge.observe(state, not_modified(state.last_advance_at + timedelta(seconds=warning)))
    assert [e.rule for e in events] == ["stall", "stale_source"]
    assert events[0].details["stations_reported"] == state.current.stations_reported


def test_last_advance_at_is_the_poll_that_saw_the_increase():
    judge, state, _ = drive([ok(at(0), 5), not_modified(at(60)), ok(at(120), 5), ok(at(180), 6)])
    assert state.last_advance_at == at(180)


def test_a_flapping_cache_is_no_advance():
    # 100 -> 90 (an old copy) -> 100: the count did not move, whatever the documents say.
    judge, state, events = drive([ok(at(0), 100), ok(at(60), 90), ok(at(120), 100)])
    assert state.last_advance_at is None
    assert [e.rule for e in events] == ["regression"]


def test_detect_cadence():
    assert detect_cadence([3600.0] * 6) == 3600.0
    assert detect_cadence([3600, 3601, 7200, 3599, 10800, 3600]) == 3600
    assert detect_cadence([900.0, 900, 1800, 900, 900]) == 900.0
    assert detect_cadence([30.0] * 10) is None                          # below a minute: continuous
    assert detect_cadence([37, 412, 95, 1210, 66, 300, 851, 142]) is None   # Poisson-like
    assert detect_cadence([3600.0] * 3) is None                         # too few to tell


def test_learned_thresholds_are_clamped_to_floor_and_ceiling():
    options = DetectionOptions(stall_floor=600, stall_ceiling=3 * 3600, critical_ceiling=4 * 3600)
    fast = learn(Seen(ADVANCE, [5.0] * 40, poll_gap=5.0), options)
    assert fast.warning == 600 and "floor" in fast.reason
    slow = learn(Seen(ADVANCE, [3000.0 * (1 + i % 5) for i in range(40)], poll_gap=60.0), options)   # irregular, hours
    assert slow.warning == 3 * 3600 and slow.critical == 4 * 3600 and "ceiling" in slow.reason


def test_skipped_publications_raise_the_number_of_missed_ones():
    clean = learn(Seen(ADVANCE, [3600.0] * 48, [3600.0] * 48, [45.0] * 12, 45.0, 3600.0), DetectionOptions())
    # Of the last 11 publications 3 brought no new stations (s = 3/11): a run of M missed ones
    # is as rare as the budget (mean gap 3,825 s / 30 d) from M = ln(0.00148)/ln(3/11) = 5.02 up.
    gappy = learn(Seen(ADVANCE, [3600.0] * 40 + [7200, 3600, 3600, 7200, 3600, 3600, 7200, 3600], [3600.0] * 48,
                       [45.0] * 12, 45.0, 3600.0), DetectionOptions())
    assert (clean.missed_warning, clean.missed_critical) == (1, 2)
    assert gappy.missed_warning == 6 and gappy.warning == 6 * 3600 + 30
    assert "27% of publications lately brought no new stations" in gappy.reason


def test_what_few_series_keep_is_shared_until_one_diverges():
    # In memory (docs/scaling.md): the failure counters, open alerts and habits of a series are
    # the class's defaults until it fails or alerts; a child's tracker keeps what it learns only
    # from its second change on. Both save and restore as they did.
    from monitor.detectors.history import ChildTrack, LearningTrack
    from monitor.detectors.series import SeriesState
    from monitor.model import RegionCount

    def kids(*reported):
        return {f"32{i:02d}": RegionCount(stations=100, stations_reported=r) for i, r in enumerate(reported)}

    polls = [ok(at(60 * k), 10 + 5 * k, children=kids(5 + k, 5 + k * (k > 1), 5)) for k in range(4)]
    _, state, _ = drive(polls)
    assert all(getattr(state, name) is getattr(SeriesState, name) for name in SeriesState.RARE)
    tracks = state.children
    assert type(tracks["3200"]) is LearningTrack and tracks["3200"].spacing is not None
    assert type(tracks["3201"]) is LearningTrack and type(tracks["3202"]) is ChildTrack
    assert tracks["3202"].spacing is None and tracks["3202"].learned == 0
    again = Judge(None).restore("src", "0", json.loads(json.dumps(state.to_json())))
    assert again.to_json() == state.to_json()
    assert [type(t) for t in again.children.values()] == [type(t) for t in tracks.values()]

    judge, state, _ = drive(polls + [failed(at(300)), failed(at(360), "http_5xx", "503")])
    assert (state.fail_streak, state.error_classes, state.last_error) == (2, {"timeout": 1, "http_5xx": 1},
                                                                           "http_5xx: 503")
    assert SeriesState.fail_streak == 0 and SeriesState.error_classes == {}
    again = judge.restore("src", "0", json.loads(json.dumps(state.to_json())))
    assert again.to_json() == state.to_json() and again.failing_since == state.failing_since


def test_series_that_learned_alike_share_their_stall_thresholds_but_warning_and_critical():
    # In memory (docs/scaling.md): the prior counts from each series' own first data, so the
    # series of a tree's first pass learn thresholds that differ only in warning and critical;
    # they share the rest, and the thresholds given back are equal to those learned.
    from monitor.detectors.series import cached_stall

    judge = Judge(None)
    states = [drive([ok(at(k), 5, published=T0 - timedelta(minutes=3), region=str(k))], judge=judge)[1]
              for k in (0, 7)]
    one, two = (judge.stall_thresholds(state) for state in states)
    assert one != two and states[0].stall_cached is states[1].stall_cached
    for state in states:
        assert state.stall_thresholds == cached_stall(state) and state.stall_thresholds.reason
        assert (state.stall_thresholds.warning, state.stall_thresholds.critical) == judge.stall_thresholds(state)
        state.stall_cached_version = -1                    # learned again: equal
        assert judge._stall(state, judge.options(state.source)) == state.stall_thresholds
