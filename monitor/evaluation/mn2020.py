"""A real results feed of another election: Minnesota's Secretary of State, US President 2020, as
polled about every 10 minutes from 3 Nov to 7 Dec 2020 by github.com/heuermh/minnesota-2020-election-results
(CC0; tests/fixtures/external/mn2020/SOURCE.md). Not KPU: precincts, US Central time, no timestamp.

`read_csv` turns the table into polls: one ok poll per row (a commit of the collector: something
on the site changed), and, because the collector polled every 10 minutes and committed only on
a change, a `not_modified` poll every 10 minutes between two rows, as a daemon polling at the
collector's pace would have seen. `convert` writes that as a recording (docs/contracts.md).
"""
from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

from ..model import Poll, Snapshot
from ..recording import poll_to_record

SOURCE = "mn-sos-uspres"
REGION = "MN"
COLLECTOR_INTERVAL = timedelta(minutes=10)


def _snapshot(row: dict, at: datetime) -> Snapshot:
    total, biden, trump = int(row["votes_total"]), int(row["votes_biden"]), int(row["votes_trump"])
    return Snapshot(source=SOURCE, region=REGION, at=at, published_at=None, stations=int(row["units_total"]),
                    stations_reported=int(row["units_reported"]),
                    votes={"biden": biden, "trump": trump, "other": total - biden - trump},
                    name="Minnesota, US President", level=0)


def read_csv(path: str | Path, fill: bool = True) -> Iterator[Poll]:
    previous: datetime | None = None
    with open(path, newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.DictReader(handle), start=2):
            try:
                at = datetime.fromisoformat(row["fetched_at_utc"].replace("Z", "+00:00")).astimezone(timezone.utc)
                snapshot = _snapshot(row, at)
            except (KeyError, ValueError) as exc:
                raise ValueError(f"{path}:{number}: {exc}") from exc
            if fill and previous is not None:
                quiet = previous + COLLECTOR_INTERVAL
                while quiet < at - timedelta(minutes=1):
                    yield Poll(source=SOURCE, region=REGION, at=quiet, result="not_modified")
                    quiet += COLLECTOR_INTERVAL
            yield Poll(source=SOURCE, region=REGION, at=at, result="ok", snapshot=snapshot)
            previous = at


def convert(csv_path: str | Path, out_path: str | Path) -> int:
    lines = 0
    with open(out_path, "w", encoding="utf-8") as out:
        for poll in read_csv(csv_path):
            out.write(json.dumps(poll_to_record(poll), separators=(",", ":"), ensure_ascii=False) + "\n")
            lines += 1
    return lines
