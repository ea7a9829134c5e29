"""A TPS document is one station whose `ts` is when its form came in: it neither stalls nor
goes stale, however long it stands still, and its one report after hours is no catch-up jump;
an aggregate with the same history does."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from monitor.detectors import Judge
from monitor.model import Poll, Snapshot

START = datetime(2018, 6, 27, 10, 0, tzinfo=timezone.utc)
OLD_TS = datetime(2018, 6, 27, 6, 0, tzinfo=timezone.utc)


def run(region: str, level: int, stations: int, hours: int = 24, reported=lambda minute: 0,
        published=lambda at: OLD_TS) -> list[str]:
    """The rules that fire over `hours` of polls every 5 minutes of one series."""
    judge = Judge(None)
    state = judge.restore("s", region, None)
    rules = []
    for minute in range(0, hours * 60, 5):
        at = START + timedelta(minutes=minute)
        n = reported(minute)
        snap = Snapshot("s", region, at, published(at), stations, n, {"1": 100 * n} if n else {}, level=level)
        rules += [e.rule for e in judge.observe(state, Poll("s", region, at, "ok", snap))]
    return rules


def test_station_series_raises_no_stall_or_stale_source():
    rules = run("3204052003001", 5, 1)
    assert "stall" not in rules and "stale_source" not in rules


def test_aggregate_with_the_same_history_does():
    rules = run("3204052003", 4, 11, reported=lambda minute: 3)
    assert "stale_source" in rules


def test_an_aggregate_that_has_not_started_does_not():
    # 0 of 11 counted: the count has not started, so nothing is stale or stalled yet.
    rules = run("3204052003", 4, 11)
    assert "stall" not in rules and "stale_source" not in rules


def reports_once(region: str, level: int, stations: int, before: int = 0) -> list[str]:
    """Hours of standing still, then a form comes in: before -> before + 1 stations reported."""
    return run(region, level, stations, hours=8, reported=lambda minute: before + (minute >= 7 * 60),
               published=lambda at: at)


def test_a_station_reporting_after_hours_is_no_catch_up_jump():
    assert "jump" not in reports_once("3204052003001", 5, 1)


def test_an_aggregate_whose_next_station_comes_after_hours_is_one():
    assert "jump" in reports_once("3204052003", 4, 11, before=1)


def test_an_aggregate_whose_first_station_comes_after_hours_has_started_counting():
    # From zero the first data is the count starting, not a catch-up (phase not_started).
    assert "jump" not in reports_once("3204052003", 4, 11)
