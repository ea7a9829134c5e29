"""The publisher families of `countwatch evaluate` (the full run is `make evaluate`): the laws do
what they say, the oracle reads the true law, the paging model counts what reaches on-call."""
from __future__ import annotations

import math
from datetime import timedelta
from types import SimpleNamespace

from monitor.evaluation.builders import T0
from monitor.evaluation.command import run
from monitor.evaluation.headline import RULE_FAMILIES, evaluate_families, score_series, table, windows
from monitor.evaluation.paging import pages
from monitor.evaluation.publishers import Law, empty_chance, outsized, publish
from monitor.evaluation.sweeps import BY_NAME, FAMILIES, laws
from monitor.evaluation.truelaw import appeared, fixed_alarms, oracle_alarms
from monitor.model import Event


def _event(minutes: float, rule: str, state: str = "firing", severity: str = "warning", cause: str | None = None,
           region: str = "0") -> Event:
    details = {"cause": cause} if cause else {}
    return Event(at=T0 + timedelta(minutes=minutes), rule=rule, state=state, severity=severity, source="s",
                 region=region, summary="", since=T0, details=details)


def test_every_family_sweeps_its_axis_over_ten_seeds():
    assert len(FAMILIES) >= 10
    for family in FAMILIES:
        ten = laws(family, 10)
        assert len(ten) == 10 and len(set(ten)) == 10, family.name   # each seed a different point of the axis
    jitter = laws(BY_NAME["jitter"], 10)
    assert jitter[0].jitter == 0 and jitter[-1].jitter == 0.1 * jitter[-1].cadence
    batches = laws(BY_NAME["batch-size"], 10)
    assert {b.batch for b in batches} == {"lognormal", "pareto"}
    assert math.isclose(batches[0].cv, 0.3) and math.isclose(batches[-1].cv, 3.0)
    tree = laws(BY_NAME["tree"], 10)
    assert math.isclose(tree[-1].spread, 100.0)


def test_publications_keep_their_law_and_the_series_is_reproducible():
    law = Law("j", cadence=900, jitter=90)
    first, again = publish(law, 1, 4), publish(law, 1, 4)
    assert [p.at for p in first.polls] == [p.at for p in again.polls] and first.truth == again.truth
    for pub in first.publications:
        if pub.slot >= 0:      # every publication within ± the jitter of its slot
            assert abs(pub.at - first.slots[pub.slot].nominal) <= 90


def test_a_stall_freezes_the_count_and_its_timestamp_as_the_truth_says():
    g = publish(Law("t", cadence=900, jitter=20, moving_share=0.5), 2, 8)
    stalls = [t for t in g.truth if t.kind == "stall"]
    assert {t.ts_frozen for t in stalls} == {True, False}
    for stall in stalls:
        inside = [p for p in g.publications if stall.start.timestamp() <= p.at < stall.end.timestamp()]
        before = [p for p in g.publications if p.at < stall.start.timestamp()][-1]
        assert all(p.reported == before.reported for p in inside)
        assert not inside if stall.ts_frozen else inside      # moving timestamps: publications go on


def test_late_start_with_test_data_is_cleared_to_zero_then_counts():
    g = publish(Law("l", cadence=600, starts_after=6, test_data=True), 0, 4)
    assert g.publications[0].reported > 0 and g.publications[1].reported == 0
    assert [t.kind for t in g.truth][0] == "clear"
    zero = [p for p in g.publications if p.at < g.counting_from]
    assert all(p.reported == 0 for p in zero[1:])
    assert g.publications[-1].reported > 0


def test_tree_children_differ_by_the_spread():
    g = publish(Law("tr", cadence=900, children=8, spread=100), 0, 3)
    assert max(g.weights) / min(g.weights) == 100
    last = g.publications[-1]
    assert sum(last.children) == last.reported
    behind = publish(Law("tr", cadence=900, children=8, spread=3, lagging=True), 1, 3)
    lagging = [t for t in behind.truth if t.kind == "lagging"]
    assert len(lagging) == 1 and not any(t.kind == "child_stall" and t.region == lagging[0].region
                                         for t in behind.truth)
    k = behind.child_names.index(lagging[0].region)
    first, last = behind.publications[0], behind.publications[-1]
    # Left behind: far below its siblings, and barely moving while they count.
    assert first.children[k] < 0.01 * max(first.children)
    assert last.children[k] - first.children[k] < 0.01 * (last.reported - first.reported)


def test_a_poisson_like_tail_thins_its_advances_and_the_oracle_knows_it():
    # Updates as data comes keep coming (new timestamps), but each brings units in proportion to
    # what remains: advances thin out day by day, and the oracle's hazard of an advance with them.
    law = laws(BY_NAME["poisson-tail"], 10)[0]
    assert law.cadence is None and math.isclose(law.tail * law.stations / (law.peak * 0.4), 6.0)
    g = publish(law, 0, 4)
    day = lambda cumulative, d: cumulative[(d + 1) * 1440] - cumulative[d * 1440]
    advances = [day(g.hazard, d) for d in range(3)]
    assert advances[0] > 5 * advances[1] > 25 * advances[2] > 0
    assert math.isclose(day(g.pub_hazard, 0), day(g.pub_hazard, 2))
    begin = g.polls[0].at.timestamp()
    late = [p for p in g.publications if begin + 2 * 86400 <= p.at < begin + 3 * 86400]
    assert len(late) > 400 and len({p.reported for p in late}) < 10


def test_batch_laws_and_outsized_batches():
    poisson, heavy = Law("p"), Law("h", batch="pareto", cv=3.0)
    assert math.isclose(empty_chance(poisson, 2.0), math.exp(-2.0))
    # A heavy-tailed publisher comes empty more often at the same mean.
    assert empty_chance(heavy, 2.0) > 1.5 * empty_chance(poisson, 2.0)
    assert empty_chance(Law("l", batch="lognormal", cv=3.0), 2.0) > 3 * empty_chance(poisson, 2.0)
    assert outsized(heavy, 300) > 10 * outsized(poisson, 300) / 3


def test_appearance_law_boundaries():
    law = Law("a", jitter=60, late=0.2, late_by=300)
    assert appeared(law, -61) == 0.0
    assert math.isclose(appeared(law, 60), 0.8 + 0.2 * appeared(Law("b", jitter=60, late=1, late_by=300), 60))
    assert appeared(law, 361) == 1.0
    assert appeared(Law("c"), 0) == 1.0 and appeared(Law("c"), -1) == 0.0


def test_the_oracle_finds_stalls_and_stays_quiet_between_them():
    g = publish(Law("o", cadence=900, jitter=45), 3, 8)
    spans = windows(g)
    alarms = oracle_alarms(g, 30 * 86400)
    assert alarms and all(any(w.start <= a < w.end for w in spans["stall"]) for a in alarms)
    # "No change for 15 min" on a jittered 15-min publisher cries wolf many times a day.
    assert len(fixed_alarms(g, 15 * 60)) > 8 * 4


def test_paging_groups_a_stopped_publisher_into_one_page():
    events = [_event(0, "stall", cause="publisher_stopped"), _event(0.2, "stale_source", cause="publisher_stopped"),
              _event(30, "stall", "escalated", "critical", cause="publisher_stopped"),
              _event(90, "stall", "resolved", cause="publisher_stopped"),
              _event(90, "stale_source", "resolved", cause="publisher_stopped")]
    sent = pages(events)
    assert [(p.at - T0).total_seconds() for p in sent] == [30.0, 1800.0]   # group_wait; escalation at once
    assert {e.rule for e in sent[0].members} == {"stall", "stale_source"}


def test_paging_counts_point_events_and_skips_what_resolved_unseen_and_info():
    events = [_event(0, "jump", "observed"), _event(1, "jump", "observed"),
              _event(10, "stall"), _event(10.2, "stall", "resolved"),          # over before group_wait
              _event(20, "correction", "observed", "info")]
    sent = pages(events)
    assert len(sent) == 2 and all(p.families == {"jump"} for p in sent)


def test_paging_reads_the_family_the_detector_names():
    sent = pages([Event(at=T0, rule="count_not_started", state="firing", severity="warning", source="s",
                        region="0", summary="", since=T0, details={"family": "stoppage", "cause": "not_started"})])
    assert sent[0].families == {"stoppage"}


def test_one_series_is_scored_and_the_table_puts_the_worst_first():
    score = score_series(("late-start", 0, 10, 3.0))
    assert score.series_days == 3.0 and set(RULE_FAMILIES) <= set(score.false_pages)
    assert "stall:oracle" in score.tallies and "stall:fixed 60 min" in score.tallies
    scores = evaluate_families(2, 3.0, ["timestamps", "tree"], jobs=1)
    assert [s.worst[0] for s in scores] == sorted((s.worst[0] for s in scores), reverse=True)
    lines, verdicts = table(scores)
    assert len(lines) == 4 and len(verdicts) == 2 and lines[2].count("|") == 11
    assert next(s for s in scores if s.family == "tree").series_days == 2 * 3.0 * 9    # the 8 children are series


def test_evaluate_cli_prints_the_family_table(capsys):
    args = SimpleNamespace(series=1, days=4.0, profiles="none", jobs=1, out=None, recordings=None,
                           seeds=2, family_days=3.0, families="timestamps")
    assert run(args) == 0
    text = capsys.readouterr().out
    assert "### Publisher families (2 seeds × 3 days each, worst first)" in text
    assert "| **timestamps**" in text and "### stall" not in text
    bad = SimpleNamespace(**{**vars(args), "families": "nope"})
    assert run(bad) == 2


def test_the_paging_model_sends_what_the_alert_pipeline_sends(tmp_path, registry, logs):
    """The model against the real pipeline (alerts/), example config's grouping, on a series
    whose events escalate, group stall with stale_source and mix jumps in."""
    import itertools

    from alerts.pipeline import AlertPipeline
    from monitor.cli import parse_config
    from monitor.clock import ManualClock
    from monitor.metrics import Metrics
    from monitor.replay import replay

    g = publish(laws(BY_NAME["skipped-late"], 10)[4], 4, 8)
    events = list(replay(g.polls))
    config = parse_config({
        "daemon": {"state_dir": str(tmp_path), "timezone": "Asia/Jakarta", "instance": "test"},
        "sources": [{"name": g.source, "kind": "json", "url": "http://127.0.0.1:9/feed.json",
                     "mapping": {"reported": "done", "total": "all"}}],
        "alerting": {"group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h"},
        "receivers": [{"name": "ops", "kind": "console"}],
        "routes": [{"match": {}, "receiver": "ops"}]}, environ={})
    clock = ManualClock(events[0].at - timedelta(seconds=1))
    pipeline = AlertPipeline(config, Metrics(registry), clock, tmp_path / "countwatch.db")
    for at, batch in itertools.groupby(events, key=lambda e: e.at):
        while (due := pipeline.grouper.next_wakeup()) is not None and due < at:
            clock.set(max(due, clock.now()))
            pipeline.tick()
        clock.set(at)
        pipeline.handle(list(batch))
        pipeline.tick()
    end = events[-1].at + timedelta(hours=1)     # the last event's group_wait too
    while (due := pipeline.grouper.next_wakeup()) is not None and due < end:
        clock.set(max(due, clock.now()))
        pipeline.tick()
    clock.set(end)
    pipeline.tick()
    sent = sorted((row["created_at"], row["reason"]) for row in pipeline.records()["outbox"]
                  if row["reason"] in ("first", "escalated", "observed"))
    model = pages(events)
    assert len(sent) >= 5 and any(len(p.members) > 1 for p in model)
    assert [at for at, _ in sent] == [p.at.isoformat(timespec="milliseconds").replace("+00:00", "Z") for p in model]
