"""Memory (issue 14, items 9 and 10), measured as peak RSS of a separate process that polls a
real loopback server: a 32 MB body of `[{},{},...]` (within the default max_body) is refused
before it is parsed (too_large: sources/common.KPU_LIMITS, JSON_LIMITS) instead of taking RSS
from 43 to ~800 MB; a tree whose children are 4 MB each holds walker.LEVEL_BYTES of bodies plus
one per fetch thread, not a chunk of 2,048 (1.6 GB before)."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.feed import Feed, Reply
from tests.reliability.hostile import body, province_doc
from tests.reliability.procs import ROOT

MB = 1024 * 1024

# Polls each source of the config once, in a fresh process; prints the growth of peak RSS
# over the pass and the poll results.
_PROBE = r"""
import json, resource, sys
from monitor.clock import WallClock
from monitor.config import parse_config
from monitor.detectors import Judge
from monitor.metrics import Metrics
from monitor.poll import SourceWatcher
config = parse_config(json.loads(sys.argv[1]))
metrics = Metrics()
watchers = [SourceWatcher(source, Judge(config), metrics, WallClock()) for source in config.sources]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for watcher in watchers:
    watcher.poll_once()
    watcher.close()
grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
results = {}
for family in metrics.registry.collect():
    if family.name == "countwatch_polls":
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.value:
                results.setdefault(sample.labels["source"], {})[sample.labels["result"]] = sample.value
print(json.dumps({"grew_mb": grew / 1024, "results": results}))
"""


def _probe(config: dict) -> dict:
    done = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(config)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_32_mb_body_of_empty_objects_is_refused_before_it_is_parsed():
    flood = b"[" + b"{}," * (32 * MB // 3 - 1) + b"{}]"
    assert len(flood) <= 32 * MB                     # within the default max_body
    with Feed() as feed:
        feed.set("/flood.json", Reply(200, flood))
        mapping = {"reported": "progress.in", "total": "progress.of", "votes": "votes"}
        probe = _probe({"sources": [
            {"name": "kpu", "kind": "sirekap", "url": feed.url("/flood.json"), "region": "32", "retries": 0},
            {"name": "feed", "kind": "json", "url": feed.url("/flood.json"), "mapping": mapping, "retries": 0}]})
    assert probe["results"] == {"kpu": {"too_large": 1.0}, "feed": {"too_large": 1.0}}, probe
    # the body itself (32 MB, read once) and its bookkeeping; parsed, it was ~750 MB more
    assert probe["grew_mb"] < 150, probe


def test_a_tree_of_4_mb_children_holds_bytes_not_a_chunk_of_documents():
    children = [f"32{n:02d}" for n in range(1, 100)] + [f"33{n:02d}" for n in range(1, 51)]      # 149 kab/kota
    table = {code: {"100025": 3, "100026": 2, "persen": 40.0, "psu": "Reguler"} for code in children}
    top = body(province_doc(400, table=table))
    child = body(province_doc(3, table={}, pad="x" * (4 * MB)))
    with Feed() as feed:
        feed.set("/ppwp/32.json", Reply(200, top))
        for code in children:
            feed.set(f"/ppwp/32/{code}.json", Reply(200, child))
        probe = _probe({"sources": [{"name": "kpu", "kind": "sirekap", "url": feed.url("/ppwp/32.json"), "region": "32",
                                     "depth": 1, "retries": 0, "max_body": "5MB", "timeout": "30s",
                                     "concurrency": 4, "rate_limit": 0}]})
    assert probe["results"] == {"kpu": {"ok": 1.0 + len(children)}}, probe
    # 149 x 4 MB = 600 MB if a chunk is held whole; LEVEL_BYTES (64 MB) + 4 threads x 4 MB now
    assert probe["grew_mb"] < 250, probe
