"""Links in notifications, from the `[alerting.links]` templates (Grafana panel, the source
document, a runbook). Values are URL-quoted (a region code is source text); the source URL
loses any user:password and query string, so a credential in it never reaches a channel."""
from __future__ import annotations

from typing import Mapping
from urllib.parse import quote, urlsplit, urlunsplit

from monitor.config import Config
from monitor.model import Event

from .matching import cause_of


def public_url(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def render_links(templates: Mapping[str, str], config: Config, event: Event, incident) -> dict[str, str]:
    try:
        source_url = public_url(config.source(event.source).url)
    except KeyError:
        source_url = ""
    values = {"source": event.source, "region": event.region, "rule": event.rule, "severity": event.severity,
              "cause": cause_of(event), "incident": incident.id}
    values = {k: quote(str(v), safe="") for k, v in values.items()}
    values["source_url"] = source_url
    links = {}
    for name, template in templates.items():
        url = template.format_map(values)
        if url and (url.startswith("http://") or url.startswith("https://")):
            links[name] = url
    return links
