"""Block Kit for Slack: the same content for the incoming webhook and the bot.

Everything that came from a source or a detector goes through escape_slack (mrkdwn parses
`<...>` as links and mentions). Slack caps a message at 50 blocks and a section at 3,000
characters, so long groups list their first members and say how many more there are.
"""
from __future__ import annotations

from typing import Any

from monitor.wording import when

from ..format import escape_slack, facts, headline, member_line
from ..notification import Notification

MAX_MEMBER_SECTIONS = 10
SECTION_LIMIT = 2900
_BADGE = {
    "critical": ":red_circle: *CRITICAL*",
    "warning": ":large_orange_circle: *WARNING*",
    "info": ":large_blue_circle: *INFO*",
}


def badge(notification: Notification) -> str:
    if notification.status == "test":
        return ":test_tube: *TEST*"
    if notification.status == "resolved":
        return ":white_check_mark: *RESOLVED*"
    return _BADGE.get(notification.severity, f"*{notification.severity.upper()}*")


def _section(text: str) -> dict[str, Any]:
    if len(text) > SECTION_LIMIT:
        text = text[:SECTION_LIMIT] + "…"
    # verbatim: Slack does not turn bare URLs, #channels or @names in the text into links or
    # mentions (our own <url|label> links still work)
    return {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}}


def fallback_text(notification: Notification) -> str:
    """The `text` of the message: notifications and screen readers show it."""
    word = {"test": "TEST", "resolved": "RESOLVED"}.get(notification.status, notification.severity.upper())
    return f"{word}: {escape_slack(headline(notification))} (incident {notification.incident})"


def _link(url: str, label: str) -> str:
    # A URL keeps its characters (escape_slack's look-alikes would break it): `&` escaped as
    # Slack asks, `<`, `>` and `|` percent-encoded, since each would end the link.
    url = str(url).replace("&", "&amp;").replace("<", "%3C").replace(">", "%3E").replace("|", "%7C")
    return f"<{url}|{escape_slack(label)}>"


def blocks(notification: Notification) -> list[dict[str, Any]]:
    out = [_section(f"{badge(notification)}  {escape_slack(headline(notification))}")]
    now = notification.created_at
    members = notification.members
    for member in members[:MAX_MEMBER_SECTIONS]:
        lines = []
        if len(members) > 1:
            lines.append(f"*{escape_slack(member_line(member, now, notification.timezone, notification.units))}*")
        lines += [f"*{label}:* {escape_slack(value)}" for label, value in facts(member, notification.timezone, now, notification.units)]
        if lines:
            out.append(_section("\n".join(lines)))
    if len(members) > MAX_MEMBER_SECTIONS:
        out.append(_section(f"…and {len(members) - MAX_MEMBER_SECTIONS} more alerts in this incident."))
    if notification.links:
        out.append(_section("  ·  ".join(_link(url, label.replace("_", " ").capitalize())
                                          for label, url in notification.links.items())))
    context = (f"countwatch {escape_slack(notification.instance)} · {notification.reason} · "
               f"incident {notification.incident} · opened {when(notification.opened_at, notification.timezone, missing='-')} · "
               f"id {notification.id}")
    if notification.possible_duplicate:
        context += " · possible duplicate (countwatch restarted while sending)"
    out.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context, "verbatim": True}]})
    return out


def metadata(notification: Notification) -> dict[str, Any]:
    """Message metadata: lets anyone reading the channel through the API find the notification
    id (the idempotency key) and incident without parsing text."""
    return {"event_type": "countwatch_notification",
            "event_payload": {"id": notification.id, "incident": notification.incident,
                              "reason": notification.reason, "status": notification.status}}

