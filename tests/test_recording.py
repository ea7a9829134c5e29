"""The recording contract: round trip, failures, and clear errors for bad lines."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from monitor.model import Poll, RegionCount, Snapshot
from monitor.recording import RecordingError, RecordingWriter, read_recording

WIB = timezone(timedelta(hours=7))
AT = datetime(2024, 2, 22, 16, 6, 14, tzinfo=timezone.utc)


def test_round_trip_matches_design_example(tmp_path):
    snap = Snapshot("kpu-ppwp", "0", AT, datetime(2024, 2, 22, 23, 0, 15, tzinfo=WIB), 823236, 619579,
                    {"100025": 1, "100026": 2, "100027": 3},
                    {"11": RegionCount(stations=9000, stations_reported=7093, votes={"100025": 1})})
    path = tmp_path / "rec.jsonl"
    writer = RecordingWriter(path)
    writer.write(Poll("kpu-ppwp", "0", AT, "ok", snap))
    writer.write(Poll("kpu-ppwp", "0", AT + timedelta(hours=1), "timeout", detail="read timed out"))
    writer.write(Poll("kpu-ppwp", "0", AT + timedelta(hours=2), "not_modified"))
    writer.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0] == {"v": 1, "at": "2024-02-22T16:06:14Z", "source": "kpu-ppwp", "region": "0", "ok": True,
                        "published_at": "2024-02-22T23:00:15+07:00", "stations": 823236,
                        "stations_reported": 619579, "votes": {"100025": 1, "100026": 2, "100027": 3},
                        "children": {"11": {"stations": 9000, "stations_reported": 7093, "votes": {"100025": 1}}}}
    assert lines[1] == {"v": 1, "at": "2024-02-22T17:06:14Z", "source": "kpu-ppwp", "region": "0", "ok": False,
                        "error": "timeout", "detail": "read timed out"}
    # A 304 has no numbers, but its time counts: a stall is called at a poll.
    assert lines[2] == {"v": 1, "at": "2024-02-22T18:06:14Z", "source": "kpu-ppwp", "region": "0", "ok": True,
                        "not_modified": True}
    polls = list(read_recording(path))
    assert polls[0].snapshot == snap
    assert polls[1].result == "timeout" and not polls[1].ok
    assert polls[2].result == "not_modified" and polls[2].ok and polls[2].snapshot is None
    assert polls[2].at == AT + timedelta(hours=2)


def test_bad_line_names_file_and_line(tmp_path):
    path = tmp_path / "rec.jsonl"
    path.write_text('{"v": 1, "at": "2024-02-22T16:06:14Z", "source": "s", "region": "0", "ok": false, "error": "timeout"}\n'
                    '{"v": 2}\n')
    with pytest.raises(RecordingError, match=r"rec.jsonl:2: unsupported recording version"):
        list(read_recording(path))
