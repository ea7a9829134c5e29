"""`--shard K/N` on one machine's worth of tree: the split is a stable hash, every region is
watched (judged, exported, alerted) by exactly one shard, and two shards together detect
exactly what one unsharded instance detects over the same night, no incident twice."""
from __future__ import annotations

import subprocess
import sys
import zlib
from collections import Counter

import pytest

from bench.tree import Tree, TreeServer, document_path
from monitor.clock import ManualClock
from monitor.poll import SHARD_DEPTH, Shard
from tests.test_scale_tree import START, make_watcher

SHAPE = (3, 8, 16, 32, 3200)
DETECTION = {"stall_prior": "20m", "stall_floor": "5m"}
PASS_SECONDS = 300


def test_shard_parse_and_stable_assignment():
    assert Shard.parse("2/3") == Shard(2, 3)
    for bad in ("0/2", "3/2", "1", "a/b", "1/0", "-1/2"):
        with pytest.raises(ValueError):
            Shard.parse(bad)
    codes = [f"{p}{k:02d}" for p in (11, 32, 35, 91) for k in range(1, 30)]
    for n in (1, 2, 3, 5):
        owners = Counter(k for code in codes for k in range(1, n + 1) if Shard(k, n).owns(code))
        assert sum(owners.values()) == len(codes)            # each code: exactly one shard
        assert len(owners) == n                              # and every shard gets some
    # CRC-32, not Python's salted hash(): the same in every process, on every machine
    assert [Shard(k, 4).owns("3201") for k in (1, 2, 3, 4)] == [k - 1 == zlib.crc32(b"3201") % 4
                                                                for k in (1, 2, 3, 4)]
    script = "from monitor.poll import Shard; print([Shard(2, 3).owns(c) for c in ('3201', '3273', '1101')])"
    runs = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert runs == {str([Shard(2, 3).owns(c) for c in ("3201", "3273", "1101")]) + "\n"}


def _regions_with_series(registry) -> set[str]:
    return {s.labels["region"] for f in registry.collect() for s in f.samples if "region" in s.labels}


def test_every_region_is_watched_by_exactly_one_shard():
    tree = Tree.generate(shape=SHAPE)
    with TreeServer(tree) as server:
        server.control("POST", "/_tree/reset?paths=1")
        shards = [make_watcher(server.url("0"), export_depth=4, shard=Shard(k, 2)) for k in (1, 2)]
        try:
            for watcher, _ in shards:
                watcher.poll_once()
        finally:
            for watcher, _ in shards:
                watcher.close()
        exported = [_regions_with_series(registry) for _, registry in shards]
        assert exported[0] and exported[1] and not exported[0] & exported[1]
        assert exported[0] | exported[1] == set(tree.codes(4))
        # Above the split both shards read the documents to find their way down; from the split
        # on, each document is read by its own shard only.
        for code in tree.codes(4):
            depth = {1: 0, 2: 1, 4: 2, 6: 3, 10: 4}[len(code)]
            assert server.stats.paths[document_path(code)] == (2 if depth < SHARD_DEPTH else 1), code


def _night(watchers, tree: Tree, clock: ManualClock, frozen: str) -> list[list[tuple]]:
    """Passes every 5 minutes: a moving count, then region `frozen` stops for an hour while the
    rest moves, then everything stops for two hours (a national freeze), then it moves again.
    Returns, per watcher, its events as (pass, rule, state, severity, region)."""
    seen: list[list[tuple]] = [[] for _ in watchers]
    script = ["move"] * 14 + ["freeze-region"] * 12 + ["move"] * 3 + ["freeze-all"] * 24 + ["move"] * 4
    for index, step in enumerate(script):
        if step == "freeze-region":
            tree.freeze(frozen)
        else:
            tree.unfreeze(frozen)
        if step != "freeze-all":
            tree.advance(0.004)
        for events, watcher in zip(seen, watchers):
            events.extend((index, e.rule, e.state, e.severity, e.region) for e in watcher.poll_once())
        clock.advance(PASS_SECONDS)
    return seen


def test_two_shards_detect_what_one_instance_detects_and_nothing_twice():
    clock = ManualClock(START)
    tree = Tree.generate(shape=SHAPE, progress=0.2, clock=lambda: clock.now().timestamp())
    frozen = next(code for code in tree.codes(2) if len(code) == 4 and Shard(2, 2).owns(code))
    with TreeServer(tree) as server:
        watchers = [make_watcher(server.url("0"), clock=clock, detection=DETECTION, shard=shard)[0]
                    for shard in (None, Shard(1, 2), Shard(2, 2))]
        try:
            single, first, second = _night(watchers, tree, clock, frozen)
        finally:
            for watcher in watchers:
                watcher.close()
    fired = {(rule, region) for _, rule, state, _, region in single if state == "firing"}
    # the night has what it should: the frozen region's stall and one national stall
    assert ("stall", frozen) in fired and ("stall", "0") in fired
    assert not any(rule == "stall" and len(region) == 2 for rule, region in fired)   # no province piles on
    assert Counter(first) + Counter(second) == Counter(single)
    assert not set(first) & set(second)
    # the national incident is the owner's of "0", the frozen region's the owner's of its code
    owner_of = {code: 1 if Shard(1, 2).owns(code) else 2 for code in ("0", frozen)}
    for code, owner in owner_of.items():
        events = first if owner == 1 else second
        assert any(e[1] == "stall" and e[4] == code and e[2] == "firing" for e in events)
