"""replay's quick reader (fast_poll) reads every line as the reference reader does, or hands
it back (None) for the reference reader to read and name."""
from __future__ import annotations

import json

import pytest

from monitor.recording import read_recording, record_to_poll
import monitor.replay
from monitor.replay import fast_poll

LINE = {"v": 1, "at": "2024-02-22T16:06:14Z", "source": "kpu-ppwp", "region": "1101012001", "ok": True,
        "published_at": "2024-02-22T23:00:15+07:00", "stations": 4, "stations_reported": 2, "level": 4,
        "votes": {"100025": 10, "100026": 20, "100027": 30}, "percent": 50.0}


def line(children: dict) -> str:
    return json.dumps({**LINE, "children": children})


def reference(text: str):
    return record_to_poll(json.loads(text))


def test_a_desa_line_reads_as_the_reference_reader_reads_it():
    children = {"1101012001001": {"stations": 1, "stations_reported": 1, "percent": 100.0,
                                  "votes": {"100025": 4, "100026": 7, "100027": 1}},
                "1101012001002": {"stations": 1, "stations_reported": 0, "percent": 0.0, "votes": {}},
                "1101012001003": {"stations": 1, "stations_reported": 0, "percent": 0.0, "votes": {}},
                "1101012001004": {"stations": 1, "stations_reported": 0, "percent": -0.0, "votes": {}},
                "1101012001005": {"stations": 1, "stations_reported": 0, "percent": 0}}
    text = line(children)
    fast, slow = fast_poll(text), reference(text)
    assert fast == slow
    rows = fast.snapshot.children
    assert list(rows) == list(children)
    assert dict(rows["1101012001001"].votes) == {"100025": 4, "100026": 7, "100027": 1}
    # equal rows with nothing in are one object; -0.0 and 0 keep what the line said
    assert rows["1101012001002"] is rows["1101012001003"]
    assert repr(rows["1101012001004"].percent) == "-0.0" and repr(rows["1101012001002"].percent) == "0.0"
    assert type(rows["1101012001005"].percent) is int and dict(rows["1101012001005"].votes) == {}
    with pytest.raises(TypeError):
        rows["1101012001001"].votes["100025"] = 5          # read-only, as the reference's are


@pytest.mark.parametrize("row", [
    {"stations": 1, "stations_reported": 0, "votes": []},
    {"stations": 1, "stations_reported": 0, "votes": 0},
    {"stations": "1", "stations_reported": 0},
    {"stations": 1, "stations_reported": 0, "votes": {"100025": 1.5}},
    {"stations": 1, "stations_reported": 0, "votes": {"100025": True}},
    {"stations": 1, "stations_reported": 0, "name": "TPS 001"},
    {"stations": 1, "stations_reported": 2 ** 60},
])
def test_a_row_out_of_the_ordinary_goes_to_the_reference_reader(row):
    assert fast_poll(line({"1101012001001": row})) is None


def test_a_file_reads_alike_with_and_without_the_quick_reader(tmp_path):
    path = tmp_path / "rec.jsonl"
    rows = {f"110101200100{i}": {"stations": 1, "stations_reported": i % 2, "percent": 100.0 * (i % 2),
                                 "votes": {"100025": i} if i % 2 else {}} for i in range(1, 8)}
    path.write_text(line(rows) + "\n" + json.dumps({"v": 1, "at": "2024-02-22T17:06:14Z", "source": "kpu-ppwp",
                                                    "region": "0", "ok": True, "not_modified": True}) + "\n"
                    + line({"1101012001001": {"stations": 1, "votes": []}}) + "\n")
    assert list(read_recording(path, on_bad=lambda error: None, fast=fast_poll)) == \
        list(read_recording(path, on_bad=lambda error: None))


@pytest.mark.parametrize("change", [
    {},
    {"region": 1101012001},                          # a number: record_to_poll makes it a string
    {"ok": 1},
    {"not_modified": False},
    {"at": "2024-02-22T23:06:14+07:00"},             # our clock in another zone: UTC all the same
    {"at": "2024-02-22T16:06:14.250Z", "published_at": None},
    {"votes": None, "percent": None, "level": None},
    {"name": "Desa Lampuuk", "registered_voters": 1200, "valid_votes": 60, "invalid_votes": 0},
    {"latency": 0.2},                                # a key the document line does not have
])
def test_a_document_line_reads_as_the_reference_reader_reads_it(change, monkeypatch):
    """The line's own fields (not only its rows) read as record_to_poll reads them, or the
    line goes to it: never a different poll. A plain line (as is, with no timestamp, with its
    names and voters) is read by the quick path itself, never handed to record_to_poll."""
    text = json.dumps({**LINE, **change, "children": {"1101012001001": {"stations": 1, "stations_reported": 0,
                                                                        "votes": {}}}})
    expected = reference(text)
    if change == {} or change.get("published_at", "") is None or "name" in change:
        def handed_over(data):
            raise AssertionError(f"a plain line went to record_to_poll: {change}")
        monkeypatch.setattr(monitor.replay, "record_to_poll", handed_over)
        assert fast_poll(text) == expected
    else:
        # read here too (by record_to_poll on the decoded line), not given up on: None would
        # send the line back to the slow reader, still correct but no longer the fast path
        assert fast_poll(text) == expected


@pytest.mark.parametrize("change", [
    {"stations": "4"}, {"stations": True}, {"level": 4.5}, {"percent": "50"}, {"name": 7},
    {"votes": {"100025": 1.5}}, {"published_at": "2024-02-22 23:00"}, {"at": "9999-01-01T00:00:00Z"},
    {"v": 2}, {"source": None},
])
def test_a_document_line_out_of_the_ordinary_goes_to_the_reference_reader(change):
    text = json.dumps({**LINE, **change, "children": {"1101012001001": {"stations": 1, "stations_reported": 0}}})
    assert fast_poll(text) is None
