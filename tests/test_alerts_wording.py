"""What on-call reads is true when it is sent (issue 13): a grouped message gives the group's
own figure (the parent region's) and says whose it is, a resolution measures the incident to
the resolution the detectors saw, a reminder re-renders its figures as of now."""
from __future__ import annotations

from datetime import timedelta

from alerts.pipeline import AlertPipeline
from monitor.clock import ManualClock
from monitor.metrics import Metrics
from tests.fakes.events import NIGHT, config, event, stall

CONSOLE = [{"name": "console", "kind": "console"}]


def build(tmp_path, registry, **alerting):
    cfg = config(receivers=CONSOLE, state_dir=str(tmp_path), alerting=alerting or None)
    clock = ManualClock(NIGHT)
    return AlertPipeline(cfg, Metrics(registry), clock, tmp_path / "cw.db"), clock


def test_a_grouped_line_gives_the_parents_figure_and_says_whose(tmp_path, registry, capsys):
    pipeline, _ = build(tmp_path, registry)
    kab = stall(region="3201", stations=8026, stations_reported=3347, progress_ratio=3347 / 8026)
    province = stall(region="32", stations=74962, stations_reported=31774, progress_ratio=31774 / 74962)
    pipeline.handle([kab, province])
    pipeline.tick()
    out = capsys.readouterr().out
    assert "in 2 regions" in out
    assert "| kpu-jabar/32: progress 42.39% (31,774 of 74,962 TPS reported)" in out
    assert "41.70%" not in out


def test_a_resolution_is_measured_to_the_resolution_not_to_the_send(tmp_path, registry, capsys):
    pipeline, clock = build(tmp_path, registry, group_interval="10m")
    pipeline.handle([stall()])                       # since = NIGHT - 1h
    pipeline.tick()
    clock.advance(300)
    pipeline.handle([stall(state="resolved", at=clock.now(), since=NIGHT - timedelta(hours=1))])   # 1h 05m after it began
    clock.advance(600)                               # the message leaves 10 min later (group_interval)
    pipeline.tick()
    out = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert "Resolved after 1h 05m:" in out[-1], out[-1]


def test_a_reminder_of_a_stale_source_says_how_old_the_data_is_now(tmp_path, registry, capsys):
    pipeline, clock = build(tmp_path, registry, repeat_interval="1h")
    stale = stall(summary="kpu-jabar/32 data is now 18m 56s old", last_published_at="2018-06-27T21:00:15+07:00")
    stale = type(stale)(**{**stale.__dict__, "rule": "stale_source"})
    pipeline.handle([stale])
    pipeline.tick()
    clock.advance(3600)
    pipeline.tick()
    reminder = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")][-1]
    assert "Still open after 2h" in reminder
    assert "kpu-jabar/32 still serves data published 27 Jun 21:00 WIB (14:00 UTC), now 1h 59m old" in reminder
    assert "18m 56s" not in reminder


def test_a_json_source_names_its_units_and_zone_and_kpu_limits_stay_kpus(tmp_path, registry, capsys):
    mn = {"name": "mn-sos", "kind": "json", "url": "https://electionresults.example/mn.json",
          "timezone": "America/Chicago", "units": "precincts",
          "mapping": {"total": "precincts", "reported": "reporting", "votes": "votes"}}
    other = {"name": "us-feed", "kind": "json", "url": "https://results.example/feed.json",
             "mapping": {"total": "precincts", "reported": "reporting", "votes": "votes"}}
    cfg = config(receivers=CONSOLE, state_dir=str(tmp_path), more_sources=[mn, other])
    assert cfg.source("mn-sos").units == "precincts" and cfg.source("us-feed").units == "polling stations"
    assert cfg.source("kpu-jabar").units == "TPS"
    # KPU's 300 (or Pilkada's 600) voters per TPS is KPU law, not Minnesota's
    assert cfg.source("mn-sos").detection.max_votes_per_station == 0
    assert cfg.source("kpu-jabar").detection is None or cfg.source("kpu-jabar").detection.max_votes_per_station
    clock = ManualClock(NIGHT)
    pipeline = AlertPipeline(cfg, Metrics(registry), clock, tmp_path / "cw.db")
    pipeline.handle([stall(source="mn-sos", region="MN", stations=4110, stations_reported=98,
                           progress_ratio=98 / 4110)])
    pipeline.tick()
    line = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")][-1]
    assert "(98 of 4,110 precincts reported)" in line
    assert line.startswith("[27 Jun 10:00 CDT (15:00 UTC)]"), line


def test_a_us_feed_is_summarised_in_its_units_and_zone(tmp_path, capsys):
    """The real Minnesota 2020 recording replayed with its source declared as a json feed of
    precincts in Central time: the detectors' own sentences say precincts and CST, not TPS/WIB."""
    import json as json_module
    from pathlib import Path

    from monitor.cli import main

    recording = Path(__file__).parent / "fixtures" / "external" / "mn2020" / "mn2020_sos_uspres.jsonl"
    cfg = tmp_path / "mn.toml"
    cfg.write_text('[[sources]]\nname = "mn-sos-uspres"\nkind = "json"\nurl = "https://electionresults.example/mn"\n'
                   'timezone = "America/Chicago"\nunits = "precincts"\n'
                   '[sources.mapping]\nreported = "reporting"\ntotal = "precincts"\n', encoding="utf-8")
    assert main(["replay", str(recording), "-c", str(cfg)]) == 0
    events = [json_module.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    stalls = [e for e in events if e["rule"] == "stall" and e["state"] == "firing"]
    assert stalls, [e["rule"] for e in events]
    assert "of 4,110 precincts" in stalls[0]["summary"] and "TPS" not in stalls[0]["summary"]
    assert "CST" in stalls[0]["summary"] and "WIB" not in stalls[0]["summary"]


def test_a_count_of_failed_polls_says_when_it_was_counted(tmp_path, registry, capsys):
    """The outage's failure count is the event's, not now's: a reminder (or a member riding
    along in a later message) says by when those polls had failed; the first message does not."""
    pipeline, clock = build(tmp_path, registry, repeat_interval="1h")
    down = event("outage", summary="kpu-jabar/32 still unreachable after 16m: 9 failed polls", failures=9)
    pipeline.handle([down])
    pipeline.tick()
    clock.advance(3600)
    pipeline.tick()
    first, reminder = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")][-2:]
    assert "; failed polls 9 | incident" in first, first
    assert "; failed polls 9 by 27 Jun 22:00 WIB (15:00 UTC) | incident" in reminder, reminder


def test_a_resolved_groups_length_names_whose_it_is(tmp_path, registry, capsys):
    # A stale timestamp (since 2 min before) and a stall of one series, resolved together: the
    # headline measures the incident from its earliest member, the figures the stall's own
    # length, and says so ("Lasted" beside a different "Resolved after" read as a contradiction).
    pipeline, clock = build(tmp_path, registry)
    began = NIGHT - timedelta(hours=1)
    stalled = stall(since=began)
    stale = type(stalled)(**{**stall(since=began - timedelta(minutes=2)).__dict__, "rule": "stale_source"})
    pipeline.handle([stalled, stale])
    pipeline.tick()
    clock.advance(600)
    end = clock.now()
    stalled_end = stall(state="resolved", at=end, since=began)
    stale_end = type(stalled_end)(**{**stall(state="resolved", at=end, since=began - timedelta(minutes=2)).__dict__,
                                     "rule": "stale_source"})
    pipeline.handle([stalled_end, stale_end])
    clock.advance(600)
    pipeline.tick()
    line = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")][-1]
    assert "Resolved after 1h 12m:" in line, line
    assert "stall lasted 1h 10m" in line, line
    assert "| lasted" not in line and "; lasted" not in line, line


def test_every_rule_that_resolves_names_its_length():
    from alerts.format import lasted_label
    assert [lasted_label(rule) for rule in ("stall", "stale_source", "outage", "region_stall", "not_started")] == [
        "Stall lasted", "Stale timestamp lasted", "Outage lasted", "Stall lasted", "Wait for the count lasted"]
    assert lasted_label("some_new_rule") == "Some new rule lasted"
