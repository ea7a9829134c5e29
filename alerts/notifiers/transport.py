"""The one HTTP exchange every receiver makes (Slack webhook and bot through slack_sdk, the
generic webhook, Alertmanager), with what the notifiers must not differ on:

- a wall-clock deadline on the whole exchange (connect, status line, headers and body:
  monitor/deadline.py), so a receiver that drips its headers is a timeout, retried and logged,
  not a notification pending forever (issue 14, item 3);
- redirects are never followed: a 3xx is a RedirectRefused failure, and the credentials of the
  request (a bot token, an X-Api-Key, the webhook URL's secret path) go nowhere else (item 7);
- the answer's body is read up to ANSWER_LIMIT bytes (a receiver's answer is a word or a small
  JSON object; a flood of it is not worth memory);
- no environment proxies, and failures name only the class of error (messages quote URLs);
- the alert pipeline's stop cuts the exchanges its sender threads have in flight (`cut`), so a
  receiver stuck in its handshake or its answer does not hold the daemon's stop for its timeout:
  the cut notification is a failed attempt, still in the outbox for the next start.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import requests

from monitor.deadline import Deadline, DeadlineAdapter

from ..notification import NotifyError
from .http_errors import connection_error

ANSWER_LIMIT = 256 * 1024

_in_flight: dict[int, Deadline] = {}      # sending thread's ident -> the deadline of its exchange
_in_flight_lock = threading.Lock()


def cut(threads: Iterable[threading.Thread]) -> int:
    """End at once the exchanges these threads have in flight (the pipeline stopping).
    Returns how many were cut."""
    idents = {t.ident for t in threads}
    with _in_flight_lock:
        deadlines = [d for ident, d in _in_flight.items() if ident in idents]
    for deadline in deadlines:
        deadline.cut()
    return len(deadlines)


class RedirectRefused(NotifyError):
    """The receiver answered 3xx. Never followed (the request's credentials would go to the
    new address), and permanent for the receiver: its configured URL is not where it lives."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def session() -> requests.Session:
    """A Session for one receiver: its connections obey the Deadline of the sending thread."""
    s = requests.Session()
    s.trust_env = False
    adapter = DeadlineAdapter(pool_connections=1, pool_maxsize=2, max_retries=0)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s


def post(http: requests.Session, url: str, timeout: float, what: str, *, data: bytes | None = None,
         json: Any = None, headers: Mapping[str, str] | None = None) -> Answer:
    """POST and read the answer within `timeout` seconds in all. Raises NotifyError (transient)
    on a timeout or a network failure, RedirectRefused on a 3xx; any other status is returned."""
    with Deadline(timeout) as deadline:
        me = threading.get_ident()
        with _in_flight_lock:
            _in_flight[me] = deadline
        try:
            response = http.post(url, data=data, json=json, headers=dict(headers or {}),
                                 timeout=(timeout, timeout), allow_redirects=False, stream=True)
            with response:
                status = response.status_code
                if 300 <= status < 400:
                    raise RedirectRefused(f"{what}: HTTP {status} redirect refused (receivers never follow "
                                          f"redirects; check the receiver's URL)", disable_receiver=True)
                body = b""
                for chunk in response.iter_content(64 * 1024):
                    body += chunk
                    if len(body) > ANSWER_LIMIT:
                        body = body[:ANSWER_LIMIT]
                        break
                if deadline.expired:         # the deadline's shutdown reads as an end of file
                    raise TimeoutError("answer cut at the deadline")
                return Answer(status, dict(response.headers), body)
        except NotifyError:
            raise
        except Exception as exc:  # noqa: BLE001 - network trouble is transient; class names only
            if deadline.expired or deadline.remaining() <= 0:
                raise NotifyError(f"{what}: timeout: no complete answer within {timeout:g}s") from None
            raise connection_error(exc, what) from None
        finally:
            with _in_flight_lock:
                _in_flight.pop(me, None)
