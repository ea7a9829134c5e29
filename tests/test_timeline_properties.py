"""The review agrees with the log, for any log (issue 13): random detector and notification
lines, as the daemon writes them, rebuilt by `countwatch timeline`'s code. Every notification
line lands in exactly one incident, no incident is told about opening after it resolved unless
it visibly reopened, and observed (point) incidents are notified like any other."""
from __future__ import annotations

import json
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.model import iso_utc
from monitor.timeline import review

T0 = datetime(2018, 6, 27, 10, 0, tzinfo=timezone.utc)
KEYS = [("stall", "32"), ("stale_source", "32"), ("outage", "32"), ("stall", "3204"), ("inconsistent", "3204")]
SLACK = timedelta(minutes=1)   # incidents.NOTIFY_SLACK: a notification may precede its event's line a little


def line(at: datetime, event: str, **fields) -> str:
    return json.dumps({**fields, "event": event, "level": "info", "timestamp": iso_utc(at), "instance": "cw"})


@st.composite
def logs(draw):
    """Per alert key, a few lifecycles (firing, maybe escalated, resolved or still open) with
    notifications inside them, and point anomalies (jumps) with theirs."""
    out: list[tuple[datetime, str]] = []
    serial = 0
    for rule, region in KEYS:
        t = T0 + timedelta(minutes=draw(st.integers(0, 120)))
        for _ in range(draw(st.integers(0, 3))):
            since = t
            fired = t + timedelta(minutes=draw(st.integers(1, 30)))
            ended = fired + timedelta(minutes=draw(st.integers(1, 300)))
            still_open = draw(st.booleans()) and draw(st.booleans())
            base = dict(rule=rule, source="kpu-jabar", region=region, since=iso_utc(since), summary="x",
                        details={})
            out.append((fired, line(fired, "detector.event", state="firing", severity="warning", **base)))
            serial += 1
            incident = f"i{serial}"
            told = fired + timedelta(seconds=draw(st.integers(0, 120)))
            while told < ended:
                serial += 1
                reason = "first" if told < fired + timedelta(seconds=121) else "repeat"
                for verb in ("queued", "sent"):
                    out.append((told, line(told, f"notification.{verb}", receiver="oncall",
                                           alert_key=f"{rule}/kpu-jabar/{region}", reason=reason,
                                           incident=incident, notification=f"n{serial}")))
                told += timedelta(minutes=draw(st.integers(30, 240)))
            if still_open:
                break
            out.append((ended, line(ended, "detector.event", state="resolved", severity="warning", **base)))
            serial += 1
            said = ended + timedelta(seconds=draw(st.integers(0, 60)))
            out.append((said, line(said, "notification.sent", receiver="oncall", alert_key=f"{rule}/kpu-jabar/{region}",
                                   reason="resolved", incident=incident, notification=f"n{serial}")))
            t = ended + timedelta(minutes=draw(st.integers(1, 90)))
    # one poll gives one event per key: two jumps of one series are minutes apart
    for minute in draw(st.lists(st.integers(0, 900), max_size=3, unique=True)):
        at = T0 + timedelta(minutes=minute, seconds=30)
        serial += 1
        out.append((at, line(at, "detector.event", state="observed", severity="warning", rule="jump",
                             source="kpu-jabar", region="32", summary=f"jump {serial}", details={})))
        told = at + timedelta(seconds=draw(st.integers(0, 60)))
        out.append((told, line(told, "notification.sent", receiver="oncall", alert_key="jump/kpu-jabar/32",
                               reason="observed", incident=f"j{serial}", notification=f"n{serial}")))
    out.sort(key=lambda pair: pair[0])
    return [text for _, text in out]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(logs())
def test_every_notification_in_exactly_one_incident_and_none_after_resolution(lines):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "countwatch.log"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        timeline = review([path], ZoneInfo("Asia/Jakarta"))
    notifications = [json.loads(text) for text in lines if '"notification.' in text]
    homes: dict[int, int] = {}
    for incident in timeline.incidents:
        for record in incident.notifications:
            homes[id(record)] = homes.get(id(record), 0) + 1
        assert all(count == 1 for count in homes.values())
    placed = sum(len(i.notifications) for i in timeline.incidents)
    assert placed == len(notifications)                       # none loose, none twice
    assert len({id(n) for i in timeline.incidents for n in i.notifications}) == placed
    for incident in timeline.incidents:
        if incident.point:
            assert incident.notified is not None             # a told jump shows it was notified
            continue
        resolved = incident.resolved
        if resolved is None:
            continue
        for record in incident.notifications:
            if record.get("reason") in ("first", "repeat"):
                assert record.at <= resolved + SLACK, (incident.rules, incident.reopened, record.fields)
