"""The real 2024 national hourly recording: KPU's Sirekap ppwp.json as scraped every hour from
18 Feb to 3 May 2024 by github.com/pararang/pemilu2024 (monitor/data/kpu2024/PROVENANCE.md).

`convert_csv` turns the CSV into a recording (DESIGN.md format) so that `countwatch replay`
can run it: one ok poll per CSV row, in file order, duplicates kept. Gaps in the CSV are the
collector's outages, not KPU's: no failed polls are invented for them.
"""
from __future__ import annotations

import csv
import json
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Iterator

from ..model import Poll, Snapshot
from ..recording import poll_to_record
from ..wording import WIB

SOURCE = "kpu-ppwp"
REGION = "0"
CANDIDATES = {"100025": "votes_100025_anies_muhaimin", "100026": "votes_100026_prabowo_gibran",
              "100027": "votes_100027_ganjar_mahfud"}
CSV_NAME = "ppwp_national_hourly.csv"
RECORDING_NAME = "ppwp_national_hourly.jsonl"


def data_path(name: str = RECORDING_NAME) -> Path:
    """A file of monitor/data/kpu2024 (packaged with the wheel)."""
    return Path(str(resources.files("monitor") / "data" / "kpu2024" / name))


def read_csv(path: str | Path) -> Iterator[Poll]:
    """Polls of the hourly CSV. KPU's `ts` is WIB without a zone marker; the collector's
    fetch time is UTC."""
    with open(path, newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.DictReader(handle), start=2):
            try:
                at = datetime.fromisoformat(row["fetched_at_utc"].replace("Z", "+00:00")).astimezone(timezone.utc)
                published = datetime.strptime(row["kpu_ts_wib"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=WIB)
                snapshot = Snapshot(
                    source=SOURCE, region=REGION, at=at, published_at=published,
                    stations=int(row["tps_total"]), stations_reported=int(row["tps_progres"]),
                    percent=float(row["chart_persen"]),
                    votes={candidate: int(row[column]) for candidate, column in CANDIDATES.items()},
                    level=0,
                )
            except (KeyError, ValueError) as exc:
                raise ValueError(f"{path}:{number}: {exc}") from exc
            yield Poll(source=SOURCE, region=REGION, at=at, result="ok", snapshot=snapshot)


def convert_csv(csv_path: str | Path, out_path: str | Path) -> int:
    """Write the recording of `csv_path` to `out_path`; returns the number of lines."""
    lines = 0
    with open(out_path, "w", encoding="utf-8") as out:
        for poll in read_csv(csv_path):
            out.write(json.dumps(poll_to_record(poll), separators=(",", ":"), ensure_ascii=False) + "\n")
            lines += 1
    return lines


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert-kpu2024", help="convert the real 2024 hourly CSV into a recording for `countwatch replay`")
    parser.add_argument("csv", nargs="?", default=None,
                        help=f"the CSV (default: the packaged {CSV_NAME})")
    parser.add_argument("-o", "--output", default="-", help="recording to write (default: stdout)")
    parser.set_defaults(func=run_convert)


def run_convert(args) -> int:
    import sys

    source = args.csv or data_path(CSV_NAME)
    try:
        if args.output == "-":
            for poll in read_csv(source):
                sys.stdout.write(json.dumps(poll_to_record(poll), separators=(",", ":")) + "\n")
        else:
            convert_csv(source, args.output)
    except BrokenPipeError:
        sys.stderr.close()                  # `| head`: the reader left, not our failure
        return 0
    except FileNotFoundError as exc:
        print(f"countwatch convert-kpu2024: {exc.filename}: no such file", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"countwatch convert-kpu2024: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"countwatch convert-kpu2024: {exc}", file=sys.stderr)
        return 1
    return 0
