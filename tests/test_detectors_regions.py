"""region_stall (a child standing still while its siblings advance) and divergence (mirrors)."""
from __future__ import annotations


import pytest

from monitor.cli import parse_config
from monitor.detectors import Judge
from monitor.evaluation.builders import at, drive, ok
from monitor.model import RegionCount


def table(step: int, frozen_c_at: int | None = None) -> dict[str, RegionCount]:
    """Three provinces known by percent and votes; C stops changing after `frozen_c_at`."""
    c = step if frozen_c_at is None else min(step, frozen_c_at)
    return {"91": RegionCount(percent=round(10 + step * 0.01, 2), votes={"1": 1000 + step}),
            "92": RegionCount(percent=round(20 + step * 0.01, 2), votes={"1": 2000 + step}),
            "94": RegionCount(percent=round(30 + c * 0.01, 2), votes={"1": 3000 + c})}


def parent(step: int, reported: int, frozen_c_at=None, minutes=60):
    return ok(at(step * minutes * 60), reported, 100_000, children=table(step, frozen_c_at))


H = 7                   # updates of history: every child changes in each, 7 changes after the first sighting
LAST = 1000 + 100 * H   # the parent's stations reported at the last of them


def history():
    """Enough changes of every child (MIN_CHANGES) for its pace to be judged."""
    return [parent(i, 1000 + 100 * i) for i in range(H + 1)]


def region_events(events):
    return [(e.state, e.region) for e in events if e.rule == "region_stall"]


@pytest.mark.parametrize("quiet_updates, fires", [(6, False), (7, True)])
def test_a_child_standing_still_while_the_parent_advances(quiet_updates, fires):
    # Each update the parent gains 100 TPS and every child changes: a child's usual spacing is
    # 100 parent TPS, and the parent gains 100 TPS/h, so 720 changes of 94 are due in the 30
    # days of the budget: its silence pages once ln(1 + 720) = 6.58 changes were due, at 7 x 100 TPS.
    polls = history()
    polls += [parent(H + i, LAST + 100 * i, frozen_c_at=H) for i in range(1, quiet_updates + 1)]
    _, state, events = drive(polls)
    assert region_events(events) == ([("firing", "94")] if fires else [])
    if fires:
        event = state.open_alerts["region_stall/94"]
        assert event.region == "94" and event.details["expected_changes"] == 7.0
        assert event.details["changes_needed"] == 6.58
        assert event.details["child_percent"] == round(30 + H * 0.01, 2)


@pytest.mark.parametrize("changes, fires", [(5, False), (6, True)])
def test_a_child_is_judged_once_six_of_its_changes_were_seen(changes, fires):
    # Early in a count a few changes say little about a child's pace (the demo's kecamatan
    # with a late start looked stalled after three): six are needed before it is judged.
    polls = [parent(i, 1000 + 100 * i) for i in range(changes + 1)]
    last = 1000 + 100 * changes
    polls += [parent(changes + i, last + 100 * i, frozen_c_at=changes) for i in range(1, 20)]
    _, _, events = drive(polls)
    assert region_events(events) == ([("firing", "94")] if fires else [])


def test_the_child_moving_again_resolves_it():
    polls = history()
    polls += [parent(H + i, LAST + 100 * i, frozen_c_at=H) for i in range(1, 10)]
    polls.append(parent(H + 10, LAST + 1000))
    _, state, events = drive(polls)
    assert region_events(events) == [("firing", "94"), ("resolved", "94")]
    assert not [k for k in state.open_alerts if k.startswith("region_stall")]


def test_a_slow_night_is_not_a_region_stall():
    # The whole count slows to 5 TPS an hour and province 94 shows no visible change for 12 h:
    # only 60 parent TPS went by, not the 800 that eight of its changes take.
    polls = history()
    polls += [parent(H + i, LAST + 5 * i, frozen_c_at=H) for i in range(1, 13)]
    _, _, events = drive(polls)
    assert region_events(events) == []


@pytest.mark.parametrize("quiet_updates, fires", [(1, False), (2, True)])
def test_a_siblings_catch_up_counts_as_at_most_five_usual_steps(quiet_updates, fires):
    # Usual steps of 100 TPS, one change of province 94 per 100. 94 stays quiet for a few
    # updates, then one update brings 5,000 TPS: another region's backlog. Counted in full it
    # would make fifty of 94's changes due; it counts as five usual steps (in the changes due
    # and in the parent's pace, which sets the ~6.8 needed), so 94 is overdue only once
    # 1 + 5 < 6.8 <= 2 + 5 changes were due.
    polls = [parent(i, 1000 + 100 * i) for i in range(12)]
    polls += [parent(11 + k, 2100 + 100 * k, frozen_c_at=11) for k in range(1, quiet_updates + 1)]
    last = 2100 + 100 * quiet_updates
    polls.append(parent(12 + quiet_updates, last + 5000, frozen_c_at=11))
    _, state, events = drive(polls)
    assert region_events(events) == ([("firing", "94")] if fires else [])
    if fires:
        assert state.open_alerts["region_stall/94"].details["expected_changes"] == 7.0


def test_a_national_freeze_is_no_region_stall():
    polls = history()
    polls += [parent(H + i, LAST, frozen_c_at=H) for i in range(1, 30)]
    _, state, events = drive(polls)
    assert region_events(events) == []
    assert "stall" in state.open_alerts


MIRRORS = parse_config({"sources": [
    {"name": "central", "kind": "json", "url": "http://central/", "mapping": {"reported": "a", "total": "b"}},
    {"name": "prov", "kind": "json", "url": "http://prov/", "mirror_of": "central",
     "mapping": {"reported": "a", "total": "b"}}]})


def mirror_pair():
    judge = Judge(MIRRORS)
    return judge, judge.restore("central", "32", None), judge.restore("prov", "32", None)


def observe(judge, state, poll):
    return [e for e in judge.observe(state, poll) if e.rule == "divergence"]


def test_mirrors_agreeing_are_quiet_and_disagreeing_fire():
    judge, central, prov = mirror_pair()
    assert observe(judge, central, ok(at(0), 500, source="central", region="32", votes={"1": 10_000})) == []
    assert observe(judge, prov, ok(at(10), 500, source="prov", region="32", votes={"1": 10_020})) == []
    events = observe(judge, prov, ok(at(70), 500, source="prov", region="32", votes={"1": 10_021}))
    assert [(e.state, e.details["kind"], e.details["candidate"]) for e in events] == [("firing", "disagree", "1")]
    assert events[0].details["relative_difference"] == pytest.approx(21 / 10_021, abs=1e-6)


@pytest.mark.parametrize("lag_seconds, fires", [(1800, False), (1801, True)])
def test_a_mirror_trailing_too_long(lag_seconds, fires):
    judge, central, prov = mirror_pair()
    observe(judge, central, ok(at(0), 500, source="central", region="32"))
    observe(judge, prov, ok(at(5), 500, source="prov", region="32"))
    observe(judge, central, ok(at(60), 600, source="central", region="32"))
    events = observe(judge, prov, ok(at(60 + lag_seconds), 500, source="prov", region="32"))
    assert [(e.state, e.details.get("behind")) for e in events] == ([("firing", "prov")] if fires else [])
    if fires:
        back = observe(judge, prov, ok(at(60 + lag_seconds + 60), 600, source="prov", region="32"))
        assert [e.state for e in back] == ["resolved"]


def test_the_central_site_trailing_its_mirror_is_reported_too():
    judge, central, prov = mirror_pair()
    observe(judge, central, ok(at(0), 500, source="central", region="32"))
    observe(judge, prov, ok(at(10), 700, source="prov", region="32"))
    events = observe(judge, prov, ok(at(10 + 1801), 700, source="prov", region="32"))
    assert [(e.details["behind"], e.details["ahead"]) for e in events] == [("central", "prov")]
