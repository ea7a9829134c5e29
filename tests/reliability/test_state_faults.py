"""The state database locked, read-only or full: a clear `state.error` line, a count in
countwatch_state_errors_total, and detection going on in memory (the outage still fires);
once the database works again the next pass writes the state it missed.

Simulated with SQLite itself (tests run as root, so file permissions prove nothing): another
connection holding an exclusive lock, `mode=ro`, and `PRAGMA max_page_count` (a per-connection
limit, hence set on the store's own connection)."""
from __future__ import annotations

import io
import json
import sqlite3
from datetime import datetime, timezone

import pytest
from prometheus_client import CollectorRegistry

from monitor.clock import ManualClock
from monitor.cli import parse_config
from monitor.detectors import Judge
from monitor.logs import configure_logging
from monitor.metrics import Metrics
from monitor.poll import SourceWatcher
from monitor.store import StateStore
from tests.feed import Feed, Reply
from tests.reliability.hostile import body, log_lines, province_doc

START = datetime(2024, 2, 15, 13, 0, 30, tzinfo=timezone.utc)
CLOSE = {"Connection": "close"}


def _persisted(path) -> dict:
    """What a restart would restore: the stored state, read through a fresh connection."""
    with sqlite3.connect(path) as db:
        return {region: json.loads(state) for region, state in
                db.execute("SELECT region, state FROM series_state WHERE source = 'kpu'")}


@pytest.mark.parametrize("fault", ["locked", "read_only", "full"])
def test_state_database_fault(fault, tmp_path):
    registry = CollectorRegistry()
    logs = io.StringIO()
    configure_logging("json", stream=logs, level="info", instance="reliability")
    path = tmp_path / "countwatch.db"
    metrics = Metrics(registry)
    with Feed() as feed:
        config = parse_config({"daemon": {"state_dir": str(tmp_path)}, "detection": {"outage_failures": 1},
                               "sources": [{"name": "kpu", "kind": "sirekap", "url": feed.url("/ppwp.json"),
                                            "region": "32", "interval": "60s", "timeout": "1s", "retries": 0}]})
        clock = ManualClock(START)
        store = StateStore(path, metrics)
        feed.set("/ppwp.json", Reply(200, body(province_doc(400)), CLOSE))
        watcher = SourceWatcher(config.sources[0], Judge(config), metrics, clock, store)
        watcher.poll_once()
        assert store.healthy and "32" in _persisted(path)

        holder = None
        if fault == "locked":
            holder = sqlite3.connect(path, isolation_level=None)
            holder.execute("BEGIN EXCLUSIVE")
        elif fault == "read_only":
            store.close()
            store = watcher.store = StateStore(f"file:{path}?mode=ro", metrics, uri=True)
        else:
            pages = store._db.execute("PRAGMA page_count").fetchone()[0]
            store._db.execute(f"PRAGMA max_page_count = {pages}")

        # the site goes down (the outage fires), then comes back with a bigger document: the
        # new snapshot needs new pages, so the full database refuses it whatever the first
        # write managed. (One pass under the lock: each waits out the 5 s busy timeout.)
        feed.set("/ppwp.json", Reply(503, b"down", CLOSE))
        clock.advance(60)
        events = watcher.poll_once()
        if fault != "locked":
            big = province_doc(500, candidates={str(100000 + i): i for i in range(400)})
            feed.set("/ppwp.json", Reply(200, body(big), CLOSE))
            clock.advance(60)
            watcher.poll_once()

        # detection went on in memory: the outage fired, and the state in memory knows it
        assert [(e.rule, e.state) for e in events] == [("outage", "firing")]
        assert "outage" in watcher.states["32"].open_alerts
        errors = [line for line in log_lines(logs) if line["event"] == "state.error"]
        expected = {"locked": "database is locked", "read_only": "attempt to write a readonly database",
                    "full": "database or disk is full"}[fault]
        assert errors and all(expected in line["error"] and line["operation"] == "write" for line in errors), errors
        assert "detection continues in memory" in errors[0]["consequence"]
        assert registry.get_sample_value("countwatch_state_errors_total", {"operation": "write"}) == len(errors)
        assert not store.healthy
        with sqlite3.connect(path) as db:
            assert db.execute("SELECT count(*) FROM snapshots").fetchone()[0] == 1   # only the first reading

        if fault != "read_only":
            # the fault goes away: the next pass writes what the failed ones could not
            if holder is not None:
                holder.execute("ROLLBACK")
            else:
                store._db.execute("PRAGMA max_page_count = 1073741823")
            clock.advance(60)
            watcher.poll_once()
            assert store.healthy
            assert "outage" in json.dumps(_persisted(path)["32"])
        watcher.close()
        store.close()
        if holder is not None:
            holder.close()
