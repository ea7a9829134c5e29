"""`countwatch silence add|list|expire` and `countwatch test-alert`, registered into the main
CLI by monitor/cli.py. Handlers return 0 (ok), 1 (runtime failure: database, receiver) or 2
(bad usage or config). The CLI is allowed to read wall time; the daemon re-reads run-time
silences from the state database within a second or so.
"""
from __future__ import annotations

import argparse
import getpass
import sqlite3
import sys
import uuid
from datetime import datetime, timedelta

from monitor.clock import WallClock
from monitor.cli import load_config
from monitor.config import Config
from monitor.configtools import ConfigError, parse_duration
from monitor.model import iso_utc
from monitor.wording import when

from . import state
from .matching import parse_match_args
from .notification import Notification, NotifyError
from .notifiers import build_notifier
from .silences import Silence


def add_parsers(subparsers) -> None:
    silence = subparsers.add_parser("silence", help="add, list or expire silences (stored in the state database)")
    verbs = silence.add_subparsers(dest="silence_verb", metavar="{add,list,expire}")
    verbs.required = True
    add = verbs.add_parser("add", help="silence matching alerts for a while")
    add.add_argument("--match", action="append", required=True, metavar="LABEL=VALUE",
                     help="severity, source, region, rule or cause; globs allowed (region=32*); repeatable")
    add.add_argument("--for", dest="duration", required=True, help="how long, e.g. 2h, 30m")
    add.add_argument("--comment", required=True, help="why (shown in logs and `silence list`)")
    add.add_argument("--author", default=None, help="who (default: the current user)")
    _config_arg(add)
    add.set_defaults(func=cmd_silence_add)
    show = verbs.add_parser("list", help="show config and run-time silences")
    show.add_argument("--all", action="store_true", help="include expired ones")
    _config_arg(show)
    show.set_defaults(func=cmd_silence_list)
    expire = verbs.add_parser("expire", help="end a run-time silence now")
    expire.add_argument("id")
    _config_arg(expire)
    expire.set_defaults(func=cmd_silence_expire)

    test = subparsers.add_parser("test-alert", help="send a clearly marked test notification to one receiver")
    test.add_argument("--receiver", required=True, help="receiver name from the config")
    _config_arg(test)
    test.set_defaults(func=cmd_test_alert)


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", default="countwatch.toml", help="config file (default: countwatch.toml)")


def _load(args, secrets: bool = False) -> Config | None:
    """silence add/list/expire send nothing: they need no receiver's secret (test-alert does)."""
    try:
        return load_config(args.config, secrets=secrets)
    except ConfigError as exc:
        print(f"countwatch: {exc}", file=sys.stderr)
        return None


def source_names(config: Config) -> tuple[str, ...]:
    """The names a matcher may give: the sources, and an election's races by pattern."""
    names = [s.name for s in config.sources]
    names += [f"{s.election}-{race}-*" for s in config.sources if getattr(s, "election", None)
              for race in getattr(s, "races", ())]
    return tuple(names)


def _db(config: Config) -> sqlite3.Connection:
    return state.connect(config.state_dir / "countwatch.db")


def _now() -> datetime:
    return WallClock().now()


def cmd_silence_add(args) -> int:
    config = _load(args)
    if config is None:
        return 2
    try:
        # checked against the config, as the config's own silences are: a typo
        # (source=kpu-jabr) would silence nothing, silently
        matcher = parse_match_args(args.match, source_names(config))
        try:
            seconds = parse_duration(args.duration)
        except ValueError as exc:
            raise ValueError(f"--for: {exc}") from None
        if seconds <= 0:
            raise ValueError("--for must be greater than zero")
    except ValueError as exc:
        print(f"countwatch silence add: {exc}", file=sys.stderr)
        return 2
    now = _now()
    silence = Silence(id=uuid.uuid4().hex[:8], matcher=matcher, comment=args.comment, starts_at=now,
                      ends_at=now + timedelta(seconds=seconds), origin="runtime",
                      created_by=args.author or _user(), created_at=now)
    try:
        with _closing(_db(config)) as db:
            state.insert_silence(db, silence.to_row())
    except sqlite3.Error as exc:
        print(f"countwatch silence add: state database failed: {exc}", file=sys.stderr)
        return 1
    print(f"silence {silence.id} added: {matcher.describe()} until "
          f"{when(silence.ends_at, config.timezone, missing='-')} ({args.comment})")
    return 0


def cmd_silence_list(args) -> int:
    config = _load(args)
    if config is None:
        return 2
    now = _now()
    try:
        with _closing(_db(config)) as db:
            runtime = [Silence.from_row(r) for r in state.silence_rows(db, Silence.from_row, move_aside=False)]
    except sqlite3.Error as exc:
        print(f"countwatch silence list: state database failed: {exc}", file=sys.stderr)
        return 1
    shown = 0
    for silence in list(config.alerting.silences) + runtime:
        if silence.finished(now) and not args.all:
            continue
        shown += 1
        status = "active" if silence.active(now) else ("ended" if silence.finished(now) else "waiting")
        until = (f"until {when(silence.ends_at, config.timezone, missing='-')}" if silence.daily is None and silence.ends_at
                 else silence.window())
        if silence.expired_at is not None:
            until = f"expired {when(silence.expired_at, config.timezone, missing='-')}"
        who = f" by {silence.created_by}" if silence.created_by else ""
        print(f"{silence.id:<10} {status:<7} {silence.origin:<7} {silence.matcher.describe()}  {until}{who}"
              f"  # {silence.comment}")
    if not shown:
        print("no silences" + ("" if args.all else " in effect (use --all for expired ones)"))
    return 0


def cmd_silence_expire(args) -> int:
    config = _load(args)
    if config is None:
        return 2
    if any(s.id == args.id for s in config.alerting.silences):
        print(f"countwatch silence expire: {args.id!r} is defined in the config; remove it there", file=sys.stderr)
        return 2
    try:
        with _closing(_db(config)) as db:
            found = state.expire_silence(db, args.id, iso_utc(_now()))
    except sqlite3.Error as exc:
        print(f"countwatch silence expire: state database failed: {exc}", file=sys.stderr)
        return 1
    if not found:
        print(f"countwatch silence expire: no silence {args.id!r} (see `countwatch silence list --all`)",
              file=sys.stderr)
        return 2
    print(f"silence {args.id} expired")
    return 0


def cmd_test_alert(args) -> int:
    config = _load(args, secrets=True)
    if config is None:
        return 2
    alerting = config.alerting
    try:
        receiver = alerting.receiver(args.receiver)
    except KeyError:
        names = ", ".join(r.name for r in alerting.receivers)
        print(f"countwatch test-alert: no receiver named {args.receiver!r} (receivers: {names})", file=sys.stderr)
        return 2
    now = _now()
    notification = Notification(
        id=uuid.uuid4().hex, receiver=receiver.name, reason="test", status="test", severity="info",
        source="-", cause="test", incident="test-" + uuid.uuid4().hex[:8], members=(), created_at=now,
        opened_at=now, timezone=config.timezone, instance=config.instance)
    try:
        build_notifier(receiver, WallClock()).notify(notification)
    except NotifyError as exc:
        print(f"countwatch test-alert: {receiver.name}: {exc.message}", file=sys.stderr)
        return 1
    print(f"test notification {notification.id} sent to {receiver.name} ({receiver.kind}) at "
          f"{when(now, config.timezone, missing='-')}")
    return 0


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:   # no passwd entry in some containers
        return "unknown"


class _closing:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        return self.db

    def __exit__(self, *exc_info) -> None:
        self.db.close()


__all__ = ["add_parsers", "cmd_silence_add", "cmd_silence_list", "cmd_silence_expire", "cmd_test_alert"]
