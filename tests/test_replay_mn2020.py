"""A real feed countwatch was not tuned on: Minnesota's SoS results, US President 2020 (CC0;
tests/fixtures/external/mn2020/SOURCE.md), replayed through `countwatch replay` with the config a
user would write for it (its time zone; precincts have no 300-voter limit).

What issue #12 asks of it:
- no stall or stale page (warning or critical) while it stands at zero (16:10 UTC on 3 Nov to
  02:20 on 4 Nov), nor once 99.5% of precincts are in: no such alert fires then, and none
  opened before (on the test data, say) is still open then;
- the reset of its test data to zero at 16:10 is a `regression` warning: that is news;
- its first batches after counting starts (02:20-02:50: +207k, +417k, +204k votes) are not jumps.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from monitor.cli import main
from monitor.evaluation.mn2020 import read_csv
from monitor.recording import poll_to_record, read_recording

HERE = Path(__file__).parent / "fixtures" / "external" / "mn2020"
CSV = HERE / "mn2020_sos_polls.csv"
RECORDING = HERE / "mn2020_sos_uspres.jsonl"
PAGING = ("warning", "critical")
STOPPAGE = ("stall", "stale_source")
CONFIG = """
[daemon]
timezone = "America/Chicago"

[[sources]]
name = "mn-sos-uspres"
kind = "json"
url = "http://127.0.0.1:9/uspres.json"
interval = "10m"
timezone = "America/Chicago"
detection = { max_votes_per_station = 3000 }   # US precincts: no 300-voter limit
[sources.mapping]
reported = "precincts.reported"
total = "precincts.total"
votes = "votes"
"""


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


ZERO_FROM, ZERO_UNTIL = utc("2020-11-03T16:10:16"), utc("2020-11-04T02:20:05")


def _events(tmp_path, capsys, config_text: str = CONFIG) -> list[dict]:
    config = tmp_path / "mn.toml"
    config.write_text(config_text)
    assert main(["replay", "-c", str(config), str(RECORDING)]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def _open_spans(events: list[dict], rules: tuple[str, ...]) -> list[tuple[datetime, datetime, dict]]:
    """[opened, closed) of every paging alert of `rules` (closed: its resolution, or never)."""
    spans, opened = [], {}
    for e in events:
        if e["rule"] not in rules:
            continue
        key = (e["rule"], e["region"])
        at = datetime.fromisoformat(e["at"].replace("Z", "+00:00"))
        if e["state"] in ("firing", "escalated") and e["severity"] in PAGING and key not in opened:
            opened[key] = (at, e)
        elif e["state"] == "resolved" and key in opened:
            start, first = opened.pop(key)
            spans.append((start, at, first))
    spans += [(start, datetime.max.replace(tzinfo=timezone.utc), first) for start, first in opened.values()]
    return spans


def test_the_fixture_names_its_provenance_and_the_recording_is_its_conversion():
    source = (HERE / "SOURCE.md").read_text()
    assert "4e2170c25ab59fbd553ec8a63954ffda06859221" in source and "CC0" in source
    converted = [json.dumps(poll_to_record(p), separators=(",", ":"), ensure_ascii=False) for p in read_csv(CSV)]
    assert RECORDING.read_text(encoding="utf-8").splitlines() == converted
    polls = list(read_recording(RECORDING))
    first = polls[0].snapshot
    assert first.stations == 4110 and first.stations_reported == 98 and first.published_at is None
    assert sum(p.ok and p.snapshot is not None for p in polls) == len(CSV.read_text().splitlines()) - 1
    final = [p.snapshot for p in polls if p.snapshot is not None][-1]
    assert final.stations_reported == 4110


def test_the_reset_of_test_data_to_zero_is_a_regression_warning(tmp_path, capsys):
    events = _events(tmp_path, capsys)
    regressions = [e for e in events if e["rule"] == "regression"]
    assert [(e["at"], e["severity"]) for e in regressions][:1] == [("2020-11-03T16:10:16Z", "warning")]
    assert regressions[0]["details"]["stations_reported"] == 0
    # One cause, one page: the votes cleared with the stations are the regression's.
    beside = [(e["rule"], e["severity"]) for e in events if e["at"] == "2020-11-03T16:10:16Z"
              and e["severity"] in PAGING and e["state"] in ("observed", "firing", "escalated")]
    assert beside == [("regression", "warning")]
    assert regressions[0]["details"]["votes"]["total_decrease"] == 6_923


def test_the_first_batches_after_counting_starts_are_not_jumps(tmp_path, capsys):
    events = _events(tmp_path, capsys)
    first = [e for e in events if e["rule"] == "jump" and e["severity"] in PAGING
             and "2020-11-04T02:20:00Z" <= e["at"] <= "2020-11-04T02:50:05Z"]
    assert first == [], [e["summary"] for e in first]


def test_no_stoppage_page_while_the_feed_stands_at_zero(tmp_path, capsys):
    spans = _open_spans(_events(tmp_path, capsys), STOPPAGE)
    during = [(start, first["summary"]) for start, end, first in spans if start < ZERO_UNTIL and end > ZERO_FROM]
    assert during == [], f"stall/stale pages open while the feed stood at zero: {during}"


def test_no_stoppage_page_once_99_5_percent_of_precincts_are_in(tmp_path, capsys):
    polls = [p for p in read_recording(RECORDING) if p.snapshot is not None]
    nearly = next(p.at for p in polls if p.snapshot.stations_reported >= 0.995 * p.snapshot.stations)
    assert nearly == utc("2020-11-04T10:30:06")
    spans = _open_spans(_events(tmp_path, capsys), STOPPAGE)
    late = [(start, first["summary"]) for start, end, first in spans if end > nearly]
    assert late == [], f"stall/stale pages with 99.5% of precincts in: {late}"


def test_the_test_data_pages_on_the_prior_unless_the_user_says_when_counting_starts(tmp_path, capsys):
    # On our first poll (07:34 UTC, 01:34 CST on election day) the feed shows 98 of 4,110
    # precincts: a feed already counting on our first poll is counting (the real 2024 recording
    # starts at 66% in a freeze that must page), so nothing in the feed says this is test data.
    # With no history the 2-hour prior pages (09:39 UTC), until the reset to zero closes it.
    # Never seen moving and with no timestamp of its own, it stays a warning (no critical at
    # 11:39) and says why: one page, not two.
    plain_events = _events(tmp_path, capsys)
    plain = _open_spans(plain_events, STOPPAGE)
    assert [(start, first["severity"]) for start, _, first in plain if start < ZERO_FROM] == [
        (utc("2020-11-03T09:39:46"), "warning")]
    before_reset = [e for e in plain_events if e["rule"] == "stall" and e["at"] < "2020-11-03T16:10:16Z"]
    assert [(e["state"], e["severity"]) for e in before_reset] == [("firing", "warning")]
    assert "not seen advancing since we began watching" in before_reset[0]["summary"]
    assert "a warning until it moves" in before_reset[0]["summary"]
    # A user who knows the polls close at 20:00 CST writes counting_starts: then nothing pages
    # before the count starts (02:20 UTC), not_started neither (the count starts within the
    # grace), and everything after is as without it.
    known = CONFIG.replace("detection = { max_votes_per_station = 3000 }",
                           'detection = { max_votes_per_station = 3000, counting_starts = "2020-11-03T20:00:00-06:00" }')
    events = _events(tmp_path, capsys, known)
    spans = _open_spans(events, STOPPAGE + ("not_started",))
    assert [(start, first["summary"]) for start, _, first in spans if start < ZERO_UNTIL] == []
    assert [e for e in events if e["rule"] == "not_started"] == []
    after = lambda evs: [(e["at"], e["rule"], e["state"], e["severity"]) for e in evs if e["at"] >= "2020-11-04T02:20:05Z"]
    assert after(events) == after(_events(tmp_path, capsys))


def test_a_small_share_shift_on_the_big_count_is_no_jump(tmp_path, capsys):
    """08:30 -> 08:40 UTC on 4 Nov: +17,965 votes and no new precinct move Biden's share by
    +0.12 points. A batch 22 points more Biden than the running total (one county's absentee
    ballots) does that; it could move it by 0.27 points. Not news: no jump warning then, nor
    for any other update's shares."""
    events = _events(tmp_path, capsys)
    at_0840 = [e for e in events if e["rule"] == "jump" and e["at"] == "2020-11-04T08:40:07Z"]
    assert at_0840 == [], [e["summary"] for e in at_0840]
    shifts = [e for e in events if e["rule"] == "jump" and e["details"].get("kind") == "share_shift"]
    assert shifts == [], [e["summary"] for e in shifts]
