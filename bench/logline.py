"""Cost of one poll log line (`make bench-log`): `log.info("poll", ...)` as the poll job writes
it, to a non-terminal stderr (/dev/null) and a rotating JSON file, as in production.

    .venv/bin/python bench/logline.py [--lines N] [--rounds R]

Prints µs per line per round and the median; nothing asserts on timings (docs/scaling.md).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import structlog  # noqa: E402

from monitor.logs import configure_logging  # noqa: E402


def one_round(lines: int, directory: Path) -> float:
    with open(os.devnull, "w") as devnull:
        configure_logging("json", directory / "countwatch.log", "info", "bench", stream=devnull)
        log = structlog.get_logger("countwatch.poll")
        started = time.perf_counter()
        for k in range(lines):
            log.info("poll", source="kpu-ppwp", region="3204052003", poll_id="5f0c2a9e1b7d", result="ok",
                     latency=0.0123, stations_reported=5, stations=11, changed=bool(k % 2))
        elapsed = time.perf_counter() - started
        configure_logging("json", None, "warning", "bench", stream=devnull)
    return elapsed / lines * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        figures = [one_round(args.lines, Path(directory)) for _ in range(args.rounds)]
    print("µs per poll line, each round: " + ", ".join(f"{f:.1f}" for f in figures))
    print(f"median: {statistics.median(figures):.1f} µs ({args.lines:,} lines per round)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
