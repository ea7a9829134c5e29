"""The rhythm's walks are computed faster than they read (a kept walk, inlined hours), and
must give exactly what the plain walks give: compared here on random hours and targets."""
from __future__ import annotations

import math
import random

import pytest

from monitor.detectors import diurnal
from monitor.detectors.diurnal import (BINS, HALF_LIFE, QUARTERS, WALK_LIMIT, Rhythm, hour_of, publications_believed,
                                       publications_unbatched, quarter_weights, silence, time_to_believed)


# The plain walks: what the kept, inlined walks of diurnal.py must equal, float for float.

def walk_time(beliefs: list[tuple[float, float]], start: float, target: float, offset: float,
              level: float = 1.0) -> float:
    """time_to_believed() as a plain walk, quarter by quarter of each hour."""
    weights = quarter_weights(beliefs)
    width = 3600 / QUARTERS
    spent = [0.0] * BINS
    total, t = 0.0, start
    while t - start < WALK_LIMIT:
        q = int(math.floor((t + offset) / width)) % (BINS * QUARTERS)
        b = q // QUARTERS
        until = math.floor((t + offset) / width) * width + width - offset
        shape, mean = beliefs[b]
        step = (until - t) * weights[q]
        before = silence(shape, mean, level, spent[b])
        gain = silence(shape, mean, level, spent[b] + step) - before
        if total + gain >= target and mean > 0 and weights[q] > 0:
            grow = (target - total) / shape
            if grow > 700:
                return WALK_LIMIT
            scale = shape / (level * mean)
            return t - start + (scale + spent[b]) * math.expm1(grow) / weights[q]
        total += gain
        spent[b] += step
        t = until
    return WALK_LIMIT


def walk_publications(beliefs: list[tuple[float, float]], empty: list[float], start: float, cadence: float,
                      target: float, offset: float, level: float = 1.0, batchy: list[float] | None = None) -> int:
    """publications_believed() as a plain walk."""
    spent = [0.0] * BINS
    total, j = 0.0, 0
    while j * cadence < WALK_LIMIT:
        j += 1
        b, _ = hour_of(start + j * cadence, offset)
        shape, mean = beliefs[b]
        none = math.exp(silence(shape, mean, level, spent[b]) - silence(shape, mean, level, spent[b] + 1))
        if batchy is not None:
            none = max(none, batchy[b])
        total += -math.log(empty[b] + (1.0 - empty[b]) * none)
        spent[b] += 1
        if total >= target:
            return j
    return j




def _hours(rng: random.Random) -> tuple[list, list, list | None]:
    beliefs = [(rng.choice([1e-9, rng.uniform(0.01, 40)]), rng.choice([0.0, rng.uniform(0, 5)]))
               for _ in range(24)]
    empty = [rng.choice([0.0, rng.uniform(0, 0.6), 0.999]) for _ in range(24)]
    batchy = [rng.uniform(0, 0.5) for _ in range(24)] if rng.random() < 0.5 else None
    return beliefs, empty, batchy


def test_publications_believed_equals_the_plain_walk():
    rng = random.Random(15)
    for _ in range(150):
        beliefs, empty, batchy = _hours(rng)
        start = rng.choice([1707912000.0, 1707912015.5, rng.uniform(1.7e9, 1.8e9)])
        cadence = rng.choice([60.0, 600.0, 900, 3600.0, rng.uniform(60, 7200)])
        offset = rng.choice([25200.0, 0.0, -3600.0])
        level = rng.choice([1.0, 0.3, rng.uniform(0.01, 2)])
        # Targets as _cadenced asks them: a warning, then the critical over the same hours
        # (the kept walk goes on), then one below what was walked (found by bisection).
        for target in sorted(rng.uniform(0, 40) for _ in range(3)) + [rng.uniform(0, 5), float("inf")]:
            want = walk_publications(beliefs, empty, start, cadence, target, offset, level, batchy)
            assert publications_believed(beliefs, empty, start, cadence, target, offset, level, batchy) == want
            # ...and what the hours alone ask for, read from the same walk (the reason's wording)
            for unbatched in sorted(rng.uniform(0, 40) for _ in range(2)) + [target]:
                assert publications_unbatched(beliefs, empty, start, cadence, unbatched, offset, level, batchy) == \
                    walk_publications(beliefs, empty, start, cadence, unbatched, offset, level)
        # Other hours after these: a walk of its own.
        assert publications_believed(beliefs, empty, start + cadence, cadence, 9.0, offset, level) == \
            walk_publications(beliefs, empty, start + cadence, cadence, 9.0, offset, level)


def test_a_failed_walk_is_not_gone_on_from():
    beliefs, empty = [(1.0, 1.0)] * 24, [1.0] * 24
    empty[5] = -1.0                                # log of a negative: the walk raises
    for _ in range(2):
        try:
            publications_believed(beliefs, empty, 0.0, 3600.0, 1e9, 0.0)
        except ValueError:
            pass
        else:
            raise AssertionError("expected the walk to raise")
    assert getattr(diurnal._WALKS, "last", None) is None


def test_time_to_believed_equals_the_plain_walk():
    rng = random.Random(12)
    for _ in range(300):
        beliefs, _, _ = _hours(rng)
        start = rng.choice([1707912000.0, 1707912015.5, rng.uniform(1.7e9, 1.8e9)])
        offset = rng.choice([25200.0, 0.0, -3600.0, 19800.0])
        level = rng.choice([1.0, 0.3, rng.uniform(0.01, 2)])
        for target in (rng.uniform(0, 40), rng.uniform(0, 2), 800.0, float("inf")):
            assert time_to_believed(beliefs, start, target, offset, level) == \
                walk_time(beliefs, start, target, offset, level)


def test_record_forgets_as_it_did_hour_by_hour():
    """Rhythm.record decays its rows in one pass each: the same values as the loop it replaced."""
    rng = random.Random(4)
    for cadence in (0.0, 3600.0):
        rhythm, rows = Rhythm(), None
        start = 1707912000.0
        for _ in range(300):
            gap = rng.choice([cadence or 60.0, rng.uniform(30, 20000)])
            before = [list(r) for r in (rhythm.advances, rhythm.exposure, rhythm.stations)]
            rhythm.record(start, start + gap, 25200.0, cadence or None, rng.uniform(0, 50))
            if abs((cadence or 0.0) - rhythm.cadence) <= 0.1 * max(cadence, rhythm.cadence) and any(before[1]):
                keep = 0.5 ** (gap / HALF_LIFE)
                digits = 4 if cadence else 1
                decayed = [[round(v * keep, 4) for v in before[0]], [round(v * keep, digits) for v in before[1]],
                           [round(v * keep, 3) for v in before[2]]]
                rows = decayed
                b = hour_of(start + gap, 25200.0)[0]
                # what record adds after the decay: one advance at the end's hour, stations, exposure
                assert round(decayed[0][b] + 1, 4) == rhythm.advances[b]
                others = [h for h in range(24) if h != b]
                assert all(rhythm.advances[h] == decayed[0][h] for h in others)
            start += gap
    assert rows is not None


def test_a_publication_every_two_hours_is_spread_over_the_hours_it_covers():
    # Published at the even hours, each publication reports what came in over the two hours
    # before it: every hour of the day is seen, the day is known after 1.5 days like any other,
    # and an hour's stations per publication stay what a publication brings.
    rhythm = Rhythm()
    t0 = 1_700_000_000.0 - 1_700_000_000.0 % 86400
    for k in range(1, 20):
        rhythm.record(t0 + (k - 1) * 7200, t0 + k * 7200, 0.0, 7200.0, 100.0)
    assert not rhythm.mature and all(e > 0 for e in rhythm.exposure)
    assert sum(rhythm.advances) == pytest.approx(sum(rhythm.exposure))       # none came empty
    assert rhythm.stations[5] / rhythm.exposure[5] == pytest.approx(100.0, rel=0.1)
    for k in range(20, 20 + 12):
        rhythm.record(t0 + (k - 1) * 7200, t0 + k * 7200, 0.0, 7200.0, 100.0)
    assert rhythm.mature
    # A gap of two slots: one publication came empty, half of it in each hour it covered.
    before = sum(rhythm.exposure) - sum(rhythm.advances)
    rhythm.record(t0 + 31 * 7200, t0 + 33 * 7200, 0.0, 7200.0, 100.0)
    assert sum(rhythm.exposure) - sum(rhythm.advances) == pytest.approx(before * 0.5 ** (2 * 7200 / HALF_LIFE) + 1.0,
                                                                        abs=1e-3)


def test_a_rising_hour_is_walked_slow_first():
    """On a ramp (the hour before at a quarter of this one's pace, the hour after at twice it)
    the quarters keep the hour's mean, rise through it, and a silence starting at the hour's
    beginning becomes improbable later than the hour's mean pace alone would say."""
    beliefs = [(1e6, 0.0)] * BINS
    beliefs[9], beliefs[10], beliefs[11] = (1e6, 0.25 / 60), (1e6, 1 / 60), (1e6, 2 / 60)
    weights = quarter_weights(beliefs)[10 * QUARTERS:11 * QUARTERS]
    assert abs(sum(weights) - QUARTERS) < 1e-12 and weights == sorted(weights) and weights[0] < 0.75
    ten = 1707868800.0 + 10 * 3600                      # 14 Feb 2024 10:00 UTC
    assert time_to_believed(beliefs, ten, 10.0, 0.0) > 10 * 60 + 60


def test_a_poisson_like_rhythm_counts_its_publications_once_one_brought_nothing():
    """Publications are counted per hour beside the advances; the row is the advances' until a
    gap holds a publication that brought nothing (then made as their copy), and is kept."""
    noon = 1707912000.0                                   # 14 Feb 2024 12:00 UTC
    rhythm = Rhythm()
    rhythm.record(noon, noon + 300, 0.0, None, 5.0, [noon + 300])
    assert rhythm.published() is None and not any(rhythm.publications)
    assert len(rhythm.to_json()) == 4
    rhythm.record(noon + 300, noon + 4000, 0.0, None, 5.0, [noon + 4000, noon + 3000, noon + 1000])
    own = rhythm.published()
    assert own is not None and list(own.exposure) == list(rhythm.exposure)
    assert own.advances[12] == rhythm.advances[12] + 2 and own.advances[13] == rhythm.advances[13]   # two brought nothing
    again = Rhythm.from_json(rhythm.to_json())
    assert list(again.publications) == list(rhythm.publications)
    hourly = Rhythm()
    hourly.record(noon, noon + 3600, 0.0, 3600.0, 5.0, [noon + 1800, noon + 3600])
    assert hourly.published() is None


def test_a_cadence_recognised_late_keeps_the_hours_watched_before_it():
    # A 2-hour publisher whose wander needs 12 publications (a day) before its lattice is
    # recognised: the day it was watched on no lattice (in seconds) is counted in publications
    # from then on, not started afresh, so its first evening and night are known on its second.
    t0 = 1_700_000_000.0 - 1_700_000_000.0 % 86400
    rhythm = Rhythm()
    for k in range(1, 13):
        rhythm.record(t0 + (k - 1) * 7200 + 600, t0 + k * 7200 + 600, 0.0, None, 100.0)
    assert rhythm.cadence == 0.0 and all(e > 3000 for e in rhythm.exposure)
    assert rhythm.stations[2] > 80 and rhythm.stations[3] == 0.0      # each advance at the hour it ended
    exposure, stations = list(rhythm.exposure), list(rhythm.stations)
    rhythm.record(t0 + 12 * 7200 + 600, t0 + 13 * 7200 + 600, 0.0, 7200.0, 100.0)
    assert rhythm.cadence == 7200.0
    # An hour watched whole is half a publication of 2 hours; each advance's stations (counted
    # at the hour it ended, 10 minutes past) are spread over the two hours before it, as its
    # publication's are: 5/12 to the hour two before, 1/2 to the hour before, 1/12 to its own.
    keep = 0.5 ** (7200 / HALF_LIFE)
    for h in range(3, 22):                # hours 0-2 got the new publication's share too
        assert rhythm.exposure[h] == pytest.approx(exposure[h] / 7200 * keep, abs=1e-3)
        assert rhythm.stations[h] == pytest.approx(
            (stations[h + 2] * 5 / 12 + stations[h + 1] / 2 + stations[h] / 12) * keep, abs=0.01)
    assert all(e > 0.4 for e in rhythm.exposure) and all(x > 35.0 for x in rhythm.stations)   # every hour known
    assert sum(rhythm.stations) == pytest.approx(sum(stations) * keep + 100.0, rel=1e-3)
    # ...and back on no lattice (the renewal model while its wander is refitted): in seconds again.
    exposure = list(rhythm.exposure)
    rhythm.record(t0 + 13 * 7200 + 600, t0 + 14 * 7200 + 600, 0.0, None, 100.0)
    assert rhythm.cadence == 0.0
    assert rhythm.exposure[12] == pytest.approx(exposure[12] * 7200 * keep, abs=1.0)


def _walked_total(beliefs: list[tuple[float, float]], start: float, offset: float, level: float) -> float:
    """The plain walk's total after all of WALK_LIMIT (where it gives up)."""
    weights, width = quarter_weights(beliefs), 3600 / QUARTERS
    spent, total, t = [0.0] * BINS, 0.0, start
    while t - start < WALK_LIMIT:
        q = int(math.floor((t + offset) / width)) % (BINS * QUARTERS)
        until = math.floor((t + offset) / width) * width + width - offset
        shape, mean = beliefs[q // QUARTERS]
        step = (until - t) * weights[q]
        total += silence(shape, mean, level, spent[q // QUARTERS] + step) - silence(shape, mean, level,
                                                                                    spent[q // QUARTERS])
        spent[q // QUARTERS] += step
        t = until
    return total


def test_a_walk_out_of_reach_is_not_walked_and_gives_what_the_walk_gives():
    """Hours believed at a rate of nothing (credible() of thinly seen hours) make most walks
    end at WALK_LIMIT: time_to_believed answers those without walking, when a bound on all
    the walk could gather is below the target. Targets just around what the walk gathers
    (the bound is above it, never below) give the plain walk's answer either way, and the
    bound does spare the walk well below it."""
    rng = random.Random(7)
    spared = 0
    for _ in range(60):
        beliefs = [(rng.uniform(0.5, 30), 0.0 if rng.random() < 0.8 else rng.uniform(0, 2e-4)) for _ in range(BINS)]
        start = rng.uniform(1.7e9, 1.8e9)
        offset = rng.choice([25200.0, 0.0, 19800.0])
        level = rng.choice([1.0, 0.4, rng.uniform(0.01, 2)])
        total = _walked_total(beliefs, start, offset, level)
        for factor in (0.5, 0.999, 1.0 - 1e-9, 1.0, 1.0 + 1e-9, 1.001, 1.2, 3.0):
            target = total * factor if total > 0 else factor
            assert time_to_believed(beliefs, start, target, offset, level) == \
                walk_time(beliefs, start, target, offset, level)
        spared += diurnal._out_of_reach(beliefs, 3.0 * total or 3.0, level, quarter_weights(beliefs), 3600 / QUARTERS)
    assert spared >= 50
    # Not for numbers out of the ordinary: a negative rate, a NaN level, no target.
    weights = quarter_weights([(1.0, 1e-6)] * BINS)
    assert not diurnal._out_of_reach([(1.0, -1e-6)] * BINS, 5.0, 1.0, weights, 900.0)
    assert not diurnal._out_of_reach([(1.0, 1e-6)] * BINS, 5.0, float("nan"), weights, 900.0)
    assert not diurnal._out_of_reach([(1.0, 1e-6)] * BINS, 0.0, 1.0, weights, 900.0)
    assert diurnal._out_of_reach([(1.0, 1e-6)] * BINS, 5.0, 1.0, weights, 900.0)
