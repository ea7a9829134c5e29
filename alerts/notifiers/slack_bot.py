"""Slack bot token (Web API): one message per incident in the channel, its story in the thread.

- an incident's first notification: chat.postMessage (the receipt names the message);
- repeats and new members: a reply in that message's thread;
- an escalation or the resolution: chat.update of the first message (so the channel line shows
  the incident's current state), then a reply in the thread. The update goes first because it
  is idempotent: if the reply fails and is retried, updating again changes nothing.
"""
from __future__ import annotations

from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from ..config import ReceiverConfig
from ..notification import Notification, NotifyError, Receipt
from . import slack_blocks, transport
from .http_errors import classify, connection_error
from .slack_webhook import QUIET

# The first message is gone or can no longer be edited: tell the story in a new message.
_ROOT_GONE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed", "thread_not_found"})


class _Client(WebClient):
    """slack_sdk's Web API client over our transport: a deadline on the whole exchange, and no
    redirect followed (urllib's opener would follow one with `Authorization: Bearer xoxb-...`)."""

    def __init__(self, token: str, base_url: str, timeout: float):
        super().__init__(token=token, base_url=base_url, timeout=max(1, int(round(timeout))), logger=QUIET,
                         retry_handlers=[])
        self._deadline = timeout
        self._http = transport.session()

    def _perform_urllib_http_request_internal(self, url, req):
        answer = transport.post(self._http, url, self._deadline, "slack api", data=req.data,
                                headers=dict(req.header_items()))
        return {"status": answer.status, "headers": answer.headers, "body": answer.text}


class SlackBotNotifier:
    kind = "slack_bot"

    def __init__(self, receiver: ReceiverConfig):
        self.name = receiver.name
        self.channel = receiver.channel
        self._client = _Client(receiver.token.reveal(), receiver.api_url, receiver.timeout)

    def _call(self, method: str, **kwargs: Any):
        try:
            return getattr(self._client, method.replace(".", "_"))(**kwargs)
        except SlackApiError as exc:
            response = exc.response
            code = response.get("error", "") if isinstance(response.data, dict) else ""
            raise classify(response.status_code, code, response.headers, f"slack {method}") from None
        except NotifyError:
            raise
        except Exception as exc:
            raise connection_error(exc, f"slack {method}") from None

    def _post(self, notification: Notification, thread_ts: str | None = None) -> dict[str, str]:
        response = self._call("chat.postMessage", channel=self.channel,
                              text=slack_blocks.fallback_text(notification),
                              blocks=slack_blocks.blocks(notification),
                              metadata=slack_blocks.metadata(notification), thread_ts=thread_ts)
        return {"channel": str(response.get("channel", self.channel)), "ts": str(response.get("ts", ""))}

    def notify(self, notification: Notification) -> Receipt | None:
        thread = notification.thread
        if not thread or not thread.get("ts"):
            receipt = self._post(notification)
            return {**receipt, "root": "1"}
        if notification.reason == "escalated" or notification.status == "resolved":
            try:
                self._call("chat.update", channel=thread["channel"], ts=thread["ts"],
                           text=slack_blocks.fallback_text(notification), blocks=slack_blocks.blocks(notification))
            except NotifyError as exc:
                if not any(code in exc.message for code in _ROOT_GONE):
                    raise
                return {**self._post(notification), "root": "1"}
        try:
            return self._post(notification, thread_ts=thread["ts"])
        except NotifyError as exc:
            if not any(code in exc.message for code in _ROOT_GONE):
                raise
            return {**self._post(notification), "root": "1"}
