"""A small `countwatch evaluate` inside the suite (the full run is `make evaluate`): the report
has its tables, the scenarios are reproducible, and they carry the incidents they claim."""
from __future__ import annotations

import json
from types import SimpleNamespace

from monitor.evaluation.command import evaluate_series, run
from monitor.evaluation.reference import fixed_alarms, oracle_alarms
from monitor.evaluation.scenarios import PROFILES, generate
from monitor.evaluation.scoring import Tally, Window, stall_windows


def test_scenarios_are_reproducible_and_carry_their_incidents():
    first, again = generate(PROFILES["hourly"], 3, days=6), generate(PROFILES["hourly"], 3, days=6)
    assert [p.at for p in first.polls] == [p.at for p in again.polls]
    assert first.incidents == again.incidents
    stalls = [i for i in first.incidents if i.kind == "stall"]
    assert stalls, "a 6-day hourly scenario has at least one stall"
    stall = stalls[0]
    inside = [p for p in first.polls if p.snapshot is not None and stall.start <= p.at < stall.end]
    # During a stall the count does not move, whatever the timestamp does.
    assert len({p.snapshot.stations_reported for p in inside}) <= 1


def test_the_oracle_and_the_fixed_thresholds_see_the_same_polls():
    series = generate(PROFILES["hourly"], 0, days=5)
    windows = stall_windows(series)
    oracle = oracle_alarms(series, 30 * 86400)
    fixed = fixed_alarms(series, 15 * 60)
    assert oracle and fixed
    # "No change for 15 min" on an hourly publisher fires between every two publications.
    assert len(fixed) > 24 * 4 > len(oracle)
    tally = Tally()
    tally.add(oracle, windows, 5.0)
    assert tally.recall is not None and len(tally.delays) == len(windows)


def test_tally_matches_alarms_to_windows():
    from datetime import datetime, timedelta, timezone

    t0 = datetime(2024, 2, 20, tzinfo=timezone.utc)
    windows = [Window(t0, t0 + timedelta(hours=2), None), Window(t0 + timedelta(hours=5), t0 + timedelta(hours=6), None)]
    tally = Tally()
    tally.add([t0 + timedelta(minutes=30), t0 + timedelta(minutes=40), t0 + timedelta(hours=3)], windows, 2.0)
    assert tally.delays == [1800.0, None]
    assert tally.false_alarms == 1 and tally.fa_per_day == 0.5 and tally.recall == 0.5
    assert tally.alarms_per_window == [2, 0]


def test_one_series_is_scored_for_every_detector():
    result = evaluate_series("hourly", 0, 4.0)
    assert {"stall:countwatch", "stall:oracle", "stall:fixed 15 min", "stall:fixed 60 min", "stall:fixed 3 h",
            "stale_source:countwatch", "outage", "jump", "correction"} <= set(result.tallies)
    assert result.polls > 5000


def test_evaluate_cli_writes_the_report(tmp_path, capsys):
    out = tmp_path / "report.md"
    recordings = tmp_path / "recordings"
    args = SimpleNamespace(series=1, days=4.0, profiles="hourly,poisson", jobs=1, out=str(out),
                           recordings=str(recordings))
    assert run(args) == 0
    text = capsys.readouterr().out
    assert out.read_text() == text.rstrip("\n") or out.read_text() in text
    for heading in ("### stall", "### stale_source", "### other rules", "### rules inside documents"):
        assert heading in text
    assert "| hourly | countwatch |" in text and "| poisson | oracle |" in text
    truth = json.loads((recordings / "hourly-00.truth.json").read_text())
    assert truth["profile"] == "hourly" and truth["incidents"]
    first = json.loads((recordings / "hourly-00.jsonl").read_text().splitlines()[0])
    assert first["v"] == 1 and first["source"] == "hourly"


def test_evaluate_cli_refuses_bad_usage(capsys):
    args = SimpleNamespace(series=1, days=4.0, profiles="nope", jobs=1, out=None, recordings=None)
    assert run(args) == 2
    assert "unknown profile" in capsys.readouterr().err
