"""The post-incident review on hand-written logs (tests/fixtures/logs/night-a.log, whose script
is in make_night.py): reading, rebuilding incidents, merging instances, rendering, the CLI."""
from __future__ import annotations

import argparse
import gzip
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from monitor.model import iso_utc, parse_iso
from monitor.timeline import add_parser, review, write_report
from monitor.timeline.fmt import both, duration, redact
from monitor.timeline.incidents import notification_keys
from monitor.timeline.records import expand_paths, read_logs

NIGHT = Path(__file__).parent / "fixtures" / "logs" / "night-a.log"
WIB = ZoneInfo("Asia/Jakarta")


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2018, 6, 27, hh, mm, ss, tzinfo=timezone.utc)


def lines() -> list[str]:
    return NIGHT.read_text(encoding="utf-8").splitlines()


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["timeline", *argv])
    return args.func(args)


def by_rules(timeline, *rules):
    found = [i for i in timeline.incidents if i.rules == list(rules)]
    assert len(found) == 1, [i.rules for i in timeline.incidents]
    return found[0]


# --- reading ------------------------------------------------------------------------------

def test_foreign_lines_are_counted_and_skipped():
    records, stats = read_logs([NIGHT])
    assert stats.foreign == 3          # two traceback lines and another program's JSON
    assert stats.truncated == 0
    assert stats.records == len(records) == len(lines()) - 3
    assert {r.instance for r in records} == {"cw-a"}
    assert [r.at for r in records] == sorted(r.at for r in records)


def test_truncated_last_line_is_tolerated(tmp_path):
    text = NIGHT.read_text(encoding="utf-8")
    cut = tmp_path / "countwatch.log"
    cut.write_text(text + '{"event": "poll", "source": "kpu-jabar", "region": "32", "times', encoding="utf-8")
    timeline = review([cut], WIB)
    assert timeline.stats.truncated == 1
    assert timeline.stats.foreign == 3
    assert [i.rules for i in timeline.incidents] == [i.rules for i in review([NIGHT], WIB).incidents]


def test_rotated_and_gzipped_files_read_as_one_stream(tmp_path):
    all_lines = lines()
    third = len(all_lines) // 3
    (tmp_path / "countwatch.log.2").write_text("\n".join(all_lines[:third]) + "\n", encoding="utf-8")
    with gzip.open(tmp_path / "countwatch.log.1.gz", "wt", encoding="utf-8") as handle:
        handle.write("\n".join(all_lines[third:2 * third]) + "\n")
    (tmp_path / "countwatch.log").write_text("\n".join(all_lines[2 * third:]) + "\n", encoding="utf-8")
    assert [p.name for p in expand_paths([tmp_path])] == ["countwatch.log.2", "countwatch.log.1.gz", "countwatch.log"]
    whole = review([NIGHT], WIB)
    split = review([tmp_path], WIB)
    assert split.stats.records == whole.stats.records
    assert len(split.stats.files) == 3
    summary = [(i.rules, i.started, i.detected, i.notified, i.resolved) for i in split.incidents]
    assert summary == [(i.rules, i.started, i.detected, i.notified, i.resolved) for i in whole.incidents]


def test_gzip_cut_short_keeps_what_decompressed(tmp_path):
    packed = gzip.compress(NIGHT.read_bytes())
    broken = tmp_path / "countwatch.log.1.gz"
    broken.write_bytes(packed[: len(packed) * 2 // 3])
    records, stats = read_logs([broken])
    assert 0 < stats.records < len(lines()) - 3
    assert any("ends early" in note for note in stats.notes)


def test_the_same_file_twice_is_read_once_and_copies_are_deduplicated(tmp_path):
    copy = tmp_path / "copy.log"
    copy.write_bytes(NIGHT.read_bytes())
    records, stats = read_logs([NIGHT, NIGHT, copy])
    assert len(stats.files) == 2
    assert stats.records == len(lines()) - 3
    assert stats.duplicates == len(lines()) - 3


# --- rebuilding ---------------------------------------------------------------------------

def test_stall_incident_times_from_the_script():
    timeline = review([NIGHT], WIB)
    assert [i.rules for i in timeline.incidents] == [["stall", "stale_source"], ["outage"], ["over_capacity"]]
    stall = by_rules(timeline, "stall", "stale_source")
    assert stall.id == "#1"
    assert stall.started == at(14, 20)                 # the detector's `since`, the last advance
    assert stall.detected == at(14, 50)
    assert stall.notified == at(14, 50, 2)
    assert stall.resolved == at(16, 40)
    assert stall.severity == "critical"                # escalated at 15:20
    advance = stall.extra["last_advance"]
    assert (advance.at, advance.stations_reported) == (at(14, 20), 48000)
    point, added, before = stall.extra["catch_up"]
    assert (point.at, added, before.stations_reported) == (at(16, 40), 9000, 48000)
    assert [o.get("rule") for o in stall.observed] == ["jump"]     # the catch-up jump belongs to it
    assert [(s.start, s.recovered) for s in stall.extra["outages"]] == [(at(15, 30), at(15, 50))]


def test_outage_incident_counts_only_the_send_that_got_through():
    outage = by_rules(review([NIGHT], WIB), "outage")
    assert (outage.started, outage.detected, outage.resolved) == (at(15, 30), at(15, 40), at(15, 50))
    assert outage.notified == at(15, 41, 1)            # the 15:40:01 send failed, the retry worked
    assert [n.event for n in outage.notifications] == [
        "notification.queued", "notification.failed", "notification.retry", "notification.sent",
        "notification.sent"]
    assert outage.extra["catch_up"] is None            # the count resumed long after: the stall's story


def test_length_runs_to_the_end_the_polls_saw_not_to_a_late_resolution(tmp_path):
    # an outage detector with hysteresis resolves after a few good polls: 15:55, not 15:50
    late = tmp_path / "late.log"
    late.write_text(NIGHT.read_text(encoding="utf-8").replace(
        '"event_at": "2018-06-27T15:50:00Z", "rule": "outage"', '"event_at": "2018-06-27T15:55:00Z", "rule": "outage"'),
        encoding="utf-8")
    outage = by_rules(review([late], WIB), "outage")
    assert outage.resolved == at(15, 55)
    assert outage.extra["ended"] == at(15, 50)          # the first ok poll after the failures
    stall = by_rules(review([late], WIB), "stall", "stale_source")
    assert stall.extra["ended"] == at(16, 40)           # the catch-up poll
    out = tmp_path / "late.json"
    assert cli(str(late), "--out", str(out)) == 0
    second = json.loads(out.read_text())["incidents"][1]
    assert (second["rules"], second["length_seconds"]) == (["outage"], 1200)
    assert second["resolved"]["utc"] == "2018-06-27T15:55:00Z"


def test_an_outage_ends_where_its_detector_said_the_polls_answered_again(tmp_path):
    # the detector measures by the polls' start times; a poll line is stamped when the poll
    # ends, so the two differ by the poll's latency: the review repeats the detector's span
    said = tmp_path / "said.log"
    said.write_text(NIGHT.read_text(encoding="utf-8").replace(
        '"summary": "polls succeed again after 20m", "details": {}',
        '"summary": "polls succeed again after 19m 59s", "details": {"recovered_at": "2018-06-27T15:49:59.600Z"}'),
        encoding="utf-8")
    outage = by_rules(review([said], WIB), "outage")
    assert outage.extra["ended"] == parse_iso("2018-06-27T15:49:59.600Z")
    assert [(s.start, s.recovered) for s in outage.extra["outages"]] == [(at(15, 30), at(15, 50))]   # poll lines


def test_notifications_join_their_incident_by_key_and_id():
    stall = by_rules(review([NIGHT], WIB), "stall", "stale_source")
    assert [(n.event, n.get("reason")) for n in stall.notifications] == [
        ("notification.queued", "first"), ("notification.grouped", "first"), ("notification.sent", "first"),
        ("notification.sent", "escalated"), ("notification.sent", "resolved")]


def test_a_grouped_notification_joins_every_incident_it_told_about(tmp_path):
    def line(moment, event, **fields):
        return json.dumps({**fields, "event": event, "level": "info", "timestamp": iso_utc(moment),
                           "instance": "cw-a"})

    rows = []
    for region in ("91", "94"):       # two Papua provinces stalling in one poll
        rows.append(line(at(14, 50), "detector.event", rule="region_stall", state="firing", severity="warning",
                         source="kpu-ppwp", region=region, since=iso_utc(at(13, 0)), summary="flat", details={},
                         event_at=iso_utc(at(14, 50))))
    rows.append(line(at(14, 51), "notification.queued", receiver="oncall", alert_key="region_stall/kpu-ppwp/91",
                     reason="first", notification="n9", members=2))
    rows.append(line(at(14, 51), "notification.grouped", receiver="oncall", alert_key="region_stall/kpu-ppwp/94",
                     reason="first", notification="n9"))
    rows.append(line(at(14, 52), "notification.sent", receiver="oncall", alert_key="region_stall/kpu-ppwp/91",
                     reason="first", notification="n9"))
    path = tmp_path / "papua.log"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    timeline = review([path], WIB)
    assert [(i.region, i.notified) for i in timeline.incidents] == [("91", at(14, 52)), ("94", at(14, 52))]
    assert not [c for c in timeline.context if c.kind == "notification"]


def test_point_anomaly_and_info_observation():
    timeline = review([NIGHT], WIB)
    capacity = by_rules(timeline, "over_capacity")
    assert capacity.point and capacity.region == "3201010001001"
    assert capacity.started == capacity.detected == at(18, 10)
    assert capacity.notified == at(18, 10, 1)
    assert [(o.at, o.get("rule")) for o in timeline.observations] == [(at(18, 30), "correction")]


def test_outage_spans_are_runs_of_failed_polls():
    spans = review([NIGHT], WIB).outages
    assert len(spans) == 1
    assert (spans[0].start, spans[0].last_failed, spans[0].recovered) == (at(15, 30), at(15, 45), at(15, 50))
    assert spans[0].results == {"http_5xx": 4}


def test_rows_tell_the_night_in_order():
    stall = by_rules(review([NIGHT], WIB), "stall", "stale_source")
    rows = stall.extra["rows"]
    assert [r.at for r in rows] == sorted(r.at for r in rows)
    kinds = [r.kind for r in rows]
    assert kinds[0] == "last_advance"
    assert kinds.index("firing") < kinds.index("escalated") < kinds.index("outage") < kinds.index("recovered")
    assert kinds.index("catch_up") < kinds.index("resolved")
    # two lines with one timestamp keep the order they were written in
    firings = [r.text.split()[0] for r in rows if r.kind == "firing"]
    assert firings == ["stall", "stale_source"]
    # the source's own clock follows the summary as one sentence (no ".;" when it ends in a period)
    stall_row = next(r.text for r in rows if r.kind == "firing")
    assert stall_row.endswith("(threshold 25m); source's last publication 2018-06-27T21:20:15+07:00"), stall_row


def test_notification_keys_from_each_field_shape():
    assert notification_keys({"alert_key": "stall/kpu/32", "members": 2}) == {("stall", "kpu", "32")}
    assert notification_keys({"key": "stall/kpu/32"}) == {("stall", "kpu", "32")}
    assert notification_keys({"key": ["stall", "kpu", "32"]}) == {("stall", "kpu", "32")}
    assert notification_keys({"rule": "outage", "source": "kpu", "region": "0", "key": "x"}) == {("outage", "kpu", "0")}
    assert notification_keys({"key": "g1", "members": ["stall|kpu|32", {"rule": "stale_source", "source": "kpu",
                                                                        "region": "32"}]}) == {
        ("stall", "kpu", "32"), ("stale_source", "kpu", "32")}
    assert notification_keys({"key": "group-of-things"}) == set()


# --- several instances --------------------------------------------------------------------

def _second_instance(tmp_path: Path, skew: timedelta, name: str = "cw-b") -> Path:
    """The same night seen by a second instance whose clock runs `skew` ahead; it logged polls
    and detector events only (the alerts went out from cw-a)."""
    out = []
    for text in lines():
        try:
            data = json.loads(text)
        except ValueError:
            continue
        if data.get("event") not in ("poll", "detector.event"):
            continue
        data["instance"] = name
        for key in ("timestamp", "event_at"):
            if data.get(key):
                data[key] = iso_utc(parse_iso(data[key]) + skew)
        out.append(json.dumps(data))
    path = tmp_path / f"{name}.log"
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


def test_two_instances_merge_into_one_timeline(tmp_path):
    other = _second_instance(tmp_path, timedelta(minutes=7))
    timeline = review([NIGHT, other], WIB)
    assert sorted(timeline.instances) == ["cw-a", "cw-b"]
    # one incident per happening, not one per instance
    assert [i.rules for i in timeline.incidents] == [["stall", "stale_source"], ["outage"], ["over_capacity"]]
    stall = by_rules(timeline, "stall", "stale_source")
    assert {lc.instance for lc in stall.lifecycles} == {"cw-a", "cw-b"}
    assert stall.detected == at(14, 50) and stall.detecting_instance == "cw-a"
    assert stall.resolved == at(16, 40)               # the first instance to see it resolve
    rows = stall.extra["rows"]
    assert [(r.at, r.instance) for r in rows] == sorted((r.at, r.instance) for r in rows)
    assert (at(14, 57), "cw-b") in [(r.at, r.instance) for r in rows if r.kind == "firing"]
    # the skew is measured and said, but times stay as logged unless asked
    assert timeline.instances["cw-b"]["offset_seconds"] == pytest.approx(420)
    assert "cw-b's clock looks 7m ahead of cw-a's" in timeline.clock_note
    assert "--align-clocks" in timeline.clock_note


def test_equal_timestamps_order_by_instance_name(tmp_path):
    other = _second_instance(tmp_path, timedelta(0), name="aa-first")
    records, _ = read_logs([NIGHT, other])
    same = [r.instance for r in records if r.at == at(14, 50) and r.event == "detector.event"]
    assert same == ["aa-first", "aa-first", "cw-a", "cw-a"]


def test_align_clocks_moves_an_instance_onto_the_reference(tmp_path):
    other = _second_instance(tmp_path, timedelta(minutes=7))
    timeline = review([NIGHT, other], WIB, align_clocks=True)
    stall = by_rules(timeline, "stall", "stale_source")
    firings = {(r.at, r.instance) for r in stall.extra["rows"] if r.kind == "firing"}
    assert firings == {(at(14, 50), "cw-a"), (at(14, 50), "cw-b")}
    assert "moved onto the reference" in timeline.clock_note


# --- rendering and the command ------------------------------------------------------------

def test_markdown_report_has_the_summary_in_both_zones(tmp_path):
    out = tmp_path / "review.md"
    assert cli(str(NIGHT), "--out", str(out)) == 0
    text = out.read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| #1 "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:5] == ["#1", "i1", "stall + stale_source", "kpu-jabar/32", "critical"]   # i1: the alert incident id
    cells = cells[:1] + cells[2:]
    assert cells[4] == "27 Jun 2018 21:20:00 WIB (14:20:00 UTC)"
    assert cells[5] == "27 Jun 2018 21:50:00 WIB (14:50:00 UTC)"
    assert cells[6] == "27 Jun 2018 21:50:02 WIB (14:50:02 UTC)"
    assert cells[7] == "27 Jun 2018 23:40:00 WIB (16:40:00 UTC)"
    assert cells[8:] == ["30m", "30m 02s", "2h 20m"]
    assert "count resumed: +9,000 stations (64.03% → 76.04%)" in text
    assert "Chart skipped: not requested" in text


def test_the_review_counts_in_the_units_the_daemon_said(tmp_path):
    # A log from before the start line named units says "stations" (above); one whose start line
    # says what the source counts reads as its alerts did.
    log = tmp_path / "night.log"
    first, *rest = lines()
    start = json.loads(first)
    log.write_text("\n".join([json.dumps({**start, "units": {"kpu-jabar": "TPS"}}), *rest]) + "\n", encoding="utf-8")
    out = tmp_path / "review.md"
    assert cli(str(log), "--out", str(out)) == 0
    text = out.read_text(encoding="utf-8")
    assert "count resumed: +9,000 TPS (64.03% → 76.04%)" in text
    assert "+9,000 TPS in one update" in text
    assert "last poll that saw the count advance: 48,000 of 74,962 TPS (64.03%)" in text


def test_json_report_carries_utc_and_local_times(tmp_path):
    out = tmp_path / "review.json"
    assert cli(str(NIGHT), "--out", str(out)) == 0     # the format follows the suffix
    data = json.loads(out.read_text(encoding="utf-8"))
    first = data["incidents"][0]
    assert first["started"] == {"utc": "2018-06-27T14:20:00Z", "local": "2018-06-27T21:20:00+07:00"}
    assert first["time_to_detect_seconds"] == 1800
    assert first["time_to_notify_seconds"] == 1802
    assert first["length_seconds"] == 8400
    assert first["catch_up"]["added"] == 9000
    assert data["read"]["foreign"] == 3
    assert [o["rule"] for o in data["observations"]] == ["correction"]


def test_html_report_escapes_and_links_the_chart(tmp_path):
    hostile = tmp_path / "hostile.log"
    text = NIGHT.read_text(encoding="utf-8").replace("count stalled for 30m", "<script>alert(1)</script>")
    hostile.write_text(text, encoding="utf-8")
    out = tmp_path / "html" / "review.html"
    assert cli(str(hostile), "--out", str(out), "--chart", str(tmp_path / "html" / "chart.png")) == 0
    page = out.read_text(encoding="utf-8")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<img src='chart.png'" in page
    assert "<table>" in page


def test_no_secret_reaches_any_report(tmp_path):
    # the fixture's failed send carries a Slack webhook URL in its error text
    assert "hooks.slack.com/services/T000/B000/SECRETSECRET" in NIGHT.read_text(encoding="utf-8")
    main = Path(write_report([NIGHT], tmp_path))
    for name in ("report.md", "report.html", "report.json"):
        text = (tmp_path / name).read_text(encoding="utf-8")
        assert "SECRETSECRET" not in text and "hooks.slack.com" not in text, name
    assert "error: HTTP 500 from ***; attempts: 1" in main.read_text(encoding="utf-8")


def test_filters_by_source_region_and_time(tmp_path):
    out = tmp_path / "r.json"
    assert cli(str(NIGHT), "--region", "3201010001001", "--format", "json", "--out", str(out)) == 0
    assert [i["rules"] for i in json.loads(out.read_text())["incidents"]] == [["over_capacity"]]
    # a time without a zone is WIB: 28 Jun 00:00 WIB is 27 Jun 17:00 UTC, after the stall ended
    assert cli(str(NIGHT), "--from", "2018-06-28 00:00", "--format", "json", "--out", str(out)) == 0
    assert [i["id"] for i in json.loads(out.read_text())["incidents"]] == ["#3"]
    assert cli(str(NIGHT), "--to", "2018-06-27T15:00:00Z", "--format", "json", "--out", str(out)) == 0
    assert [i["id"] for i in json.loads(out.read_text())["incidents"]] == ["#1"]
    assert cli(str(NIGHT), "--source", "elsewhere", "--out", str(tmp_path / "r.md")) == 0
    assert "No incident in these logs" in (tmp_path / "r.md").read_text()


def test_bad_usage_exits_2(tmp_path, capsys):
    assert cli(str(tmp_path / "missing.log")) == 2
    assert "no readable log file" in capsys.readouterr().err
    foreign = tmp_path / "other.log"
    foreign.write_text('{"msg": "not ours"}\nplain text\n', encoding="utf-8")
    assert cli(str(foreign)) == 2
    assert "no countwatch log lines" in capsys.readouterr().err
    assert cli(str(NIGHT), "--from", "yesterday-ish") == 2
    assert cli(str(NIGHT), "--timezone", "Mars/Olympus") == 2


def test_unwritable_output_is_a_runtime_failure(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli(str(NIGHT), "--out", str(blocker / "report.md")) == 1


def test_write_report_reads_the_rotated_siblings_of_the_live_file(tmp_path):
    all_lines = lines()
    logs = tmp_path / "logs"
    logs.mkdir()
    with gzip.open(logs / "countwatch.log.1.gz", "wt", encoding="utf-8") as handle:
        handle.write("\n".join(all_lines[:60]) + "\n")
    (logs / "countwatch.log").write_text("\n".join(all_lines[60:]) + "\n", encoding="utf-8")
    (logs / "countwatch.log.old-notes").write_text("not a rotation\n", encoding="utf-8")
    write_report([logs / "countwatch.log"], tmp_path / "out")
    data = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert [Path(f).name for f in data["read"]["files"]] == ["countwatch.log.1.gz", "countwatch.log"]
    assert data["read"]["records"] == len(all_lines) - 3
    assert data["incidents"][0]["started"]["utc"] == "2018-06-27T14:20:00Z"


def test_write_report_writes_every_format_and_returns_the_markdown(tmp_path):
    main = write_report([NIGHT], tmp_path / "out")
    assert main == str(tmp_path / "out" / "report.md")
    for name in ("report.md", "report.html", "report.json", "timeline.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0, name
    assert "![progress" in Path(main).read_text(encoding="utf-8")


# --- formatting ---------------------------------------------------------------------------

def test_both_zones_show_the_day_change():
    assert both(at(14, 20), WIB) == "27 Jun 2018 21:20:00 WIB (14:20:00 UTC)"
    assert both(at(18, 10), WIB) == "28 Jun 2018 01:10:00 WIB (27 Jun 18:10:00 UTC)"


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (59.6, "1m"), (725, "12m 05s"), (8400, "2h 20m"),
                                           (127800, "1d 11h"), (-90, "-1m 30s")])
def test_durations(seconds, text):
    assert duration(seconds) == text


def test_redaction_of_tokens_and_webhooks():
    text = ("post https://hooks.slack.com/services/T0/B0/abc failed; token xoxb-1-2-abc; Bearer abcdefghijkl; "
            "https://user:pw@example.org/x?token=s3cr3t&page=2")
    clean = redact(text)
    for secret in ("hooks.slack.com", "xoxb-1", "abcdefghijkl", "user:pw", "s3cr3t"):
        assert secret not in clean
    assert "page=2" in clean


def test_timeline_finds_an_incident_by_the_id_slack_showed(tmp_path, capsys):
    assert cli(str(NIGHT), "--incident", "i1", "--format", "json") == 0
    data = json.loads(capsys.readouterr().out)
    assert [i["alert_ids"] for i in data["incidents"]] == [["i1"]]
    assert data["incidents"][0]["rules"] == ["stall", "stale_source"]
    assert data["filters"]["incident"] == "i1"
    assert cli(str(NIGHT), "--incident", "0123456789ab") == 2
    assert "no incident 0123456789ab" in capsys.readouterr().err


def test_times_are_as_precise_as_a_pass_of_the_source_not_as_a_documents_own_fetches(tmp_path):
    """A tree's TPS document is fetched only when its parent says it changed: its own polls are
    hours apart (here 12:00 and 18:10) while every 5-minute pass of the source would have seen
    a change. The review states the pass, not the document's gap."""
    def poll(moment, reported):
        return json.dumps({"event": "poll", "level": "info", "timestamp": iso_utc(moment), "instance": "cw-a",
                           "source": "kpu-jabar", "region": "3201010001001", "poll_id": f"tps-{moment:%H%M}",
                           "result": "ok", "latency": 0.05, "stations_reported": reported, "stations": 1,
                           "changed": True})
    log = tmp_path / "night.log"
    log.write_text("\n".join([poll(at(12, 0), 0), *lines(), poll(at(18, 10), 1)]) + "\n", encoding="utf-8")
    timeline = review([log], WIB)
    capacity = by_rules(timeline, "over_capacity")
    assert capacity.extra["poll_interval"] == timedelta(hours=6, minutes=10)     # the document's own gap
    assert capacity.extra["precision"] == timedelta(minutes=5)                   # the source's pass
    out = tmp_path / "review.md"
    assert cli(str(log), "--out", str(out)) == 0
    text = out.read_text(encoding="utf-8")
    assert "Poll interval: 5m (times above are as precise as one poll of the source)" in text
    assert "Poll interval: 6h 10m" not in text
