"""A step of the system clock must not fake a stall, and must not blind the detectors.

The detectors judge on our clock. `countwatch run` uses monitor.clock.SteadyClock: the wall
time at start-up advanced by the monotonic clock, so a step of the system clock is not seen
by them (a restart adopts the stepped clock). These tests inject both clocks: the source
publishes every 5 minutes on true time, we poll every minute, and after two hours of normal
publishing the system clock steps three hours forward or back. A clock that follows the
system clock (what the daemon would do without SteadyClock) is run on the same script, to
show what the step does there and that the test can tell."""
from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client import CollectorRegistry

from monitor.clock import ManualClock, SteadyClock
from monitor.cli import parse_config
from monitor.detectors import Judge
from monitor.logs import configure_logging
from monitor.metrics import Metrics
from monitor.poll import SourceWatcher
from tests.feed import Feed, Reply
from tests.reliability.hostile import body, province_doc

TRUE_START = datetime(2024, 2, 15, 13, 0, 0, tzinfo=timezone.utc)
PERIOD = 300              # the source publishes every 5 minutes, at :00:15
STEP = 3 * 3600           # the system clock steps by three hours
CLOSE = {"Connection": "close"}


class Machine:
    """True time (the monotonic clock) and a system wall clock that can be stepped."""

    def __init__(self):
        self.true = 0.0
        self.step = 0.0

    def monotonic(self) -> float:
        return 10_000.0 + self.true

    def wall(self) -> float:
        return TRUE_START.timestamp() + self.true + self.step


def _document(true_seconds: float) -> bytes:
    index = int((true_seconds - 15) // PERIOD)
    published = TRUE_START + timedelta(seconds=index * PERIOD + 15)
    wib = (published + timedelta(hours=7)).strftime("%Y-%m-%d %H:%M:%S")
    return body(province_doc(100 + 10 * index, ts=wib))


def _run(clock_kind: str, step: float, outage_after_step: bool) -> list[tuple[float, str, str]]:
    """Poll every minute for 2.5 h of true time; the clock steps after 2 h. Returns the
    events as (true minute, rule, state)."""
    machine = Machine()
    if clock_kind == "steady":
        clock = SteadyClock(wall=machine.wall, monotonic=machine.monotonic)
        sync = lambda: None                                  # noqa: E731 - reads the machine itself
    else:
        clock = ManualClock(datetime.fromtimestamp(machine.wall(), timezone.utc))
        sync = lambda: clock.set(datetime.fromtimestamp(machine.wall(), timezone.utc))   # noqa: E731
    events = []
    with Feed() as feed:
        config = parse_config({"daemon": {"state_dir": "unused"},
                               "sources": [{"name": "kpu", "kind": "sirekap", "url": feed.url("/ppwp.json"),
                                            "region": "32", "interval": "60s", "timeout": "1s", "retries": 0,
                                            "rate_limit": 0}]})
        watcher = SourceWatcher(config.sources[0], Judge(config), Metrics(CollectorRegistry()), clock)
        try:
            for minute in range(150):
                machine.true = 30 + 60 * minute
                if minute == 122:
                    machine.step = step
                down = outage_after_step and minute >= 122
                feed.set("/ppwp.json", Reply(503, b"down", CLOSE) if down else Reply(200, _document(machine.true), CLOSE))
                sync()
                events += [(minute, e.rule, e.state) for e in watcher.poll_once()]
        finally:
            watcher.close()
    return events


@pytest.fixture(autouse=True)
def quiet_logs():
    configure_logging("json", stream=io.StringIO(), level="warning")


def test_steady_clock_does_not_follow_a_step_of_the_system_clock():
    machine = Machine()
    clock = SteadyClock(wall=machine.wall, monotonic=machine.monotonic)
    start = clock.now()
    machine.true = 60
    machine.step = STEP
    assert clock.now() - start == timedelta(seconds=60)
    assert clock.offset() == STEP
    machine.true = 120
    machine.step = -STEP
    assert clock.now() - start == timedelta(seconds=120)
    assert clock.offset() == -STEP


@pytest.mark.parametrize("step", [STEP, -STEP], ids=["forward", "back"])
def test_a_clock_step_fakes_no_stall_and_no_stale_source(step):
    events = _run("steady", step, outage_after_step=False)
    assert not [e for e in events if e[1] in ("stall", "stale_source", "outage")], events


def test_forward_step_would_fake_a_stall_on_a_clock_that_follows_the_system_clock():
    events = _run("following", STEP, outage_after_step=False)
    assert (122, "stall", "firing") in events and (122, "stale_source", "firing") in events, events


def test_after_a_backward_step_an_outage_is_still_seen():
    """Back three hours, then the site goes down: on our clock the outage is seen within
    minutes; on a clock that followed the step the detectors would ignore every poll (older
    than the last one judged) for three hours."""
    steady = _run("steady", -STEP, outage_after_step=True)
    firing = [minute for minute, rule, state in steady if rule == "outage" and state == "firing"]
    assert firing and firing[0] <= 127, steady
    following = _run("following", -STEP, outage_after_step=True)
    assert not [e for e in following if e[1] == "outage"], following


def test_a_restart_after_the_clock_was_set_back_is_not_blind(tmp_path):
    """The machine's clock ran three hours fast; it is corrected and countwatch restarted.
    The saved series' last poll is then three hours "in the future": judged as saved, every
    poll would be ignored as older than it until the clock caught up. They are rebased to now
    (`state.rebased`), so normal publishing stays quiet and an outage is seen at once."""
    from monitor.store import StateStore

    machine = Machine()
    machine.step = STEP                                       # the clock runs fast
    events = []
    with Feed() as feed:
        config = parse_config({"daemon": {"state_dir": str(tmp_path)},
                               "sources": [{"name": "kpu", "kind": "sirekap", "url": feed.url("/ppwp.json"),
                                            "region": "32", "interval": "60s", "timeout": "1s", "retries": 0,
                                            "rate_limit": 0}]})

        def run(minutes, clock, store, down_from=None):
            watcher = SourceWatcher(config.sources[0], Judge(config), Metrics(CollectorRegistry()), clock, store)
            try:
                for minute in minutes:
                    machine.true = 30 + 60 * minute
                    down = down_from is not None and minute >= down_from
                    feed.set("/ppwp.json", Reply(503, b"down", CLOSE) if down else
                             Reply(200, _document(machine.true), CLOSE))
                    clock.set(datetime.fromtimestamp(machine.wall(), timezone.utc))
                    events.extend((minute, e.rule, e.state) for e in watcher.poll_once())
            finally:
                watcher.close()
            return watcher

        store = StateStore(tmp_path / "state.db")
        run(range(120), ManualClock(datetime.fromtimestamp(machine.wall(), timezone.utc)), store)
        store.close()
        machine.step = 0                                      # corrected, then restarted
        store = StateStore(tmp_path / "state.db")
        watcher = run(range(121, 150), ManualClock(datetime.fromtimestamp(machine.wall(), timezone.utc)),
                      store, down_from=135)
        store.close()
    assert watcher.states["32"].last_at == datetime.fromtimestamp(machine.wall(), timezone.utc)
    after = [e for e in events if e[0] > 120]
    assert not [e for e in after if e[0] < 135], after       # publishing normally: quiet
    firing = [minute for minute, rule, state in after if rule == "outage" and state == "firing"]
    assert firing and firing[0] <= 137, after                 # the third failed poll
