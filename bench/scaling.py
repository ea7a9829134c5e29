"""Scale benchmark (`make bench`): countwatch over a generated 2024-sized tree on loopback,
beside a bare requests + json loop over the same documents, in the same run.

    .venv/bin/python bench/scaling.py                  # the whole tree (~15 minutes)
    .venv/bin/python bench/scaling.py --scale 0.1      # a tenth of it, for a quick look

What it does, each measured pass in a fresh child process (clean CPU and memory figures):
1. serves bench/tree.py's tree (91,561 documents down to the desa) from its own process;
2. alternates, `--rounds` times: the bare loop over every document, then countwatch's cold
   pass (the real Daemon: fetch, parse, judge, export, JSON log file, SQLite state) from the
   national document down to depth 4, with rate_limit 0 and the same concurrency;
3. after the first cold pass, in the same countwatch process: a publication moving 0.5% of
   the TPS, then a pass (only the documents whose row changed must be fetched), then a pass
   over an unchanged tree (one conditional request);
4. the rate limiter: one kab/kota subtree at rate_limit 20 (the default) and 100, the
   request rate the server sees, and what that rate means for the whole tree.

Figures go to stdout (Markdown, for docs/scaling.md) and to var/bench/scaling.json.
Nothing here asserts on timings: the targets are printed beside the figures.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.tree import ServerProcess, document_path  # noqa: E402

TARGET_PASS_SECONDS = 15 * 60
TARGET_RATIO = 1.3
TARGET_STATE_BYTES_PER_TPS = 1024
ADVANCE = 0.005                    # share of all TPS in one publication (~4,100 TPS)
POLITE_RATE = 20.0                 # the default rate_limit
STAGE_SAMPLE = 5000                # documents timed stage by stage


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
def child_bare(base: str, paths_file: str, concurrency: int) -> dict:
    """The floor: what fetching and decoding the same documents costs with nothing else."""
    import requests

    paths = json.loads(Path(paths_file).read_text())
    local = threading.local()

    def get(path: str) -> int:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        doc = json.loads(session.get(base + path, timeout=30).content)
        return len(doc)

    cpu, started = _cpu_seconds(), time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        for _ in pool.map(get, paths):
            pass
    wall = time.monotonic() - started
    return {"documents": len(paths), "wall_seconds": wall, "cpu_seconds": _cpu_seconds() - cpu,
            "peak_rss_bytes": _peak_rss_bytes()}


def _daemon(base: str, workdir: Path, url_path: str, region: str, depth: int, concurrency: int,
            rate_limit: float):
    from prometheus_client import CollectorRegistry

    from monitor.clock import SteadyClock
    from monitor.cli import parse_config
    from monitor.daemon import Daemon
    from monitor.logs import configure_logging
    from monitor.metrics import Metrics

    config = parse_config({
        "daemon": {"state_dir": str(workdir), "instance": "bench"},
        "log": {"format": "json", "file": str(workdir / "countwatch.log"), "max_bytes": "1GB"},
        "sources": [{"name": "kpu-ppwp", "kind": "sirekap", "url": base + url_path, "region": region,
                     "depth": depth, "export_depth": 2, "concurrency": concurrency,
                     "rate_limit": rate_limit, "interval": "60s"}],
    })
    clock = SteadyClock()
    # As `countwatch run` logs under a service manager: JSON to stderr (here a file) and to
    # the log file, every poll line rendered as in production.
    configure_logging("json", config.log_file, "info", config.instance, clock, config.log_max_bytes,
                      config.log_backups, stream=open(workdir / "stderr.log", "w"))
    return Daemon(config, clock, metrics=Metrics(CollectorRegistry()), serve_http=False)


def _server_call(base: str, method: str, action: str, **params):
    import urllib.request
    from urllib.parse import urlencode

    url = f"{base}/_tree/{action}" + (f"?{urlencode(params)}" if params else "")
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.loads(response.read())


def _measured_pass(daemon, base: str) -> dict:
    _server_call(base, "POST", "reset")
    server_cpu = _server_call(base, "GET", "stats")["cpu_seconds"]
    watcher = daemon.watchers[0]
    cpu, started = _cpu_seconds(), time.monotonic()
    events = watcher.poll_once()
    wall = time.monotonic() - started
    cpu = _cpu_seconds() - cpu
    stats = _server_call(base, "GET", "stats")
    return {"requests": stats["requests"], "not_modified": stats["not_modified"], "wall_seconds": wall,
            "cpu_seconds": cpu, "server_cpu_seconds": stats["cpu_seconds"] - server_cpu,
            "request_rate": stats["requests"] / stats["span_seconds"] if stats["span_seconds"] else None,
            "max_connections": stats["max_connections"], "events": len(events)}


def child_countwatch(base: str, concurrency: int, follow_up: bool) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="countwatch-bench-"))
    for module in ("monitor.daemon", "alerts.pipeline"):
        importlib.import_module(module)      # before the baseline: code is not state
    rss_before = _rss_bytes()
    daemon = _daemon(base, workdir, document_path("0"), "0", 4, concurrency, 0)
    try:
        cold = _measured_pass(daemon, base)
        watcher = daemon.watchers[0]
        tps = sum(s.current.stations for r, s in watcher.states.items()
                  if r == "0" and s.current is not None and s.current.stations)
        state_json = sum(len(json.dumps(s.to_json(), separators=(",", ":"))) for s in watcher.states.values())
        result = {"cold": cold, "series": len(watcher.states), "tps": tps,
                  "rss_bytes": _rss_bytes(), "rss_before_bytes": rss_before, "peak_rss_bytes": _peak_rss_bytes(),
                  "state_json_bytes": state_json,
                  "database_bytes": sum(p.stat().st_size for p in workdir.glob("countwatch.db*")),
                  "log_bytes": (workdir / "countwatch.log").stat().st_size}
        if follow_up:
            rendered = _server_call(base, "POST", "advance", fraction=ADVANCE)["rendered"]
            result["publication"] = {"share": ADVANCE, "documents_changed": rendered,
                                     "pass": _measured_pass(daemon, base)}
            result["unchanged"] = _measured_pass(daemon, base)
        return result
    finally:
        daemon.stop()


def child_rate(base: str, kab: str, concurrency: int, rate_limit: float) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="countwatch-bench-rate-"))
    daemon = _daemon(base, workdir, document_path(kab), kab, 2, concurrency, rate_limit)
    try:
        return _measured_pass(daemon, base)
    finally:
        daemon.stop()


def child_stages(base: str, paths_file: str) -> dict:
    """Where a document's CPU goes, stage by stage, single-threaded over a sample of the
    tree's documents (every level in proportion): the floor's two steps and countwatch's."""
    import requests
    import structlog

    from monitor.clock import SteadyClock
    from monitor.cli import parse_config
    from monitor.detectors import Judge
    from monitor.fetch import Fetcher
    from monitor.logs import configure_logging
    from monitor.model import Poll
    from monitor.sources import parse_document

    paths = json.loads(Path(paths_file).read_text())
    sample = paths[:: max(1, len(paths) // STAGE_SAMPLE)]
    workdir = Path(tempfile.mkdtemp(prefix="countwatch-bench-stages-"))
    config = parse_config({"daemon": {"state_dir": str(workdir), "instance": "bench"},
                           "sources": [{"name": "kpu-ppwp", "kind": "sirekap", "url": base + sample[0],
                                        "depth": 4, "rate_limit": 0}]})
    source, clock = config.sources[0], SteadyClock()
    regions = ["0" if p.endswith("ppwp.json") else p.rsplit("/", 1)[1][:-len(".json")] for p in sample]
    session = requests.Session()
    for path in sample[:50]:                             # warm the connection and the caches
        session.get(base + path, timeout=30)
    timings: dict[str, float] = {}

    def timed(name: str, run):
        started = _cpu_seconds()
        out = run()
        timings[name] = (_cpu_seconds() - started) / len(sample)
        return out

    bodies = timed("requests GET (floor)", lambda: [session.get(base + p, timeout=30).content for p in sample])
    timed("json.loads (floor)", lambda: [json.loads(b) for b in bodies])
    fetcher = Fetcher(source)
    timed("Fetcher.fetch", lambda: [fetcher.fetch(base + p) for p in sample])
    now = clock.now()
    snapshots = timed("parse_document (with json.loads)",
                      lambda: [parse_document(source, r, b, now) for r, b in zip(regions, bodies)])
    judge = Judge(config)
    states = [judge.restore(source.name, r, None) for r in regions]
    polls = [Poll(source.name, r, now, "ok", s, None, 0.001) for r, s in zip(regions, snapshots)]
    timed("Judge.observe", lambda: [judge.observe(st, po) for st, po in zip(states, polls)])
    configure_logging("json", workdir / "countwatch.log", "info", "bench", clock, 10**9, 5,
                      stream=open(workdir / "stderr.log", "w"))
    log = structlog.get_logger("countwatch.poll")

    def log_lines():
        for poll in polls:
            log.info("poll", source=poll.source, region=poll.region, poll_id="0123456789ab", result=poll.result,
                     latency=0.0012, stations_reported=poll.snapshot.stations_reported,
                     stations=poll.snapshot.stations, changed=True)
    timed("poll log line (stderr + file)", log_lines)
    timed("state to JSON (for the store)",
          lambda: [json.dumps(st.to_json(), separators=(",", ":")) for st in states])
    return {"documents": len(sample), "microseconds": {k: 1e6 * v for k, v in timings.items()}}


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


def report(r: dict) -> str:
    tree, bare, cw = r["tree"], r["bare"], r["countwatch"]
    cold_walls = [c["cold"]["wall_seconds"] for c in cw]
    bare_walls = [b["wall_seconds"] for b in bare]
    ratios = [c["cold"]["wall_seconds"] / b["wall_seconds"] for b, c in zip(bare, cw)]
    cpu_ratios = [c["cold"]["cpu_seconds"] / b["cpu_seconds"] for b, c in zip(bare, cw)]
    first = cw[0]
    docs = first["cold"]["requests"]
    cold = statistics.median(cold_walls)
    ratio = statistics.median(ratios)
    per_tps = first["state_json_bytes"] / first["tps"]
    rss_per_tps = (first["rss_bytes"] - first["rss_before_bytes"]) / first["tps"]
    lines = [
        f"Tree: {tree['provinces']} provinces, {tree['kabkota']} kab/kota, {tree['kecamatan']} kecamatan, "
        f"{tree['desa']} desa, {tree['tps']} TPS; {tree['documents']} documents down to the desa "
        f"(generated in {tree['generate_seconds']:.0f} s). Concurrency {r['concurrency']}, rate_limit 0, "
        f"{len(cw)} round(s), machine: {os.cpu_count()} CPUs. Medians over the rounds.",
        "",
        "| figure | bare requests + json | countwatch | target |",
        "|---|---|---|---|",
        f"| full pass, {docs} documents (wall) | {_fmt(statistics.median(bare_walls))} | {_fmt(cold)} | "
        f"< 15 min: {'met' if cold < TARGET_PASS_SECONDS else 'MISSED'} |",
        f"| documents/s | {docs / statistics.median(bare_walls):.0f} | {docs / cold:.0f} | |",
        f"| countwatch / bare, wall (each round) | | {ratio:.2f}x ({', '.join(f'{x:.2f}' for x in ratios)}) | "
        f"<= {TARGET_RATIO}x: {'met' if ratio <= TARGET_RATIO else 'MISSED'} |",
        f"| CPU per document | {1000 * statistics.median(b['cpu_seconds'] for b in bare) / docs:.2f} ms | "
        f"{1000 * statistics.median(c['cold']['cpu_seconds'] for c in cw) / docs:.2f} ms "
        f"({statistics.median(cpu_ratios):.2f}x) | |",
        f"| server CPU during the pass | | {first['cold']['server_cpu_seconds']:.0f} s of {_fmt(first['cold']['wall_seconds'])} | "
        "(the server is not the bottleneck) |",
        f"| connections open at once (server side) | | {first['cold']['max_connections']} | "
        "concurrency, + 1 kept alive by the job thread's top-document request |",
        f"| resident memory after the pass (whole tree's state) | {bare[0]['peak_rss_bytes'] / 2**20:.0f} MiB peak | "
        f"{first['rss_bytes'] / 2**20:.0f} MiB ({first['peak_rss_bytes'] / 2**20:.0f} MiB peak) | |",
        f"| detector state, JSON, per TPS | | {per_tps:.0f} B ({first['state_json_bytes'] / 2**20:.1f} MiB, "
        f"{first['series']} series) | <= 1 KB: {'met' if per_tps <= TARGET_STATE_BYTES_PER_TPS else 'MISSED'} |",
        f"| memory added by the pass, per TPS | | {rss_per_tps:.0f} B | |",
        f"| SQLite database after the pass | | {first['database_bytes'] / 2**20:.0f} MiB | |",
        f"| JSON log of the pass | | {first['log_bytes'] / 2**20:.0f} MiB | |",
    ]
    if "publication" in first:
        pub, unchanged = first["publication"], first["unchanged"]
        lines += [
            "",
            f"A publication moving {pub['share']:.1%} of the TPS changed {pub['documents_changed']} documents; the next "
            f"pass fetched {pub['pass']['requests']} ({_fmt(pub['pass']['wall_seconds'])}); a pass over the unchanged "
            f"tree made {unchanged['requests']} request(s) ({unchanged['not_modified']} answered 304) in "
            f"{_fmt(unchanged['wall_seconds'])}.",
        ]
    lines += ["", f"| rate_limit | requests/s the source saw | full pass ({docs} documents) | "
                  f"pass after a {ADVANCE:.1%} publication |", "|---|---|---|---|"]
    full_docs = docs
    changed = first.get("publication", {}).get("pass", {}).get("requests")
    for setting in r["rates"]:
        rate, limit = setting["request_rate"] or 0, setting["rate_limit"]
        # With the limiter on, a pass takes documents / rate_limit (plus the first second's
        # burst): computed, with the rate the server measured beside it.
        full = cold if limit == 0 else full_docs / limit
        after = (first["publication"]["pass"]["wall_seconds"] if limit == 0 else
                 (changed / limit if changed else None))
        how = "measured" if limit == 0 else f"computed; rate measured over {setting['requests']} requests"
        lines.append(f"| {setting['rate_limit']:g}{' (off)' if setting['rate_limit'] == 0 else ''} | {rate:.1f} | "
                     f"{_fmt(full)} ({how}) | {_fmt(after) if after else '-'} |")
    stages = r.get("stages")
    if stages:
        us = stages["microseconds"]
        floor = us["requests GET (floor)"] + us["json.loads (floor)"]
        lines += ["", f"CPU per document by stage, one thread, {stages['documents']} documents of every level "
                      "(µs; the floor is the first two rows):", "", "| stage | µs per document |", "|---|---|"]
        lines += [f"| {name} | {value:.0f} |" for name, value in us.items()]
        own = (us["parse_document (with json.loads)"] - us["json.loads (floor)"] + us["Judge.observe"]
               + us["poll log line (stderr + file)"] + us["state to JSON (for the store)"])
        fetch = us["Fetcher.fetch"] - us["requests GET (floor)"]
        lines.append(f"| countwatch's own stages (parse beyond json.loads, judge, log line, state) | {own:.0f} "
                     f"({own / floor:.0%} of the floor's {floor:.0f}) |")
        lines.append(f"| its fetch against the floor's GET | {fetch:+.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="share of the 2024 tree (default: all of it)")
    parser.add_argument("--rounds", type=int, default=3, help="bare/countwatch pairs (default 3)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--json", default=str(ROOT / "var/bench/scaling.json"))
    parser.add_argument("--report", metavar="JSON", help="print the report of an earlier run's figures")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.report:
        print(report(json.loads(Path(args.report).read_text())))
        return 0
    if args.child:
        kind, *rest = args.child
        if kind == "bare":
            result = child_bare(rest[0], rest[1], int(rest[2]))
        elif kind == "stages":
            result = child_stages(rest[0], rest[1])
        elif kind == "countwatch":
            result = child_countwatch(rest[0], int(rest[1]), rest[2] == "1")
        else:
            result = child_rate(rest[0], rest[1], int(rest[2]), float(rest[3]))
        print(json.dumps(result))
        return 0

    started = time.monotonic()
    print(f"generating and serving the tree (scale {args.scale:g})...", file=sys.stderr)
    server = ServerProcess(scale=args.scale)
    try:
        tree = server.call("GET", "stats")
        tree["generate_seconds"] = time.monotonic() - started
        paths = server.call("GET", "paths", depth=4)
        paths_file = Path(tempfile.mkdtemp(prefix="countwatch-bench-")) / "paths.json"
        paths_file.write_text(json.dumps(paths))
        bare, cw = [], []
        for round_ in range(args.rounds):
            print(f"round {round_ + 1}/{args.rounds}: bare loop over {len(paths)} documents...", file=sys.stderr)
            bare.append(_run_child("bare", server.base_url, str(paths_file), str(args.concurrency)))
            print(f"round {round_ + 1}/{args.rounds}: countwatch cold pass...", file=sys.stderr)
            cw.append(_run_child("countwatch", server.base_url, str(args.concurrency), "1" if round_ == 0 else "0"))
        # the largest kab/kota's subtree: enough requests to see the limiter's rate
        kabs = [p for p in paths if p.count("/") == 5]
        kab = max(kabs, key=lambda k: sum(1 for p in paths if p.startswith(k[:-len(".json")] + "/")))
        kab_code = kab.rsplit("/", 1)[1][:-len(".json")]
        print("CPU per stage...", file=sys.stderr)
        stages = _run_child("stages", server.base_url, str(paths_file))
        rates = [{"rate_limit": 0.0, "request_rate": cw[0]["cold"]["request_rate"],
                  "requests": cw[0]["cold"]["requests"]}]
        for limit in (POLITE_RATE, 100.0):
            print(f"rate_limit {limit:g} over kab/kota {kab_code}...", file=sys.stderr)
            rates.append({"rate_limit": limit, **_run_child("rate", server.base_url, kab_code,
                                                             str(args.concurrency), str(limit))})
    finally:
        server.stop()
    results = {"scale": args.scale, "concurrency": args.concurrency, "tree": tree, "bare": bare,
               "countwatch": cw, "rates": rates, "stages": stages, "seconds": time.monotonic() - started}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=1))
    print(report(results))
    print(f"\n(bench took {_fmt(results['seconds'])}; raw figures in {args.json})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
