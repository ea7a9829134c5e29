"""The real 2024 national hourly recording (monitor/data/kpu2024) through replay: the incidents
of issue 3, asserted on the events countwatch prints."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from monitor.detectors import Judge
from monitor.evaluation.kpu2024 import convert_csv, data_path, read_csv
from monitor.model import parse_iso
from monitor.recording import read_recording
from monitor.replay import replay, run

RECORDING = data_path()


def utc(text: str) -> datetime:
    return parse_iso(text)


@pytest.fixture(scope="module")
def polls():
    return list(read_recording(RECORDING))


@pytest.fixture(scope="module")
def events(polls):
    return list(replay(polls))


def of(events, rule, state=None):
    return [e for e in events if e.rule == rule and (state is None or e.state == state)]


def test_packaged_recording_is_the_converted_csv(tmp_path):
    out = tmp_path / "rec.jsonl"
    assert convert_csv(data_path("ppwp_national_hourly.csv"), out) == 1771
    assert out.read_text() == RECORDING.read_text()


def test_first_poll_is_flagged_stale(polls, events):
    first = polls[0]
    stale = of(events, "stale_source", "firing")[0]
    assert stale.at == first.at == utc("2024-02-18T14:34:25Z")
    assert stale.details["first_poll"] is True
    # KPU's ts 2024-02-17 19:30:11 WIB is 26 hours old at the collector's first fetch.
    assert stale.details["age_seconds"] == pytest.approx(26 * 3600 + 4 * 60 + 14)
    assert stale.details["last_published_at"] == "2024-02-17T19:30:11+07:00"
    assert "19:30 WIB" in stale.summary and "12:30 UTC" in stale.summary


def test_17_19_february_freeze_resolves_at_the_catch_up(events):
    resume = utc("2024-02-19T00:20:57Z")
    stalls = [e for e in of(events, "stall") if e.at <= resume]
    assert [e.state for e in stalls] == ["firing", "escalated", "resolved"]
    resolved = stalls[-1]
    assert resolved.at == resume
    assert resolved.details["catch_up_stations"] == 31_743
    jump = [e for e in of(events, "jump") if e.at == resume]
    assert len(jump) == 1 and jump[0].details["catch_up"] is True
    assert jump[0].details["increment"] == 31_743
    # Over the 35.5 h since KPU's last publication, the catch-up is KPU's ordinary pace.
    assert jump[0].details["rate_per_hour"] == pytest.approx(31_743 / (127_804 / 3600), rel=1e-3)


def test_22_february_freeze_alerts_by_the_second_missed_publication(polls, events):
    last_publication = datetime(2024, 2, 22, 23, 0, 15, tzinfo=timezone(timedelta(hours=7)))
    second_missed = last_publication + timedelta(hours=2)
    deadline = min(p.at for p in polls if p.at > second_missed)
    assert deadline == utc("2024-02-22T18:06:39Z")
    frozen_from = utc("2024-02-22T16:06:14Z")
    stall = [e for e in of(events, "stall", "firing") if frozen_from < e.at <= deadline]
    assert len(stall) == 1
    assert stall[0].since == frozen_from
    assert stall[0].details["last_published_at"] == "2024-02-22T23:00:15+07:00"
    assert stall[0].details["cause"] == "publisher_stopped"
    assert stall[0].details["members"] == ["stale_source", "stall"]
    assert "1 missed publication" in stall[0].details["threshold_reason"]


def test_22_february_freeze_resolves_at_the_10553_catch_up(events):
    resume = utc("2024-02-24T16:05:47Z")
    resolved = [e for e in of(events, "stall", "resolved") if e.at == resume]
    assert len(resolved) == 1
    assert resolved[0].details["catch_up_stations"] == 10_553
    assert resolved[0].details["stalled_seconds"] == pytest.approx((resume - utc("2024-02-22T16:06:14Z")).total_seconds())
    jump = [e for e in of(events, "jump") if e.at == resume]
    assert len(jump) == 1 and jump[0].details["catch_up"] is True and jump[0].severity == "info"
    assert jump[0].details["increment"] == 10_553


def test_no_stall_alert_while_hourly_publication_ran_normally(events):
    normal = (utc("2024-02-19T00:20:57Z"), utc("2024-02-22T16:06:14Z"))
    assert [e for e in of(events, "stall") if normal[0] < e.at <= normal[1]] == []
    assert [e for e in of(events, "stale_source") if normal[0] < e.at <= normal[1]] == []


def test_growing_stations_total_on_6_march_is_not_a_regression(polls, events):
    grew = [p for prev, p in zip(polls, polls[1:]) if p.snapshot.stations != prev.snapshot.stations]
    assert [(p.at, p.snapshot.stations) for p in grew] == [(utc("2024-03-06T11:05:44Z"), 823_378)]
    assert of(events, "regression") == []
    assert of(events, "inconsistent") == []


def test_last_advance_starts_a_stall_that_fires_once_and_stays_open(polls, events):
    last_advance = utc("2024-03-26T15:05:51Z")
    advanced = [p for p in polls if p.snapshot.stations_reported == 648_979]
    assert advanced[0].at == last_advance and advanced[0].snapshot.percent == 78.82
    # (The advance itself closes the stall before it; everything after is the last stall.)
    after = [e for e in of(events, "stall") if e.at > last_advance]
    assert [e.state for e in after] == ["firing", "escalated"]
    assert all(e.since == last_advance for e in after)
    judge = Judge(None)
    state = judge.restore("kpu-ppwp", "0", None)
    for poll in polls:
        judge.observe(state, poll)
    assert state.open_alerts["stall"].since == last_advance
    assert state.open_alerts["stall"].severity == "critical"
    assert state.last_advance_at == last_advance
    # The timestamp kept moving until 3 April, so the stall began as a stuck pipeline.
    assert after[0].details["cause"] == "pipeline_stuck"
    assert judge.stall_thresholds(state) is not None


def test_replay_twice_gives_identical_events(polls):
    first = [e.to_json() for e in replay(polls)]
    second = [e.to_json() for e in replay(read_recording(RECORDING))]
    assert first == second and len(first) > 50


def test_a_restart_mid_recording_continues_where_it_left_off(polls, events):
    """The daemon saves state.to_json() and restores it after a restart: same events."""
    judge = Judge(None)
    state = judge.restore("kpu-ppwp", "0", None)
    out = []
    for index, poll in enumerate(polls):
        if index % 97 == 0:
            blob = json.loads(json.dumps(state.to_json()))
            judge = Judge(None)
            state = judge.restore("kpu-ppwp", "0", blob)
        out += judge.observe(state, poll)
    assert [e.to_json() for e in out] == [e.to_json() for e in events]


def test_replay_cli_prints_jsonl(capsys):
    assert run(SimpleNamespace(file=str(RECORDING), config=None)) == 0
    lines = capsys.readouterr().out.splitlines()
    first = json.loads(lines[0])
    assert first["rule"] == "stale_source" and first["at"] == "2024-02-18T14:34:25Z"
    assert set(first) == {"at", "rule", "state", "severity", "source", "region", "since", "summary", "details"}


def test_csv_rows_become_polls_in_file_order():
    polls = list(read_csv(data_path("ppwp_national_hourly.csv")))
    assert len(polls) == 1771
    first = polls[0].snapshot
    assert first.published_at == datetime(2024, 2, 17, 12, 30, 11, tzinfo=timezone.utc)
    assert (first.stations, first.stations_reported, first.percent) == (823_236, 548_354, 66.61)
    assert dict(first.votes) == {"100025": 21_013_738, "100026": 49_747_461, "100027": 15_084_928}
