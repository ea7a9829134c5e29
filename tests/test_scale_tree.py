"""Tree sources at scale, on a small generated Sirekap tree served on loopback (bench/tree.py):
a pass fetches exactly the documents whose row changed, concurrency is bounded, a failed
document is fetched again, per-region series stop at export_depth, and the rate limiter
paces requests (on a fake clock: no timing assertions)."""
from __future__ import annotations

import types
from datetime import datetime, timezone

import pytest
from prometheus_client import CollectorRegistry, generate_latest

import monitor.fetch as fetch_module
from bench.tree import Tree, TreeServer, document_path
from monitor.clock import ManualClock
from monitor.cli import parse_config
from monitor.detectors import Judge
from monitor.fetch import RateLimiter
from monitor.metrics import Metrics
from monitor.poll import SourceWatcher
from monitor.store import StateStore

SHAPE = (3, 6, 12, 30, 300)          # provinces, kab/kota, kecamatan, desa, TPS
START = datetime(2024, 2, 14, 13, 0, tzinfo=timezone.utc)


def make_watcher(url: str, depth: int = 4, export_depth: int = 2, concurrency: int = 3, shard=None,
                 clock=None, detection: dict | None = None, rate_limit: float = 0, store=None):
    raw = {"daemon": {"state_dir": "var/unused", "instance": "test"},
           "sources": [{"name": "kpu", "kind": "sirekap", "url": url, "depth": depth, "export_depth": export_depth,
                        "concurrency": concurrency, "rate_limit": rate_limit, "retries": 0, "timeout": "5s"}]}
    if detection:
        raw["detection"] = detection
    config = parse_config(raw)
    registry = CollectorRegistry()
    watcher = SourceWatcher(config.sources[0], Judge(config), Metrics(registry), clock or ManualClock(START),
                            store=store, shard=shard)
    return watcher, registry


def all_paths(tree: Tree, depth: int = 4) -> set[str]:
    return {document_path(code) for code in tree.codes(depth)}


def fetched(server: TreeServer) -> dict[str, int]:
    return dict(server.stats.paths)


def reset(server: TreeServer) -> None:
    server.control("POST", "/_tree/reset?paths=1")


@pytest.fixture
def tree_server():
    tree = Tree.generate(shape=SHAPE, progress=0.4)
    with TreeServer(tree) as server:
        reset(server)
        yield tree, server


def test_generated_tree_has_the_real_shape():
    tree = Tree.generate(shape=SHAPE)
    assert tree.counts() == {"provinces": 3, "kabkota": 6, "kecamatan": 12, "desa": 30, "tps": 300, "documents": 52}
    national = tree.document(tree.regions["0"])
    assert national["progres"]["total"] == 300
    assert sum(row["100025"] for row in national["table"].values()) == national["chart"]["100025"]
    desa = tree.regions[tree.codes(4)[-1]]
    assert all(len(code) == 13 and code.startswith(desa.code) for code in tree.document(desa)["table"])


def test_a_pass_fetches_only_documents_whose_row_changed(tree_server):
    tree, server = tree_server
    watcher, _ = make_watcher(server.url("0"))
    try:
        watcher.poll_once()
        assert fetched(server) == {path: 1 for path in all_paths(tree)}        # cold: everything, once
        assert len(watcher.states) == 52

        before = dict(tree.docs)
        tree.advance(0.05)
        changed = {path for path, entry in tree.docs.items() if before[path] != entry}
        assert 1 < len(changed) < 52
        reset(server)
        watcher.clock.advance(60)
        watcher.poll_once()
        assert fetched(server) == {path: 1 for path in changed}
        assert server.stats.not_modified == 0
        # the unchanged children of changed parents were judged too, without a request
        ticked = [child for code in tree.codes(3) if document_path(code) in changed
                  for child in tree.regions[code].children if document_path(child) not in changed]
        assert ticked
        assert all(watcher.states[child].last_at == watcher.clock.now() for child in ticked)

        reset(server)
        watcher.clock.advance(60)
        watcher.poll_once()
        assert fetched(server) == {document_path("0"): 1}                  # one conditional request
        assert server.stats.not_modified == 1
    finally:
        watcher.close()


def test_an_unchanged_child_of_a_new_publication_is_republished_not_stale():
    """A kabupaten whose row did not move while its province was published anew is not "stale
    data": the parent vouches for its numbers at the new timestamp. Its stall clock keeps
    running, its publication clock (and gauge) follow the parent, and however many
    publications pass, stale_source stays quiet while stall fires once."""
    clock = ManualClock(START)
    tree = Tree.generate(shape=SHAPE, progress=0.4, clock=lambda: clock.now().timestamp())
    quiet = tree.regions["0"].children[0]                  # a province
    tree.freeze(quiet)                                     # its TPS hold back; its siblings move
    with TreeServer(tree) as server:
        watcher, registry = make_watcher(server.url("0"), depth=2, export_depth=1, clock=clock,
                                         detection={"stall_prior": "5m", "stall_floor": "1m"})
        try:
            watcher.poll_once()
            first_published = watcher.states[quiet].current.published_at
            events = []
            for _ in range(12):                            # a publication a minute, 12 minutes
                clock.advance(60)
                tree.advance(0.02)
                events += watcher.poll_once()
            root = watcher.states["0"].current.published_at
            assert root > first_published
            assert watcher.states[quiet].current.published_at == root
            assert registry.get_sample_value("countwatch_source_published_timestamp_seconds",
                                             {"source": "kpu", "region": quiet}) == root.timestamp()
            assert registry.get_sample_value("countwatch_last_advance_timestamp_seconds",
                                             {"source": "kpu", "region": quiet}) is None  # never advanced
        finally:
            watcher.close()
    mine = [(e.rule, e.state) for e in events if e.region == quiet]
    assert ("stall", "firing") in mine
    assert not [e for e in events if e.rule == "stale_source"], [e.summary for e in events if e.rule == "stale_source"]


def test_a_restart_fetches_what_changed_not_the_whole_tree(tree_server, tmp_path):
    """The parents' tables are saved with the series state: a restarted watcher compares the
    top document's table with the saved one and fetches only the children that moved, instead
    of a cold pass (83,731 desa documents nationally, 76 minutes at 20 requests a second)."""
    tree, server = tree_server
    clock = ManualClock(START)
    store = StateStore(tmp_path / "state.db")
    watcher, _ = make_watcher(server.url("0"), clock=clock, store=store)
    watcher.poll_once()
    watcher.close()
    store.close()
    assert fetched(server) == {path: 1 for path in all_paths(tree)}

    before = dict(tree.docs)
    tree.advance(0.05)
    changed = {path for path, entry in tree.docs.items() if before[path] != entry}
    reset(server)
    clock.advance(60)
    store = StateStore(tmp_path / "state.db")
    restarted, _ = make_watcher(server.url("0"), clock=clock, store=store)
    try:
        restarted.poll_once()
    finally:
        restarted.close()
        store.close()
    assert 1 < len(changed) < 52
    assert fetched(server) == {path: 1 for path in changed}
    assert len(restarted.states) == 52          # the others restored from their saved state
    # the unchanged children of changed parents were judged from it, without a request
    ticked = [child for code in tree.codes(3) if document_path(code) in changed
              for child in tree.regions[code].children if document_path(child) not in changed]
    assert ticked
    assert all(restarted.states[child].last_at == clock.now() for child in ticked)


def test_requests_in_flight_never_exceed_concurrency():
    tree = Tree.generate(shape=SHAPE)
    with TreeServer(tree, delay=0.02) as server:
        watcher, _ = make_watcher(server.url("0"), concurrency=3)
        try:
            watcher.poll_once()
        finally:
            watcher.close()
        assert server.stats.requests == 52
        assert server.stats.max_in_flight == 3          # reached, and never more


def test_a_failed_document_is_fetched_again_with_its_ancestors(tree_server):
    tree, server = tree_server
    desa = tree.codes(4)[-1]
    server.control("POST", f"/_tree/fail?path={document_path(desa)}&times=1")
    watcher, registry = make_watcher(server.url("0"))
    try:
        watcher.poll_once()
        assert registry.get_sample_value("countwatch_polls_total", {"source": "kpu", "result": "http_5xx"}) == 1
        reset(server)
        watcher.poll_once()                             # nothing changed, yet the desa is read
        chain = ["0", desa[:2], desa[:4], desa[:6], desa]
        assert fetched(server) == {document_path(code): 1 for code in chain}
        assert server.stats.not_modified == 4           # its ancestors answered 304
        assert watcher.states[desa].current is not None
        reset(server)
        watcher.poll_once()
        assert fetched(server) == {document_path("0"): 1}
    finally:
        watcher.close()


@pytest.mark.parametrize("export_depth", [1, 2])
def test_per_region_series_stop_at_export_depth(tree_server, export_depth):
    tree, server = tree_server
    watcher, registry = make_watcher(server.url("0"), export_depth=export_depth)
    try:
        watcher.poll_once()
    finally:
        watcher.close()
    regions = {sample.labels["region"] for family in registry.collect() for sample in family.samples
               if "region" in sample.labels}
    assert regions == set(tree.codes(export_depth))
    assert len(watcher.states) == 52                    # every region judged all the same
    votes = [s for f in registry.collect() if f.name == "countwatch_votes" for s in f.samples]
    assert len(votes) == 3 * len(regions)               # three candidates per exported region
    text = generate_latest(registry).decode()
    series = [line for line in text.splitlines() if 'region="' in line]
    deepest = tree.codes(4)[-1]
    assert f'region="{deepest}"' not in text
    # stations, stations_reported, progress_ratio, published timestamp, stall threshold, votes
    assert len(series) <= 8 * len(regions)


class FakeTime:
    """Stands in for monitor.fetch's `time` module and the stop event: waiting advances it."""

    def __init__(self):
        self.now = 1000.0
        self.waited = 0.0

    def monotonic(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.now += seconds
        self.waited += seconds
        return False


def test_rate_limiter_paces_requests_and_allows_one_second_of_burst(monkeypatch):
    fake = FakeTime()
    monkeypatch.setattr(fetch_module, "time", types.SimpleNamespace(monotonic=fake.monotonic, sleep=fake.wait))
    limiter = RateLimiter(20)
    for _ in range(41):
        limiter.acquire(fake)
    assert fake.now - 1000.0 == pytest.approx(2.0)      # 41 requests: 40 intervals of 1/20 s
    fake.now += 10.0                                     # idle: the bucket fills up to one second
    burst = 0
    while True:
        waited = fake.waited
        limiter.acquire(fake)
        if fake.waited > waited:
            break
        burst += 1
    assert burst == 21                                   # one second's worth, + the current slot
    assert fake.waited - waited == pytest.approx(0.05)   # then one every 1/20 s again
    unlimited, waited = RateLimiter(0), fake.waited
    for _ in range(1000):
        unlimited.acquire(fake)
    assert fake.waited == waited                         # rate_limit = 0: no limit


def test_sources_of_one_host_share_its_bucket_at_their_lowest_limit(monkeypatch, tmp_path):
    """rate_limit is per host: two contests on KPU's host get one bucket between them (the
    stricter limit), so KPU sees 10 requests/s from this instance, not 10 + 20."""
    from monitor.daemon import Daemon

    def source(name, url, rate):
        return {"name": name, "kind": "sirekap", "url": url, "rate_limit": rate}
    config = parse_config({"daemon": {"state_dir": str(tmp_path), "instance": "t"},
                           "metrics": {"listen": "127.0.0.1:0"},
                           "sources": [source("ppwp", "https://sirekap.example/pemilu/hhcw/ppwp.json", 20),
                                       source("dpd", "https://SIREKAP.example/pemilu/hhcw/dpd.json", 10),
                                       source("mirror", "https://mirror.example/ppwp.json", 20),
                                       source("own", "https://sirekap.example:8443/ppwp.json", 20),
                                       source("free", "https://sirekap.example/pemilu/hhcw/pdpr.json", 0)]})
    daemon = Daemon(config, ManualClock(START), serve_http=False)
    try:
        limiters = {w.source.name: w.fetcher.rate_limiter for w in daemon.watchers}
    finally:
        daemon.stop()
    assert limiters["ppwp"] is limiters["dpd"] and limiters["ppwp"].rate == 10
    assert limiters["mirror"] is not limiters["ppwp"] and limiters["mirror"].rate == 20
    assert limiters["own"] is not limiters["ppwp"]          # another port, another service
    assert limiters["free"].rate == 0

    fake = FakeTime()
    monkeypatch.setattr(fetch_module, "time", types.SimpleNamespace(monotonic=fake.monotonic, sleep=fake.wait))
    shared = limiters["ppwp"]
    shared._next_free = fake.now
    for _ in range(21):                                      # the two sources' requests interleaved
        shared.acquire(fake)
    assert fake.now - 1000.0 == pytest.approx(2.0)           # 20 intervals of 1/10 s, whoever asks


def test_the_generated_recording_is_what_the_daemon_records():
    """bench/recording.py builds recording lines from the tree's numbers (a million in
    seconds): each must be the line `--record` writes for the parsed document."""
    import json

    from bench.recording import document_line
    from monitor.model import Poll
    from monitor.recording import poll_to_record
    from monitor.sources import parse_document

    tree = Tree.generate(shape=SHAPE, progress=0.4)
    source = parse_config({"sources": [{"name": "kpu-ppwp", "kind": "sirekap", "url": "http://127.0.0.1:9/ppwp.json",
                                        "depth": 4}]}).sources[0]
    for code in tree.codes(4):
        body = tree.docs[document_path(code)][1]
        poll = Poll("kpu-ppwp", code, START, "ok", parse_document(source, code, body, START))
        expected = json.dumps(poll_to_record(poll), separators=(",", ":"))
        assert json.dumps(document_line(tree, code, START), separators=(",", ":")) == expected
