"""The state store: restart continues where it left off; a failing database is counted and
detection goes on in memory (read-only and full databases made with SQLite itself)."""
from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

from prometheus_client import CollectorRegistry

from monitor.metrics import Metrics
from monitor.model import Snapshot
from monitor.store import StateStore

AT = datetime(2024, 2, 22, 16, 6, 14, tzinfo=timezone.utc)


def snapshot(reported: int) -> Snapshot:
    return Snapshot("kpu", "0", AT, None, 100, reported, {"1": reported * 3})


def test_states_and_history_survive_reopen(tmp_path):
    path = tmp_path / "countwatch.db"
    store = StateStore(path)
    assert store.save_states("kpu", {"0": {"last": 5}, "11": {"last": 7}}, AT, [snapshot(5)])
    store.close()
    again = StateStore(path)
    assert again.load_states("kpu") == {"0": {"last": 5}, "11": {"last": 7}}
    history = list(again.history("kpu", "0"))
    assert [p.snapshot.stations_reported for p in history] == [5]
    assert history[0].snapshot.votes == {"1": 15}
    assert again.load_states("other") == {}


def test_read_only_database_is_counted_and_state_kept_in_memory(tmp_path):
    path = tmp_path / "countwatch.db"
    StateStore(path).close()
    metrics = Metrics(CollectorRegistry())
    store = StateStore(f"file:{path}?mode=ro", metrics, uri=True)
    assert store.save_states("kpu", {"0": {"last": 9}}, AT) is False
    assert metrics.registry.get_sample_value("countwatch_state_errors_total", {"operation": "write"}) == 1
    assert store.describe()["unsaved_series"] == 1
    assert not store.healthy


def test_full_database_fails_cleanly_then_catches_up(tmp_path):
    path = tmp_path / "countwatch.db"
    metrics = Metrics(CollectorRegistry())
    store = StateStore(path, metrics)
    page_count = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {page_count}")
    big = {"0": {"blob": "x" * 200_000}}
    assert store.save_states("kpu", big, AT) is False
    assert metrics.registry.get_sample_value("countwatch_state_errors_total", {"operation": "write"}) == 1
    store._db.execute("PRAGMA max_page_count = 1000000")
    assert store.save_states("kpu", {"11": {"last": 1}}, AT) is True
    # what could not be written before is written with the next successful pass
    assert set(store.load_states("kpu")) == {"0", "11"}


def test_locked_database_does_not_block_forever(tmp_path):
    path = tmp_path / "countwatch.db"
    store = StateStore(path, Metrics(CollectorRegistry()))
    store._db.execute("PRAGMA busy_timeout = 100")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        assert store.save_states("kpu", {"0": {"last": 1}}, AT) is False
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert store.save_states("kpu", {}, AT) is True
    assert store.load_states("kpu") == {"0": {"last": 1}}


def test_an_unreadable_row_on_a_read_only_database_is_skipped_and_counted(tmp_path):
    """Quarantine cannot move the row (mode=ro): the row is left where it is, skipped in
    memory, counted; the readable rows load."""
    path = tmp_path / "countwatch.db"
    store = StateStore(path)
    assert store.save_states("kpu", {"0": {"last": 5}, "11": {"last": 7}}, AT)
    store.close()
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE series_state SET state = '{not json' WHERE region = '11'")
    db.close()
    metrics = Metrics(CollectorRegistry())
    store = StateStore(f"file:{path}?mode=ro", metrics, uri=True)
    assert store.load_states("kpu") == {"0": {"last": 5}}
    assert metrics.registry.get_sample_value("countwatch_state_quarantined_total", {"table": "series_state"}) == 1
    store.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT state FROM series_state WHERE region = '11'").fetchone() == ("{not json",)
    db.close()


def test_an_old_snapshot_row_goes_at_the_first_write(tmp_path):
    """A row from 2020 in a database kept since then: the first write applies the retention."""
    path = tmp_path / "countwatch.db"
    store = StateStore(path)
    old = Snapshot("kpu", "0", datetime(2020, 3, 1, tzinfo=timezone.utc), None, 100, 1, {"1": 3})
    assert store.save_states("kpu", {}, old.at, [old])
    store.close()
    store = StateStore(path, history_retention=timedelta(days=14))
    assert [p.snapshot.at.year for p in store.history("kpu", "0")] == [2020]
    assert store.save_states("kpu", {"0": {"last": 5}}, AT, [snapshot(5)])
    assert [p.snapshot.at for p in store.history("kpu", "0")] == [AT]
    # a row inside the retention stays
    later = AT + timedelta(days=13)
    assert store.save_states("kpu", {}, later + timedelta(hours=2), [Snapshot("kpu", "0", later, None, 100, 6)])
    store.prune(later + timedelta(hours=2))
    assert [p.snapshot.at for p in store.history("kpu", "0")] == [AT, later]
    store.close()


def test_history_stays_bounded_under_churn(tmp_path):
    """A source whose region codes change every poll (each poll: 400 new series, one snapshot
    each, a minute apart, so no row is old enough for the retention): the rows stop at
    history_max_rows, the oldest going first, and the file stops growing (freed pages reused)."""
    path = tmp_path / "countwatch.db"
    store = StateStore(path, history_max_rows=4000)
    sizes = {}
    for poll in range(120):
        at = AT + timedelta(minutes=poll)
        snaps = [Snapshot("churn", f"{poll}-{i}", at, None, 300, i % 300, {"1": i, "2": 2 * i}) for i in range(400)]
        assert store.save_states("churn", {}, at, snaps)
        sizes[poll] = path.stat().st_size + (tmp_path / "countwatch.db-wal").stat().st_size
    rows = sqlite3.connect(path).execute("SELECT COUNT(*), MIN(region) FROM snapshots").fetchone()
    store.close()
    assert rows[0] <= 4000 + 400
    assert not list(StateStore(path).history("churn", "0-0"))          # the oldest went first
    assert sizes[119] <= sizes[40] * 1.1, sizes


def test_retention_is_configured_in_the_daemon_section(tmp_path):
    from monitor.cli import parse_config
    from monitor.configtools import ConfigError
    from monitor.daemon import Daemon

    source = {"name": "kpu", "kind": "sirekap", "url": "http://127.0.0.1:9/ppwp.json"}
    config = parse_config({"daemon": {"state_dir": str(tmp_path), "history_retention": "2d",
                                      "history_max_rows": 1000}, "sources": [source]})
    daemon = Daemon(config, serve_http=False)
    try:
        assert daemon.store.history_retention == timedelta(days=2) and daemon.store.history_max_rows == 1000
    finally:
        daemon.stop()
    defaults = parse_config({"sources": [source]})
    assert (defaults.history_retention, defaults.history_max_rows) == (14 * 86400.0, 5_000_000)
    try:
        parse_config({"daemon": {"history_retention": "0s", "history_max_rows": 0}, "sources": [source]})
    except ConfigError as error:
        assert "daemon.history_retention" in str(error) and "daemon.history_max_rows" in str(error)
    else:
        raise AssertionError("a zero retention was accepted")


def test_states_made_as_written_one_that_fails_is_counted_and_the_rest_saved(tmp_path):
    metrics = Metrics(CollectorRegistry())
    store = StateStore(tmp_path / "countwatch.db", metrics)

    def broken() -> dict:
        raise ValueError("not serialisable")
    assert store.save_states("kpu", {"0": lambda: {"last": 5}, "11": broken, "12": '{"last":7}'}, AT)
    assert store.load_states("kpu") == {"0": {"last": 5}, "12": {"last": 7}}
    assert metrics.registry.get_sample_value("countwatch_state_errors_total", {"operation": "serialize"}) == 1
    assert store.healthy


def test_states_not_written_are_kept_as_they_were_when_saved(tmp_path):
    path = tmp_path / "countwatch.db"
    StateStore(path).close()
    store = StateStore(f"file:{path}?mode=ro", Metrics(CollectorRegistry()), uri=True)
    state = {"last": 9}
    assert store.save_states("kpu", {"0": lambda: dict(state)}, AT) is False
    state["last"] = 10                   # the series moves on; what that pass saved does not
    assert store._memory == {"kpu": {"0": '{"last":9}'}}
    assert store.describe()["unsaved_series"] == 1
