"""One schema for the TOML config, validated in full at start-up into frozen objects.

Every problem is collected and reported in one ConfigError naming its key; the CLI turns it
into exit code 2. Sections owned by other stages are parsed by their own modules
(`[detection]` by monitor.detectors.options, receivers/routes/silences/alerting by
alerts.config) but through the same Problems collector, so the user still gets one message.
This module does not import alerts (the flow goes one way): the CLI hands the alerting parser
in (`monitor.cli.load_config` reads a whole file).
"""
from __future__ import annotations

import dataclasses
import socket
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .configtools import ConfigError, Problems, expand_env, mentions_env, parse_duration, parse_size
from .detectors.options import DetectionOptions, parse_detection_options
from .secret import Secret
from .sources import KINDS as SOURCE_KINDS     # each kind's adapter and defaults, one table

LOG_FORMATS = ("json", "console", "auto")
JSON_MAPPING_KEYS = ("reported", "total", "votes", "published_at", "children", "percent",
                     "registered_voters", "valid_votes", "invalid_votes", "name",
                     "child_reported", "child_total", "child_percent", "child_votes", "child_name")
ALERTING_KEYS = ("receivers", "routes", "silences", "alerting")   # parsed by the alerting parser

# (whole document, problems, environ, source names) -> the alerting config (alerts.config.parse_alerting)
AlertingParser = Callable[[Mapping[str, Any], Problems, Mapping[str, str] | None, tuple[str, ...]], Any]


@dataclass(frozen=True)
class SourceConfig:
    name: str
    kind: str
    url: str
    interval: float = 60.0
    timeout: float = 10.0
    timezone: str = "Asia/Jakarta"
    depth: int = 0
    export_depth: int = 2
    concurrency: int = 8
    rate_limit: float = 20.0
    jitter: float = 0.0              # seconds of random delay added to each run
    retries: int = 2                 # extra attempts inside one poll, within its time budget
    max_series: int = 2_000_000      # series judged at most (about twice the national tree's 914,797)
    max_body_bytes: int = 32 * 1024 * 1024
    region: str = "0"                # region code of the document at `url`
    headers: Mapping[str, str] = field(default_factory=dict)
    mapping: Mapping[str, str] = field(default_factory=dict)   # kind = "json": JMESPath per field
    mirror_of: str | None = None     # divergence: another source of the same contest
    detection: DetectionOptions | None = None   # per-source overrides of [detection]
    # An election definition (monitor/races.py): every race of `election` of the kinds in
    # `races`, optionally only those in or over `regions`; expanded into one source per race
    # at start-up. A source made by that expansion has `race` and `display_name`.
    election: str | None = None
    races: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    race: str | None = None
    display_name: str | None = None
    # what the source counts, as people read it in messages ("TPS" for KPU's kinds; a json
    # source names its own: "precincts", "polling units")
    units: str = "TPS"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def host(self) -> str:
        """host[:port] of the source's URL, lower case, without credentials: what one
        rate-limit bucket protects, and what one outage incident is about."""
        parts = urlsplit(self.url)
        host = (parts.hostname or "").lower()
        return f"{host}:{parts.port}" if parts.port else host


@dataclass(frozen=True)
class Config:
    state_dir: Path
    timezone: str
    instance: str
    metrics_listen: str
    log_format: str
    log_file: Path | None
    log_level: str
    log_max_bytes: int
    log_backups: int
    sources: tuple[SourceConfig, ...]
    detection: DetectionOptions
    alerting: Any                  # alerts.config.AlertingConfig; None when parsed without its parser
    metrics_basic_auth: tuple[str, Secret] | None = None
    path: str | None = None
    metrics_tls: tuple[str, str] | None = None     # (certificate chain file, private key file)
    history_retention: float = 14 * 86400.0        # seconds of snapshot history kept in the state db
    history_max_rows: int = 5_000_000              # ... and at most this many snapshot rows

    def source(self, name: str) -> SourceConfig:
        for source in self.sources:
            if source.name == name:
                return source
        raise KeyError(name)


def _zone(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be an IANA time zone name like \"Asia/Jakarta\", got {value!r}")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


def _listen(value: Any) -> str:
    if not isinstance(value, str) or ":" not in value:
        raise ValueError(f"must be \"host:port\", got {value!r}")
    host, _, port = value.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"port must be 0-65535, got {port!r}")
    return value


def _http_url(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a URL string, got {value!r}")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an http:// or https:// URL, got {_redacted(parts)!r}")
    return value


def _redacted(parts) -> str:
    """A refused URL as the message shows it: user:password and the query (a token from the
    environment) never reach the terminal or, on a SIGHUP reload, the log."""
    netloc = ("***@" + parts.netloc.rpartition("@")[2]) if "@" in parts.netloc else parts.netloc
    return urlunsplit(parts._replace(netloc=netloc, query="***" if parts.query else "", fragment=""))


def _positive(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"must be greater than zero, got {value!r}")
    return seconds


def _parse_source(raw: Mapping[str, Any], index: int, defaults_tz: str, problems: Problems,
                  environ: Mapping[str, str] | None) -> SourceConfig | None:
    where = f"sources[{index}]"
    if not isinstance(raw, Mapping):
        problems.add(where, "must be a table")
        return None
    known = {f for f in SourceConfig.__dataclass_fields__} | {"interval", "timeout", "jitter",
                                                             "max_body", "detection"}
    known -= {"max_body_bytes", "race", "display_name"}     # the last two are made by the expansion
    problems.unknown_keys(raw, where, known)
    election = problems.get(raw, "election", where, str, None)
    name = problems.get(raw, "name", where, str, election or f"source{index}", required=election is None)
    where = f"sources[{index}] ({name})" if "name" in raw else where
    kind = problems.get(raw, "kind", where, str, "sirekap", required=True)
    if kind not in SOURCE_KINDS:
        problems.add(f"{where}.kind", f"must be one of {', '.join(SOURCE_KINDS)}, got {kind!r}")
    url = raw.get("url")
    if isinstance(url, str) and mentions_env(url):
        url = expand_env(url, f"{where}.url", problems, environ)
    url = problems.convert({"url": url} if url is not None else {}, "url", where, _http_url, "", required=True)
    depth = problems.get(raw, "depth", where, int, 0)
    export_depth = problems.get(raw, "export_depth", where, int, 2)
    concurrency = problems.get(raw, "concurrency", where, int, 8)
    rate_limit = problems.get(raw, "rate_limit", where, (int, float), 20.0)
    retries = problems.get(raw, "retries", where, int, 2)
    max_series = problems.get(raw, "max_series", where, int, 2_000_000)
    for key, value, low in (("depth", depth, 0), ("export_depth", export_depth, 0),
                            ("concurrency", concurrency, 1), ("retries", retries, 0),
                            ("max_series", max_series, 1)):
        if value < low:
            problems.add(f"{where}.{key}", f"must be at least {low}, got {value}")
    if rate_limit < 0:
        problems.add(f"{where}.rate_limit", f"must be 0 (no limit) or more, got {rate_limit}")
    headers = problems.get(raw, "headers", where, dict, {})
    headers = {str(k): (Secret(expand_env(v, f"{where}.headers.{k}", problems, environ)) if mentions_env(v) else str(v))
               for k, v in headers.items()}
    mapping = problems.get(raw, "mapping", where, dict, {})
    if kind == "json":
        _check_mapping(mapping, f"{where}.mapping", problems)
    elif mapping:
        problems.add(f"{where}.mapping", f"only used by kind = \"json\" (this source is {kind!r})")
    detection = None
    if "detection" in raw:
        detection = parse_detection_options(problems.get(raw, "detection", where, dict, {}),
                                            f"{where}.detection", problems)
    declared = SOURCE_KINDS.get(kind)
    if not (declared and declared.station_limit) and not (detection and "max_votes_per_station" in detection.explicit):
        # KPU's legal maximum per TPS is KPU's: another count has its own law, or none we know
        base = detection or DetectionOptions()
        detection = dataclasses.replace(base, max_votes_per_station=0,
                                        explicit=base.explicit | {"max_votes_per_station"})
    units = problems.get(raw, "units", where, str, declared.units if declared else "polling stations")
    if not units.strip():
        problems.add(f"{where}.units", "must name what the source counts, e.g. \"precincts\"")
    races, regions = _election(raw, where, kind, election, problems)
    return SourceConfig(
        name=name, kind=kind, url=url,
        interval=problems.convert(raw, "interval", where, _positive, 60.0),
        timeout=problems.convert(raw, "timeout", where, _positive, 10.0),
        jitter=problems.convert(raw, "jitter", where, parse_duration, 0.0),
        timezone=problems.convert(raw, "timezone", where, _zone, defaults_tz),
        depth=depth, export_depth=export_depth, concurrency=concurrency, rate_limit=float(rate_limit),
        retries=retries, max_series=max_series,
        max_body_bytes=problems.convert(raw, "max_body", where, parse_size, 32 * 1024 * 1024),
        region=str(problems.get(raw, "region", where, (str, int), "0")),
        headers=headers, mapping=dict(mapping),
        mirror_of=problems.get(raw, "mirror_of", where, str, None),
        detection=detection, election=election, races=races, regions=regions, units=units,
    )


RACE_KINDS = ("pkwkp", "pkwkk")       # governor; regent or mayor (monitor/races.py)


def _election(raw: Mapping[str, Any], where: str, kind: str, election: str | None,
              problems: Problems) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """`races` and `regions` of an election definition (checked offline: which races exist is
    only known at start-up, from KPU's documents)."""
    races = problems.get(raw, "races", where, list, [])
    regions = problems.get(raw, "regions", where, list, [])
    if election is None:
        for key in ("races", "regions"):
            if key in raw:
                problems.add(f"{where}.{key}", "only used with `election` (an election definition)")
        return (), ()
    if not election or not all(ch.isalnum() for ch in election):
        problems.add(f"{where}.election", f"must be letters and digits (it starts every race's name), got {election!r}")
    if kind != "sirekap":
        problems.add(f"{where}.kind", f"an election definition reads Sirekap documents (kind = \"sirekap\"), got {kind!r}")
    if "region" in raw:
        problems.add(f"{where}.region", "not used with `election`: each race is rooted at its own region")
    if not races:
        problems.add(f"{where}.races", f"list at least one race kind: {', '.join(RACE_KINDS)}")
    for race in races:
        if race not in RACE_KINDS:
            problems.add(f"{where}.races", f"unknown race kind {race!r} (known: {', '.join(RACE_KINDS)})")
    for code in regions:
        if not (isinstance(code, str) and code.isascii() and code.isdigit() and len(code) in (2, 4, 6, 10)):
            problems.add(f"{where}.regions", f"region codes are BPS codes as strings (\"32\", \"3204\"), got {code!r}")
    return tuple(dict.fromkeys(races)), tuple(str(c) for c in regions)


def _check_mapping(mapping: Mapping[str, Any], where: str, problems: Problems) -> None:
    import jmespath
    from jmespath.exceptions import JMESPathError

    for key in ("reported", "total"):
        if key not in mapping:
            problems.add(f"{where}.{key}", "is required for a json source (a JMESPath expression)")
    for key, expression in mapping.items():
        if key not in JSON_MAPPING_KEYS:
            problems.add(f"{where}.{key}", f"unknown field (known: {', '.join(JSON_MAPPING_KEYS)})")
            continue
        if not isinstance(expression, str):
            problems.add(f"{where}.{key}", f"must be a JMESPath expression string, got {expression!r}")
            continue
        try:
            jmespath.compile(expression)
        except JMESPathError as exc:
            problems.add(f"{where}.{key}", f"invalid JMESPath: {exc}")


def _metrics_tls(metrics: Mapping[str, Any], problems: Problems) -> tuple[str, str] | None:
    """TLS for /metrics: both files or neither, and they must load as a pair now rather than
    when the daemon binds its port."""
    if "tls_cert_file" not in metrics and "tls_key_file" not in metrics:
        return None
    cert = problems.get(metrics, "tls_cert_file", "metrics", str, "", required=True)
    key = problems.get(metrics, "tls_key_file", "metrics", str, "", required=True)
    if not (cert and key):
        return None
    import ssl

    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)
    except OSError as exc:          # ssl.SSLError is one too
        # why it did not load, never what the key file holds
        reason = getattr(exc, "reason", None) or exc.strerror or type(exc).__name__
        problems.add("metrics.tls_cert_file", f"certificate {cert!r} and key {key!r} do not load: {reason}")
        return None
    return cert, key


def parse_config(raw: Mapping[str, Any], path: str | None = None,
                 environ: Mapping[str, str] | None = None, alerting: AlertingParser | None = None) -> Config:
    """Validate a parsed TOML document; raises ConfigError listing every problem. `alerting`
    parses the alerting tables (the CLI passes alerts.config.parse_alerting); without it they
    are left unread and `Config.alerting` is None."""
    problems = Problems()
    problems.unknown_keys(raw, "", {"daemon", "metrics", "log", "sources", "detection", *ALERTING_KEYS})
    daemon = problems.get(raw, "daemon", "", dict, {})
    problems.unknown_keys(daemon, "daemon", {"state_dir", "timezone", "instance", "history_retention",
                                             "history_max_rows"})
    history_max_rows = problems.get(daemon, "history_max_rows", "daemon", int, 5_000_000)
    if history_max_rows < 1:
        problems.add("daemon.history_max_rows", f"must be at least 1, got {history_max_rows}")
    timezone = problems.convert(daemon, "timezone", "daemon", _zone, "Asia/Jakarta")
    metrics = problems.get(raw, "metrics", "", dict, {})
    problems.unknown_keys(metrics, "metrics", {"listen", "basic_auth_user", "basic_auth_password",
                                               "tls_cert_file", "tls_key_file"})
    basic_auth = None
    if "basic_auth_user" in metrics or "basic_auth_password" in metrics:
        user = problems.get(metrics, "basic_auth_user", "metrics", str, "", required=True)
        password = problems.get(metrics, "basic_auth_password", "metrics", str, "", required=True)
        basic_auth = (user, Secret(expand_env(password, "metrics.basic_auth_password", problems, environ)))
    metrics_tls = _metrics_tls(metrics, problems)
    log = problems.get(raw, "log", "", dict, {})
    problems.unknown_keys(log, "log", {"format", "file", "level", "max_bytes", "backups"})
    log_format = problems.get(log, "format", "log", str, "auto")
    if log_format not in LOG_FORMATS:
        problems.add("log.format", f"must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")
    log_level = problems.get(log, "level", "log", str, "info").lower()
    if log_level not in ("debug", "info", "warning", "error"):
        problems.add("log.level", f"must be debug, info, warning or error, got {log_level!r}")
    log_file = problems.get(log, "file", "log", str, None)

    raw_sources = problems.get(raw, "sources", "", list, [])
    if not raw_sources:
        problems.add("sources", "at least one [[sources]] table is required")
    sources = [s for i, r in enumerate(raw_sources)
               if (s := _parse_source(r, i, timezone, problems, environ)) is not None]
    seen: set[str] = set()
    for source in sources:
        if source.name in seen:
            problems.add("sources", f"duplicate source name {source.name!r}")
        seen.add(source.name)
    for source in sources:
        if source.mirror_of is not None and source.mirror_of not in seen:
            problems.add(f"sources ({source.name}).mirror_of", f"no source named {source.mirror_of!r}")

    # an election's races are named at start-up: routes and silences may name them by pattern
    patterns = tuple(f"{s.election}-{race}-*" for s in sources if s.election for race in s.races)
    detection = parse_detection_options(problems.get(raw, "detection", "", dict, {}), "detection", problems)
    alerting_config = alerting(raw, problems, environ, tuple(seen) + patterns) if alerting is not None else None
    config = Config(
        state_dir=Path(problems.get(daemon, "state_dir", "daemon", str, "var/countwatch")),
        timezone=timezone,
        instance=problems.get(daemon, "instance", "daemon", str, socket.gethostname()),
        metrics_listen=problems.convert(metrics, "listen", "metrics", _listen, "127.0.0.1:9477"),
        log_format=log_format, log_file=Path(log_file) if log_file else None, log_level=log_level,
        log_max_bytes=problems.convert(log, "max_bytes", "log", parse_size, 50 * 1000**2),
        log_backups=problems.get(log, "backups", "log", int, 5),
        sources=tuple(sources), detection=detection, alerting=alerting_config,
        metrics_basic_auth=basic_auth, path=path, metrics_tls=metrics_tls,
        history_retention=problems.convert(daemon, "history_retention", "daemon", _positive, 14 * 86400.0),
        history_max_rows=history_max_rows,
    )
    problems.raise_if_any(path)
    return config


def load_config(path: str | Path, environ: Mapping[str, str] | None = None,
                alerting: AlertingParser | None = None) -> Config:
    path = str(path)
    try:
        with open(path, "rb") as handle:
            raw = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(["file not found"], path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"invalid TOML: {exc}"], path) from None
    return parse_config(raw, path, environ, alerting)


__all__ = ["Config", "ConfigError", "SourceConfig", "load_config", "parse_config"]
