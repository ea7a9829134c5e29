"""A receiver's HTTP answer or connection failure, classified into the NotifyError the
pipeline acts on: worth a retry (and after how long: Retry-After), the notification cannot be
sent, or the receiver itself is broken (so it is disabled, loudly). Every HTTP notifier uses
these; `classify` also knows Slack's error codes.

Webhook codes are from Slack's incoming-webhook error list (invalid_payload, action_prohibited,
channel_not_found, channel_is_archived, no_service, invalid_token, rollup_error); Web API codes
from its common errors (invalid_auth, token_revoked, ratelimited, ...).
"""
from __future__ import annotations

import math
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Mapping

from ..notification import NotifyError

# The receiver's token, webhook or channel is gone or wrong: no notification will ever work.
RECEIVER_BROKEN = frozenset({
    "invalid_token", "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
    "no_permission", "missing_scope", "channel_not_found", "channel_is_archived", "is_archived",
    "not_in_channel", "no_service", "no_team", "team_disabled", "action_prohibited",
    "team_access_not_granted", "no_active_hooks", "org_login_required", "ekm_access_denied",
})
TRANSIENT = frozenset({"ratelimited", "rate_limited", "rollup_error", "internal_error", "fatal_error",
                       "service_unavailable", "request_timeout"})


# The longest wait a receiver's Retry-After can impose (docs/alerting.md): a server asking for
# more (1e12 s, a date in 2099) is taken at this word, not at its own.
RETRY_AFTER_MAX_SECONDS = 3600.0


def retry_after(headers: Mapping[str, str] | None, now: datetime | None = None) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP-date), within
    [0, RETRY_AFTER_MAX_SECONDS]; None when absent or unreadable (garbage, NaN)."""
    for name, value in (headers or {}).items():
        if name.lower() == "retry-after":
            return parse_retry_after(value[0] if isinstance(value, list) else value, now)
    return None


def parse_retry_after(value, now: datetime | None = None) -> float | None:
    text = str(value).strip()[:64]
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if moment is None:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        seconds = (moment - (now or datetime.now(timezone.utc))).total_seconds()
    if not math.isfinite(seconds):
        return RETRY_AFTER_MAX_SECONDS if seconds > 0 else None
    return min(max(0.0, seconds), RETRY_AFTER_MAX_SECONDS)


def classify(status: int, code: str, headers: Mapping[str, str] | None, what: str) -> NotifyError:
    """One failed answer -> the NotifyError the pipeline acts on. `code` is Slack's error string
    (short, never a secret); it is the only part of the answer that reaches a log."""
    code = (code or "").strip()[:80] or f"http_{status}"
    message = f"{what}: HTTP {status} {code}"
    if status == 429 or code in ("ratelimited", "rate_limited"):
        return NotifyError(message, retry_after=retry_after(headers) or 1.0)
    if code in RECEIVER_BROKEN or status in (401, 403, 404, 410):
        return NotifyError(message, disable_receiver=True)
    if status >= 500 or code in TRANSIENT:
        return NotifyError(message)
    return NotifyError(message, permanent=True)


def connection_error(exc: BaseException, what: str) -> NotifyError:
    """Network trouble is transient. Only class names are kept: urllib's and requests' messages
    can quote the URL, and a webhook URL is a credential."""
    reason = getattr(exc, "reason", None)
    detail = type(exc).__name__ + (f" ({type(reason).__name__})" if isinstance(reason, BaseException) else "")
    return NotifyError(f"{what}: connection failed: {detail}")
