"""`countwatch replay FILE [-c CONFIG]`: a recording through exactly the Judge the daemon uses, in
the recording's own time, printing events as JSONL.

Time comes only from the recording: each line is judged at its own `at`, so a gap between
lines is no evidence either way (nothing is evaluated inside it). Without -c the defaults
apply; with it, the config's [detection] and per-source overrides do.
"""
from __future__ import annotations

import json
import sys
from typing import Iterable, Iterator

from .detectors import Judge
from .model import Event, Poll


def replay(polls: Iterable[Poll], config=None) -> Iterator[Event]:
    """Events of `polls` in order, one SeriesState per (source, region), no wall clock."""
    judge = Judge(config)
    states = {}
    for poll in polls:
        key = (poll.source, poll.region)
        state = states.get(key)
        if state is None:
            state = states[key] = judge.restore(poll.source, poll.region, None)
        yield from judge.observe(state, poll)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "replay", help="run a recording through the detectors in its own time; events as JSONL on stdout")
    parser.add_argument("file", help="recording (JSONL, one poll per line; `-` for stdin)")
    parser.add_argument("-c", "--config", help="config file (TOML) for [detection] and per-source options")
    parser.set_defaults(func=run)


def run(args) -> int:
    """Exit 0 when the recording was replayed, 2 for a bad config or a file without one good
    recording line, 1 otherwise. A bad line is skipped and counted; one stderr line at the end
    says how many and names the first (one absurd line must not cost the night's replay)."""
    from .configtools import ConfigError
    from .recording import RecordingError, read_recording

    config = None
    if getattr(args, "config", None):
        from .cli import load_config
        try:
            config = load_config(args.config)
        except ConfigError as exc:
            print(f"countwatch replay: {exc}", file=sys.stderr)
            return 2
    path = "/dev/stdin" if args.file == "-" else args.file
    out = sys.stdout
    bad: list[RecordingError] = []      # the first bad line; `skipped` counts them all
    good = skipped = 0

    def skip(error: RecordingError) -> None:
        nonlocal skipped
        skipped += 1
        if not bad:
            bad.append(error)

    def counted(polls):
        nonlocal good
        for poll in polls:
            good += 1
            yield poll

    try:
        for event in replay(counted(read_recording(path, on_bad=skip)), config):
            out.write(json.dumps(event.to_json(), ensure_ascii=False, separators=(",", ":")) + "\n")
        out.flush()
    except FileNotFoundError:
        print(f"countwatch replay: {args.file}: no such file", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `countwatch replay x | head`: the reader is gone, which is not our failure.
        sys.stderr.close()
        return 0
    except OSError as exc:
        print(f"countwatch replay: {exc}", file=sys.stderr)
        return 1
    if bad:
        print(f"countwatch replay: skipped {skipped} bad recording line(s) of {skipped + good}; "
              f"the first: {bad[0]}", file=sys.stderr)
        if not good:
            return 2
    return 0
