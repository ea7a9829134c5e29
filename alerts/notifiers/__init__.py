"""Notifiers only format and send: `notify(notification)` returns a receipt (or None) or raises
NotifyError saying whether the failure is permanent. Everything else (routing, grouping,
dedup, retries, the record) lives in the pipeline."""
from __future__ import annotations

from typing import Protocol

from monitor.clock import Clock

from ..config import ReceiverConfig
from ..notification import Notification, Receipt


class Notifier(Protocol):
    name: str
    kind: str

    def notify(self, notification: Notification) -> Receipt | None: ...


def build_notifier(receiver: ReceiverConfig, clock: Clock) -> Notifier:
    if receiver.kind == "slack_webhook":
        from .slack_webhook import SlackWebhookNotifier
        return SlackWebhookNotifier(receiver)
    if receiver.kind == "slack_bot":
        from .slack_bot import SlackBotNotifier
        return SlackBotNotifier(receiver)
    if receiver.kind == "webhook":
        from .webhook import WebhookNotifier
        return WebhookNotifier(receiver)
    if receiver.kind == "alertmanager":
        from .alertmanager import AlertmanagerNotifier
        return AlertmanagerNotifier(receiver, clock)
    from .console import ConsoleNotifier
    return ConsoleNotifier(receiver)
