"""Config of the alerting stages: `[[receivers]]`, `[[routes]]`, `[[silences]]`, `[alerting]`.

Parsed through monitor.config's Problems collector so the user gets every mistake in one
message. Credentials (webhook URLs, bot tokens, webhook headers) come from `${ENV}` and are
wrapped in Secret, so they print as *** anywhere but the HTTP call; a problem message never
echoes a secret's value. See countwatch.example.toml for every key, annotated.
"""
from __future__ import annotations

import string
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Mapping
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from monitor.configtools import Problems, expand_env, mentions_env, parse_duration
from monitor.model import SEVERITIES
from monitor.secret import Secret

from .matching import Matcher, parse_matcher
from .notifiers import KIND_KEYS, KINDS
from .silences import WEEKDAYS, Silence, as_aware, parse_daily

GROUP_LABELS = ("source", "cause", "rule", "region", "severity")
LINK_FIELDS = ("source", "region", "rule", "severity", "cause", "source_url", "incident")
SLACK_API_URL = "https://slack.com/api/"
DEFAULT_LINKS = {"source_document": "{source_url}"}


@dataclass(frozen=True)
class ReceiverConfig:
    name: str
    kind: str
    url: Secret | None = None          # slack_webhook, webhook, alertmanager (base URL)
    token: Secret | None = None        # slack_bot
    channel: str | None = None         # slack_bot
    api_url: str = SLACK_API_URL       # slack_bot; tests point it at a fake Slack
    headers: Mapping[str, str] = field(default_factory=dict)   # webhook; values may be Secret
    timeout: float = 10.0
    send_resolved: bool = True
    resend: float = 60.0               # alertmanager: re-post open alerts this often

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", MappingProxyType(dict(self.headers)))


@dataclass(frozen=True)
class RouteConfig:
    receiver: str
    match: Matcher = field(default_factory=Matcher)
    min_severity: str = "warning"
    group_wait: float | None = None    # None: the [alerting] default
    group_interval: float | None = None
    repeat_interval: float | None = None


@dataclass(frozen=True)
class AlertingConfig:
    receivers: tuple[ReceiverConfig, ...] = (ReceiverConfig("console", "console"),)
    routes: tuple[RouteConfig, ...] = ()       # as configured; see effective_routes()
    silences: tuple[Silence, ...] = ()
    group_wait: float = 30.0
    group_interval: float = 300.0
    repeat_interval: float = 4 * 3600.0
    group_by: tuple[str, ...] = ("source", "cause")
    retry_initial: float = 10.0
    retry_max: float = 600.0
    give_up_after: float | None = None         # None: a notification waits for its receiver, however long
    inhibit_stall_during_outage: bool = True
    links: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_LINKS))
    receivers_configured: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "links", MappingProxyType(dict(self.links)))

    def receiver(self, name: str) -> ReceiverConfig:
        for receiver in self.receivers:
            if receiver.name == name:
                return receiver
        raise KeyError(name)

    def effective_routes(self) -> tuple[RouteConfig, ...]:
        """The configured routes, or, when there are none, one route per receiver: everything
        to the console (info included: it pages nobody), warning and above to the others."""
        if self.routes:
            return self.routes
        return tuple(RouteConfig(receiver=r.name, min_severity="info" if r.kind == "console" else "warning")
                     for r in self.receivers)

    def with_default_receivers(self, environ: Mapping[str, str]) -> "AlertingConfig":
        """For `countwatch demo`/quick starts: when the config names no receivers, the console
        plus, if SLACK_WEBHOOK_URL is set, a slack_webhook receiver named "slack"."""
        if self.receivers_configured:
            return self
        return replace(self, receivers=default_receivers(environ))


def default_receivers(environ: Mapping[str, str]) -> tuple[ReceiverConfig, ...]:
    receivers = [ReceiverConfig("console", "console")]
    if environ.get("SLACK_WEBHOOK_URL"):
        receivers.append(ReceiverConfig("slack", "slack_webhook", url=Secret(environ["SLACK_WEBHOOK_URL"])))
    return tuple(receivers)


def _secret(raw: Mapping[str, Any], key: str, where: str, problems: Problems,
            environ: Mapping[str, str] | None, required: bool) -> Secret | None:
    value = problems.get(raw, key, where, str, None, required=required)
    if value is None:
        return None
    return Secret(expand_env(value, f"{where}.{key}", problems, environ) if mentions_env(value) else value)


def _check_http(value: Secret | str | None, key: str, problems: Problems, secret: bool) -> None:
    if value is None:
        return
    text = value.reveal() if isinstance(value, Secret) else value
    if not text:
        return  # an unset ${VAR} was already reported
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        shown = "(value not shown: it is a credential)" if secret else repr(text)
        problems.add(key, f"must be an http:// or https:// URL {shown}")


def _duration(raw: Mapping[str, Any], key: str, where: str, problems: Problems, default, minimum=0.0):
    def parse(value):
        seconds = parse_duration(value)
        if seconds < minimum:
            raise ValueError(f"must be at least {minimum:g}s, got {value!r}")
        return seconds
    return problems.convert(raw, key, where, parse, default)


def _parse_receiver(raw: Any, index: int, problems: Problems, environ) -> ReceiverConfig | None:
    where = f"receivers[{index}]"
    if not isinstance(raw, Mapping):
        problems.add(where, "must be a table")
        return None
    problems.unknown_keys(raw, where, {"name", "kind", *KIND_KEYS, "timeout", "send_resolved"})
    name = problems.get(raw, "name", where, str, f"receiver{index}", required=True)
    where = f"receivers[{index}] ({name})" if "name" in raw else where
    kind = problems.get(raw, "kind", where, str, "console", required=True)
    if kind not in KINDS:           # alerts/notifiers/__init__.py: the one list of receiver kinds
        problems.add(f"{where}.kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
        return None
    takes, required = KINDS[kind].keys, KINDS[kind].required
    for key in KIND_KEYS:
        if key in raw and key not in takes:
            problems.add(f"{where}.{key}", f"not used by kind = {kind!r}")
    url = _secret(raw, "url", where, problems, environ, required="url" in required) if "url" in takes else None
    _check_http(url, f"{where}.url", problems, secret=True)
    token = _secret(raw, "token", where, problems, environ, required="token" in required) if "token" in takes else None
    channel = None
    if "channel" in takes:
        channel = problems.get(raw, "channel", where, str, None, required="channel" in required)
    api_url = SLACK_API_URL
    if "api_url" in takes:
        api_url = problems.get(raw, "api_url", where, str, SLACK_API_URL)
        _check_http(api_url, f"{where}.api_url", problems, secret=False)
    headers = {}
    for header, value in problems.get(raw, "headers", where, dict, {}).items():
        if not isinstance(value, str):
            problems.add(f"{where}.headers.{header}", f"must be a string, got {type(value).__name__}")
            continue
        # Header values are where webhook credentials live: treat all of them as secret.
        headers[str(header)] = Secret(expand_env(value, f"{where}.headers.{header}", problems, environ)
                                      if mentions_env(value) else value)
    return ReceiverConfig(
        name=name, kind=kind, url=url, token=token, channel=channel, api_url=api_url, headers=headers,
        timeout=_duration(raw, "timeout", where, problems, 10.0, minimum=0.1),
        send_resolved=problems.get(raw, "send_resolved", where, bool, True),
        resend=_duration(raw, "resend", where, problems, 60.0, minimum=1.0),
    )


def _parse_route(raw: Any, index: int, problems: Problems, receiver_names: set[str],
                 source_names: tuple[str, ...]) -> RouteConfig | None:
    where = f"routes[{index}]"
    if not isinstance(raw, Mapping):
        problems.add(where, "must be a table")
        return None
    problems.unknown_keys(raw, where, {"match", "receiver", "min_severity", "group_wait", "group_interval",
                                       "repeat_interval"})
    receiver = problems.get(raw, "receiver", where, str, "", required=True)
    if receiver and receiver not in receiver_names:
        problems.add(f"{where}.receiver", f"no receiver named {receiver!r} (receivers: {', '.join(sorted(receiver_names))})")
    match = parse_matcher(raw.get("match", {}), f"{where}.match", problems, source_names)
    # A route that names a severity means it; otherwise info (corrections) pages nobody.
    default_min = "info" if match.names("severity") else "warning"
    min_severity = problems.get(raw, "min_severity", where, str, default_min)
    if min_severity not in SEVERITIES:
        problems.add(f"{where}.min_severity", f"must be one of {', '.join(SEVERITIES)}, got {min_severity!r}")
        min_severity = default_min
    return RouteConfig(
        receiver=receiver, match=match, min_severity=min_severity,
        group_wait=_duration(raw, "group_wait", where, problems, None),
        group_interval=_duration(raw, "group_interval", where, problems, None, minimum=1.0),
        repeat_interval=_duration(raw, "repeat_interval", where, problems, None, minimum=60.0),
    )


def _parse_silence(raw: Any, index: int, problems: Problems, default_zone: str,
                   source_names: tuple[str, ...]) -> Silence | None:
    where = f"silences[{index}]"
    if not isinstance(raw, Mapping):
        problems.add(where, "must be a table")
        return None
    problems.unknown_keys(raw, where, {"name", "match", "comment", "starts", "ends", "daily", "weekdays", "timezone"})
    name = problems.get(raw, "name", where, str, f"config-{index}")
    if "match" not in raw:
        problems.add(f"{where}.match", "is required (a silence of everything would hide every alert)")
    match = parse_matcher(raw.get("match", {}), f"{where}.match", problems, source_names)
    zone = problems.get(raw, "timezone", where, str, default_zone)
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.add(f"{where}.timezone", f"unknown time zone {zone!r}")
        zone = "UTC"
    starts = problems.convert(raw, "starts", where, lambda v: as_aware(v, zone), None)
    ends = problems.convert(raw, "ends", where, lambda v: as_aware(v, zone), None)
    daily = problems.convert(raw, "daily", where, parse_daily, None)
    if daily is None and ends is None and "daily" not in raw and "ends" not in raw:
        problems.add(where, "needs `ends` (a one-off window) or `daily` (a recurring one)")
    if starts and ends and ends <= starts:
        problems.add(f"{where}.ends", "must be after `starts`")
    weekdays = None
    if "weekdays" in raw:
        days = problems.get(raw, "weekdays", where, list, [])
        bad = [d for d in days if not isinstance(d, str) or d.lower()[:3] not in WEEKDAYS]
        if bad or not days:
            problems.add(f"{where}.weekdays", f"must list days like [\"mon\", \"sat\"], got {days!r}")
        weekdays = frozenset(WEEKDAYS.index(d.lower()[:3]) for d in days if d not in bad)
        if daily is None:
            problems.add(f"{where}.weekdays", "only used with `daily`")
    return Silence(id=name, matcher=match, comment=problems.get(raw, "comment", where, str, ""),
                   starts_at=starts, ends_at=ends, daily=daily, weekdays=weekdays, timezone=zone,
                   origin="config", created_by="config")


def _parse_links(raw: Any, problems: Problems) -> dict[str, str]:
    links = dict(DEFAULT_LINKS)
    if not isinstance(raw, Mapping):
        problems.add("alerting.links", "must be a table of name = \"template\"")
        return links
    for name, template in raw.items():
        if not isinstance(template, str):
            problems.add(f"alerting.links.{name}", f"must be a string template, got {template!r}")
            continue
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(template) if f}
        except ValueError as exc:
            problems.add(f"alerting.links.{name}", f"bad template: {exc}")
            continue
        unknown = fields - set(LINK_FIELDS)
        if unknown:
            problems.add(f"alerting.links.{name}", f"unknown placeholder(s) {', '.join(sorted(unknown))} "
                                                   f"(known: {', '.join(LINK_FIELDS)})")
            continue
        if template:
            links[str(name)] = template
        else:
            links.pop(str(name), None)   # `source_document = ""` turns a default link off
    return links


def parse_alerting(raw: Mapping[str, Any], problems: Problems, environ: Mapping[str, str] | None = None,
                   source_names: tuple[str, ...] = ()) -> AlertingConfig:
    """Read the alerting tables of a whole parsed config document."""
    section = problems.get(raw, "alerting", "", dict, {})
    problems.unknown_keys(section, "alerting", {"group_wait", "group_interval", "repeat_interval", "group_by",
                                                "retry_initial", "retry_max", "give_up_after",
                                                "inhibit_stall_during_outage", "links"})
    raw_receivers = problems.get(raw, "receivers", "", list, [])
    receivers = [r for i, item in enumerate(raw_receivers)
                 if (r := _parse_receiver(item, i, problems, environ)) is not None]
    names = [r.name for r in receivers]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.add("receivers", f"duplicate receiver name {name!r}")
    configured = bool(receivers)
    if not receivers:
        receivers = [ReceiverConfig("console", "console")]
    receiver_names = {r.name for r in receivers}
    routes = [r for i, item in enumerate(problems.get(raw, "routes", "", list, []))
              if (r := _parse_route(item, i, problems, receiver_names, source_names)) is not None]
    default_zone = raw.get("daemon", {}).get("timezone", "Asia/Jakarta") if isinstance(raw.get("daemon"), Mapping) else "Asia/Jakarta"
    silences = [s for i, item in enumerate(problems.get(raw, "silences", "", list, []))
                if (s := _parse_silence(item, i, problems, str(default_zone), source_names)) is not None]
    ids = [s.id for s in silences]
    for sid in sorted({i for i in ids if ids.count(i) > 1}):
        problems.add("silences", f"duplicate silence name {sid!r}")
    group_by = problems.get(section, "group_by", "alerting", list, ["source", "cause"])
    bad = [g for g in group_by if g not in GROUP_LABELS]
    if bad:
        problems.add("alerting.group_by", f"unknown label(s) {bad!r} (known: {', '.join(GROUP_LABELS)})")
        group_by = ["source", "cause"]
    retry_initial = _duration(section, "retry_initial", "alerting", problems, 10.0, minimum=0.001)
    retry_max = _duration(section, "retry_max", "alerting", problems, 600.0, minimum=0.001)
    if retry_max < retry_initial:
        problems.add("alerting.retry_max", "must be at least retry_initial")
    return AlertingConfig(
        receivers=tuple(receivers), routes=tuple(routes), silences=tuple(silences),
        group_wait=_duration(section, "group_wait", "alerting", problems, 30.0),
        group_interval=_duration(section, "group_interval", "alerting", problems, 300.0, minimum=1.0),
        repeat_interval=_duration(section, "repeat_interval", "alerting", problems, 4 * 3600.0, minimum=60.0),
        group_by=tuple(group_by), retry_initial=retry_initial, retry_max=retry_max,
        give_up_after=_duration(section, "give_up_after", "alerting", problems, None, minimum=60.0),
        inhibit_stall_during_outage=problems.get(section, "inhibit_stall_during_outage", "alerting", bool, True),
        links=_parse_links(section.get("links", {}), problems),
        receivers_configured=configured,
    )
