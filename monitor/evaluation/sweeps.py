"""Publisher families: each sweeps one axis of what real publishers do over its seeds, the other
properties ordinary (a punctual publisher: ± 5 s, like Sirekap's HH:00:14-HH:00:20, so that a
family's failures belong to its own axis). Seed k of n takes the axis at k/(n-1) of its range, so the families cover
their range evenly whatever n is (at least 10 in `make evaluate`).

Nothing here is tuned to countwatch: the laws come from what publishers were seen doing (KPU's
Sirekap hourly at HH:00:15 WIB, Situng every 15 min, Minnesota's SoS every 10 min with a test-data
reset and a tail of hours, canvass updates once or twice a day), and the oracle reads them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .publishers import Law

DAY = 86400.0


@dataclass(frozen=True)
class Family:
    name: str
    axis: str                       # what the seeds sweep, in words
    law: Callable[[float, int], Law]   # (position 0..1 along the axis, seed) -> the seed's law


def _between(low: float, high: float, x: float) -> float:
    return low + (high - low) * x


def _geometric(low: float, high: float, x: float) -> float:
    return low * (high / low) ** x


ZONES = (7.0, -6.0, 0.0, 5.5, 9.0, -5.0, 1.0, 8.0, -3.0, 10.0, 3.0, -8.0)


FAMILIES: tuple[Family, ...] = (
    Family("jitter", "15-min publisher, publication time uniform within ± 0–10% of the cadence",
           lambda x, k: Law("jitter", cadence=900, jitter=_between(0, 90, x))),
    Family("drift", "hourly publisher, the publication minute drifting 0–30 min a day",
           lambda x, k: Law("drift", cadence=3600, jitter=5, drift=_between(0, 1800, x))),
    Family("skipped-late", "15-min (even seeds) or hourly (odd) publisher skipping 0–15% of its slots and 0–25% late by up to half a cadence",
           lambda x, k: Law("skipped-late", cadence=900 if k % 2 == 0 else 3600, jitter=5, skip=_between(0, 0.15, x),
                            late=_between(0, 0.25, x), late_by=450 if k % 2 == 0 else 1800)),
    Family("cadence", "publisher every 5 min … 2 h (geometric), publication time within ± 2% of the cadence",
           lambda x, k: Law("cadence", cadence=round(_geometric(300, 7200, x)), jitter=0.02 * _geometric(300, 7200, x))),
    Family("sparse", "hourly publisher of a small region: 3–30 units/h at the busiest hour (most publications bring none at night), zones UTC−8…+10",
           lambda x, k: Law("sparse", stations=3000, cadence=3600, jitter=5, peak=_geometric(3, 30, x),
                            utc_offset=ZONES[(k + 3) % len(ZONES)])),
    Family("batch-size", "15-min publisher, batch sizes from Poisson to lognormal/Pareto of CV 0.3–3",
           lambda x, k: Law("batch-size", cadence=900, jitter=5, batch=("lognormal", "pareto")[k % 2],
                            cv=_geometric(0.3, 3.0, x))),
    Family("day-night", "updates as data comes; day shape exponent 1–8, night floor 30%–1%, zones UTC−8…+10",
           lambda x, k: Law("day-night", cadence=None, peak=300, arrivals=60, shape=_geometric(1, 8, x),
                            night=_geometric(0.3, 0.01, x), utc_offset=ZONES[k % len(ZONES)],
                            busiest=_between(11, 20, (k * 0.37) % 1))),
    Family("tail", "15-min publisher in its tail: pace ∝ what remains, time constant 6 h – 3 days",
           lambda x, k: Law("tail", stations=20_000, start_ratio=0.9, cadence=900, jitter=5, peak=300,
                            tail=_geometric(6, 72, x) * 300 * 0.4 / 20_000,
                            stall_lengths=(3600, 4 * 3600, 12 * 3600))),
    Family("poisson-tail", "updates as data comes (~60/h at the peak) in its tail: pace ∝ what remains, time constant 6 h – 3 days, zones UTC−8…+10",
           lambda x, k: Law("poisson-tail", stations=20_000, start_ratio=0.9, cadence=None, peak=300, arrivals=60,
                            tail=_geometric(6, 72, x) * 300 * 0.4 / 20_000, utc_offset=ZONES[(k + 5) % len(ZONES)],
                            busiest=_between(11, 20, (k * 0.37 + 0.5) % 1),
                            stall_lengths=(3600, 4 * 3600, 12 * 3600))),
    Family("daily-batches", "hourly publisher settling after 3 days into one or two batches a day, each within ± 1–20 min of its hour",
           lambda x, k: Law("daily-batches", cadence=3600, jitter=5, daily_jitter=_between(60, 1200, x), settle_after=3,
                            daily=(10.0, 18.0) if k % 2 == 0 else (11.0,),
                            stall_lengths=(4 * 3600, 12 * 3600, DAY, 2 * DAY))),
    Family("late-start", "10-min publisher at zero for 1–20 h after the daemon starts; test data cleared first on even seeds",
           lambda x, k: Law("late-start", cadence=600, jitter=5, starts_after=_geometric(1, 20, x),
                            test_data=k % 2 == 0, utc_offset=-6.0)),
    Family("tree", "15-min table of 8 children whose speeds differ 3–100×; children stall alone; on odd seeds one is left behind (0.06%, barely moving)",
           lambda x, k: Law("tree", cadence=900, jitter=5, children=8, spread=_geometric(3, 100, x), lagging=k % 2 == 1)),
    Family("timestamps", "15-min publisher, stalls with a frozen timestamp (share 100% → 0%); no timestamp at all on the last seeds",
           lambda x, k: Law("timestamps", cadence=900, jitter=5, moving_share=x, timestamp=x < 0.8)),
)

BY_NAME = {f.name: f for f in FAMILIES}


def laws(family: Family, seeds: int) -> list[Law]:
    return [family.law(k / max(seeds - 1, 1), k) for k in range(seeds)]
