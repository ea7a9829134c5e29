"""Slack incoming webhook: one message per notification (a webhook cannot thread or edit)."""
from __future__ import annotations

import logging
import re

from slack_sdk.webhook import WebhookClient, WebhookResponse

from ..config import ReceiverConfig
from ..notification import Notification, NotifyError, Receipt
from . import slack_blocks, transport
from .http_errors import classify, connection_error

# slack_sdk logs request URLs at debug level; the webhook URL is a credential, so its clients
# get a logger that says nothing. Failures reach our logs through NotifyError instead.
QUIET = logging.getLogger("countwatch.slack_sdk.quiet")
QUIET.setLevel(logging.CRITICAL + 1)
QUIET.propagate = False

# What a webhook answers instead of `ok` is one of Slack's codes (invalid_token, no_service...);
# anything else (a proxy's page, garbage) is named as such, never quoted into a log line.
_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")


class _Client(WebhookClient):
    """slack_sdk's webhook client over our transport: a deadline on the whole exchange, no
    redirects followed (urllib's opener would follow one, with the payload's path secret)."""

    def __init__(self, url: str, timeout: float):
        super().__init__(url, timeout=max(1, int(round(timeout))), logger=QUIET, retry_handlers=[])
        self._deadline = timeout
        self._http = transport.session()

    def _perform_http_request_internal(self, url, req):
        answer = transport.post(self._http, url, self._deadline, "slack webhook", data=req.data,
                                headers=dict(req.header_items()))
        return WebhookResponse(url=url, status_code=answer.status, body=answer.text, headers=answer.headers)


def answer_code(body: str) -> str:
    code = (body or "").strip()
    return code if _CODE.fullmatch(code) else "unexpected_body"


class SlackWebhookNotifier:
    kind = "slack_webhook"

    def __init__(self, receiver: ReceiverConfig):
        self.name = receiver.name
        # No retry handlers: retries belong to the outbox, which records and backs off; a
        # hidden retry inside the client could deliver twice or sleep through a Retry-After.
        self._client = _Client(receiver.url.reveal(), receiver.timeout)

    def notify(self, notification: Notification) -> Receipt | None:
        try:
            response = self._client.send(text=slack_blocks.fallback_text(notification),
                                         blocks=slack_blocks.blocks(notification),
                                         metadata=slack_blocks.metadata(notification))
        except NotifyError:
            raise
        except Exception as exc:  # urllib errors, timeouts: never quote them (they carry the URL)
            raise connection_error(exc, "slack webhook") from None
        code = answer_code(str(response.body or ""))
        # Slack's webhook says `ok` when it posted; a 200 with anything else (invalid_token,
        # no_service, a captive portal's page) did not post, and is classified like the code
        if response.status_code == 200 and code == "ok":
            return None
        raise classify(response.status_code, code, response.headers, "slack webhook")
