"""A generated tree recording: what `countwatch run --record` writes while watching a national
tree (bench/tree.py) down to the desa, pass after pass, without serving or fetching it.

    write_recording(path, scale=0.25, min_lines=1_000_000)

Pass 0 records every document (a cold pass); after it, every `interval` seconds a pass
records the documents a publication changed (every `publish_every` passes one moves
`fraction` of the TPS), or, with nothing new, the top document's 304 (`not_modified`), as the
daemon does. The lines are built from the tree's numbers directly, each the line
monitor.recording.poll_to_record writes for the parsed document (tests/test_scale_tree.py
checks that on a small tree), so a million of them take seconds, not a quarter of an hour.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bench.tree import WIB, Tree

START = datetime(2024, 2, 14, 12, 0, tzinfo=timezone.utc)
_WIB = timezone(timedelta(seconds=WIB))


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def document_line(tree: Tree, code: str, at: datetime, source: str = "kpu-ppwp") -> dict:
    """The recording line of region `code`'s current document, polled at `at`."""
    region = tree.regions[code]
    a, b, c = region.votes
    published = datetime.fromtimestamp(int(tree.ts), _WIB)
    line = {"v": 1, "at": _iso(at), "source": source, "region": code, "ok": True,
            "published_at": published.isoformat(), "stations": region.total,
            "stations_reported": region.reported, "votes": {"100025": a, "100026": b, "100027": c},
            "percent": tree._persen(region.reported, region.total), "level": region.level}
    children = {}
    if region.level == 4:
        votes = tree.tps_votes
        for i in range(region.first_tps, region.first_tps + region.n_tps):
            key = f"{code}{i - region.first_tps + 1:03d}"
            if tree.reported[i]:
                children[key] = {"stations": 1, "stations_reported": 1, "percent": 100.0,
                                 "votes": {"100025": votes[3 * i], "100026": votes[3 * i + 1],
                                           "100027": votes[3 * i + 2]}}
            else:
                children[key] = {"stations": 1, "stations_reported": 0, "percent": 0.0, "votes": {}}
    else:
        for child_code in region.children:
            child = tree.regions[child_code]
            ca, cb, cc = child.votes
            children[child_code] = {"percent": tree._persen(child.reported, child.total),
                                    "votes": {"100025": ca, "100026": cb, "100027": cc}}
    line["children"] = children
    return line


class _RecordedTree(Tree):
    """A tree whose publications are not rendered to JSON: they mark the regions whose
    document changed, which the next pass records."""

    def _render(self, region) -> None:
        self.__dict__.setdefault("changed", set()).add(region.code)


def write_recording(path: str | Path, scale: float = 0.25, min_lines: int = 1_000_000, interval: float = 60.0,
                    publish_every: int = 10, fraction: float = 0.005, seed: int = 2024) -> dict:
    """Write a recording of at least `min_lines` lines; returns what it holds. When a count
    is done (95% of its TPS in) and lines are still wanted, the next contest begins on a
    tree of its own (source kpu-ppwp-2, -3...): one recording, several contests in turn."""
    clock = [START.timestamp()]
    lines = passes = data_lines = contests = documents = tps = 0
    with open(path, "w", encoding="utf-8") as out:
        while lines < min_lines:
            contests += 1
            source = "kpu-ppwp" if contests == 1 else f"kpu-ppwp-{contests}"
            tree = _RecordedTree.generate(scale=scale, progress=0.02, seed=seed + contests, clock=lambda: clock[0])
            codes = tree.codes(4)
            documents += len(codes)
            tps += len(tree.tps_desa)
            while lines < min_lines and tree.progress < 0.95:
                at = datetime.fromtimestamp(clock[0], timezone.utc)
                changed, tree.changed = tree.changed, set()
                wrote = 0
                for code in codes:            # parents first, as a pass fetches them
                    if code in changed:
                        out.write(json.dumps(document_line(tree, code, at, source), separators=(",", ":"),
                                             ensure_ascii=False) + "\n")
                        wrote += 1
                if wrote:
                    data_lines += wrote
                else:
                    out.write(json.dumps({"v": 1, "at": _iso(at), "source": source, "region": "0", "ok": True,
                                          "not_modified": True}, separators=(",", ":")) + "\n")
                    wrote = 1
                lines += wrote
                passes += 1
                clock[0] += interval
                if passes % publish_every == 0:
                    tree.advance(fraction)
    return {"lines": lines, "data_lines": data_lines, "passes": passes, "contests": contests,
            "documents": documents, "tps": tps, "bytes": Path(path).stat().st_size}
