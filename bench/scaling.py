"""Scale benchmark (`make bench`): every figure of issue 15 beside its target, in one table.

    .venv/bin/python bench/scaling.py                   # the default: a quarter-sized tree (~20 min)
    .venv/bin/python bench/scaling.py --scale 1         # the 2024-sized tree of the issue's figures
    .venv/bin/python bench/scaling.py --report var/bench/scaling.json   # re-print a run's table

Each measured pass runs in a fresh child process (clean CPU and memory figures), against
trees served on loopback from their own process (bench/tree.py):

1. the wire: `--rounds` times, the floor (ONE thread, `requests.Session().get` +
   `json.loads`, every document the cold pass fetches, in its order), then countwatch's
   cold pass (the real Daemon: fetch, parse, judge, export, JSON log file and stderr, SQLite
   state) at the default concurrency (8) with rate_limit 0; the ratio is taken per round;
2. memory: in the first round's countwatch process, the peak resident memory after the cold
   pass over the TPS watched; then twice a publication (0.5% of the TPS) and a pass, and
   the resident memory after each;
3. a simultaneous election: every race of a generated Pilkada (37 governors and 508 regents
   and mayors, all 514 kab/kota at any --scale) discovered by the Daemon from the server's
   race and region documents, one full pass over all of them in one process (rate_limit 0):
   CPU per document and peak memory per TPS x races beside the single tree's, and what the
   same pass takes at the default polite rate (documents / 20 per second);
4. replay: a generated tree recording of at least `--replay-lines` lines (bench/recording.py),
   replayed with the reader `countwatch replay` uses (lines/s after start-up), then read
   again with the reference reader (read_recording without its fast path, what replay read
   before): every poll must be equal, so the same Judge gives the same events (their digest
   is printed).

The machine is shared (2 cores, other work running): absolute times vary from run to run;
the ratios are measured side by side in one run. Nothing here asserts on timings: the
targets are printed beside the figures.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.tree import ServerProcess, document_path  # noqa: E402

TARGET_RATIO = 1.2
TARGET_BYTES_PER_TPS = 500
TARGET_MEMORY_DRIFT = 0.05
TARGET_ELECTION_SPREAD = 0.10
TARGET_REPLAY_LINES_PER_SECOND = 50_000
ADVANCE = 0.005                    # share of all TPS in one publication
POLITE_RATE = 20.0                 # the default rate_limit


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss_bytes() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# --- children -----------------------------------------------------------------------------
def child_bare(base: str, paths_file: str) -> dict:
    """The floor: one thread, `requests.Session().get` + `json.loads`, every document."""
    import requests

    paths = json.loads(Path(paths_file).read_text())
    session = requests.Session()
    cpu, started = _cpu_seconds(), time.monotonic()
    for path in paths:
        json.loads(session.get(base + path, timeout=30).content)
    wall = time.monotonic() - started
    return {"documents": len(paths), "wall_seconds": wall, "cpu_seconds": _cpu_seconds() - cpu,
            "peak_rss_bytes": _peak_rss_bytes()}


def _configure(workdir: Path, config):
    from monitor.clock import SteadyClock
    from monitor.logs import configure_logging

    clock = SteadyClock()
    # As `countwatch run` logs under a service manager: JSON to stderr (here a file) and to
    # the log file, every poll line rendered as in production.
    configure_logging("json", config.log_file, "info", config.instance, clock, config.log_max_bytes,
                      config.log_backups, stream=open(workdir / "stderr.log", "w"))
    return clock


def _daemon(workdir: Path, sources: list[dict]):
    from prometheus_client import CollectorRegistry

    from monitor.cli import parse_config
    from monitor.daemon import Daemon
    from monitor.metrics import Metrics

    config = parse_config({
        "daemon": {"state_dir": str(workdir), "instance": "bench"},
        "log": {"format": "json", "file": str(workdir / "countwatch.log"), "max_bytes": "2GB"},
        "sources": sources,
    })
    clock = _configure(workdir, config)
    return Daemon(config, clock, metrics=Metrics(CollectorRegistry()), serve_http=False)


def _server_call(base: str, method: str, action: str, **params):
    import urllib.request
    from urllib.parse import urlencode

    url = f"{base}/_tree/{action}" + (f"?{urlencode(params)}" if params else "")
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.loads(response.read())


def _measured(base: str, run) -> dict:
    _server_call(base, "POST", "reset")
    server_cpu = _server_call(base, "GET", "stats")["cpu_seconds"]
    cpu, started = _cpu_seconds(), time.monotonic()
    run()
    wall = time.monotonic() - started
    cpu = _cpu_seconds() - cpu
    stats = _server_call(base, "GET", "stats")
    return {"requests": stats["requests"], "not_modified": stats["not_modified"], "wall_seconds": wall,
            "cpu_seconds": cpu, "server_cpu_seconds": stats["cpu_seconds"] - server_cpu,
            "max_connections": stats["max_connections"]}


def _preload() -> None:
    for module in ("monitor.daemon", "alerts.pipeline", "monitor.races", "requests", "orjson"):
        importlib.import_module(module)      # code is not state


def child_countwatch(base: str, concurrency: int, follow_up: bool) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="countwatch-bench-"))
    _preload()
    daemon = _daemon(workdir, [{"name": "kpu-ppwp", "kind": "sirekap", "url": base + document_path("0"),
                                "depth": 4, "export_depth": 2, "concurrency": concurrency, "rate_limit": 0,
                                "interval": "60s"}])
    try:
        watcher = daemon.watchers[0]
        cold = _measured(base, watcher.poll_once)
        tps = watcher.states["0"].current.stations
        result = {"cold": cold, "series": len(watcher.states), "tps": tps, "rss_bytes": _rss_bytes(),
                  "peak_rss_bytes": _peak_rss_bytes(),
                  "database_bytes": sum(p.stat().st_size for p in workdir.glob("countwatch.db*")),
                  "log_bytes": (workdir / "countwatch.log").stat().st_size}
        if follow_up:
            later = []
            for _ in range(2):
                changed = _server_call(base, "POST", "advance", fraction=ADVANCE)["rendered"]
                later.append({"documents_changed": changed, "pass": _measured(base, watcher.poll_once),
                              "rss_bytes": _rss_bytes(), "peak_rss_bytes": _peak_rss_bytes()})
            result["later"] = later
        return result
    finally:
        daemon.stop()


def child_election(base: str, concurrency: int) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="countwatch-bench-election-"))
    _preload()
    started = time.monotonic()
    daemon = _daemon(workdir, [{"kind": "sirekap", "election": "pilkada2024", "url": base + "/pilkada",
                                "races": ["pkwkp", "pkwkk"], "depth": 4, "export_depth": 2,
                                "concurrency": concurrency, "rate_limit": 0, "interval": "60s"}])
    discovery = time.monotonic() - started
    try:
        watchers = daemon.watchers
        cold = _measured(base, lambda: daemon._run_passes(watchers))
        race_tps = sum(w.states[w.source.region].current.stations for w in watchers
                       if w.source.region in w.states and w.states[w.source.region].current is not None)
        return {"cold": cold, "races": len(watchers), "race_tps": race_tps, "discovery_seconds": discovery,
                "kinds": {kind: sum(1 for w in watchers if w.source.race == kind) for kind in ("pkwkp", "pkwkk")},
                "names": [watchers[0].source.name, watchers[-1].source.name],
                "display": [watchers[0].source.display_name, watchers[-1].source.display_name],
                "series": sum(len(w.states) for w in watchers), "rss_bytes": _rss_bytes(),
                "peak_rss_bytes": _peak_rss_bytes()}
    finally:
        daemon.stop()


def child_replay(path: str) -> dict:
    """`countwatch replay`'s reader and Judge over the recording: lines/s after start-up,
    and the digest of the events as replay prints them."""
    from monitor.recording import read_recording
    from monitor.replay import fast_poll, replay

    digest = hashlib.sha256()
    lines = events = 0

    def counted(polls):
        nonlocal lines
        for poll in polls:
            lines += 1
            yield poll

    cpu, started = _cpu_seconds(), time.monotonic()
    for event in replay(counted(read_recording(path, fast=fast_poll))):
        digest.update(json.dumps(event.to_json(), ensure_ascii=False, separators=(",", ":")).encode() + b"\n")
        events += 1
    wall = time.monotonic() - started
    return {"lines": lines, "events": events, "events_sha256": digest.hexdigest(), "wall_seconds": wall,
            "cpu_seconds": _cpu_seconds() - cpu, "peak_rss_bytes": _peak_rss_bytes()}


def child_replay_check(path: str) -> dict:
    """Both readers over the recording, poll by poll: equal polls give equal events."""
    from monitor.recording import read_recording
    from monitor.replay import fast_poll

    compared = differing = 0
    first = None
    for number, (reference, fast) in enumerate(zip(read_recording(path), read_recording(path, fast=fast_poll)), 1):
        compared += 1
        if reference != fast:
            differing += 1
            first = first or number
    return {"compared": compared, "differing": differing, "first_difference": first}


def _run_child(*args: str) -> dict:
    completed = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True,
                               cwd=ROOT, timeout=4 * 3600)
    if completed.returncode != 0:
        raise RuntimeError(f"child {args[0]} failed:\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


# --- the report ---------------------------------------------------------------------------
def _fmt(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def report(r: dict) -> str:
    tree, bare, cw = r["tree"], r["bare"], r["countwatch"]
    ratios = [c["cold"]["wall_seconds"] / b["wall_seconds"] for b, c in zip(bare, cw)]
    ratio = statistics.median(ratios)
    first = cw[0]
    docs = first["cold"]["requests"]
    cpu_doc = statistics.median(c["cold"]["cpu_seconds"] for c in cw) / docs
    bare_cpu_doc = statistics.median(b["cpu_seconds"] for b in bare) / docs
    per_tps = first["peak_rss_bytes"] / first["tps"]
    later = first.get("later", [])
    drifts = [entry["rss_bytes"] / first["rss_bytes"] - 1 for entry in later]
    peaks = [entry["peak_rss_bytes"] / first["peak_rss_bytes"] - 1 for entry in later]
    election = r.get("election")
    rows = [
        "| figure | measured | target | |",
        "|---|---|---|---|",
        f"| cold pass, {docs:,} documents: countwatch (concurrency {r['concurrency']}) / the one-thread bare loop, "
        f"wall (each round) | **{ratio:.2f}x** ({', '.join(f'{x:.2f}' for x in ratios)}; "
        f"{_fmt(statistics.median(c['cold']['wall_seconds'] for c in cw))} vs "
        f"{_fmt(statistics.median(b['wall_seconds'] for b in bare))}) | <= {TARGET_RATIO}x | {_verdict(ratio <= TARGET_RATIO)} |",
        f"| CPU per document, countwatch / bare loop | {1e3 * cpu_doc:.2f} / {1e3 * bare_cpu_doc:.2f} ms "
        f"({cpu_doc / bare_cpu_doc:.2f}x) | | |",
        f"| peak resident memory after the cold pass / TPS watched ({first['tps']:,} TPS) | **{per_tps:.0f} B** "
        f"({first['peak_rss_bytes'] / 2**20:.0f} MiB, whole process) | <= {TARGET_BYTES_PER_TPS} B | "
        f"{_verdict(per_tps <= TARGET_BYTES_PER_TPS)} |",
    ]
    if later:
        # the figure is the peak, as after the first pass; resident memory is shown beside it
        worst = max(abs(p) for p in peaks)
        rows.append(f"| peak memory after passes 2 and 3 (a {ADVANCE:.1%} publication before each) against "
                    f"the first pass's | **{', '.join(f'{p:+.1%}' for p in peaks)}** (resident "
                    f"{', '.join(f'{d:+.1%}' for d in drifts)}) | within {TARGET_MEMORY_DRIFT:.0%} | "
                    f"{_verdict(worst <= TARGET_MEMORY_DRIFT)} |")
    if election:
        e_docs = election["cold"]["requests"]
        e_cpu = election["cold"]["cpu_seconds"] / e_docs
        e_mem = election["peak_rss_bytes"] / election["race_tps"]
        cpu_spread, mem_spread = e_cpu / cpu_doc - 1, e_mem / per_tps - 1
        rows += [
            f"| simultaneous election: {election['races']} races ({election['kinds']['pkwkp']} governors, "
            f"{election['kinds']['pkwkk']} regents/mayors) in one process, {e_docs:,} documents, "
            f"{election['race_tps']:,} TPS x races: CPU per document vs the single tree | "
            f"**{1e3 * e_cpu:.2f} ms ({cpu_spread:+.0%})** | at most {TARGET_ELECTION_SPREAD:+.0%} | "
            f"{_verdict(cpu_spread <= TARGET_ELECTION_SPREAD)} |",
            f"| ... its peak memory per TPS x races vs the single tree's | **{e_mem:.0f} B ({mem_spread:+.0%})** "
            f"| at most {TARGET_ELECTION_SPREAD:+.0%} | {_verdict(mem_spread <= TARGET_ELECTION_SPREAD)} |",
            f"| ... the same figure against the target of every process (peak resident memory / TPS x races) | "
            f"**{e_mem:.0f} B** | <= {TARGET_BYTES_PER_TPS} B | {_verdict(e_mem <= TARGET_BYTES_PER_TPS)} |",
            # Why the two trees differ per TPS: Pilkada TPS are fewer and larger under the same
            # desa, so each TPS x race comes with about twice the documents (series) to watch.
            f"| ... its peak memory per series watched vs the single tree's (documents per TPS x races: "
            f"{election['series'] / election['race_tps']:.3f} vs {first['series'] / first['tps']:.3f}) | "
            f"{election['peak_rss_bytes'] / election['series']:,.0f} B vs {first['peak_rss_bytes'] / first['series']:,.0f} B "
            f"({(election['peak_rss_bytes'] / election['series']) / (first['peak_rss_bytes'] / first['series']) - 1:+.0%}) "
            "| (for reading) | |",
            f"| ... a full pass of every race at rate_limit 0 (measured) and at the default polite rate "
            f"(rate_limit {POLITE_RATE:g}: {e_docs:,} documents / {POLITE_RATE:g} per second) | "
            f"{_fmt(election['cold']['wall_seconds'])}; **{_fmt(e_docs / POLITE_RATE)}** at the polite rate | "
            "(said plainly) | |",
        ]
    replay = r.get("replay")
    if replay:
        rate = replay["run"]["lines"] / replay["run"]["wall_seconds"]
        check = replay["check"]
        same = check["differing"] == 0 and check["compared"] == replay["run"]["lines"]
        rows += [
            f"| replay of a generated tree recording ({replay['recording']['lines']:,} lines, "
            f"{replay['recording']['bytes'] / 2**20:.0f} MiB), lines/s after start-up | **{rate:,.0f}** "
            f"({_fmt(replay['run']['wall_seconds'])}) | >= {TARGET_REPLAY_LINES_PER_SECOND:,} | "
            f"{_verdict(rate >= TARGET_REPLAY_LINES_PER_SECOND)} |",
            f"| ... events identical to the reference reader's (polls compared one by one: "
            f"{check['compared']:,}, differing {check['differing']}) | {replay['run']['events']:,} events, "
            f"sha256 {replay['run']['events_sha256'][:16]} | identical | {_verdict(same)} |",
        ]
    head = (f"Tree: {tree['provinces']} provinces, {tree['kabkota']} kab/kota, {tree['kecamatan']} kecamatan, "
            f"{tree['desa']} desa, {tree['tps']:,} TPS, {tree['documents']:,} documents (scale {r['scale']:g}"
            f"{'' if r['scale'] == 1 else ': the issue figures are on scale 1'}); {len(cw)} round(s); "
            f"{os.cpu_count()} CPUs shared with other work (absolute times vary; ratios are side by side).")
    lines = [head, ""] + rows
    if later:
        lines += ["", "After the cold pass: " + "; ".join(
            f"a publication changed {entry['documents_changed']:,} documents, the next pass fetched "
            f"{entry['pass']['requests']:,} ({_fmt(entry['pass']['wall_seconds'])})" for entry in later) + "."]
    lines += ["", f"Server CPU during the cold pass: {first['cold']['server_cpu_seconds']:.1f} s of "
                  f"{_fmt(first['cold']['wall_seconds'])}; connections open at once: {first['cold']['max_connections']}; "
                  f"SQLite after it {first['database_bytes'] / 2**20:.0f} MiB, JSON log {first['log_bytes'] / 2**20:.0f} MiB."]
    if election:
        lines.append(f"Election: discovery {election['discovery_seconds']:.1f} s; races named "
                     f"{election['names'][0]} ({election['display'][0]}) ... {election['names'][1]} "
                     f"({election['display'][1]}); {election['series']:,} series.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.25, help="share of the 2024 tree (default 0.25)")
    parser.add_argument("--rounds", type=int, default=2, help="bare/countwatch pairs (default 2)")
    parser.add_argument("--concurrency", type=int, default=8, help="countwatch's (the default: 8)")
    parser.add_argument("--replay-lines", type=int, default=1_000_000)
    parser.add_argument("--skip", action="append", default=[], choices=["election", "replay"])
    parser.add_argument("--json", default=str(ROOT / "var/bench/scaling.json"))
    parser.add_argument("--report", metavar="JSON", help="print the report of an earlier run's figures")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.report:
        print(report(json.loads(Path(args.report).read_text())))
        return 0
    if args.child:
        kind, *rest = args.child
        result = {"bare": lambda: child_bare(rest[0], rest[1]),
                  "countwatch": lambda: child_countwatch(rest[0], int(rest[1]), rest[2] == "1"),
                  "election": lambda: child_election(rest[0], int(rest[1])),
                  "replay": lambda: child_replay(rest[0]),
                  "replay-check": lambda: child_replay_check(rest[0])}[kind]()
        print(json.dumps(result))
        return 0

    started = time.monotonic()
    results: dict = {"scale": args.scale, "concurrency": args.concurrency}
    print(f"generating and serving the tree (scale {args.scale:g})...", file=sys.stderr)
    server = ServerProcess(scale=args.scale)
    try:
        results["tree"] = server.call("GET", "stats")
        paths = server.call("GET", "paths", depth=4)
        paths_file = Path(tempfile.mkdtemp(prefix="countwatch-bench-")) / "paths.json"
        paths_file.write_text(json.dumps(paths))
        results["bare"], results["countwatch"] = [], []
        for round_ in range(args.rounds):
            print(f"round {round_ + 1}/{args.rounds}: bare loop (one thread) over {len(paths)} documents...",
                  file=sys.stderr)
            results["bare"].append(_run_child("bare", server.base_url, str(paths_file)))
            print(f"round {round_ + 1}/{args.rounds}: countwatch cold pass...", file=sys.stderr)
            results["countwatch"].append(_run_child("countwatch", server.base_url, str(args.concurrency),
                                                    "1" if round_ == 0 else "0"))
    finally:
        server.stop()
    if "election" not in args.skip:
        print(f"generating and serving a simultaneous election (scale {args.scale:g})...", file=sys.stderr)
        server = ServerProcess(scale=args.scale, election=True)
        try:
            results["election_tree"] = server.call("GET", "stats")
            print("the election: discovery and one pass over every race...", file=sys.stderr)
            results["election"] = _run_child("election", server.base_url, str(args.concurrency))
        finally:
            server.stop()
    if "replay" not in args.skip:
        from bench.recording import write_recording

        recording = Path(tempfile.mkdtemp(prefix="countwatch-bench-replay-")) / "recording.jsonl"
        print(f"writing a tree recording of {args.replay_lines:,} lines...", file=sys.stderr)
        try:
            made = write_recording(recording, scale=args.scale, min_lines=args.replay_lines)
            print("replaying it...", file=sys.stderr)
            run = _run_child("replay", str(recording))
            print("reading it again with the reference reader...", file=sys.stderr)
            results["replay"] = {"recording": made, "run": run, "check": _run_child("replay-check", str(recording))}
        finally:
            recording.unlink(missing_ok=True)
    results["seconds"] = time.monotonic() - started
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=1))
    print(report(results))
    print(f"\n(make bench took {_fmt(results['seconds'])}; raw figures in {args.json})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
