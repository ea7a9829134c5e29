"""One malformed row in the state database (issue #14, item 13): bad JSON or a wrong shape in
series_state, child_tables, alert_open, alert_incidents, the outbox or alert_silences, a bad
date in an outbox row's due_at, a stored value of the wrong type that only fails at the series'
first poll. Each used to stop `countwatch run` at start-up with exit 1
and a traceback. Now each is quarantined: a `state.quarantined` line, a count in
countwatch_state_quarantined_total{table}, the row moved to state_quarantine; its series starts
fresh and everything else runs."""
from __future__ import annotations

import json
import sqlite3
import urllib.request

from tests.feed import Feed, Reply
from tests.reliability.procs import ROOT, DaemonProcess, daemon_toml

PPWP = ROOT / "tests" / "fixtures" / "kpu" / "sirekap2024" / "pemilu" / "hhcw" / "ppwp.json"
SOURCE = "kpu-ppwp"


def _config(tmp_path, url: str) -> str:
    return f"""{daemon_toml(tmp_path / 'state', 'rows-test', tmp_path / 'countwatch.log')}
[[sources]]
name = "{SOURCE}"
kind = "sirekap"
url = "{url}"
interval = "1s"
timeout = "1s"

[alerting]
group_wait = "0s"

[[receivers]]
name = "console"
kind = "console"
"""


def _corrupt(db_path) -> dict[str, int]:
    """Spoil one row of every kind; returns the rows spoiled per table."""
    db = sqlite3.connect(db_path)
    with db:
        # the watched series: a state that reads and restores, with a value of the wrong type
        # that fails at its first poll (quarantined then, and the series starts fresh)
        (text,) = db.execute("SELECT state FROM series_state WHERE source = ? AND region = '0'", (SOURCE,)).fetchone()
        assert db.execute("UPDATE series_state SET state = ? WHERE source = ? AND region = '0'",
                          (json.dumps({**json.loads(text), "pgap": "x"}), SOURCE)).rowcount == 1
        db.execute("INSERT INTO series_state VALUES (?, '13', '2024-01-01T00:00:00Z', '{not json')", (SOURCE,))
        db.execute("INSERT INTO series_state VALUES (?, '11', '2024-01-01T00:00:00Z', '[1, 2]')", (SOURCE,))
        db.execute("INSERT INTO series_state VALUES (?, '12', '2024-01-01T00:00:00Z', '{\"nope\": 1}')", (SOURCE,))
        db.execute("INSERT INTO child_tables VALUES (?, '0', '2024-01-01T00:00:00Z', '\"x\"')", (SOURCE,))
        assert db.execute("UPDATE alert_open SET state = '[]'").rowcount >= 1
        db.execute("INSERT INTO alert_incidents VALUES ('bad-incident', 'console', '{not json', '2024-01-01T00:00:00Z')")
        sent = db.execute("SELECT * FROM alert_outbox ORDER BY seq LIMIT 1").fetchone()
        assert sent is not None
        columns = [c[1] for c in db.execute("PRAGMA table_info(alert_outbox)")]
        row = dict(zip(columns, sent))
        for seq, changes in ((9001, {"notification": "{not json"}), (9002, {"due_at": "not a date"}),
                             (9003, {"notification": "[1, 2, 3]"})):
            spoiled = {**row, "seq": seq, "id": f"spoiled-{seq}", "status": "pending", **changes}
            db.execute(f"INSERT INTO alert_outbox ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                       [spoiled[c] for c in columns])
        db.execute("INSERT INTO alert_silences (id, matchers, comment) VALUES ('bad-silence', '{not json', 'x')")
    db.close()
    return {"series_state": 4, "child_tables": 1, "alert_open": 1, "alert_incidents": 1, "alert_outbox": 3,
            "alert_silences": 1}


def _metric(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("countwatch_state_quarantined_total{"):
            out[line.split('table="')[1].split('"')[0]] = float(line.split()[-1])
    return out


def test_malformed_rows_are_quarantined_and_the_daemon_runs(tmp_path):
    config = tmp_path / "countwatch.toml"
    log = tmp_path / "countwatch.log"
    db_path = tmp_path / "state" / "countwatch.db"
    with Feed() as feed:
        feed.set("/ppwp.json", Reply(200, PPWP.read_bytes()))
        config.write_text(_config(tmp_path, feed.url("/ppwp.json")))
        first = DaemonProcess(config, log).start()
        try:
            # the fixture's timestamp is old: stale_source fires and the console is told
            first.wait_for(lambda: first.events("notification.sent"), what="a first notification")
            assert first.stop() == 0
        finally:
            first.close()
        spoiled = _corrupt(db_path)

        second = DaemonProcess(config, log).start()
        try:
            second.wait_for(lambda: len(second.events("daemon.started")) == 2, what="the restart")
            second.wait_for(lambda: len(second.events("state.quarantined")) >= sum(spoiled.values()),
                            what="every spoiled row quarantined")
            started = second.events("daemon.started")[-1]
            port = int(started["metrics"].rsplit(":", 1)[1].split("/")[0])
            polls_before = len(second.events("poll"))
            second.wait_for(lambda: len(second.events("poll")) >= polls_before + 3, what="polling after the restart")
            assert _metric(port) == {table: float(n) for table, n in spoiled.items()}
            assert second.stop() == 0
        finally:
            second.close()

    quarantined = second.events("state.quarantined")
    assert sorted(line["table"] for line in quarantined) == sorted(t for t, n in spoiled.items() for _ in range(n))
    assert all(line["moved"] for line in quarantined)
    output = second.output.read_text(errors="replace")
    assert "Traceback" not in output
    db = sqlite3.connect(db_path)
    moved = dict(db.execute("SELECT table_name, COUNT(*) FROM state_quarantine GROUP BY table_name").fetchall())
    assert moved == spoiled
    # the spoiled series started fresh and was saved again, readable; the others are gone
    state = db.execute("SELECT state FROM series_state WHERE source = ? AND region = '0'", (SOURCE,)).fetchone()
    assert state is not None and state[0].startswith("{\"")
    assert json.loads(state[0]).get("pgap") != "x"
    assert db.execute("SELECT COUNT(*) FROM series_state WHERE region IN ('11', '12', '13')").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM alert_outbox WHERE id LIKE 'spoiled-%'").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM alert_silences").fetchone()[0] == 0
    db.close()
