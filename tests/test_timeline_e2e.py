"""The review of a real run: the daemon against the simulator's `jabar-2018` scenario on the
scenario clock, its log rebuilt into the report. The report's times must match the scenario's
script (`scenario.incidents`) within one poll interval.

The run is the demo's wiring (monitor.demo.demo_config: the scenario's sources pointed at the
loopback simulator, console alerts, a JSON log) made fast enough for the test suite: the night
from 19:00 to 09:00 WIB instead of 17:00 to 10:00, the province watched without descending into
its 27 kab/kota (one request per pass, so the poll cadence holds at this speed), and an HTTP
timeout that, like the scenario's hang, is short in scenario time.

Every poll is logged when it completed, so a scripted moment is seen at the first poll after it:
a report time lies in [scripted, scripted + one poll interval], plus CLOCK_SLACK for the
accelerated clock: a pass's requests and judging take tens of wall milliseconds, and each wall
millisecond is SPEED scenario milliseconds (on wall time the same slack is milliseconds).
"""
from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

pytest.importorskip("monitor.daemon", reason="the daemon's detectors have not landed yet")
from monitor.clock import ScenarioClock  # noqa: E402
from monitor.cli import parse_config  # noqa: E402
from monitor.configtools import parse_duration  # noqa: E402
from monitor.daemon import Daemon  # noqa: E402
from monitor.demo import demo_config  # noqa: E402
from monitor.logs import configure_logging  # noqa: E402
from monitor.simulator import SimulatorServer, get_scenario  # noqa: E402
from monitor.timeline import review, write_report  # noqa: E402
from monitor.timeline.chart import chart_size, chosen_series  # noqa: E402

SPEED = 2400.0                    # 14 scenario hours in ~21 wall seconds
CLOCK_SLACK = timedelta(seconds=0.1 * SPEED)   # 100 wall ms of fetching and judging per pass
WIB = ZoneInfo("Asia/Jakarta")
RUN_FROM = datetime(2018, 6, 27, 19, 0, tzinfo=WIB)
RUN_TO = datetime(2018, 6, 28, 9, 0, tzinfo=WIB)


def run_night(scenario, out: Path) -> Path:
    clock = ScenarioClock(RUN_FROM, SPEED)
    simulator = SimulatorServer(scenario, clock)
    simulator.start()
    try:
        raw = demo_config(scenario, simulator, out, "127.0.0.1:0", environ={})
        for source in raw["sources"]:
            source["timeout"] = "0.2s"          # wall time: 8 scenario minutes at this speed
            if source["name"] == "kpu-jabar":
                source["depth"] = 0
        config = parse_config(raw)
        configure_logging("json", config.log_file, "info", config.instance, clock, stream=open(os.devnull, "w"))
        daemon = Daemon(config, clock)
        daemon.start()
        try:
            while clock.now() < RUN_TO:
                daemon.stop_event.wait(0.1)
            daemon.alerts.drain(5.0)
        finally:
            daemon.stop()
    finally:
        simulator.stop()
    return config.log_file


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("night")
    scenario = get_scenario("jabar-2018")
    log_file = run_night(scenario, out)
    report = write_report([log_file], out / "review")
    timeline = review([log_file], WIB)
    poll = timedelta(seconds=parse_duration(scenario.sources[0]["interval"]))
    return {"out": out / "review", "report": Path(report), "scenario": scenario, "timeline": timeline,
            "poll": poll}


def truth(scenario, kind: str):
    found = [i for i in scenario.incidents if i.kind == kind]
    assert len(found) == 1
    return found[0]


def first_publication_at_or_after(scenario, moment: datetime) -> datetime:
    """When a scripted change became visible: the site shows new data only at a publication."""
    return datetime.fromtimestamp(min(p for p in scenario.publications if p >= moment.timestamp()), timezone.utc)


def within_one_poll(seen: datetime | None, scripted: datetime, poll: timedelta) -> bool:
    return seen is not None and scripted <= seen <= scripted + poll + CLOCK_SLACK


def incident(timeline, rule: str, source: str, region: str):
    found = [i for i in timeline.incidents if rule in i.rules and (i.source, i.region) == (source, region)]
    assert found, [(i.rules, i.source, i.region) for i in timeline.incidents]
    return found[0]


def test_freeze_times_match_the_script(run):
    scenario, timeline, poll = run["scenario"], run["timeline"], run["poll"]
    freeze = truth(scenario, "freeze")
    stall = incident(timeline, "stall", "kpu-jabar", "32")
    assert within_one_poll(stall.started, freeze.start, poll), (stall.started, freeze.start)
    assert within_one_poll(stall.resolved, freeze.end, poll), (stall.resolved, freeze.end)
    assert stall.started < stall.detected < stall.resolved
    advance = stall.extra["last_advance"]
    assert within_one_poll(advance.at, freeze.start, poll)
    assert advance.stations_reported == freeze.details["stations_reported"]


def test_catch_up_matches_the_scripted_jump(run):
    scenario, timeline, poll = run["scenario"], run["timeline"], run["poll"]
    jump = truth(scenario, "jump")
    stall = incident(timeline, "stall", "kpu-jabar", "32")
    point, added, before = stall.extra["catch_up"]
    assert within_one_poll(point.at, jump.start, poll)
    assert added == jump.details["delta"]
    assert (before.stations_reported, point.stations_reported) == (
        jump.details["stations_reported_before"], jump.details["stations_reported_after"])
    # the review counts in the units the alerts used (KPU's TPS), read from the daemon's start line
    text = run["report"].read_text(encoding="utf-8")
    assert f"+{added:,} TPS in one update" in text
    assert f"count resumed: +{added:,} TPS (" in text and f"+{added:,} stations" not in text


def test_outage_times_match_the_script(run):
    scenario, timeline, poll = run["scenario"], run["timeline"], run["poll"]
    outage_truth = truth(scenario, "outage")
    # the scripted outage's spans (a lone poll timed out elsewhere on a loaded machine is its own
    # span, not this outage's end)
    spans = [s for s in timeline.outages if (s.source, s.region) == ("kpu-jabar", "32")
             and s.start <= outage_truth.end + poll and (s.recovered is None or s.recovered >= outage_truth.start - poll)]
    assert spans
    assert within_one_poll(spans[0].start, outage_truth.start, poll)
    assert within_one_poll(spans[-1].recovered, outage_truth.end, poll)
    outage = incident(timeline, "outage", "kpu-jabar", "32")
    assert within_one_poll(outage.started, outage_truth.start, poll)
    assert within_one_poll(outage.extra["ended"], outage_truth.end, poll)
    # the detector waits for a few good polls before it resolves (one incident for a flapping site)
    assert outage.resolved >= outage.extra["ended"]


def test_over_capacity_is_seen_at_its_publication(run):
    scenario, timeline, poll = run["scenario"], run["timeline"], run["poll"]
    inflated = truth(scenario, "over_capacity")
    found = [i for i in timeline.incidents if "over_capacity" in i.rules and i.region == inflated.details["region"]]
    assert found, [(i.rules, i.region) for i in timeline.incidents]
    visible = first_publication_at_or_after(scenario, inflated.start)
    assert within_one_poll(found[0].detected, visible, poll)


def test_people_were_told_and_the_report_says_when(run):
    timeline = run["timeline"]
    stall = incident(timeline, "stall", "kpu-jabar", "32")
    assert stall.notified is not None and stall.detected <= stall.notified <= stall.resolved
    text = run["report"].read_text(encoding="utf-8")
    started_local = stall.started.astimezone(WIB).strftime("%d %b %Y %H:%M:%S WIB")
    assert started_local in text
    data = json.loads((run["out"] / "report.json").read_text(encoding="utf-8"))
    assert data["read"]["truncated"] == 0 and data["read"]["foreign"] == 0


def test_the_chart_of_the_run(run):
    image = pytest.importorskip("matplotlib.image")
    panels = len(chosen_series(run["timeline"]))
    assert panels >= 1
    pixels = image.imread(Path(run["out"]) / "timeline.png")
    width, height = chart_size(panels)
    assert pixels.shape[:2] == (height, width)
    assert pixels[..., :3].std() > 0.05
