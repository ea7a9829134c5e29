"""The three parts of a source's poll job, each on its own: the tree walker (what a pass
fetches, what it skips, what it fetches again), the exporter (series and log lines), and the
SourceWatcher that wires them to the judge and the store. A small generated Sirekap tree
served on loopback (bench/tree.py)."""
from __future__ import annotations

import io
import json
from datetime import datetime, timezone

import pytest
from prometheus_client import CollectorRegistry

from bench.tree import Tree, TreeServer, document_path
from monitor.clock import ManualClock
from monitor.cli import parse_config
from monitor.detectors import Judge
from monitor.exporter import Exporter
from monitor.logs import configure_logging
from monitor.metrics import Metrics
from monitor.model import Event, Poll, Snapshot
from monitor.poll import SourceWatcher
from monitor.store import StateStore
from monitor.walker import Fetch, Shard, Table, TreeWalker, Unchanged, fingerprint, kept, validators_of

SHAPE = (2, 4, 8, 16, 120)           # provinces, kab/kota, kecamatan, desa, TPS: 31 documents
START = datetime(2024, 2, 14, 13, 0, tzinfo=timezone.utc)


def _config(url: str, depth: int = 4, export_depth: int = 1):
    return parse_config({"daemon": {"state_dir": "var/unused", "instance": "test"},
                         "sources": [{"name": "kpu", "kind": "sirekap", "url": url, "depth": depth,
                                      "export_depth": export_depth, "concurrency": 2, "rate_limit": 0,
                                      "retries": 0, "timeout": "5s"}]})


@pytest.fixture
def served():
    tree = Tree.generate(shape=SHAPE, progress=0.4)
    with TreeServer(tree) as server:
        server.control("POST", "/_tree/reset?paths=1")
        yield tree, server


def _walk(walker: TreeWalker, known=lambda region: False) -> list:
    return list(walker.walk(known))


# --- the walker ---------------------------------------------------------------------------
def test_a_cold_walk_fetches_every_document_once_parents_first(served):
    tree, server = served
    walker = TreeWalker(_config(server.url("0")).sources[0], ManualClock(START))
    try:
        visits = _walk(walker)
    finally:
        walker.close()
    assert all(isinstance(v, Fetch) for v in visits)
    assert [v.target.region for v in visits] == tree.codes(4)          # level by level
    assert [v.target.depth for v in visits] == sorted(v.target.depth for v in visits)
    assert all(v.poll.result == "ok" and v.changed for v in visits)
    assert server.stats.paths == {document_path(c): 1 for c in tree.codes(4)}
    desa = visits[-1]
    assert desa.target.parent.parent.parent.parent.region == "0"      # the chain up to the top
    assert len(walker.take_tables()) == 1 + 2 + 4 + 8                  # every parent's table, once
    assert walker.take_tables() == {}


def test_unchanged_children_are_handed_back_without_a_request(served):
    tree, server = served
    walker = TreeWalker(_config(server.url("0")).sources[0], ManualClock(START))
    try:
        _walk(walker)
        seen = set(tree.codes(4))
        before = dict(tree.docs)
        tree.advance(0.05)
        moved = {path for path, doc in tree.docs.items() if before.get(path) != doc}
        server.control("POST", "/_tree/reset?paths=1")
        visits = _walk(walker, known=seen.__contains__)
    finally:
        walker.close()
    fetched = {document_path(v.target.region) for v in visits if isinstance(v, Fetch)}
    assert fetched == moved == set(server.stats.paths)
    unchanged = [v for v in visits if isinstance(v, Unchanged)]
    assert unchanged                                                  # 5% moves some, not all
    root_ts = next(v for v in visits if isinstance(v, Fetch) and v.target.region == "0").poll.snapshot.published_at
    for visit in unchanged:
        # a child of a republished parent carries the parent's new timestamp
        assert visit.published == root_ts
        assert document_path(visit.target.region) not in moved


def test_a_failed_document_and_its_ancestors_are_fetched_again(served):
    tree, server = served
    walker = TreeWalker(_config(server.url("0")).sources[0], ManualClock(START))
    desa = tree.codes(4)[-1]
    try:
        _walk(walker)
        seen = set(tree.codes(4))
        tree.advance(0.0)                                # a publication that moves nothing below
        server.control("POST", f"/_tree/fail?path={document_path(desa)}&times=1")
        # the top moved (re-stamped): its children's rows did not, so the desa is not asked for
        assert [v.target.region for v in _walk(walker, seen.__contains__) if isinstance(v, Fetch)] == ["0"]
        tree.advance(0.3)
        failed = [v for v in _walk(walker, seen.__contains__) if isinstance(v, Fetch) and not v.poll.ok]
        assert [(v.target.region, v.poll.result) for v in failed] == [(desa, "http_5xx")]
        assert walker.revisit == {desa, desa[:6], desa[:4], desa[:2], "0"}
        server.control("POST", "/_tree/reset?paths=1")
        again = [v.target.region for v in _walk(walker, seen.__contains__) if isinstance(v, Fetch)]
    finally:
        walker.close()
    assert again == ["0", desa[:2], desa[:4], desa[:6], desa]         # answered 304 above it
    assert walker.revisit == set()


@pytest.mark.parametrize("etag, last_modified", [
    ('"9f86d081884c7d659a2feaa0c55ad015"', "Wed, 14 Feb 2024 13:00:15 GMT"),   # the ETag alone goes back
    ('W/"1-3204010001"', None), ('"caf\xe9 \x00"', None),                     # weak, latin-1, a NUL
    (None, "Wed, 14 Feb 2024 13:00:15 GMT"), (None, None)])
def test_a_document_is_kept_as_one_int_that_gives_back_the_exact_validator(etag, last_modified):
    printed = fingerprint(Snapshot("kpu", "32", START, START, 10, 4, {"100025": 7}))
    value = kept(printed, etag, last_modified)
    assert isinstance(value, int) and value & (2 ** 64 - 1) == printed & (2 ** 64 - 1)
    assert validators_of(value) == ((etag, None) if etag else (None, last_modified))
    assert validators_of(None) == (None, None)
    assert validators_of(kept(printed, "\u20ac", None)) == (None, None)      # not latin-1: unconditional


def test_a_parents_table_compares_as_the_dict_the_store_keeps():
    table = Table.of({"3201": 7, "3202": 2 ** 32 - 1})
    assert table == {"3201": 7, "3202": 2 ** 32 - 1} and table != {"3201": 7}
    assert list(table) == ["3201", "3202"] and len(table) == 2 and table.as_dict() == dict(table.items())
    walker = TreeWalker(_config("http://127.0.0.1:9/ppwp.json").sources[0], ManualClock(START))
    walker.restore_tables({"32": {"3201": 1}, "33": {"3301": -1}, "34": {"3401": 2 ** 40}})
    assert walker.children == {"32": {"3201": 1}}          # not CRC-32s: fetched, as after a cold start
    walker.close()


def test_a_second_walk_sends_the_etag_back_and_descends_nowhere(served):
    tree, server = served
    walker = TreeWalker(_config(server.url("0")).sources[0], ManualClock(START))
    try:
        seen = {v.target.region for v in _walk(walker)}
        server.control("POST", "/_tree/reset?paths=1")
        visits = _walk(walker, known=seen.__contains__)
    finally:
        walker.close()
    assert visits[0].poll.result == "not_modified" and server.stats.not_modified == 1
    assert all(isinstance(v, Unchanged) for v in visits[1:]) and len(visits) == 1 + 2


def test_a_shard_descends_only_into_its_own_kab_kota(served):
    tree, server = served
    shard = Shard(1, 2)
    walker = TreeWalker(_config(server.url("0")).sources[0], ManualClock(START), shard=shard)
    try:
        visits = _walk(walker)
    finally:
        walker.close()
    kabs = [v.target.region for v in visits if v.target.depth == 2]
    assert kabs and all(shard.owns(k) for k in kabs)
    assert all(v.target.region[:4] in kabs for v in visits if v.target.depth > 2)
    above = [v for v in visits if v.target.depth < 2]
    assert len(above) == 3                                             # national + both provinces
    assert [walker.owns(v.target) for v in above] == [shard.owns(v.target.region) for v in above]


# --- the exporter -------------------------------------------------------------------------
def _snapshot(region: str, votes: dict[str, int], reported: int = 5) -> Snapshot:
    return Snapshot("kpu", region, START, START, 10, reported, votes)


def test_the_exporter_writes_series_to_export_depth_and_drops_candidates_that_left():
    registry = CollectorRegistry()
    source = _config("http://127.0.0.1:9/ppwp.json", export_depth=1).sources[0]
    judge = Judge(_config("http://127.0.0.1:9/ppwp.json"))
    exporter = Exporter(source, Metrics(registry))
    value = registry.get_sample_value
    state = judge.restore("kpu", "11", None)
    poll = Poll("kpu", "11", START, "ok", _snapshot("11", {"1": 3, "2": 4}), None, 0.25)
    exporter.request(poll, 1)
    exporter.series(poll, state, 1)
    assert value("countwatch_stations_reported", {"source": "kpu", "region": "11"}) == 5
    assert value("countwatch_progress_ratio", {"source": "kpu", "region": "11"}) == 0.5
    assert value("countwatch_votes", {"source": "kpu", "region": "11", "candidate": "2"}) == 4
    assert value("countwatch_polls_total", {"source": "kpu", "result": "ok"}) == 1
    assert value("countwatch_up", {"source": "kpu"}) == 0               # depth 1 says nothing of up

    exporter.series(Poll("kpu", "11", START, "ok", _snapshot("11", {"1": 3})), state, 1)
    assert value("countwatch_votes", {"source": "kpu", "region": "11", "candidate": "2"}) is None
    deep = Poll("kpu", "1101", START, "ok", _snapshot("1101", {"1": 1}))
    exporter.series(deep, judge.restore("kpu", "1101", None), 2)        # below export_depth
    assert value("countwatch_stations", {"source": "kpu", "region": "1101"}) is None

    exporter.request(Poll("kpu", "0", START, "ok", _snapshot("0", {})), 0)
    assert value("countwatch_up", {"source": "kpu"}) == 1
    assert value("countwatch_last_success_timestamp_seconds", {"source": "kpu"}) == START.timestamp()


def test_the_exporter_logs_poll_lines_and_counts_anomalies():
    registry = CollectorRegistry()
    stream = io.StringIO()
    clock = ManualClock(START)
    configure_logging("json", stream=stream, level="info", instance="test", clock=clock)
    source = _config("http://127.0.0.1:9/ppwp.json").sources[0]
    exporter = Exporter(source, Metrics(registry))
    exporter.poll_line(Poll("kpu", "32", START, "http_5xx", None, "503 Service Unavailable", 0.5), "p1", False)
    event = Event(START, "stall", "firing", "critical", "kpu", "32", "no advance", START)
    exporter.event(event, "p1")
    exporter.event(Event(START, "stall", "resolved", "info", "kpu", "32", "moving", START), "p1")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(l["event"], l["level"]) for l in lines] == [("poll", "info"), ("detector.event", "warning"),
                                                        ("detector.event", "info")]
    assert lines[0]["result"] == "http_5xx" and lines[0]["detail"] == "503 Service Unavailable"
    assert lines[1]["rule"] == "stall" and lines[1]["poll_id"] == "p1"
    assert registry.get_sample_value("countwatch_anomalies_total", {"source": "kpu", "rule": "stall"}) == 1


# --- the pass that wires them -------------------------------------------------------------
def test_a_pass_judges_every_region_and_saves_states_and_tables(served, tmp_path):
    tree, server = served
    config = _config(server.url("0"))
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    store = StateStore(tmp_path / "countwatch.db", metrics)
    clock = ManualClock(START)
    watcher = SourceWatcher(config.sources[0], Judge(config), metrics, clock, store)
    try:
        watcher.poll_once()
        assert set(watcher.states) == set(tree.codes(4))
        assert watcher.passes == 1 and watcher.last_pass_at == START
        assert set(store.load_states("kpu")) == set(tree.codes(4))
        assert set(store.load_tables("kpu")) == set(tree.codes(3))      # the parents'
        # region series to export_depth (1) only
        exported = {s.labels["region"] for m in registry.collect() if m.name == "countwatch_stations"
                    for s in m.samples}
        assert exported == set(tree.codes(1))
    finally:
        watcher.close()
    restored = SourceWatcher(config.sources[0], Judge(config), metrics, clock, store)
    try:
        assert set(restored.states) == set(tree.codes(4))
        assert restored.walker.children == store.load_tables("kpu")
    finally:
        restored.close()
        store.close()


def test_a_failing_pass_is_counted_and_the_next_one_runs(served):
    tree, server = served
    config = _config(server.url("0"))
    registry = CollectorRegistry()

    class Broken(Judge):
        broken = True

        def observe(self, state, poll):
            if self.broken:
                raise RuntimeError("a detector bug")
            return super().observe(state, poll)

    judge = Broken(config)
    watcher = SourceWatcher(config.sources[0], judge, Metrics(registry), ManualClock(START))
    try:
        assert watcher.poll_once() == []
        assert registry.get_sample_value("countwatch_job_errors_total", {"source": "kpu"}) == 1
        judge.broken = False
        watcher.poll_once()
    finally:
        watcher.close()
    # The scheduler's next run is a pass like any other. (The broken pass had read the top
    # document, so it is answered 304 now and the tree below waits for the next publication:
    # known, noted in docs/scaling.md.)
    assert watcher.passes == 1
    assert registry.get_sample_value("countwatch_job_errors_total", {"source": "kpu"}) == 1
    assert set(watcher.states) == {"0"}
