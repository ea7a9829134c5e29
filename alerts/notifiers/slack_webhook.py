"""Slack incoming webhook: one message per notification (a webhook cannot thread or edit)."""
from __future__ import annotations

import logging

from slack_sdk.webhook import WebhookClient

from ..config import ReceiverConfig
from ..notification import Notification, NotifyError, Receipt
from . import slack_blocks
from .http_errors import classify, connection_error

# slack_sdk logs request URLs at debug level; the webhook URL is a credential, so its clients
# get a logger that says nothing. Failures reach our logs through NotifyError instead.
QUIET = logging.getLogger("countwatch.slack_sdk.quiet")
QUIET.setLevel(logging.CRITICAL + 1)
QUIET.propagate = False


class SlackWebhookNotifier:
    kind = "slack_webhook"

    def __init__(self, receiver: ReceiverConfig):
        self.name = receiver.name
        # No retry handlers: retries belong to the outbox, which records and backs off; a
        # hidden retry inside the client could deliver twice or sleep through a Retry-After.
        self._client = WebhookClient(receiver.url.reveal(), timeout=max(1, int(round(receiver.timeout))),
                                     logger=QUIET, retry_handlers=[])

    def notify(self, notification: Notification) -> Receipt | None:
        try:
            response = self._client.send(text=slack_blocks.fallback_text(notification),
                                         blocks=slack_blocks.blocks(notification),
                                         metadata=slack_blocks.metadata(notification))
        except NotifyError:
            raise
        except Exception as exc:  # urllib errors, timeouts: never quote them (they carry the URL)
            raise connection_error(exc, "slack webhook") from None
        if response.status_code == 200:
            return None
        raise classify(response.status_code, str(response.body or ""), response.headers, "slack webhook")
