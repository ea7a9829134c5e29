"""Notifiers only format and send: `notify(notification)` returns a receipt (or None) or raises
NotifyError saying whether the failure is permanent. Everything else (routing, grouping,
dedup, retries, the record) lives in the pipeline.

`KINDS` is the one list of receiver kinds: what builds each kind's notifier and which of the
`[[receivers]]` keys it takes (alerts/config.py reads and checks them from here). A new kind
is a module in this package and one entry below.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Protocol

from monitor.clock import Clock

from ..notification import Notification, Receipt

if TYPE_CHECKING:   # alerts.config imports this table; the notifiers take its ReceiverConfig
    from ..config import ReceiverConfig


class Notifier(Protocol):
    name: str
    kind: str

    def notify(self, notification: Notification) -> Receipt | None: ...


# The keys a kind may take beyond name, kind, timeout and send_resolved, in the order they are
# checked. `url` is required wherever it is taken; slack_bot requires `token` and `channel`.
KIND_KEYS = ("url", "token", "channel", "api_url", "headers", "resend")


@dataclass(frozen=True)
class ReceiverKind:
    build: Callable[["ReceiverConfig", Clock], Notifier]
    keys: tuple[str, ...] = ()
    required: tuple[str, ...] = ()


def _slack_webhook(receiver: "ReceiverConfig", clock: Clock) -> Notifier:
    from .slack_webhook import SlackWebhookNotifier
    return SlackWebhookNotifier(receiver)


def _slack_bot(receiver: "ReceiverConfig", clock: Clock) -> Notifier:
    from .slack_bot import SlackBotNotifier
    return SlackBotNotifier(receiver)


def _console(receiver: "ReceiverConfig", clock: Clock) -> Notifier:
    from .console import ConsoleNotifier
    return ConsoleNotifier(receiver)


def _webhook(receiver: "ReceiverConfig", clock: Clock) -> Notifier:
    from .webhook import WebhookNotifier
    return WebhookNotifier(receiver)


def _alertmanager(receiver: "ReceiverConfig", clock: Clock) -> Notifier:
    from .alertmanager import AlertmanagerNotifier
    return AlertmanagerNotifier(receiver, clock)


KINDS: dict[str, ReceiverKind] = {
    "slack_webhook": ReceiverKind(_slack_webhook, keys=("url",), required=("url",)),
    "slack_bot": ReceiverKind(_slack_bot, keys=("token", "channel", "api_url"), required=("token", "channel")),
    "console": ReceiverKind(_console),
    "webhook": ReceiverKind(_webhook, keys=("url", "headers"), required=("url",)),
    "alertmanager": ReceiverKind(_alertmanager, keys=("url", "resend"), required=("url",)),
}


def build_notifier(receiver: "ReceiverConfig", clock: Clock) -> Notifier:
    return KINDS[receiver.kind].build(receiver, clock)
