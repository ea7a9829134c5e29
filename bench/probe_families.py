"""Publisher laws the families do not sweep, for checking by hand that a change holds beyond
them: other cadences (5 min, 30 min, 2 h), hourly variants of the families (skips and lateness,
batch sizes, tail, timestamps, late start, trees), a small hourly region, slow arrivals.

    .venv/bin/python bench/probe_families.py [NAMES [SEEDS [DAYS]]]

e.g. `bench/probe_families.py cad-5m,cad-2h,hourly-skip 10 8`. Each law is registered as a family
of monitor/evaluation/sweeps.py for the run only and scored as `countwatch evaluate` scores the
families (the same oracle, budget and table). They are kept out of `make evaluate` on purpose:
they were written to find what the families missed (issue #12), and the detectors were then
changed against some of them, so they are no longer held out; new laws belong here too.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from monitor.evaluation import sweeps, headline
from monitor.evaluation.sweeps import Family, _between, _geometric, ZONES
from monitor.evaluation.publishers import Law

EXTRA = (
    Family("cad-5m", "5-min publisher, jitter 0-5%", lambda x, k: Law("cad-5m", cadence=300, jitter=_between(0, 15, x))),
    Family("cad-30m", "30-min publisher, jitter 0-5%", lambda x, k: Law("cad-30m", cadence=1800, jitter=_between(0, 90, x))),
    Family("cad-2h", "2-hour publisher, jitter 0-5%", lambda x, k: Law("cad-2h", cadence=7200, jitter=_between(0, 360, x),
                                                                        stall_lengths=(4*3600, 8*3600, 16*3600))),
    Family("hourly-jitter", "hourly, jitter 0-10%", lambda x, k: Law("hourly-jitter", cadence=3600, jitter=_between(0, 360, x))),
    Family("sparse-hourly", "hourly small region 3-30 TPS/h at peak", lambda x, k: Law("sparse-hourly", cadence=3600, jitter=5,
                            stations=3000, peak=_geometric(3, 30, x), utc_offset=ZONES[k % len(ZONES)])),
    Family("poisson-slow", "updates as data comes, 4-20/h at peak", lambda x, k: Law("poisson-slow", cadence=None, peak=200,
                            arrivals=_geometric(4, 20, x), utc_offset=ZONES[k % len(ZONES)])),
    Family("hourly-skip", "hourly, skipping 0-15%, late 0-25%", lambda x, k: Law("hourly-skip", cadence=3600, jitter=5,
                            skip=_between(0, 0.15, x), late=_between(0, 0.25, x), late_by=1800)),
    Family("quarter-daynight", "15-min, steep day/night, zones", lambda x, k: Law("quarter-daynight", cadence=900, jitter=5,
                            shape=_geometric(1, 8, x), night=_geometric(0.3, 0.01, x), utc_offset=ZONES[k % len(ZONES)])),
)
EXTRA += (
    Family("batch-hourly", "hourly, batch CV 0.3-3", lambda x, k: Law("batch-hourly", cadence=3600, jitter=5,
                            batch=("lognormal", "pareto")[k % 2], cv=_geometric(0.3, 3.0, x))),
    Family("tail-hourly", "hourly tail", lambda x, k: Law("tail-hourly", stations=20_000, start_ratio=0.9, cadence=3600, jitter=5,
                            peak=300, tail=_geometric(6, 72, x) * 300 * 0.4 / 20_000, stall_lengths=(3600, 4 * 3600, 12 * 3600))),
    Family("ts-hourly", "hourly timestamps", lambda x, k: Law("ts-hourly", cadence=3600, jitter=5, moving_share=x, timestamp=x < 0.8)),
    Family("late-hourly", "hourly late start", lambda x, k: Law("late-hourly", cadence=3600, jitter=5, starts_after=_geometric(1, 20, x),
                            test_data=k % 2 == 0, utc_offset=-6.0)),
    Family("tree-hourly", "hourly tree", lambda x, k: Law("tree-hourly", cadence=3600, jitter=5, children=8,
                            spread=_geometric(3, 100, x), lagging=k % 2 == 1)),
    Family("tree-5m", "5-min tree", lambda x, k: Law("tree-5m", cadence=300, jitter=5, children=8,
                            spread=_geometric(3, 100, x), lagging=k % 2 == 1)),
)
for f in EXTRA:
    sweeps.BY_NAME[f.name] = f
names = sys.argv[1].split(",") if len(sys.argv) > 1 else [f.name for f in EXTRA]
seeds = int(sys.argv[2]) if len(sys.argv) > 2 else 6
days = float(sys.argv[3]) if len(sys.argv) > 3 else 6
scores = headline.evaluate_families(seeds=seeds, days=days, names=names)
lines, verdicts = headline.table(scores)
print("\n".join(lines)); print("\n".join(verdicts))
