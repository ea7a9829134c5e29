"""`make soak`: two simulated days of a province count at high speed, with random source faults
and Slack failures, then the figures of docs/reliability.md.

    .venv/bin/python bench/soak.py [--days 2] [--speed 720] [--seed 2024]

The daemon (monitor.daemon.Daemon with the real detectors, store and alert pipeline) runs in
this process on a ScenarioClock; the feed (tests/feed.py) and the fake Slack (tests/fakes) run
in a forked child on the same clock, so this process's resident memory is the daemon's. The
fault schedule is drawn from the seed before the fork: freezes of the publisher, outages of
every kind (5xx, 403, hangs, slow drips, HTML, truncated and invalid JSON) and one-poll blips
at the source, 500 and 429 spells at Slack. The last hours are quiet so that everything
resolves and the outbox drains. Exit 1 when a notification was lost or duplicated unmarked,
a poll job failed, or resident memory grew by more than --max-growth MB.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))       # tests/feed.py and tests/fakes are the loopback world

from monitor.clock import ScenarioClock  # noqa: E402
from monitor.cli import parse_config  # noqa: E402
from monitor.daemon import Daemon  # noqa: E402
from monitor.logs import configure_logging  # noqa: E402
from monitor.metrics import Metrics  # noqa: E402

START = datetime(2024, 2, 14, 12, 0, tzinfo=timezone.utc)      # 19:00 WIB, polls just closed
PUBLISH_EVERY = 600                 # the feed publishes every 10 scenario minutes
KABUPATEN = [f"32{n:02d}" for n in range(1, 11)]
STATIONS = [7496 + 3 * i for i in range(len(KABUPATEN))]
SOURCE_FAULTS = {"freeze": (0.16, 90, 240), "blip": (0.16, 1, 2), "http_503": (0.1, 3, 45), "http_502": (0.08, 3, 30),
                 "http_403": (0.08, 3, 30), "hang": (0.1, 3, 30), "drip": (0.06, 3, 20), "html": (0.08, 3, 30),
                 "truncated": (0.09, 3, 30), "invalid": (0.09, 3, 30)}
QUIET_HOURS = 4                      # at the end: no new fault, so everything resolves


@dataclass(frozen=True)
class Episode:
    start: float                     # scenario seconds since START
    end: float
    kind: str


def schedule(days: float, seed: int) -> tuple[list[Episode], list[Episode]]:
    """Source faults (at most one at a time) and Slack failure spells, drawn from `seed`."""
    rng = random.Random(seed)
    source, slack = [], []
    free_from = 3600.0
    for hour in range(1, int(days * 24) - QUIET_HOURS):
        if rng.random() < 0.45:
            kind = rng.choices(list(SOURCE_FAULTS), [w for w, _, _ in SOURCE_FAULTS.values()])[0]
            _, low, high = SOURCE_FAULTS[kind]
            start = max(hour * 3600 + rng.uniform(0, 3000), free_from)
            end = start + 60 * rng.uniform(low, high)
            if end < (days * 24 - QUIET_HOURS) * 3600:
                source.append(Episode(start, end, kind))
                free_from = end + 1800
        if hour % 5 == 0 and rng.random() < 0.7:
            start = hour * 3600 + rng.uniform(0, 3600)
            slack.append(Episode(start, start + 60 * rng.uniform(5, 90), rng.choice(["500", "429"])))
    return source, slack


# --- the child: feed and fake Slack ------------------------------------------------------
def _pace(hour: int) -> float:
    return 0.35 if (19 + hour) % 24 < 7 else 1.0          # data entry slows from midnight to 07:00 WIB


def _share(seconds: float, days: float) -> float:
    """Share of stations in: from 12% at the start to 95% at the end, slower at night, and
    rising with every publication (a count that stops is what the soak injects, not models)."""
    hours = seconds / 3600
    done = sum(_pace(h) for h in range(int(hours))) + (hours - int(hours)) * _pace(int(hours))
    return 0.12 + 0.83 * done / sum(_pace(h) for h in range(int(days * 24) + 1))


def _document(index: int, region: str, days: float) -> bytes:
    import json

    share = _share(index * PUBLISH_EVERY, days)
    rows = {}
    for code, total in zip(KABUPATEN, STATIONS):
        reported = int(total * share * (0.94 + 0.005 * (int(code) % 10)))
        rows[code] = (total, reported, {"1800001": 90 * reported, "1800002": 70 * reported, "1800003": 40 * reported})
    published = START + timedelta(seconds=index * PUBLISH_EVERY + 15)
    ts = (published + timedelta(hours=7)).strftime("%Y-%m-%d %H:%M:%S")
    if region == "32":
        total = sum(t for t, _, _ in rows.values())
        reported = sum(r for _, r, _ in rows.values())
        chart = Counter()
        for _, _, votes in rows.values():
            chart.update(votes)
        table = {code: {**votes, "persen": round(100 * r / t, 2), "psu": "Reguler"}
                 for code, (t, r, votes) in rows.items()}
    else:
        total, reported, chart = rows[region]
        table = None
    doc = {"ts": ts, "psu": "Reguler", "mode": "hhcw", "chart": {**chart, "persen": round(100 * reported / total, 2)},
           "table": table, "progres": {"total": total, "progres": reported}}
    return json.dumps(doc).encode()


def _child(connection, clock: ScenarioClock, days: float, source_faults: list[Episode],
           slack_faults: list[Episode]) -> None:
    from tests.fakes import FakeSlack
    from tests.feed import Feed, Reply

    def active(episodes: list[Episode], seconds: float) -> Episode | None:
        return next((e for e in episodes if e.start <= seconds < e.end), None)

    def route(region: str):
        def reply(handler) -> "Reply":
            seconds = (clock.now() - START).total_seconds()
            fault = active(source_faults, seconds)
            kind = fault.kind if fault else None
            index = int(seconds // PUBLISH_EVERY)
            if kind == "freeze":
                index = int(fault.start // PUBLISH_EVERY)
            close = {"Connection": "close"}
            body = _document(index, region, days)
            if kind in ("http_503", "http_502", "blip"):
                return Reply(503 if kind != "http_502" else 502, b"<html><title>Service Unavailable</title></html>",
                             {**close, "Content-Type": "text/html"})
            if kind == "http_403":
                return Reply(403, b"<h1>Forbidden</h1>", {**close, "Content-Type": "text/html"})
            if kind == "hang":
                return Reply(200, body, close, delay=3.0)
            if kind == "drip":
                return Reply(200, body, close, drip=0.05)
            if kind == "html":
                return Reply(200, b"<html><title>Pemeliharaan</title></html>", {**close, "Content-Type": "text/html"})
            if kind == "truncated":
                return Reply(200, body[: len(body) // 2], close)
            if kind == "invalid":
                return Reply(200, b"{'progres': undefined}", close)
            return Reply(200, body, close, etag=f'"{index}"')
        return reply

    with Feed() as feed, FakeSlack() as slack:
        # socketserver's backlog of 5 drops the SYNs of a pass's ten concurrent fetches
        # (each on a new connection), which reads as connect timeouts: not what is soaked here
        feed.server.socket.listen(128)
        feed.set("/pemilu/hhcw/pkwkp/32.json", route("32"))
        for code in KABUPATEN:
            feed.set(f"/pemilu/hhcw/pkwkp/32/{code}.json", route(code))
        connection.send({"feed": feed.url("/pemilu/hhcw/pkwkp/32.json"), "webhook": slack.webhook_url})
        failing = None
        while not connection.poll(0.02):
            seconds = (clock.now() - START).total_seconds()
            spell = active(slack_faults, seconds)
            if spell is not failing:
                slack.recover()
                if spell is not None:
                    slack.fail_next(spell.kind, times=None, retry_after=1)
                failing = spell
            feed.requests.clear()          # the feed's request log is for tests; here it only grows
        connection.recv()
        slack.recover()
        delivered = [(r.notification_id, (r.payload or {}).get("metadata", {}).get("event_payload", {}).get("status"),
                      "possible duplicate" in str(r.payload.get("blocks"))) for r in slack.accepted("webhook")]
        connection.send({"delivered": delivered, "slack_requests": len(slack.requests),
                         "slack_refused": sum(1 for r in slack.requests if not r.accepted)})


# --- the daemon --------------------------------------------------------------------------
def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def run(days: float, speed: float, seed: int, max_growth: float) -> int:
    source_faults, slack_faults = schedule(days, seed)
    clock = ScenarioClock(START, speed)
    parent, child_end = multiprocessing.Pipe()
    child = multiprocessing.get_context("fork").Process(target=_child, daemon=True,
                                                         args=(child_end, clock, days, source_faults, slack_faults))
    child.start()
    urls = parent.recv()
    work = Path(tempfile.mkdtemp(prefix="countwatch-soak-"))
    # the log file is JSON lines; nothing on the console (a StringIO would grow this process)
    configure_logging("json", file=work / "countwatch.log", level="info", instance="soak", clock=clock,
                      stream=open(os.devnull, "w"), max_bytes=1_000_000_000)
    config = parse_config({
        "daemon": {"state_dir": str(work / "state"), "instance": "soak"},
        "sources": [{"name": "kpu-jabar", "kind": "sirekap", "url": urls["feed"], "region": "32", "depth": 1,
                     "interval": "2m", "timeout": "1s", "retries": 0, "rate_limit": 0}],
        "receivers": [{"name": "oncall", "kind": "slack_webhook", "url": "${SOAK_WEBHOOK}"}],
    }, environ={"SOAK_WEBHOOK": urls["webhook"]})
    metrics = Metrics()
    daemon = Daemon(config, clock, metrics, serve_http=False)
    end = START + timedelta(days=days)
    samples = []
    wall_start = time.monotonic()
    daemon.start()
    try:
        next_sample = START + timedelta(hours=1)
        while clock.now() < end:
            time.sleep(0.2)
            if clock.now() >= next_sample:
                samples.append((clock.now(), rss_mb()))
                next_sample += timedelta(hours=1)
        daemon.alerts.drain(30)
    finally:
        daemon.stop()
    wall = time.monotonic() - wall_start
    parent.send("stats")
    stats = parent.recv()
    child.join(10)
    return report(days, speed, seed, wall, work, metrics, daemon, source_faults, slack_faults, stats, samples,
                  max_growth)


def _failed_polls(log: Path) -> list[datetime]:
    """Our-clock times of the province's failed polls, from the JSON log."""
    import json

    out = []
    with open(log, encoding="utf-8") as handle:
        for text in handle:
            line = json.loads(text)
            if line.get("event") == "poll" and line.get("region") == "32" and line["result"] not in ("ok", "not_modified"):
                out.append(datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")))
    return out


def _value(metrics: Metrics, name: str, **labels) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def report(days, speed, seed, wall, work, metrics, daemon, source_faults, slack_faults, stats, samples,
           max_growth) -> int:
    from monitor.model import POLL_RESULTS

    polls = {r: int(_value(metrics, "countwatch_polls_total", source="kpu-jabar", result=r)) for r in POLL_RESULTS}
    failed = {r: n for r, n in polls.items() if n and r not in ("ok", "not_modified")}
    job_errors = int(_value(metrics, "countwatch_job_errors_total", source="kpu-jabar"))
    with sqlite3.connect(work / "state" / "countwatch.db") as db:
        outbox = dict(db.execute("SELECT status, count(*) FROM alert_outbox GROUP BY status").fetchall())
        queued_ids = {i for (i,) in db.execute("SELECT id FROM alert_outbox")}
    delivered = stats["delivered"]
    unique = {i for i, _, _ in delivered}
    unmarked = len(delivered) - len(unique) - sum(1 for _, _, dup in delivered if dup)
    lost = queued_ids - unique
    fired = [e for e in daemon.events if e.region == "32" and e.state == "firing"
             and e.rule in ("stall", "stale_source", "outage")]
    kinds = Counter(e.kind for e in source_faults)
    freezes = [e for e in source_faults if e.kind == "freeze"]
    # an outage is owed an alert when at least outage_failures (3) polls of the province failed
    # in it: a hang or a drip holds each poll for the whole 1 s timeout, 12 scenario minutes
    failures = _failed_polls(work / "countwatch.log")
    outages = [e for e in source_faults if e.kind not in ("freeze", "blip")
               and sum(START + timedelta(seconds=e.start) <= at <= START + timedelta(seconds=e.end)
                       for at in failures) >= 3]

    def caught(episode, rules) -> bool:
        low, high = START + timedelta(seconds=episode.start), START + timedelta(seconds=episode.end + 3600)
        return any(e.rule in rules and low <= e.at <= high for e in fired)

    def explained(event) -> bool:
        return any(START + timedelta(seconds=e.start) <= event.at <= START + timedelta(seconds=e.end + 3600)
                   for e in source_faults)

    rss_start, rss_end = samples[0][1], samples[-1][1]
    growth = rss_end - rss_start
    print(f"countwatch soak: {days:g} simulated days ({START:%Y-%m-%d %H:%M} UTC onwards) at {speed:g}x, "
          f"seed {seed}: {wall:.0f} s wall")
    print(f"  polls: {sum(polls.values()):,} documents ({polls['ok']:,} ok, {polls['not_modified']:,} not modified, "
          f"{sum(failed.values()):,} failed: " + ", ".join(f"{r} {n:,}" for r, n in sorted(failed.items())) + ")")
    print(f"  faults injected: {len(source_faults)} at the source (" +
          ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) + f"), {len(slack_faults)} Slack spells "
          f"({stats['slack_refused']} of {stats['slack_requests']} Slack requests refused); "
          f"survived: {job_errors} poll-job errors, daemon stopped cleanly")
    print(f"  incidents: freezes {sum(caught(e, ('stall', 'stale_source')) for e in freezes)}/{len(freezes)} alerted, "
          f"outages with 3+ failed polls {sum(caught(e, ('outage',)) for e in outages)}/{len(outages)} alerted, "
          f"alerts outside any fault: {sum(not explained(e) for e in fired)}")
    print(f"  notifications: {len(queued_ids)} expected (queued), {len(unique)} delivered, {len(lost)} lost, "
          f"{len(delivered) - len(unique)} resent ({unmarked} unmarked); outbox " +
          ", ".join(f"{k} {v}" for k, v in sorted(outbox.items())))
    print(f"  resident memory: {rss_start:.1f} MB after the first simulated hour, {rss_end:.1f} MB at the end "
          f"(max {max(r for _, r in samples):.1f} MB, growth {growth:+.1f} MB)")
    marks = [samples[min(len(samples) - 1, i)] for i in range(0, len(samples), max(1, len(samples) // 6))]
    print("  resident memory over the run: " + ", ".join(
        f"+{(at - START).total_seconds() / 3600:.0f}h {mb:.1f}" for at, mb in marks + [samples[-1]]) + " MB")
    print(f"  state and log: {work}")
    ok = not lost and not unmarked and not job_errors and growth <= max_growth
    print("  result: " + ("ok" if ok else "FAILED"))
    return 0 if ok else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=2.0, help="simulated days (default 2)")
    parser.add_argument("--speed", type=float, default=720.0, help="scenario seconds per wall second (default 720)")
    parser.add_argument("--seed", type=int, default=2024, help="seed of the fault schedule")
    parser.add_argument("--max-growth", type=float, default=30.0, help="allowed RSS growth in MB (default 30)")
    args = parser.parse_args(argv)
    return run(args.days, args.speed, args.seed, args.max_growth)


if __name__ == "__main__":
    sys.exit(main())
