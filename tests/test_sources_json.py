"""kind = "json": an arbitrary feed mapped by JMESPath. The feed here republishes the real
national Sirekap numbers of 22 Feb 2024 23:00:15 WIB in a different shape."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from monitor.cli import parse_config
from monitor.config import SourceConfig
from monitor.sources import DocumentError, parse_document

AT = datetime(2024, 2, 22, 16, 6, 14, tzinfo=timezone.utc)
FEED = {
    "updated": "2024-02-22 23:00:15",
    "progress": {"in": 619579, "of": 823236, "pct": 75.26},
    "candidates": [
        {"id": "100025", "votes": 26581455},
        {"id": "100026", "votes": 65049492},
        {"id": "100027", "votes": 18833011},
    ],
    "regions": {
        "11": {"label": "ACEH", "share": 74.8, "tally": {"100025": 1593821, "100026": 469004, "100027": 46760}},
        "95": {"label": "PAPUA PEGUNUNGAN", "share": None, "tally": None},
    },
    "meta": {"title": "Pilpres 2024", "dpt": 204807222},
}
MAPPING = {
    "reported": "progress.in",
    "total": "progress.of",
    "percent": "progress.pct",
    "published_at": "updated",
    "votes": "candidates[].[id, votes]",
    "children": "regions",
    "child_percent": "share",
    "child_votes": "tally",
    "child_name": "label",
    "name": "meta.title",
    "registered_voters": "meta.dpt",
}


def source(mapping=MAPPING, timezone_name="Asia/Jakarta") -> SourceConfig:
    return SourceConfig(name="feed", kind="json", url="http://127.0.0.1/feed.json",
                        mapping=mapping, timezone=timezone_name)


def parse(feed=FEED, mapping=MAPPING, **kwargs):
    return parse_document(source(mapping, **kwargs), "0", json.dumps(feed).encode(), AT)


def test_feed_mapped_onto_a_snapshot():
    snap = parse()
    assert (snap.stations, snap.stations_reported, snap.percent) == (823236, 619579, 75.26)
    assert snap.published_at == datetime(2024, 2, 22, 16, 0, 15, tzinfo=timezone.utc)
    assert snap.votes == {"100025": 26581455, "100026": 65049492, "100027": 18833011}
    assert (snap.name, snap.registered_voters, snap.level) == ("Pilpres 2024", 204807222, None)
    aceh = snap.children["11"]
    assert (aceh.name, aceh.percent, aceh.stations) == ("ACEH", 74.8, None)
    assert aceh.votes == {"100025": 1593821, "100026": 469004, "100027": 46760}
    # nulls in the feed stay unknown
    assert snap.children["95"].percent is None and dict(snap.children["95"].votes) == {}
    assert snap.valid_votes is None                      # not mapped: unknown


def test_mapping_from_a_validated_config():
    config = parse_config({"sources": [{"name": "feed", "kind": "json", "url": "http://127.0.0.1/f.json",
                                        "mapping": MAPPING}]}, environ={})
    snap = parse_document(config.sources[0], "0", json.dumps(FEED).encode(), AT)
    assert snap.stations_reported == 619579


def test_children_as_a_list_of_pairs_with_station_counts():
    feed = {"n": 3, "k": 2, "rows": [{"code": "1101012001001", "done": 1, "all": 1},
                                     {"code": 1101012001002, "done": 0, "all": 1}]}
    snap = parse(feed, {"reported": "k", "total": "n", "children": "rows[].[code, @]",
                        "child_reported": "done", "child_total": "all"})
    assert snap.children["1101012001001"].stations_reported == 1
    assert (snap.children["1101012001002"].stations, snap.children["1101012001002"].stations_reported) == (1, 0)


@pytest.mark.parametrize("value, expected", [
    ("2024-02-22T16:00:15Z", datetime(2024, 2, 22, 16, 0, 15, tzinfo=timezone.utc)),
    ("2024-02-22T23:00:15+07:00", datetime(2024, 2, 22, 16, 0, 15, tzinfo=timezone.utc)),
    ("2024-02-22 23:00:15", datetime(2024, 2, 22, 16, 0, 15, tzinfo=timezone.utc)),   # naive: WIB
    (1708617615, datetime(2024, 2, 22, 16, 0, 15, tzinfo=timezone.utc)),
    (1708617615.5, datetime(2024, 2, 22, 16, 0, 15, 500000, tzinfo=timezone.utc)),
])
def test_published_at_formats(value, expected):
    snap = parse(dict(FEED, updated=value))
    assert snap.published_at == expected


def test_naive_published_at_is_read_in_the_source_timezone():
    snap = parse(timezone_name="UTC")
    assert snap.published_at == datetime(2024, 2, 22, 23, 0, 15, tzinfo=timezone.utc)
    assert snap.published_at.utcoffset() == timedelta(0)


def test_numeric_string_timestamp_via_to_number():
    snap = parse(dict(FEED, updated="1708617615"), dict(MAPPING, published_at="to_number(updated)"))
    assert snap.published_at == datetime(2024, 2, 22, 16, 0, 15, tzinfo=timezone.utc)


@pytest.mark.parametrize("feed, mapping, fragment", [
    ({**FEED, "progress": {}}, MAPPING, "total ('progress.of') is missing"),
    ({**FEED, "progress": {"in": "619579", "of": 823236}}, MAPPING, "reported ('progress.in')"),
    ({**FEED, "progress": {"in": 619579, "of": 823236.0}}, MAPPING, "total ('progress.of')"),
    ({**FEED, "candidates": [{"id": "100025", "votes": -5}]}, MAPPING, "votes['100025']"),
    ({**FEED, "candidates": "many"}, dict(MAPPING, votes="candidates"), "votes: expected an object or a list"),
    ({**FEED, "updated": "kemarin"}, MAPPING, "published_at: not a timestamp"),
    ({**FEED, "updated": 1e20}, MAPPING, "published_at"),
    ({**FEED, "updated": True}, MAPPING, "published_at"),
    ({**FEED, "meta": {"title": 7}}, MAPPING, "name: expected a string"),
    (FEED, dict(MAPPING, total="sum(candidates[].id)"), "total: expression failed"),
    ([1, 2], MAPPING, "total ('progress.of') is missing"),
])
def test_feed_of_the_wrong_shape_is_a_schema_error(feed, mapping, fragment):
    with pytest.raises(DocumentError) as caught:
        parse(feed, mapping)
    assert caught.value.result == "schema"
    assert fragment in caught.value.detail


def test_lone_surrogates_in_names_are_made_writable():
    snap = parse(dict(FEED, meta={"title": "Pilpres \ud800 2024"}))
    assert snap.name == "Pilpres ? 2024"
    snap.name.encode("utf-8")
