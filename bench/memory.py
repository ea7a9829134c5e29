"""Memory per series, quickly: the steps of bench/scaling.py's countwatch child (a cold pass,
then twice a 0.5% publication and a pass) on a small tree, with the resident memory after
each pass and, with --deep, what the series' states hold, attribute by attribute.

    .venv/bin/python bench/memory.py --scale 0.05            # ~4,600 series, ~30 s
    .venv/bin/python bench/memory.py --scale 0.25 --deep     # ~23,000 series
    .venv/bin/python bench/memory.py --scale 0.05 --election # the election child's one pass

For iterating on a series' representation before a `bench/scaling.py` run: the figures are
the same kind (peak RSS after each pass against the first's, bytes per series), on fewer
series, so the interpreter's fixed ~42 MiB weighs more than at scale 1. The deep size counts
each object once, and leaves out objects that more than 1% of the series share (what is
shared costs nothing per series); taking it raises the process's peak, so the peaks of a
--deep run are not figures.
"""
from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bench.scaling as scaling  # noqa: E402
from bench.tree import ServerProcess, document_path  # noqa: E402


def deep_size(obj, seen: set, skip: set) -> int:
    if id(obj) in seen or id(obj) in skip or obj is None or type(obj) is bool:
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    kind = type(obj)
    if kind in (list, tuple, set, frozenset):
        size += sum(deep_size(item, seen, skip) for item in obj)
    elif kind is dict:
        size += sum(deep_size(k, seen, skip) + deep_size(v, seen, skip) for k, v in obj.items())
    else:
        for name in getattr(kind, "__slots__", ()):
            if hasattr(obj, name):
                size += deep_size(getattr(obj, name), seen, skip)
        if hasattr(obj, "__dict__"):
            size += deep_size(obj.__dict__, seen, skip)
    return size


def per_attribute(states: list) -> dict[str, float]:
    """Bytes per series, attribute by attribute (the object itself as `_object`)."""
    from monitor.detectors.series import SeriesState

    # the slots, and the attributes a series keeps in its own __dict__ once it diverges (reading
    # `__dict__` itself would make one for every series)
    names = [name for name in SeriesState.__slots__ if name != "__dict__"] + list(getattr(SeriesState, "RARE", ()))
    holders = Counter(id(getattr(state, name)) for state in states for name in names)
    shared = {key for key, count in holders.items() if count > max(2, len(states) // 100)}
    sizes, seen = Counter(), set()
    for state in states:
        sizes["_object"] += sys.getsizeof(state)
        for name in names:
            sizes[name] += deep_size(getattr(state, name), seen, shared)
    out = {name: round(size / len(states), 1) for name, size in sizes.most_common() if size}
    # the share of series that keep a rare attribute of their own (SeriesState.RARE: then in
    # their own __dict__, whose size is not counted above)
    rare = getattr(SeriesState, "RARE", ())
    out["_diverged_share"] = round(sum(any(getattr(state, name) is not getattr(SeriesState, name) for name in rare)
                                       for state in states) / len(states), 4)
    return out


def child(base: str, election: bool, passes: int, deep: bool) -> None:
    scaling._preload()
    workdir = Path(tempfile.mkdtemp(prefix="countwatch-memory-"))
    if election:
        daemon = scaling._daemon(workdir, [{"kind": "sirekap", "election": "pilkada2024", "url": base + "/pilkada",
                                            "races": ["pkwkp", "pkwkk"], "depth": 4, "export_depth": 2,
                                            "concurrency": 8, "rate_limit": 0, "interval": "60s"}])
        run = lambda: daemon._run_passes(daemon.watchers)  # noqa: E731
        passes = 1
    else:
        daemon = scaling._daemon(workdir, [{"name": "kpu-ppwp", "kind": "sirekap", "url": base + document_path("0"),
                                            "depth": 4, "export_depth": 2, "concurrency": 8, "rate_limit": 0,
                                            "interval": "60s"}])
        run = daemon.watchers[0].poll_once
    start, started, rows = scaling._rss_bytes(), time.monotonic(), []
    try:
        for number in range(1, passes + 1):
            changed = scaling._server_call(base, "POST", "advance", fraction=scaling.ADVANCE)["rendered"] if number > 1 else 0
            cpu = scaling._cpu_seconds()
            run()
            cpu = scaling._cpu_seconds() - cpu
            gc.collect()
            states = [state for watcher in daemon.watchers for state in watcher.states.values()]
            row = {"pass": number, "documents_changed": changed, "series": len(states), "rss": scaling._rss_bytes(),
                   "peak_rss": scaling._peak_rss_bytes(), "seconds": round(time.monotonic() - started, 1),
                   "cpu_seconds": round(cpu, 2)}
            if deep:
                row["bytes_per_series"] = per_attribute(states)
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        daemon.stop()
    first = rows[0]
    print(f"{first['series']:,} series: {(first['rss'] - start) / first['series']:,.0f} B each after the first pass "
          f"(resident growth from {start / 2**20:.1f} MiB after imports), peak {first['peak_rss'] / 2**20:.1f} MiB; "
          f"the pass took {first['cpu_seconds']:.1f} CPU s")
    for row in rows[1:]:
        print(f"pass {row['pass']} ({row['documents_changed']:,} documents changed): peak "
              f"{row['peak_rss'] / first['peak_rss'] - 1:+.2%}, resident {row['rss'] / first['rss'] - 1:+.2%}")
    if deep and len(rows) > 1:
        before, after = dict(rows[0]["bytes_per_series"]), dict(rows[-1]["bytes_per_series"])
        shares = before.pop("_diverged_share", None), after.pop("_diverged_share", None)
        if shares[0] is not None:
            print(f"series keeping a rare attribute of their own (SeriesState.RARE): {shares[0]:.2%} after the "
                  f"first pass, {shares[1]:.2%} after the last")
        print(f"deep size per series: {sum(before.values()):,.0f} B after the first pass, "
              f"{sum(after.values()):,.0f} B after the last")
        for name in sorted(set(before) | set(after), key=lambda n: -after.get(n, 0)):
            if max(before.get(name, 0), after.get(name, 0)) >= 0.5:
                print(f"  {name:28s} {before.get(name, 0):8.1f} {after.get(name, 0):8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=0.05, help="share of the 2024 tree (default 0.05)")
    parser.add_argument("--election", action="store_true", help="the simultaneous election, one pass")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--deep", action="store_true", help="bytes per series, attribute by attribute")
    parser.add_argument("--child", metavar="BASE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.election, args.passes, args.deep)
        return
    server = ServerProcess(scale=args.scale, election=args.election)
    try:
        # a fresh process, as bench/scaling.py measures: nothing of the tree's in its memory
        subprocess.run([sys.executable, __file__, "--child", server.base_url, "--passes", str(args.passes)]
                       + ["--election"] * args.election + ["--deep"] * args.deep, check=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
