"""Alertmanager API v2 (`POST /api/v2/alerts`), for teams that already route through one.

Each member becomes one Alertmanager alert (Alertmanager groups and dedups by labels itself).
Alertmanager expects clients to re-post open alerts; the pipeline repeats notifications to this
receiver every `resend`, and each firing alert is posted with endsAt three resends ahead, so an
alert countwatch stops re-posting (crash, shutdown) resolves itself instead of hanging open.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from monitor.clock import Clock
from monitor.model import iso_utc

from ..config import ReceiverConfig
from ..format import facts, region_label
from ..notification import Notification, Receipt
from . import transport
from .webhook import http_error


class AlertmanagerNotifier:
    kind = "alertmanager"

    def __init__(self, receiver: ReceiverConfig, clock: Clock):
        self.name = receiver.name
        self._url = receiver.url
        self._timeout = receiver.timeout
        self._hold = timedelta(seconds=3 * receiver.resend)
        self._clock = clock
        self._http = transport.session()

    def alerts(self, notification: Notification) -> list[dict[str, Any]]:
        now = self._clock.now()
        out = []
        for member in notification.members:
            event = member.event
            labels = {"alertname": event.rule, "source": event.source, "region": event.region,
                      "severity": event.severity, "cause": notification.cause, "origin": "countwatch",
                      "instance": notification.instance}
            annotations = {"summary": event.summary, "incident": notification.incident,
                           "region_name": region_label(member),
                           "description": "; ".join(f"{k}: {v}" for k, v in
                                                    facts(member, notification.timezone, notification.created_at,
                                                                                   notification.units))}
            annotations.update({f"{name}_url": url for name, url in notification.links.items()})
            ended = member.change == "resolved" or event.state == "observed"
            alert = {"labels": labels, "annotations": annotations,
                     "startsAt": iso_utc(event.since or event.at),
                     "endsAt": iso_utc(event.at if ended else now + self._hold)}
            if "grafana" in notification.links:
                alert["generatorURL"] = notification.links["grafana"]
            out.append(alert)
        return out

    def notify(self, notification: Notification) -> Receipt | None:
        url = self._url.reveal().rstrip("/") + "/api/v2/alerts"
        answer = transport.post(self._http, url, self._timeout, "alertmanager", json=self.alerts(notification))
        if 200 <= answer.status < 300:
            return None
        raise http_error(answer.status, answer.headers, "alertmanager")
