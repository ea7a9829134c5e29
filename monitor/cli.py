"""`countwatch` command line. Exit codes: 0 success, 1 runtime failure, 2 bad usage or config.

Only the CLI (and the scheduler) read wall time; every command hands a clock down.
"""
from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from . import __version__
from .configtools import ConfigError


# The whole config file: monitor's sections and alerting's, each parsed by its own package
# through one Problems collector. Assembled here so that monitor.config never imports alerts.
def parse_config(raw: Mapping[str, Any], path: str | None = None, environ: Mapping[str, str] | None = None):
    from alerts.config import parse_alerting

    from . import config

    return config.parse_config(raw, path, environ, alerting=parse_alerting)


def load_config(path: str | Path, environ: Mapping[str, str] | None = None, secrets: bool = True):
    """The whole config file. `secrets=False` is for commands that send nothing and fetch
    nothing (`silence`, `replay -c`): a ${VAR} that is not set reads as a placeholder instead
    of a problem, so they run without every receiver's secret in the environment."""
    import os

    from alerts.config import parse_alerting

    from . import config

    if not secrets:
        environ = WithoutSecrets(os.environ if environ is None else environ)
    return config.load_config(path, environ, alerting=parse_alerting)


class WithoutSecrets(Mapping[str, str]):
    """An environment in which every variable is set: the real value, or a placeholder."""

    PLACEHOLDER = "https://secret-not-needed.invalid/"   # passes the URL checks; never used

    def __init__(self, environ: Mapping[str, str]):
        self._environ = environ

    def __getitem__(self, name: str) -> str:
        return self._environ.get(name) or self.PLACEHOLDER

    def __contains__(self, name: object) -> bool:
        return True

    def __iter__(self):
        return iter(self._environ)

    def __len__(self) -> int:
        return len(self._environ)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse exits 2 on bad usage already; keep the text short
        self.print_usage(sys.stderr)
        self.exit(2, f"countwatch: error: {message}\n")


def _shard(text: str):
    from .poll import Shard

    try:
        return Shard.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _cmd_run(args) -> int:
    from .clock import SteadyClock
    from .daemon import Daemon
    from .logs import configure_logging, get_logger
    from .statelock import StateDirBusy

    config = load_config(args.config)
    # one steady clock for the detectors and the log lines: a step of the system clock must not
    # fake a stall (docs/reliability.md)
    clock = SteadyClock()
    configure_logging(config.log_format, config.log_file, config.log_level, config.instance, clock,
                      config.log_max_bytes, config.log_backups)
    from .races import DiscoveryError

    try:
        daemon = Daemon(config, clock, record_path=args.record, shard=args.shard)
    except StateDirBusy as busy:
        get_logger("countwatch.daemon").error("daemon.refused", reason=str(busy), lock=str(busy.path))
        print(f"countwatch run: {busy}", file=sys.stderr)
        return 2
    except DiscoveryError as error:
        print(f"countwatch run: {error}", file=sys.stderr)
        return 1
    try:
        return daemon.run_forever()
    except OSError as error:
        if daemon.http_server is not None or error.errno not in _CANNOT_LISTEN:
            raise
        print(f"countwatch run: [metrics] listen = \"{config.metrics_listen}\": cannot listen there "
              f"({error.strerror}); another countwatch or exporter may hold the port: choose another in "
              f"{config.path or 'the config'}", file=sys.stderr)
        return 2


# errno values of a metrics address that cannot be bound: in use, not ours, not allowed
_CANNOT_LISTEN = (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES)


def _cmd_check_config(args) -> int:
    config = load_config(args.file or args.config)
    print(f"{config.path}: ok — {len(config.sources)} source(s): "
          + ", ".join(f"{s.name} ({s.kind}, every {s.interval:g}s, depth {s.depth})" for s in config.sources))
    for source in config.sources:
        if source.election:
            # offline by design: which races exist is KPU's to say, at start-up
            print(f"{source.name}: the {'/'.join(source.races)} races of {source.election}"
                  f"{' in or over ' + ', '.join(source.regions) if source.regions else ''} are discovered "
                  f"at start from {source.url} (see them now: countwatch races -c FILE)")
    receivers = config.alerting.receivers
    print(f"receivers: {', '.join(r.name for r in receivers) or 'console only'}")
    return 0


def _cmd_races(args) -> int:
    from .races import DiscoveryError, print_expansion

    config = load_config(args.config)
    try:
        return print_expansion(config, sys.stdout)
    except DiscoveryError as error:
        print(f"countwatch: {error}", file=sys.stderr)
        return 1


def _cmd_simulate(args) -> int:
    from .simulator import run_simulator

    return run_simulator(args.scenario, args.speed, args.host, args.port)


def _cmd_demo(args) -> int:
    from .demo import run_demo

    try:
        return run_demo(speed=args.speed, out_dir=args.out, metrics_listen=args.metrics_listen)
    except OSError as error:
        if error.errno not in _CANNOT_LISTEN:
            raise
        print(f"countwatch demo: --metrics-listen {args.metrics_listen} (the demo's [metrics] listen): cannot "
              f"listen there ({error.strerror}); try --metrics-listen 127.0.0.1:0 for any free port",
              file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="countwatch", description="Watch published vote-count progress; alert when it "
                     "stalls, goes down, jumps or contradicts itself.")
    parser.add_argument("--version", action="version", version=f"countwatch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run the daemon (wall clock) until SIGTERM/SIGINT")
    run.add_argument("-c", "--config", default="countwatch.toml", help="config file (TOML)")
    run.add_argument("--record", metavar="FILE", help="append every poll to this recording (JSONL)")
    run.add_argument("--shard", metavar="K/N", type=_shard, default=None,
                     help="watch only shard K of N of every tree source (docs/scaling.md)")
    run.set_defaults(func=_cmd_run)

    check = sub.add_parser("check-config", help="validate a config file and exit (2 when invalid)")
    check.add_argument("file", nargs="?", help="config file (TOML)")
    check.add_argument("-c", "--config", default="countwatch.toml")
    check.set_defaults(func=_cmd_check_config)

    races = sub.add_parser("races", help="discover the races of the config's election definitions (fetches "
                           "KPU's race and region documents) and print them with what a pass costs")
    races.add_argument("-c", "--config", default="countwatch.toml")
    races.set_defaults(func=_cmd_races)

    simulate = sub.add_parser("simulate", help="serve a scripted KPU-format feed on loopback")
    simulate.add_argument("--scenario", default="jabar-2018")
    simulate.add_argument("--speed", type=float, default=None,
                          help="scenario seconds per wall second (default: the scenario's own)")
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=8077)
    simulate.set_defaults(func=_cmd_simulate)

    demo = sub.add_parser("demo", help="simulator + daemon on the 2018 night, accelerated; ends with a report")
    demo.add_argument("--speed", type=float, default=None, help="scenario speed (default: the scenario's)")
    demo.add_argument("--out", default="var/demo", help="directory for the demo's state, log and report")
    demo.add_argument("--metrics-listen", default="127.0.0.1:9477", help="host:port for /metrics (0 = any free port)")
    demo.set_defaults(func=_cmd_demo)

    # verbs owned by other modules: each module adds its own parser, registered here
    from alerts import cli as alerts_cli

    from . import replay, timeline
    from .evaluation import command as evaluate, kpu2024
    replay.add_parser(sub)
    kpu2024.add_parser(sub)
    evaluate.add_parser(sub)
    timeline.add_parser(sub)
    alerts_cli.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as error:
        print(f"countwatch: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
