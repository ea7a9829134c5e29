"""Documents that are odd but readable are readings, not failures: a wrong content type on good
JSON, unicode and markup in names and candidate ids, a timestamp in the future or going
backwards. They are stored, judged and exported; none fakes a stall; exported label values
survive the exposition format; candidates that leave a document leave /metrics."""
from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor.clock import ManualClock
from monitor.cli import parse_config
from monitor.detectors import Judge
from monitor.logs import configure_logging
from monitor.metrics import Metrics
from monitor.poll import SourceWatcher
from monitor.store import StateStore
from tests.feed import Feed, Reply
from tests.reliability.hostile import body, log_lines, province_doc, series

START = datetime(2024, 2, 15, 13, 0, 30, tzinfo=timezone.utc)     # 20:00:30 WIB, 15 s after a publication
ODD_NAMES = ["Kab. Ñgawi — 東京 ✓", "<!channel> *bold* <https://evil.example|click>", 'quote " back\\slash',
             "line\nbreak", "\u202eRTL override", "zero\u200bwidth"]


def _wib(moment: datetime) -> str:
    return (moment + timedelta(hours=7)).strftime("%Y-%m-%d %H:%M:%S")


def _watcher(feed: Feed, tmp_path, registry, source: dict):
    config = parse_config({"daemon": {"state_dir": str(tmp_path)},
                           "sources": [{"region": "32", "interval": "5m", "timeout": "1s", "rate_limit": 0,
                                        **source}]})
    metrics = Metrics(registry)
    store = StateStore(tmp_path / "countwatch.db", metrics)
    clock = ManualClock(START)
    return SourceWatcher(config.sources[0], Judge(config), metrics, clock, store), store, clock


def test_unicode_and_markup_in_names_and_candidate_ids_survive_the_exposition(tmp_path):
    registry = CollectorRegistry()
    votes = {name: 10 * i for i, name in enumerate(ODD_NAMES, start=1)}
    with Feed() as feed:
        feed.set("/feed.json", Reply(200, json.dumps({"name": ODD_NAMES[0], "reported": 5, "total": 9,
                                                      "votes": votes}, ensure_ascii=False).encode(),
                                     {"Content-Type": "application/octet-stream"}))
        watcher, store, _ = _watcher(feed, tmp_path, registry, {
            "name": "odd", "kind": "json", "url": feed.url("/feed.json"),
            "mapping": {"reported": "reported", "total": "total", "votes": "votes", "name": "name"}})
        watcher.poll_once()
        stored = list(store.history("odd", "32"))
        watcher.close()
        store.close()
    assert [p.snapshot.name for p in stored] == [ODD_NAMES[0]]          # octet-stream JSON is a reading
    exposed = {s.labels["candidate"]: s.value
               for family in text_string_to_metric_families(generate_latest(registry).decode())
               if family.name == "countwatch_votes" for s in family.samples}
    assert exposed == votes


def test_candidates_that_leave_the_document_leave_metrics(tmp_path):
    """A source that renames its candidate ids every poll: the label sets stay one document's."""
    registry = CollectorRegistry()
    with Feed() as feed:
        watcher, store, clock = _watcher(feed, tmp_path, registry, {
            "name": "churn", "kind": "json", "url": feed.url("/feed.json"),
            "mapping": {"reported": "reported", "total": "total", "votes": "votes"}})
        for poll in range(20):
            ids = {f"c{poll}-{i}": i for i in range(50)}
            feed.set("/feed.json", Reply(200, json.dumps({"reported": poll, "total": 100, "votes": ids}).encode()))
            watcher.poll_once()
            clock.advance(300)
        watcher.close()
        store.close()
    candidates = {labels["candidate"] for _, labels, _ in series(registry, "countwatch_votes")}
    assert candidates == {f"c19-{i}" for i in range(50)}


def test_timestamps_in_the_future_or_going_back_are_readings_that_fake_no_stall(tmp_path):
    """Every 5 minutes a publication; one says tomorrow, a later one is a stale copy from two
    hours ago with fewer stations (a CDN node serving an old version). Both are stored as
    what the source said; the stale copy is reported (`regression`, `stale_source`) and the
    next good document closes it; there is never a stall."""
    registry = CollectorRegistry()
    logs = io.StringIO()
    configure_logging("json", stream=logs, level="info", instance="reliability")
    events = []
    with Feed() as feed:
        watcher, store, clock = _watcher(feed, tmp_path, registry, {
            "name": "kpu", "kind": "sirekap", "url": feed.url("/ppwp.json")})
        for i in range(36):
            published = START - timedelta(seconds=15) + timedelta(minutes=5 * i)
            reported = 100 + 10 * i
            if i == 20:
                published += timedelta(days=1)
            if i == 30:
                published -= timedelta(hours=2)
                reported -= 120
            feed.set("/ppwp.json", Reply(200, body(province_doc(reported, ts=_wib(published)))))
            events += [(i, e.rule, e.state, e.details.get("kind")) for e in watcher.poll_once()]
            clock.advance(300)
        stored = [p.snapshot for p in store.history("kpu", "32")]
        watcher.close()
        store.close()
    assert len(stored) == 36                                    # every document is a reading
    assert stored[20].published_at.date().isoformat() == "2024-02-16"
    assert stored[30].stations_reported == 280
    assert not [e for e in events if e[1] == "stall"], events
    assert (21, "regression", "observed", "timestamp") in events          # back from "tomorrow"
    assert (30, "regression", "observed", "stations") in events
    assert (30, "stale_source", "firing", None) in events and (31, "stale_source", "resolved", None) in events
    assert {line["result"] for line in log_lines(logs) if line["event"] == "poll"} == {"ok"}
    assert registry.get_sample_value("countwatch_stations_reported", {"source": "kpu", "region": "32"}) == 450
