"""Generic webhook: the notification as JSON, POSTed; the id travels as `Idempotency-Key` so
a receiver can drop the one duplicate a crash can cause (docs/alerting.md)."""
from __future__ import annotations

from typing import Any

from ..config import ReceiverConfig
from ..format import headline
from ..notification import Notification, NotifyError, Receipt
from . import transport
from .http_errors import retry_after


def http_error(status: int, headers, what: str) -> NotifyError:
    message = f"{what}: HTTP {status}"
    if status == 429:
        return NotifyError(message, retry_after=retry_after(headers) or 1.0)
    if status in (401, 403, 404, 410):
        return NotifyError(message, disable_receiver=True)
    if status >= 500 or status == 408:
        return NotifyError(message)
    return NotifyError(message, permanent=True)


def payload(notification: Notification) -> dict[str, Any]:
    body = notification.to_json()
    body.update(version=1, idempotency_key=notification.id, headline=headline(notification),
                possible_duplicate=notification.possible_duplicate)
    for member in body["members"]:
        member["key"] = "/".join((member["event"]["rule"], member["event"]["source"], member["event"]["region"]))
    return body


class WebhookNotifier:
    kind = "webhook"

    def __init__(self, receiver: ReceiverConfig):
        self.name = receiver.name
        self._url = receiver.url
        self._headers = receiver.headers
        self._timeout = receiver.timeout
        self._http = transport.session()

    def notify(self, notification: Notification) -> Receipt | None:
        headers = {k: (v.reveal() if hasattr(v, "reveal") else v) for k, v in self._headers.items()}
        headers["Idempotency-Key"] = notification.id
        answer = transport.post(self._http, self._url.reveal(), self._timeout, "webhook", json=payload(notification),
                                headers=headers)
        if 200 <= answer.status < 300:
            return None
        raise http_error(answer.status, answer.headers, "webhook")
