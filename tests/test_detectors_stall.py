"""stall and stale_source at their boundaries: just before, at and just after each threshold,
with explicit times (the Judge's clock is the poll's `at`)."""
from __future__ import annotations

import math
from datetime import timedelta

import pytest

from monitor.cli import parse_config
from monitor.detectors import DetectionOptions, Judge
from monitor.detectors.thresholds import ADVANCE, PUBLICATION, Seen, learn
from monitor.evaluation.builders import T0, WIB, at, cadenced, drive, failed, not_modified, ok
from monitor.model import RegionCount

HOURLY_WARNING = 3600 + 30.0      # one missed publication + the largest lag (45 s) - this lag (45 s) + 30 s jitter
HOURLY_CRITICAL = 2 * 3600 + 30.0


def hourly_history():
    """60 hourly publications at HH:00:15 (2.5 days: the daily rhythm is known), each +10 TPS,
    each seen 45 s later."""
    judge, state, events = drive(cadenced(60))
    assert events == []
    return judge, state


def last_seen(state):
    return state.last_advance_at


def same(state, when, source="src"):
    """A poll at `when` that finds the same document again."""
    current = state.current
    return ok(when, current.stations_reported, current.stations, published=current.published_at,
              votes=current.votes, source=source)


def test_hourly_cadence_thresholds_are_one_and_two_missed_publications():
    judge, state = hourly_history()
    assert judge.stall_thresholds(state) == (HOURLY_WARNING, HOURLY_CRITICAL)
    assert judge._stall(state, judge.options("src")).reason == (
        "hourly cadence, following its daily rhythm: 1 missed publication")


def test_while_the_rhythm_is_unknown_a_second_missed_publication_is_needed():
    # 13 hours of history: the evening and the night are not seen yet. The hours ahead are
    # believed as slow as the slowest hour seen (+10 TPS), as if seen once: one such
    # publication bringing nothing is not improbable enough, two are.
    judge, state, _ = drive(cadenced(13))
    assert judge.stall_thresholds(state) == (2 * 3600 + 30.0, 3 * 3600 + 30.0)
    assert judge._stall(state, judge.options("src")).reason == (
        "hourly cadence, following the hours seen so far: 2 missed publications")


@pytest.mark.parametrize("offset, fires", [(HOURLY_WARNING - 1, False), (HOURLY_WARNING, True),
                                           (HOURLY_WARNING + 1, True)])
def test_stall_warning_boundary(offset, fires):
    judge, state = hourly_history()
    events = judge.observe(state, same(state, last_seen(state) + timedelta(seconds=offset)))
    stall = [e for e in events if e.rule == "stall"]
    if not fires:
        assert stall == []
        return
    assert [(e.state, e.severity) for e in stall] == [("firing", "warning")]
    details = stall[0].details
    assert stall[0].since == last_seen(state)
    assert details["stalled_seconds"] == offset
    assert details["threshold_seconds"] == HOURLY_WARNING
    assert details["critical_seconds"] == HOURLY_CRITICAL
    assert details["stations_reported"] == 1090 and details["stations"] == 100_000
    assert details["progress_ratio"] == pytest.approx(0.0109)
    assert details["cause"] == "publisher_stopped"
    assert details["last_published_at"] == "2024-02-22T18:00:15+07:00"
    assert "22 Feb 18:01 WIB (11:01 UTC)" in stall[0].summary


@pytest.mark.parametrize("offset, escalates", [(HOURLY_CRITICAL - 1, False), (HOURLY_CRITICAL, True)])
def test_stall_critical_boundary_is_an_escalation(offset, escalates):
    judge, state = hourly_history()
    first = judge.observe(state, same(state, last_seen(state) + timedelta(seconds=HOURLY_WARNING)))
    assert [e.state for e in first if e.rule == "stall"] == ["firing"]
    assert judge.observe(state, same(state, last_seen(state) + timedelta(seconds=HOURLY_WARNING + 60))) == []
    events = [e for e in judge.observe(state, same(state, last_seen(state) + timedelta(seconds=offset)))
              if e.rule == "stall"]
    if escalates:
        assert [(e.state, e.severity) for e in events] == [("escalated", "critical")]
        assert state.open_alerts["stall"].severity == "critical"
    else:
        assert events == []
        assert state.open_alerts["stall"].severity == "warning"


def test_stall_resolves_on_the_next_advance_with_the_catch_up():
    judge, state = hourly_history()
    stalled_from = last_seen(state)
    judge.observe(state, same(state, stalled_from + timedelta(seconds=HOURLY_CRITICAL)))
    resume = stalled_from + timedelta(hours=5)
    events = judge.observe(state, ok(resume, state.current.stations_reported + 400, 100_000, published=(resume - timedelta(seconds=45)).astimezone(WIB)))
    resolved = [e for e in events if e.rule == "stall"]
    assert [(e.state, e.severity) for e in resolved] == [("resolved", "critical")]
    assert resolved[0].details["catch_up_stations"] == 400
    assert resolved[0].details["stalled_seconds"] == 5 * 3600
    assert resolved[0].since == stalled_from
    assert "stall" not in state.open_alerts
    assert state.last_advance_at == resume


def test_stale_source_fires_with_the_stall_as_one_incident():
    judge, state = hourly_history()
    published = state.current.published_at
    # age = poll time - publication; the stale threshold is one missed publication + the max lag
    # (45 s) + 30 s of jitter: 3600 + 45 + 30 s after the publication, i.e. the stall's moment.
    before = judge.observe(state, same(state, published + timedelta(seconds=3600 + 45 + 30 - 1)))
    assert before == []
    events = judge.observe(state, same(state, published + timedelta(seconds=3600 + 45 + 30)))
    assert sorted((e.rule, e.state) for e in events) == [("stale_source", "firing"), ("stall", "firing")]
    for event in events:
        assert event.details["cause"] == "publisher_stopped"
        assert event.details["members"] == ["stale_source", "stall"]


def test_pipeline_stuck_is_a_stall_without_stale_source():
    judge, state = hourly_history()
    reported = state.current.stations_reported
    events = []
    for hour in range(1, 4):   # KPU keeps publishing hourly, the count does not move
        published = state.current.published_at + timedelta(hours=1)
        events += judge.observe(state, ok(published + timedelta(seconds=45), reported, 100_000, published=published))
    stall = [e for e in events if e.rule == "stall"]
    assert [e.state for e in stall] == ["firing", "escalated"]
    assert stall[0].details["cause"] == "pipeline_stuck"
    assert "members" not in stall[0].details
    assert [e for e in events if e.rule == "stale_source"] == []


def test_first_poll_of_old_data_is_stale_and_a_new_series_uses_the_prior():
    published = T0 - timedelta(hours=26)
    judge, state, events = drive([ok(T0, 500, published=published)])
    stale = [e for e in events if e.rule == "stale_source"]
    assert [(e.state, e.severity) for e in stale] == [("firing", "critical")]   # 26 h > 2 x 2 h prior
    assert stale[0].since == published and stale[0].details["first_poll"] is True
    # The stall clock of a series that never advanced starts at our first poll: prior 2 h.
    assert judge.observe(state, ok(at(7199), 500, published=published)) == []
    stall = [e for e in judge.observe(state, ok(at(7200), 500, published=published)) if e.rule == "stall"]
    assert [(e.state, e.since) for e in stall] == [("firing", T0)]
    assert "prior of 2h" in stall[0].details["threshold_reason"]


def test_the_prior_counts_from_the_data_s_own_timestamp_so_stall_and_stale_come_due_together():
    # Our first poll finds data published 10 minutes earlier, and nothing moves after it: the
    # stall's prior runs on the source's clock like every model, so it comes due with the
    # stale timestamp's, at the same poll: one incident, not a stall joining it five minutes on.
    published = T0 - timedelta(minutes=10)
    judge, state, events = drive([ok(T0, 500, published=published)])
    assert events == []
    assert judge.stall_thresholds(state) == (7200.0 - 600.0, 2 * 7200.0 - 600.0)
    assert judge.observe(state, ok(at(7200 - 601), 500, published=published)) == []
    due = judge.observe(state, ok(at(7200 - 600), 500, published=published))
    assert sorted(e.rule for e in due) == ["stale_source", "stall"]
    stall = next(e for e in due if e.rule == "stall")
    assert stall.since == T0 and stall.details["members"] == ["stale_source", "stall"]


def test_a_count_never_seen_moving_without_a_timestamp_stays_a_warning_until_it_moves():
    # No timestamp and no advance since our first poll: frozen, or test data shown before the
    # count began? The prior warns once (2 h) and does not escalate at 4 h, and says why.
    polls = [ok(at(600 * k), 98) for k in range(0, 37)]             # 6 h standing at 98
    judge, state, events = drive(polls)
    stall = [e for e in events if e.rule == "stall"]
    assert [(e.state, e.severity, e.at) for e in stall] == [("firing", "warning", at(7200))]
    assert stall[0].summary.endswith("it may not have started counting: a warning until it moves.")
    # Once it has been seen to move, the next freeze escalates as any does.
    moving = [ok(at(21600 + 600 * k), 98 + 10 * (k + 1)) for k in range(0, 12)]
    frozen = [ok(at(21600 + 7200 + 600 * k), 98 + 120) for k in range(1, 200)]
    events = sum((judge.observe(state, p) for p in moving + frozen), [])
    assert ("escalated", "critical") in [(e.state, e.severity) for e in events if e.rule == "stall"]
    # With a timestamp of its own, the source's clock dates the silence: critical as before.
    published = T0 - timedelta(minutes=1)
    judge, state, events = drive([ok(at(600 * k), 98, published=published) for k in range(0, 37)])
    assert ("escalated", "critical") in [(e.state, e.severity) for e in events if e.rule == "stall"]


def poisson_history():
    """49 advances without a source timestamp, gaps cycling 20..140 s."""
    polls, t = [], 0.0
    for i in range(49):
        polls.append(ok(at(t), 100 + i, 100_000))
        t += [20, 40, 60, 80, 100, 120, 140][i % 7]
    return drive(polls)


CYCLE = [20, 40, 60, 80, 100, 120, 140]


def test_poisson_threshold_is_the_cusum_time_at_the_budget():
    gaps = [float(CYCLE[i % 7]) for i in range(48)]
    thresholds = learn(Seen(ADVANCE, gaps), DetectionOptions())
    # The mean gap (the exponential's scale; gaps winsorized at 5 medians, none reached here):
    # 78.75 s over the long window, 85 s over the last 8 gaps; the slower one wins. At rate
    # 1/85 s the CUSUM time for one false alarm in 30 days is 85 ln(1 + 30 d / 85 s).
    mean_gap = (120 + 140 + 20 + 40 + 60 + 80 + 100 + 120) / 8
    expected = mean_gap * math.log1p(30 * 86400 / mean_gap)
    assert expected == pytest.approx(877.65, abs=0.01)
    assert thresholds.model == "poisson" and thresholds.warning == pytest.approx(expected)
    # Critical: the same at a ten times rarer chance, but never less than 1.25 x the warning
    # (ln grows slowly: ten times rarer is only 22% longer here).
    assert mean_gap * math.log1p(10 * 30 * 86400 / mean_gap) == pytest.approx(1073.3, abs=0.1)
    assert thresholds.critical == pytest.approx(1.25 * expected)


def test_polling_merges_updates_and_the_rate_is_unmerged():
    # Polled every 60 s, a feed whose advances are 85 s apart on average updates more often
    # than that: a poll shows an advance with chance 60/85, so the rate is -ln(1 - 60/85)/60.
    gaps = [float(CYCLE[i % 7]) for i in range(48)]
    thresholds = learn(Seen(ADVANCE, gaps, poll_gap=60.0), DetectionOptions())
    mean_gap = -60 / math.log(1 - 60 / 85)
    assert mean_gap == pytest.approx(49.1, abs=0.1)
    assert thresholds.warning == pytest.approx(mean_gap * math.log1p(30 * 86400 / mean_gap))


@pytest.mark.parametrize("delta, fires", [(-1.0, False), (0.0, True), (1.0, True)])
def test_poisson_stall_boundary(delta, fires):
    judge, state, _ = poisson_history()
    warning, _ = judge.stall_thresholds(state)
    warning = math.ceil(warning * 1e6) / 1e6          # our clock ticks in microseconds
    when = state.last_advance_at + timedelta(seconds=warning + delta)
    events = [e for e in judge.observe(state, not_modified(when)) if e.rule == "stall"]
    assert [e.state for e in events] == (["firing"] if fires else [])


def test_failed_polls_are_no_evidence_of_a_stall():
    judge, state = hourly_history()
    start = last_seen(state)
    events = []
    for minute in range(1, 200, 10):
        events += judge.observe(state, failed(start + timedelta(minutes=minute), "http_5xx"))
    assert [e for e in events if e.rule == "stall"] == []
    # The third failure (minute 21) opens the outage, 20 min after the first: critical at once.
    assert [(e.rule, e.state, e.severity, e.at) for e in events] == [
        ("outage", "firing", "critical", start + timedelta(minutes=21))]
    # The first poll that works again is evidence: the count has not moved for 3h 20m.
    back = judge.observe(state, not_modified(start + timedelta(minutes=200)))
    assert [(e.rule, e.state, e.severity) for e in back if e.rule == "stall"] == [("stall", "firing", "critical")]


def test_a_finished_count_never_stalls():
    polls = [ok(at(60 * i), 1000, 1000, published=T0) for i in range(24 * 60)]
    _, state, events = drive(polls)
    assert [e for e in events if e.rule in ("stall", "stale_source")] == []
    assert Judge(None).stall_thresholds(state) is None


def test_configured_final_state_closes_an_open_stall():
    config = parse_config({"sources": [{"name": "src", "kind": "json", "url": "http://x/",
                                        "mapping": {"reported": "a", "total": "b"}}],
                           "detection": {"complete_ratio": 0.99}})
    judge = Judge(config)
    _, state, events = drive([ok(at(0), 900, 1000), ok(at(7200), 900, 1000)], judge=judge)
    assert [e.state for e in events if e.rule == "stall"] == ["firing"]
    events = judge.observe(state, ok(at(7300), 990, 1000))
    assert [(e.rule, e.state) for e in events if e.rule == "stall"] == [("stall", "resolved")]


def test_a_national_freeze_is_the_parents_stall_not_each_childs():
    judge = Judge(None)
    parent = judge.restore("src", "0", None)
    child = judge.restore("src", "11", None)
    kids = {"11": RegionCount(percent=50.0), "12": RegionCount(percent=60.0)}
    judge.observe(parent, ok(at(0), 500, children=kids))
    judge.observe(child, ok(at(1), 50, 100, region="11"))
    parent_events = judge.observe(parent, ok(at(7200), 500, children=kids))
    assert [(e.rule, e.state) for e in parent_events] == [("stall", "firing")]
    assert judge.observe(child, ok(at(7201), 50, 100, region="11")) == []
    assert judge.observe(child, ok(at(20000), 50, 100, region="11")) == []


def test_an_older_poll_than_the_last_is_ignored():
    judge, state = hourly_history()
    before = state.to_json()
    assert judge.observe(state, same(state, last_seen(state) - timedelta(minutes=30))) == []
    assert state.to_json() == before



def small_province(hours, empty_every=0, skip_at=None):
    """An hourly source with few stations, from 07:00 WIB for `hours` publications: +8 TPS per
    publication from 08:00 to 20:00 WIB, at night +1 every other hour (the other publications
    bring nothing). With `empty_every`, every so many daytime publications come empty too
    (a publisher whose publications are lumpier than its stations explain); with `skip_at`,
    that publication does not come at all (the next one brings its units)."""
    polls, reported = [], 500
    first = T0.astimezone(WIB).replace(hour=7, minute=0, second=15)
    for j in range(hours):
        moment = first + timedelta(hours=j)
        if 8 <= moment.hour < 20:
            reported += 0 if empty_every and j % empty_every == 0 else 8
        else:
            reported += j % 2
        if j == skip_at:
            continue
        polls.append(ok(moment + timedelta(seconds=45), reported, 20_000, published=moment))
    return drive(polls)


def test_a_small_province_is_paged_at_its_first_empty_noon_publication_not_at_night():
    # Four and a half days say "+8 TPS per noon publication": one comes empty by chance
    # e**-8 of the time, below the budget's 1 in 720 publications, although only a few noon
    # publications were seen. The night's +0/+1 explains its empty publications: there it
    # waits for several. Each hour is believed at its credible bound (half a standard deviation
    # below its mean): after three and a half days the noon hour's ~30 stations of evidence
    # promise a hair less than the budget asks of one empty publication, so it takes two.
    judge, state, _ = small_province(3 * 24 + 6)          # last publication 12:00 WIB
    assert judge._stall(state, judge.options("src")).missed_warning == 2
    judge, state, _ = small_province(4 * 24 + 6)
    noon = judge._stall(state, judge.options("src"))
    assert state.current.published_at.hour == 12
    assert (noon.missed_warning, noon.reason) == (1, "hourly cadence, following its daily rhythm: 1 missed publication")
    judge, state, _ = small_province(3 * 24 + 16)         # last publication 22:00 WIB
    assert state.current.published_at.hour == 22
    assert judge._stall(state, judge.options("src")).missed_warning >= 4


def test_publications_that_come_empty_more_often_than_the_stations_explain_are_learned():
    # The same province, but every fifth daytime publication brings nothing although +8 are
    # due: empty noon publications are a habit here, so one is no alarm.
    judge, state, _ = small_province(3 * 24 + 6, empty_every=5)
    assert state.current.stations_reported > 0
    assert judge._stall(state, judge.options("src")).missed_warning >= 2


def test_a_freeze_across_the_second_evening_is_judged_by_the_night_it_held_back():
    # +100 TPS an hour by day, +20 at night, from 07:00 WIB. On the second evening nothing comes
    # after 18:00 until 02:00, which catches up the night's +140. By the evening's last advances it
    # would have held back 700, so +140 looked like a slow night (empty publications, learned
    # as the publisher's habit: two missed publications at every hour for days). The rhythm
    # still learning its day has watched those hours the night before: by them the catch-up is
    # the backlog, an incident, and a freeze by day is one missed publication.
    polls, reported = [], 500
    first = T0.astimezone(WIB).replace(hour=7, minute=0, second=15)
    for j in range(2 * 24 + 6):                                  # to 12:00 WIB on the third day
        moment = first + timedelta(hours=j)
        reported += 100 if 8 <= moment.hour < 20 else 20
        if 36 <= j < 43:                                          # 19:00 -> 02:00 WIB: frozen
            polls += [not_modified(moment + timedelta(minutes=m)) for m in range(0, 60, 10)]
            continue
        polls.append(ok(moment + timedelta(seconds=45), reported, 100_000, published=moment))
    judge, state, events = drive(polls)
    assert [e.rule for e in events if e.state == "firing"] == ["stall", "stale_source"]
    assert state.current.published_at.hour == 12 and not state.rhythm.mature
    assert judge._stall(state, judge.options("src")).missed_warning == 1


# -- renewal: a regular source on no lattice, and long gaps that are the source's habit ------

def test_regular_gaps_on_no_lattice_get_a_renewal_model_not_the_poisson_fallback():
    # A publisher every 10-20 minutes (a cron job with a random sleep): no lattice, and far more
    # regular than a Poisson stream. The wait is the longest gap seen plus the exponential tail
    # its neighbours' spread gives, out to the budget.
    gaps = [600.0 + 600.0 * ((7 * i) % 48) / 47 for i in range(48)]
    from monitor.detectors.thresholds import renewal_waits
    thresholds = learn(Seen(ADVANCE, gaps, poll_gap=60.0), DetectionOptions())
    assert thresholds.model == "renewal"
    warning, critical, top = renewal_waits(gaps, 30 * 86400, 60.0)
    assert top == 1200.0
    near = [g for g in gaps if g >= 0.75 * 1200]           # the longest gaps: 900 s .. 1200 s
    scale = (1200 - min(near)) * (len(near) + 1) / (len(near) - 1) / 2
    share = (sum(gaps) / 48) / (30 * 86400)
    assert warning == pytest.approx(1200 + scale * math.log(1 / 49 / share))
    assert critical == pytest.approx(1200 + scale * math.log(10 / 49 / share))
    assert thresholds.warning == pytest.approx(warning + 60.0)    # + our polling delay
    assert 1500 < thresholds.warning < 3000                       # Poisson would say ~3 h
    assert learn(Seen(ADVANCE, gaps), DetectionOptions()).model == "renewal"


def test_a_busy_poisson_feed_polled_every_minute_is_not_called_regular():
    # Advances on 80% of minute polls: gaps of 1, 2, 3 polls look regular by quantization alone.
    gaps = [60.0 * (1 + (i % 5 == 0) + (i % 11 == 0)) for i in range(48)]
    assert learn(Seen(ADVANCE, gaps, poll_gap=60.0), DetectionOptions()).model == "poisson"


def _two_batches_a_day(days_hourly: int, days_batched: int, freeze_from=None):
    """Hourly at HH:00:15 WIB for `days_hourly` days, then batches at 10:00 and 18:00 WIB (a few
    minutes off), each bringing what the hours since brought; polled every 10 minutes."""
    from monitor.evaluation.builders import not_modified
    publications = [T0 + timedelta(seconds=j * 3600 + 15) for j in range(24 * days_hourly)]
    day0 = T0 + timedelta(days=days_hourly) - timedelta(hours=7)       # 00:00 WIB
    for d in range(days_batched):
        for hour, off in ((10, 120 * (d % 3 - 1)), (18, 90 * (d % 2))):
            publications.append(day0 + timedelta(days=d, hours=hour, seconds=off))
    if freeze_from is not None:
        publications = [p for p in publications if p < freeze_from]
    polls, reported = [], 10_000
    end = publications[-1] + timedelta(hours=16 if freeze_from is None else 48)
    k, t = 0, publications[0] + timedelta(seconds=30)
    last = None
    while t < end:
        while k < len(publications) and publications[k] + timedelta(seconds=30) <= t:
            k += 1
        if k and k - 1 != last:
            shown = publications[k - 1]
            hours = 1 if last is None else round((shown - publications[last]).total_seconds() / 3600)
            reported += 10 * max(hours, 1)
            polls.append(ok(t, reported, 100_000, published=shown.astimezone(WIB)))
            last = k - 1
        else:
            polls.append(not_modified(t))
        t += timedelta(seconds=600)
    return polls


def test_a_publisher_settled_into_two_batches_a_day_is_not_paged_after_the_change():
    polls = _two_batches_a_day(3, 5)
    judge, state, events = drive(polls)
    # The first batched gaps (the first night, 10:00 -> 18:00 WIB, the first 16-hour night) are
    # paged: nobody can tell them from freezes until they recur. From the second day on, none.
    settled = T0 + timedelta(days=4, hours=3, minutes=5)
    late = [(e.at, e.rule, e.summary) for e in events if e.state in ("firing", "escalated") and e.at > settled]
    assert late == []
    stall = judge._stall(state, judge.options("src"))
    assert stall.model == "renewal" and "long gaps recur" in stall.reason
    assert 16 * 3600 < stall.warning < 18 * 3600              # the 16 h night gap and its spread
    assert 16 * 3600 < judge._stale(state, judge.options("src")).warning < 18 * 3600


def test_after_one_held_back_gap_the_next_waits_until_the_batch_would_have_come():
    # The first batched gap (06:00 -> 10:00 WIB) cannot be told from a freeze: warning, then
    # critical. After it the publisher has either caught up a freeze (it resumes its cadence:
    # nothing to wait for) or held its data back as a publisher settling into batches does
    # (its 10:00 batch's hour comes round within a day). A silence after it is news only when
    # neither explains it, so 10:00 -> 18:00 is no page: warning and critical wait until the
    # batch would have come, a day and the wander of a batch after the last.
    polls = _two_batches_a_day(3, 5)
    _, _, events = drive(polls)
    first_batch = T0 + timedelta(days=3, hours=3)           # 10:00 WIB on the first batched day
    before = [(e.rule, e.state) for e in events if e.rule == "stall" and e.at < first_batch]
    assert ("stall", "escalated") in before
    after = [e for e in events if e.rule in ("stall", "stale_source") and first_batch <= e.at < first_batch + timedelta(hours=8)]
    assert [(e.state, e.severity) for e in after] == [("resolved", "critical")] * 2
    judge, state, _ = drive([p for p in polls if p.at < first_batch + timedelta(hours=2)])
    stall, stale = judge._stall(state, judge.options("src")), judge._stale(state, judge.options("src"))
    for thresholds, noun in ((stall, "advance"), (stale, "publication")):
        assert thresholds.reason.startswith("hourly cadence")
        assert (f"but it held its data back until its last advance, as a freeze caught up or a publisher settling "
                f"into daily batches does: a batch may next be due 1d after it, so no {noun} for 1d 1h") \
            in thresholds.reason
        # A day, then an exponential tail of half an hour (one batch: an hour's width) out to the
        # budget (beyond the latest of one batch: half the chance; a day's gap: 1/30 of it), on
        # our clock (a poll's delay either way).
        assert thresholds.warning == pytest.approx(24 * 3600 + 1800 * math.log(0.5 * 30), abs=600)
        assert thresholds.critical == pytest.approx(24 * 3600 + 1800 * math.log(0.5 * 300), abs=600)
        assert thresholds.own_warning < 3600 + 600 and thresholds.own_critical < 2 * 3600 + 600   # long gaps: the model's


def test_a_freeze_right_after_a_catch_up_is_told_when_the_batch_would_have_come():
    # The price of not paging a publisher settling into batches: one that comes back for one
    # publication after a freeze and stops again is told a day later, when the batch its
    # catch-up could have been would have come again. Once it publishes as usual after a
    # catch-up (a short gap), a freeze is one missed publication again.
    polls = cadenced(60)
    last = polls[-1].snapshot
    frozen = [not_modified(polls[-1].at + timedelta(minutes=10 * k)) for k in range(1, 36)]      # 6 h frozen
    published = last.published_at + timedelta(hours=6)
    caught = published + timedelta(seconds=45)
    back = [ok(caught, last.stations_reported + 60, last.stations, published=published)]            # the backlog
    silent = [not_modified(caught + timedelta(minutes=10 * k)) for k in range(1, 6 * 30)]            # then 30 h
    judge, state, events = drive(polls + frozen + back + silent)
    fired = [e for e in events if e.rule == "stall" and e.state == "firing" and e.at > caught]
    assert len(fired) == 1
    waited = (fired[0].at - caught).total_seconds()
    assert 24 * 3600 < waited < 26 * 3600
    assert "held its data back" in fired[0].details["threshold_reason"]


def test_after_a_held_back_gap_a_batch_that_comes_empty_is_a_stall_at_once():
    # After a catch-up the floor waits for the batch; the source publishes again 8 h later (a
    # long gap of its own clock, as a batch comes) with no new stations: the batch came empty,
    # the pipeline is stuck, and the batches explain the silence no more. A timestamp that beats
    # hourly meanwhile (data in batches, a heartbeat of a timestamp) is no batch: still waited for.
    polls = cadenced(60)
    last = polls[-1].snapshot
    frozen = [not_modified(polls[-1].at + timedelta(minutes=10 * k)) for k in range(1, 36)]
    published = last.published_at + timedelta(hours=6)
    caught = published + timedelta(seconds=45)
    reported = last.stations_reported + 60
    back = [ok(caught, reported, last.stations, published=published)]
    for beat, hours in ((8, [8]), (1, list(range(1, 9)))):
        later = [ok(published + timedelta(hours=h, seconds=45), reported, last.stations,
                    published=published + timedelta(hours=h)) for h in hours]
        quiet = [not_modified(caught + timedelta(minutes=10 * k)) for k in range(1, 6 * 8)]
        judge, state, events = drive(sorted(polls + frozen + back + quiet + later, key=lambda p: p.at))
        fired = [e for e in events if e.rule == "stall" and e.state == "firing" and e.at > caught]
        if beat == 8:
            assert [(e.at, e.severity) for e in fired] == [(later[0].at, "critical")]
            assert fired[0].details["cause"] == "pipeline_stuck"
            assert "held its data back" not in fired[0].details["threshold_reason"]
        else:
            assert fired == []


def test_a_settled_publisher_that_stops_is_paged_before_its_longest_usual_gap_has_passed():
    # Its batches come round at 10:00 and 18:00 WIB: frozen after the 10:00 batch, the 18:00
    # one is due at 8 h and the habit raises nothing above its model's own threshold (the
    # stall ceiling, 12 h, to which its hourly rhythm's empty hours have grown): paged then,
    # not after its longest usual gap (16 h, the next morning).
    freeze = T0 + timedelta(days=7, hours=5)               # after the 10:00 WIB batch of day 7
    polls = _two_batches_a_day(3, 6, freeze_from=freeze)
    judge, state, events = drive(polls)
    fired = [e for e in events if e.rule == "stall" and e.state == "firing" and e.at > freeze]
    assert len(fired) == 1
    waited = (fired[0].at - fired[0].since).total_seconds()
    assert 8 * 3600 < waited <= 12 * 3600 + 600
    assert fired[0].severity == "warning" and fired[0].details["threshold_reason"].startswith("hourly cadence")
    # The night after an 18:00 batch is its habit's: 16 h to the next 10:00 batch.
    night = _two_batches_a_day(3, 6)
    judge, state, _ = drive(night)
    stall = judge._stall(state, judge.options("src"))
    assert "batches come round at the same local hours, the next due 15h" in stall.reason


def test_an_odd_hour_catch_up_is_no_batch_hour_once_its_hour_passed_without_one():
    # Batches at 10:00 and 18:00 local for two days, then a freeze over the third day's 10:00
    # caught up at 13:00. The day after, 13:00 is due once more (nothing says it was no batch
    # hour); once it came round and passed with no batch while the 18:00 one came, it is
    # dropped. 10:00, seen twice, stays due although the freeze passed over it once.
    from monitor.detectors.thresholds import batch_waits
    day, offset = 86400.0, 7 * 3600.0
    midnight = 20 * day - offset                           # 00:00 local
    local = lambda d, h: midnight + d * day + h * 3600      # day d, local hour h
    batches = [local(0, 10), local(0, 18), local(1, 10), local(1, 18), local(2, 13), local(2, 18)]
    assert batch_waits(batches, batches[-1], offset, 30 * day, 60.0)[2] == pytest.approx(16 * 3600)   # 18:00 -> 10:00
    batches.append(local(3, 10))
    assert batch_waits(batches, batches[-1], offset, 30 * day, 60.0)[2] == pytest.approx(3 * 3600)    # 13:00, once more
    batches.append(local(3, 18))
    assert batch_waits(batches, batches[-1], offset, 30 * day, 60.0)[2] == pytest.approx(16 * 3600)   # 13:00 dropped
    assert batch_waits(batches[:-1], batches[-1], offset, 30 * day, 60.0) is None     # the last advance was no batch


def test_a_rare_skip_is_remembered_beyond_the_window_of_gaps():
    # A 15-min publisher that skipped one slot in its first hours: 48 gaps later (12 hours) the
    # window holds no skip, but the memory of its slots (half-life 4 days) still does, so one
    # missed publication is not yet improbable enough at this budget... after ~1,440 slots it is.
    from monitor.evaluation.builders import cadenced as cad
    polls = cad(10, cadence=900.0)
    later = cad(200, cadence=900.0, origin=T0 + timedelta(seconds=10 * 900 + 900), reported=600)
    judge, state, _ = drive(polls + later)
    assert state.slot_memory[1] == pytest.approx(0.5 ** (200 * 900 / (4 * 86400)), abs=0.03)
    stale = judge._stale(state, judge.options("src"))
    assert stale.missed_warning == 2
    _, plain, _ = drive(cad(211, cadence=900.0))
    assert judge._stale(plain, judge.options("src")).missed_warning == 1


def test_the_first_evening_of_a_poisson_feed_is_walked_as_slow_as_its_slowest_hour_seen():
    # Counting since 09:00 local (UTC+7): ten busy hours (~60 updates/h), then two at ~6/h. At
    # 21:00 the night ahead has never been seen: it is believed as slow as the slowest hour seen
    # (with that hour's evidence), so a silence there is no surprise for a while, where the
    # recent pace at ten times the certainty (the old first night) pages sooner.
    import random

    from monitor.detectors.diurnal import Rhythm
    draw = random.Random(12)
    rhythm = Rhythm()
    origin = T0.timestamp() + 2 * 3600                      # 09:00 WIB
    t, gaps = origin, []
    while t < origin + 12 * 3600:
        mean = 60.0 if t < origin + 10 * 3600 else 600.0
        step = round(draw.expovariate(1 / mean), 3) + 1.0
        rhythm.record(t, t + step, 7 * 3600, None, 10)
        gaps.append(step)
        t += step
    assert not rhythm.mature
    thresholds = learn(Seen(ADVANCE, gaps[-48:], rhythm=rhythm, start=t, offset=7 * 3600), DetectionOptions())
    assert thresholds.model == "poisson" and "following the hours seen so far" in thresholds.reason
    from monitor.detectors.thresholds import robust_mean
    mean = max(robust_mean(gaps[-48:]), robust_mean(gaps[-8:]))
    strict = mean * math.log1p(10 * 30 * 86400 / mean)
    assert thresholds.warning > strict + 3600


def test_a_night_hour_is_shrunk_towards_the_hours_beside_it_not_the_days_pace():
    # Two days of a Poisson-like feed: 60 updates/h from 08:00 to 20:00 local, 1/h at night.
    # A night hour seen twice (2 updates in 2 hours) borrows from its neighbours (also ~1/h),
    # so its belief stays near 1/h; borrowing the day's mean (~30/h) made it ~3/h, and a quiet
    # night three times as "improbable" as it is.
    from monitor.detectors.diurnal import Rhythm
    rhythm = Rhythm()
    t = T0.timestamp() - 7 * 3600                        # 00:00 WIB
    for _ in range(48):
        local = ((t + 7 * 3600) // 3600) % 24
        per_hour = 60 if 8 <= local < 20 else 1
        step = 3600 / per_hour
        for _ in range(per_hour):
            rhythm.record(t, t + step, 7 * 3600, None, 10)
            t += step
    day_mean = 1 / 120.0                                 # ~30/h over the day, as a recent mean might say
    shape, rate = rhythm.beliefs(day_mean)[3]            # 03:00 local
    assert rate * 3600 == pytest.approx(1.0, abs=0.15)
    assert shape > 1.5


# -- batches of uneven size: the chance of an empty publication while the day is learned ------

def quarter_hourly(count, spread, seed):
    """A 15-min publisher from 07:00 WIB, each batch ~150 TPS times a lognormal multiplier of
    mean 1 and log spread `spread` (0: always 150)."""
    import random

    from monitor.evaluation.builders import ok
    draw = random.Random(seed)
    polls, reported = [], 1000
    for j in range(count):
        moment = T0 + timedelta(seconds=900 * j + 15)
        reported += max(1, round(150 * math.exp(spread * draw.gauss(0, 1) - spread * spread / 2)))
        polls.append(ok(moment + timedelta(seconds=45), reported, 300_000, published=moment.astimezone(WIB)))
    return drive(polls)


@pytest.mark.parametrize("seed", [1, 3, 7])
def test_a_publisher_of_heavy_tailed_batches_is_not_paged_at_its_first_empty_publication(seed):
    # 13 hours of a 15-min publisher, no publication empty so far. With batches of ~150 TPS
    # each, one empty publication is e**-150 improbable: one missed publication pages. With
    # batches that vary ×4 either way (a lognormal multiplier, as when a batch is what a few
    # offices happened to send), a batch of almost nothing is not rare: wait for a second.
    judge, state, events = quarter_hourly(52, 0.0, seed)
    steady = judge._stall(state, judge.options("src"))
    assert events == [] and steady.missed_warning == 1
    judge, state, events = quarter_hourly(52, 1.4, seed)
    uneven = judge._stall(state, judge.options("src"))
    assert events == [] and uneven.missed_warning >= 2
    assert "the spread of its batches" in uneven.reason
    # Once its day is known, its hours' own empty publications say how often: no batch model.
    judge, state, _ = quarter_hourly(4 * 96, 1.4, seed)
    assert "the spread of its batches" not in judge._stall(state, judge.options("src")).reason


def test_the_spread_of_batches_is_read_from_their_low_side_beyond_the_poisson_noise():
    import random

    from monitor.detectors.thresholds import batch_empty, batch_spread
    draw = random.Random(5)
    gaps = [900.0] * 24
    poisson = [max(1, round(draw.gauss(150, math.sqrt(150)))) for _ in range(24)]
    assert batch_spread(poisson, gaps, 900.0) < 0.1                  # Poisson noise alone: no spread
    one_outsized = list(poisson)
    one_outsized[10] *= 20
    assert batch_spread(one_outsized, gaps, 900.0) < 0.1             # one outsized batch moves no median
    lognormal = [150 * math.exp(1.0 * draw.gauss(0, 1) - 0.5) for _ in range(24)]
    assert 0.5 < batch_spread(lognormal, gaps, 900.0) < 2.0                 # 24 increments say it roughly
    # A skipped publication's increment counts per publication of its gap: no spread from it.
    doubled = list(poisson)
    doubled[5] *= 2
    skipped = list(gaps)
    skipped[5] = 1800.0
    assert batch_spread(doubled, skipped, 900.0) < 0.1
    assert batch_spread(poisson[:5], gaps[:5], 900.0) == 0.0        # too few to tell
    # The chance of an empty publication: e**-m without spread, far more with a heavy tail.
    assert batch_empty(5.0, 0.0) == pytest.approx(math.exp(-5.0))
    assert 1e-4 < batch_empty(190.0, 1.36) < 1e-2
    assert batch_empty(190.0, 0.3) < 1e-20


def test_a_first_night_goes_on_falling_as_the_evening_fell():
    # Counting since 09:00 local (UTC+7) at 64 updates/h, halving every hour from 18:00: at
    # 23:00 the night ahead has never been seen. It is not believed as fast as the slowest hour
    # seen (23:00, ~2/h): the pace goes on falling as it fell over the evening, so the
    # unseen 01:00 is believed at least twice slower, and the threshold at 23:00 is longer
    # than a walk at the slowest hour's pace would make it.
    from monitor.detectors.diurnal import Rhythm
    rhythm = Rhythm()
    t = T0.timestamp() + 2 * 3600                        # 09:00 WIB
    for hour in range(9, 24):
        per_hour = 64 if hour < 18 else max(64 // 2 ** (hour - 17), 1)
        step = 3600 / per_hour
        for _ in range(per_hour):
            rhythm.record(t, t + step, 7 * 3600, None, 10)
            t += step
    assert not rhythm.mature
    beliefs = rhythm.beliefs(1 / 300.0, learning=True)
    slowest = min(rate for (_, rate), e in zip(beliefs, rhythm.exposure) if e > 0)
    assert beliefs[1][1] < slowest / 2                   # 01:00, unseen
    assert beliefs[8][1] < slowest                       # 08:00, unseen, next to the morning
    assert beliefs[12][1] * 3600 == pytest.approx(64, rel=0.1)   # seen: its own


def test_a_few_slow_gaps_raise_the_prior_but_a_cadence_s_first_gaps_do_not():
    # Met in its night: three irregular updates ~50 min apart are too few to learn from, yet
    # enough to tell that 2 h of silence is no surprise at that pace.
    options = DetectionOptions()
    slow = learn(Seen(ADVANCE, [2700.0, 3500.0, 2900.0]), options)
    assert slow.model == "prior" and slow.warning > 4 * 3600 and "slower than the prior assumes" in slow.reason
    # Fast gaps never lower it; an hourly publisher's first gaps are a cadence, not a slow pace.
    assert learn(Seen(ADVANCE, [100.0, 340.0, 60.0]), options).warning == options.stall_prior
    assert learn(Seen(ADVANCE, [3600.0, 3601.0, 3599.0]), options).warning == options.stall_prior
    # ...but a silence no longer than a gap it has already shown is no news: a skipped slot
    # among its first gaps, or a publisher every 2 hours met before its first slot came.
    skipped = learn(Seen(ADVANCE, [3600.0, 3601.0, 7199.0]), options)
    assert skipped.model == "prior" and skipped.warning > 7199.0 + 1800 and "without an advance" in skipped.reason
    assert learn(Seen(PUBLICATION, [7190.0]), options).warning > 7190.0 + 1800
    # With no gap yet, the age of the data at our first poll is a gap in progress (on the
    # publication clock the same as first_age): data 1h50m old at our first poll of a
    # publisher every 2 hours is not stale at 2 h.
    assert learn(Seen(PUBLICATION, [], first_age=6600.0), options).warning > 6600.0 + 1800
    assert learn(Seen(PUBLICATION, [], first_age=600.0), options).warning == options.stall_prior
    # Advances come no faster than publications: slow publications tell before two advances do.
    assert learn(Seen(ADVANCE, [3000.0], pub_gaps=[2400.0, 3700.0]), options).warning > 4 * 3600


def test_a_small_region_whose_publications_come_empty_is_not_paged_by_the_prior():
    # Hourly publications, two advances over five of them (3 of 5 came empty): the advances are a
    # thinned lattice, and 13 empty slots in a row are what the budget allows (0.6**13 ~ 1/720):
    # held to the 12-hour ceiling. Every publication an advance: the prior stands. No advance
    # yet: nothing tells the pace, and the silence now is not evidence of it (the prior stands).
    options = DetectionOptions()
    sparse = learn(Seen(ADVANCE, [3 * 3600.0, 2 * 3600.0], pub_gaps=[3600.0] * 5), options)
    assert sparse.model == "prior" and sparse.warning == options.stall_ceiling
    assert "60% of its publications may come empty" in sparse.reason
    # One advance gap, one slot: +2 TPS a publication makes an empty one e**-2 likely (14%),
    # 4 in a row as rare as the budget allows; +300 a publication: the prior stands.
    few = learn(Seen(ADVANCE, [3600.0], pub_gaps=[3600.0], steps=[2.0], step_gaps=[3600.0]), options)
    assert few.warning == 4 * 3600.0 and "14% of its publications may come empty" in few.reason
    many = learn(Seen(ADVANCE, [3600.0], pub_gaps=[3600.0], steps=[300.0], step_gaps=[3600.0]), options)
    assert many.warning == options.stall_prior
    busy = learn(Seen(ADVANCE, [3600.0] * 3, pub_gaps=[3600.0] * 3), options)
    assert busy.warning == options.stall_prior
    assert learn(Seen(ADVANCE, [], pub_gaps=[3600.0] * 5), options).warning == options.stall_prior
    # Nor is the silence now: an hourly publisher whose count froze 2 hours ago while its
    # timestamp moves on (pipeline stuck) in its first hours is paged on the prior. Read as "the
    # advances are slower than the publications" it would raise the threshold as fast as the
    # silence grows, to the 12-hour ceiling.
    start = 1_700_000_000.0
    stuck = learn(Seen(ADVANCE, [3600.0] * 3, pub_gaps=[3600.0] * 5, steps=[300.0] * 3, step_gaps=[3600.0] * 3,
                       start=start, anchor=start + 2 * 3600), options)
    assert stuck.warning == options.stall_prior


def test_the_prior_skips_are_counted_once_over_all_the_slots_seen():
    # A 5-min publisher that never skipped, with days of slots in its memory: one missed
    # publication is news. Read over the 48-gap window alone, the prior's pseudo-skip (1/4800)
    # is above its budget share (300 s in 30 days, 1/8640): two missed publications, 10 min.
    options = DetectionOptions()
    gaps = [300.0] * 48
    remembered = learn(Seen(PUBLICATION, gaps, gaps, memory=[1500.0, 0.0, 0.0, 0.0]), options)
    assert remembered.missed_warning == 1
    window_only = learn(Seen(PUBLICATION, gaps, gaps), options)
    assert window_only.missed_warning == 2


def test_a_strict_lattice_waits_for_the_tolerance_it_was_accepted_with():
    # Every 2 hours, each publication within ± 2% (144 s): too few publications to fit their
    # wander yet, the lattice was accepted with gaps up to 2 min off; the wait allows for that.
    options = DetectionOptions()
    gaps = [7200.0, 7310.0, 7090.0, 7200.0, 7250.0, 7150.0, 7200.0]
    thresholds = learn(Seen(PUBLICATION, gaps, gaps), options)
    assert thresholds.model == "cadence" and thresholds.missed_warning == 1
    assert thresholds.warning >= 7200.0 + 110.0 and "wander" in thresholds.reason


def test_a_publisher_late_now_and_then_is_waited_for_beyond_the_latest_seen():
    # Hourly, on time within seconds, but 4 slots of 48 late by 5-25 min: the next late slot
    # may come later than all of these (1 in 49), and the tail beyond is as long as the late
    # slots are far apart (peaks over a threshold), so the wait reaches well past 25 min.
    options = DetectionOptions()
    offsets = [0.0] * 49
    for i, late in ((10, 300.0), (20, 1500.0), (30, 900.0), (40, 600.0)):
        offsets[i] = late
    times = [3600.0 * i + d for i, d in enumerate(offsets)]
    gaps = [b - a for a, b in zip(times, times[1:])]
    thresholds = learn(Seen(PUBLICATION, gaps, gaps), options)
    assert thresholds.model == "cadence" and thresholds.missed_warning == 1
    assert thresholds.warning > 3600.0 + 1500.0 + 0.25 * 1500.0 + 600.0
    # A wander seen whole (± 20 s jitter, close together at the top) keeps a short tail.
    jittered = [3600.0 + 20.0 * math.sin(7.0 * i) - 20.0 * math.sin(7.0 * (i - 1)) for i in range(48)]
    short = learn(Seen(PUBLICATION, jittered, jittered), options)
    assert short.model == "cadence" and short.warning < 3600.0 + 120.0


def test_the_late_tail_is_not_bounded_by_the_latest_seen():
    from monitor.detectors.thresholds import late_tail
    close = [float(i) for i in range(49)]             # a wander seen whole: spacings of 1 s
    far = [0.0] * 45 + [300.0, 600.0, 900.0, 1500.0]  # a few late slots far apart
    assert 48.0 < late_tail(close, 1 / 720) < 48.0 + 30.0
    assert late_tail(far, 1 / 720) > 1500.0 + 1000.0
    assert late_tail(far, 1 / 40) == 1500.0            # chance above 1/(n+1): the latest seen is enough


def test_a_stall_whose_timestamp_froze_with_the_last_advance_comes_due_with_the_stale_timestamp():
    # The small province at noon after three and a half days: its own walk asks for two empty
    # publications (the noon hour's evidence is not yet firm enough for one), the timestamp's
    # cadence for one missed publication. When the publisher stops right after an advance, no
    # publication came at all: no advance could, and the counts' silence is the timestamp's.
    # One page, at the same poll, not a stall joining the stale timestamp an hour later.
    judge, state, _ = small_province(3 * 24 + 6)
    assert judge._stall(state, judge.options("src")).missed_warning == 2
    stale_warning = judge._stale(state, judge.options("src")).warning
    published = state.current.published_at
    base = state.last_advance_at
    age0 = (base - published).total_seconds()
    before = judge.observe(state, same(state, base + timedelta(seconds=stale_warning - age0 - 1)))
    assert before == []
    due = judge.observe(state, same(state, base + timedelta(seconds=stale_warning - age0)))
    assert sorted((e.rule, e.severity) for e in due) == [("stale_source", "warning"), ("stall", "warning")]
    stall = next(e for e in due if e.rule == "stall")
    assert stall.details["cause"] == "publisher_stopped" and stall.details["members"] == ["stale_source", "stall"]
    assert "no publication since, which the timestamp's model prices: hourly cadence: 1 missed publication" in stall.summary


def test_an_empty_publication_that_came_is_not_explained_by_skipped_slots():
    # The small province skipped one slot at night a day ago (no publication: a gap of two
    # slots), so 1 in ~49 of its slots may not come at all, and a slot that may not come is an
    # empty one as far as the counts know: two silent noon slots are asked for. But once the
    # noon publication came (its timestamp moved on) and brought nothing where ~8 TPS are due,
    # the chance of a skipped slot explains none of it: one missed publication.
    judge, state, _ = small_province(4 * 24 + 6, skip_at=3 * 24 - 4)
    noon = judge._stall(state, judge.options("src"))
    assert noon.missed_warning == 2
    empty = state.current.published_at + timedelta(hours=1)
    assert judge.observe(state, ok(empty + timedelta(seconds=45), state.current.stations_reported, 20_000,
                                   published=empty)) == []
    came = judge._stall(state, judge.options("src"))
    assert came.missed_warning == 1 and came.warning < noon.warning - 3000
    events = judge.observe(state, same(state, state.last_advance_at + timedelta(seconds=came.warning)))
    assert [(e.rule, e.details["cause"]) for e in events] == [("stall", "pipeline_stuck")]


def test_a_count_never_seen_moving_while_its_timestamp_moves_on_stays_a_warning():
    # Counting (500 of 20,000) but not seen to move since our first poll, its timestamp moving
    # on every hour: stuck, or slower than the 2-hour prior assumes. Nothing seen of its pace
    # tells which: one warning, no critical, and it says so.
    first = T0.replace(minute=0, second=15)
    polls = [ok(first + timedelta(hours=j, seconds=45), 500, 20_000, published=first + timedelta(hours=j))
             for j in range(0, 8)]
    judge, state, events = drive(polls)
    stall = [e for e in events if e.rule == "stall"]
    assert [(e.state, e.severity) for e in stall] == [("firing", "warning")]
    assert stall[0].details["cause"] == "pipeline_stuck"
    assert stall[0].summary.endswith("it may be slower than the prior assumes: a warning until it moves.")


def test_the_first_advance_tells_the_prior_what_a_publication_brings():
    # Met at night: the first advance, +1 TPS, came two publications after the data we first
    # saw. The prior reads that span as an advance gap: half its slots came empty, and +1 over
    # two publications makes an empty one e**-0.5 likely (61%): a 2-hour silence after it is
    # no news.
    first = T0.replace(minute=0, second=15)
    polls = [ok(first + timedelta(hours=j, seconds=45), 500 + (j >= 2), 20_000, published=first + timedelta(hours=j))
             for j in range(0, 5)]
    judge, state, events = drive(polls)
    assert [e for e in events if e.rule == "stall"] == []
    thresholds = judge._stall(state, judge.options("src"))
    assert thresholds.model == "prior" and thresholds.warning > 4 * 3600
    assert "61% of its publications may come empty" in thresholds.reason


def test_a_small_region_s_night_past_the_ceiling_is_learned_and_not_paged():
    # The sparse family's slowest seed: an hourly region of 3,000 units bringing 3 an hour at
    # its busiest, UTC+5:30, whose nights go 12-19 hours without a unit. Its hours' stations
    # say so, and the 12-hour ceiling gives way to them: no night is paged, and every night is
    # learned (a night past the ceiling was an incident, never learned: the day stayed unknown
    # and the ceiling paged every night). Its first hours, before any advance, are the prior's.
    from monitor.evaluation.headline import windows, _true
    from monitor.evaluation.paging import pages
    from monitor.evaluation.publishers import publish
    from monitor.evaluation.sweeps import BY_NAME, laws
    from monitor.replay import replay

    g = publish(laws(BY_NAME["sparse"], 10)[0], 0, 8.0)
    events = list(replay(g.polls))
    spans = windows(g)
    false = [e for page in pages(events) for e in page.members
             if e.family == "stoppage" and not _true(e, spans)]
    assert [(e.rule, e.details["threshold_reason"]) for e in false] == [
        ("stall", "too little history yet (0 advance gaps): prior of 2h")]
    judge, states = Judge(None), {}
    for poll in g.polls:
        state = states.get(poll.region) or states.setdefault(poll.region, judge.restore(poll.source, poll.region, None))
        judge.observe(state, poll)
    state = states["0"]
    assert state.rhythm.mature and min(state.rhythm.exposure) > 0
