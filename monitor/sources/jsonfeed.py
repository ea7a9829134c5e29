"""kind = "json": any JSON feed, mapped by one JMESPath expression per Snapshot field
(`[sources.mapping]`, keys in monitor.config.JSON_MAPPING_KEYS).

  reported, total (required)  -> stations_reported, stations
  votes                       -> {candidate: count}, or a list of [candidate, count] pairs
                                 (JMESPath cannot build objects with computed keys, but
                                 `candidates[].[name, votes]` is easy to write)
  children                    -> {code: child}, or a list of [code, child] pairs; each child
                                 is then read with child_reported, child_total, child_percent,
                                 child_votes, child_name
  published_at                -> ISO 8601, "YYYY-MM-DD HH:MM:SS" (naive: the source's
                                 timezone) or Unix seconds (a number; use to_number() in the
                                 expression for a numeric string)
  percent, registered_voters, valid_votes, invalid_votes, name

A field without an expression is unknown (None), and so is an expression that finds nothing,
except reported/total: a feed without them is not the feed we were told about.
"""
from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any, Callable, Mapping

import jmespath

from ..model import RegionCount
from .common import (MAX_CHILD_CODE, MAX_CHILDREN, Fields, capped_votes, count, opt_count, percent, schema, show, timestamp,
                     unix_timestamp)

_compiled: dict[tuple, dict[str, Any]] = {}
_NAME_MAX = 200


def _expressions(mapping: Mapping[str, str]) -> dict[str, Any]:
    # Compiled once per distinct mapping, not once per poll; config validation has already
    # refused expressions that do not compile.
    key = tuple(sorted(mapping.items()))
    found = _compiled.get(key)
    if found is None:
        found = _compiled[key] = {field: jmespath.compile(expr) for field, expr in mapping.items()}
    return found


def parse(doc: Any, mapping: Mapping[str, str], zone: tzinfo) -> Fields:
    expressions = _expressions(mapping)
    search = _searcher(expressions)
    children_value = search("children", doc)
    return dict(
        published_at=_published(search("published_at", doc), zone),
        stations=count(search("total", doc), _what("total", mapping)),
        stations_reported=count(search("reported", doc), _what("reported", mapping)),
        votes=_votes(search("votes", doc), "votes"),
        percent=percent(search("percent", doc), "percent"),
        registered_voters=opt_count(search("registered_voters", doc), "registered_voters"),
        valid_votes=opt_count(search("valid_votes", doc), "valid_votes"),
        invalid_votes=opt_count(search("invalid_votes", doc), "invalid_votes"),
        name=_name(search("name", doc), "name"),
        children=_children(children_value, search) if children_value is not None else {},
        level=None,
    )


def _what(field: str, mapping: Mapping[str, str]) -> str:
    return f"{field} ({mapping.get(field, '')!r})"


def _searcher(expressions: dict[str, Any]) -> Callable[[str, Any], Any]:
    def search(field: str, data: Any) -> Any:
        expression = expressions.get(field)
        if expression is None:
            return None
        try:
            return expression.search(data)
        except Exception as exc:  # noqa: BLE001 - see below
            # A user's expression over untrusted data: JMESPath functions raise type errors
            # (sum() of strings, sort_by() of mixed values) and deep data can raise
            # RecursionError. Whatever it is, the document did not have the expected shape.
            raise schema(f"{field}: expression failed on this document ({type(exc).__name__})") from None
    return search


def _pairs(value: Any, what: str) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return list(value.items())
    if isinstance(value, list):
        pairs = []
        for item in value:
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], (str, int))
                    and not isinstance(item[0], bool)):
                raise schema(f"{what}: expected an object or a list of [key, value] pairs, got an item {show(item)}")
            pairs.append((str(item[0]), item[1]))
        # An object cannot repeat a key (load_json refuses it); a list of pairs could, and the
        # last value would win silently while a reader of the feed may take the first.
        if len({key for key, _ in pairs}) != len(pairs):
            seen: set[str] = set()
            duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))
            raise schema(f"{what}: {duplicate[:40]!r} appears twice in the list of pairs")
        return pairs
    raise schema(f"{what}: expected an object or a list of [key, value] pairs, got {show(value)}")


def _clean(text: str) -> str:
    # JSON may carry lone surrogates (\ud800) that cannot be written as UTF-8 later
    # (recording, logs, Slack): replace them here, once.
    return text.encode("utf-8", "replace").decode("utf-8")


def _votes(value: Any, what: str) -> dict[str, int]:
    if value is None:
        return {}
    votes: dict[str, int] = {}
    for candidate, number in _pairs(value, what):
        if number is not None:                        # unknown, not zero
            votes[_clean(candidate)] = count(number, f"{what}[{candidate[:40]!r}]")
    return capped_votes(votes, what)


def _name(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise schema(f"{what}: expected a string, got {show(value)}")
    return _clean(value[:_NAME_MAX])


def _published(value: Any, zone: tzinfo) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise schema(f"published_at: expected a timestamp, got {show(value)}")
    if isinstance(value, (int, float)):
        return unix_timestamp(value, "published_at")
    return timestamp(value, zone, "published_at")


def _children(value: Any, search: Callable[[str, Any], Any]) -> dict[str, RegionCount]:
    children: dict[str, RegionCount] = {}
    pairs = _pairs(value, "children")
    if len(pairs) > MAX_CHILDREN:
        raise schema(f"children: {len(pairs):,} rows, more than the cap of {MAX_CHILDREN:,}")
    for code, child in pairs:
        where = f"children[{code[:40]!r}]"
        if not code or len(code) > MAX_CHILD_CODE:
            # a child code becomes a region label, a URL part and a key of every series map
            raise schema(f"{where}: a child code of {len(code):,} characters (1 to {MAX_CHILD_CODE} allowed)")
        children[_clean(code)] = RegionCount(
            stations=opt_count(search("child_total", child), f"{where} child_total"),
            stations_reported=opt_count(search("child_reported", child), f"{where} child_reported"),
            percent=percent(search("child_percent", child), f"{where} child_percent"),
            votes=_votes(search("child_votes", child), f"{where} child_votes"),
            name=_name(search("child_name", child), f"{where} child_name"),
        )
    return children
