"""Invariants over generated series (hypothesis)."""
from __future__ import annotations

import json
import os
from datetime import timedelta

from hypothesis import HealthCheck, given, settings, strategies as st

from monitor.detectors import Judge
from monitor.evaluation.builders import T0, WIB, at, drive, failed, not_modified, ok
from monitor.model import FAILURES

# PROPERTY_EXAMPLES=2000 for a longer search than the suite's quick one.
FAST = settings(max_examples=int(os.environ.get("PROPERTY_EXAMPLES", 60)), deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def cadenced_series(draw):
    """A publisher on its usual cadence: every publication brings stations; we see each one a
    steady delay later (our poll interval's phase, plus a little jitter), and poll in between."""
    cadence = draw(st.sampled_from([900.0, 3600.0]))
    count = draw(st.integers(10, 60))
    delay = draw(st.floats(0, 600))
    polls, reported = [], draw(st.integers(0, 10_000))
    for j in range(count):
        published = T0 + timedelta(seconds=j * cadence + 15)
        reported += draw(st.integers(1, 500))
        seen = published + timedelta(seconds=delay + draw(st.floats(0, 25)))
        polls.append(ok(seen, reported, 1_000_000, published=published.astimezone(WIB)))
        # Polls between publications find nothing new; they must not find a stall either.
        for fraction in draw(st.lists(st.floats(0.01, 0.99), max_size=3, unique=True)):
            polls.append(not_modified(published + timedelta(seconds=delay + 25 + fraction * (cadence - 26))))
    polls.sort(key=lambda p: p.at)
    return polls


@FAST
@given(cadenced_series())
def test_a_series_advancing_on_its_usual_cadence_never_raises_a_stall(polls):
    _, _, events = drive(polls)
    assert [e for e in events if e.rule in ("stall", "stale_source")] == []


@st.composite
def any_series(draw):
    """Anything a source can do: advance, stand still, go back, fail, answer 304."""
    polls, t, reported = [], 0.0, 1000
    published = T0 - timedelta(hours=1)
    for _ in range(draw(st.integers(1, 80))):
        t += draw(st.sampled_from([30.0, 60.0, 600.0, 3600.0, 4 * 3600.0]))
        kind = draw(st.sampled_from(["advance", "same", "back", "fail", "304", "publish"]))
        if kind == "fail":
            polls.append(failed(at(t), draw(st.sampled_from(FAILURES))))
            continue
        if kind == "304":
            polls.append(not_modified(at(t)))
            continue
        if kind == "advance":
            reported += draw(st.integers(1, 5000))
        elif kind == "back":
            reported -= draw(st.integers(1, 50))
        if kind in ("advance", "publish"):
            published = at(t - 30)
        votes = {"1": reported * 100, "2": reported * 90 - draw(st.integers(0, 3))}
        polls.append(ok(at(t), reported, 1_000_000, published=published, votes=votes))
    return polls


@FAST
@given(any_series(), st.integers(1, 20))
def test_a_restart_anywhere_gives_the_same_events(polls, every):
    _, _, straight = drive(polls)
    judge, state, restarted = Judge(None), None, []
    for index, poll in enumerate(polls):
        if state is None or index % every == 0:
            blob = None if state is None else json.loads(json.dumps(state.to_json()))
            judge = Judge(None)
            state = judge.restore(poll.source, poll.region, blob)
        restarted += judge.observe(state, poll)
    assert [e.to_json() for e in restarted] == [e.to_json() for e in straight]


@FAST
@given(any_series())
def test_alerts_follow_their_life_cycle(polls):
    """firing, then escalations that only rise, then one resolve; never a resolve of nothing."""
    judge, state, events = drive(polls)
    open_ = {}
    rank = {"info": 0, "warning": 1, "critical": 2}
    for event in events:
        key = (event.rule, event.region)
        if event.state == "firing":
            assert key not in open_
            open_[key] = event
        elif event.state == "escalated":
            assert key in open_ and rank[event.severity] > rank[open_[key].severity]
            assert event.since == open_[key].since
            open_[key] = event
        elif event.state == "resolved":
            assert key in open_
            assert event.since == open_.pop(key).since
    assert {(e.rule, e.region) for e in state.open_alerts.values()} == set(open_)
    for event in events:
        if event.rule == "correction":      # sized: a few votes are info, 2% of the region's a warning
            assert event.severity == ("warning" if event.details["decrease_share"] >= 0.02 else "info")
        assert event.details["family"] and event.details["cause"]
        assert {"stations", "stations_reported", "progress_ratio"} <= set(event.details)
