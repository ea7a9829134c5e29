"""A fake Slack: a real ThreadingHTTPServer on 127.0.0.1 speaking the incoming-webhook protocol
and the Web API methods chat.postMessage and chat.update the way slack_sdk expects them.

    with FakeSlack() as slack:
        WebhookClient(slack.webhook_url).send(text="hi")
        WebClient(token=slack.token, base_url=slack.api_url).chat_postMessage(channel="#ops", text="hi")
        slack.fail_next("429", retry_after=2)        # the next request is rate limited
        slack.fail_next("500", times=None)           # every request fails until slack.recover()
        slack.requests                               # every request, in arrival order

Failure kinds: "500", "429" (+ Retry-After), "invalid_token", "channel_not_found", "404",
"invalid_payload". Webhook answers are Slack's plain-text codes with their HTTP status
(403 invalid_token, 404 channel_not_found / no_service, 400 invalid_payload, 500
rollup_error, 429 rate_limited); Web API answers are JSON `{"ok": false, "error": ...}`
(invalid_auth for a bad token). It checks what real Slack would refuse (a wrong token, no
text and no blocks, more than 50 blocks, a section over 3,000 characters, chat.update of a
message that does not exist), so a test passes only with requests Slack would accept.
"""
from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.feed import QuietHTTPServer
from typing import Any
from urllib.parse import parse_qs

WEBHOOK_FAILURES = {
    "500": (500, "rollup_error"), "429": (429, "rate_limited"), "invalid_token": (403, "invalid_token"),
    "channel_not_found": (404, "channel_not_found"), "404": (404, "no_service"),
    "invalid_payload": (400, "invalid_payload"),
}
API_FAILURES = {
    "500": (500, "internal_error"), "429": (429, "ratelimited"), "invalid_token": (200, "invalid_auth"),
    "channel_not_found": (200, "channel_not_found"), "404": (404, None), "invalid_payload": (200, "invalid_blocks"),
}


@dataclass
class RecordedRequest:
    method: str
    path: str
    endpoint: str                  # "webhook", "chat.postMessage", "chat.update", or the API method
    headers: dict[str, str]
    body: bytes
    payload: dict[str, Any] | None   # the JSON (or form) body
    status: int = 0
    response: Any = None
    accepted: bool = False           # Slack would have posted/updated a message

    @property
    def text(self) -> str:
        return (self.payload or {}).get("text") or ""

    @property
    def notification_id(self) -> str | None:
        meta = (self.payload or {}).get("metadata") or {}
        return (meta.get("event_payload") or {}).get("id")


@dataclass
class _Failure:
    kind: str
    times: int | None
    retry_after: int
    endpoint: str | None


@dataclass
class _State:
    requests: list[RecordedRequest] = field(default_factory=list)
    failures: list[_Failure] = field(default_factory=list)
    messages: dict[tuple[str, str], dict] = field(default_factory=dict)
    ts_counter: int = 0


class FakeSlack:
    def __init__(self, token: str | None = None, channel_id: str = "C0FAKE0001"):
        self.token = token or "xoxb-fake-" + secrets.token_hex(12)
        self.webhook_secret = secrets.token_hex(12)
        self.channel_id = channel_id
        self._state = _State()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------
    def __enter__(self) -> "FakeSlack":
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 (http.server's naming)
                fake._handle(self)

            def do_GET(self):  # noqa: N802
                fake._handle(self)

            def log_message(self, format, *args):  # keep test output clean
                pass

        self._server = QuietHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="fake-slack", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/TFAKE0001/BFAKE0001/{self.webhook_secret}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    # --- test controls ----------------------------------------------------------------------
    def fail_next(self, kind: str = "500", times: int | None = 1, retry_after: int = 1,
                  endpoint: str | None = None) -> None:
        """Fail the next `times` requests (None: every request until recover()), optionally
        only those to one endpoint ("webhook", "chat.postMessage", "chat.update")."""
        if kind not in WEBHOOK_FAILURES:
            raise ValueError(f"unknown failure kind {kind!r} (known: {', '.join(WEBHOOK_FAILURES)})")
        with self._lock:
            self._state.failures.append(_Failure(kind, times, retry_after, endpoint))

    def recover(self) -> None:
        with self._lock:
            self._state.failures.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._state.requests)

    def accepted(self, endpoint: str | None = None) -> list[RecordedRequest]:
        return [r for r in self.requests if r.accepted and (endpoint is None or r.endpoint == endpoint)]

    def message(self, channel: str, ts: str) -> dict | None:
        with self._lock:
            return self._state.messages.get((channel, ts))

    # --- the protocol -----------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        path = handler.path.split("?", 1)[0]
        if path.startswith("/services/"):
            endpoint = "webhook"
        elif path.startswith("/api/"):
            endpoint = path[len("/api/"):]
        else:
            endpoint = "unknown"
        request = RecordedRequest(handler.command, handler.path, endpoint, dict(handler.headers.items()), body,
                                  _parse(body, handler.headers.get("Content-Type", "")))
        with self._lock:
            self._state.requests.append(request)
            failure = self._take_failure(endpoint)
            if failure is not None:
                status, content, headers = self._failure_answer(failure, endpoint)
            elif endpoint == "webhook":
                status, content, headers = self._webhook(path, request)
            elif endpoint in ("chat.postMessage", "chat.update"):
                status, content, headers = self._api(endpoint, request)
            else:
                status, content, headers = (200, {"ok": False, "error": "unknown_method"}, {}) \
                    if endpoint != "unknown" else (404, "Not Found", {})
            request.status, request.response = status, content
        data = json.dumps(content).encode() if isinstance(content, dict) else str(content).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=utf-8" if isinstance(content, dict)
                            else "text/plain; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _take_failure(self, endpoint: str) -> _Failure | None:
        for failure in self._state.failures:
            if failure.endpoint is None or failure.endpoint == endpoint:
                if failure.times is not None:
                    failure.times -= 1
                    if failure.times <= 0:
                        self._state.failures.remove(failure)
                return failure
        return None

    def _failure_answer(self, failure: _Failure, endpoint: str):
        headers = {"Retry-After": str(failure.retry_after)} if failure.kind == "429" else {}
        if endpoint == "webhook":
            status, code = WEBHOOK_FAILURES[failure.kind]
            return status, code, headers
        status, code = API_FAILURES[failure.kind]
        return status, ({"ok": False, "error": code} if code else "Not Found"), headers

    def _webhook(self, path: str, request: RecordedRequest):
        if path.rsplit("/", 1)[-1] != self.webhook_secret:
            return 403, "invalid_token", {}
        payload = request.payload
        if payload is None:
            return 400, "invalid_payload", {}
        problem = _check_message(payload)
        if problem:
            return 400, problem, {}
        request.accepted = True
        return 200, "ok", {}

    def _api(self, method: str, request: RecordedRequest):
        payload = request.payload or {}
        auth = request.headers.get("Authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else payload.get("token")
        if token != self.token:
            return 200, {"ok": False, "error": "invalid_auth" if token else "not_authed"}, {}
        problem = _check_message(payload)
        if problem:
            return 200, {"ok": False, "error": problem}, {}
        channel = payload.get("channel")
        if not channel:
            return 200, {"ok": False, "error": "channel_not_found"}, {}
        channel_id = self.channel_id if not str(channel).startswith("C") else channel
        if method == "chat.update":
            key = (channel_id, str(payload.get("ts")))
            if channel != self.channel_id:          # chat.update needs the channel ID, as in Slack
                return 200, {"ok": False, "error": "channel_not_found"}, {}
            if key not in self._state.messages:
                return 200, {"ok": False, "error": "message_not_found"}, {}
            self._state.messages[key].update(text=payload.get("text"), blocks=payload.get("blocks"))
            request.accepted = True
            return 200, {"ok": True, "channel": channel_id, "ts": key[1], "text": payload.get("text")}, {}
        self._state.ts_counter += 1
        ts = f"1530100000.{self._state.ts_counter:06d}"
        self._state.messages[(channel_id, ts)] = {"text": payload.get("text"), "blocks": payload.get("blocks"),
                                                  "thread_ts": payload.get("thread_ts")}
        request.accepted = True
        return 200, {"ok": True, "channel": channel_id, "ts": ts,
                     "message": {"text": payload.get("text"), "ts": ts}}, {}


def _parse(body: bytes, content_type: str) -> dict | None:
    if not body:
        return {}
    try:
        if "application/x-www-form-urlencoded" in content_type:
            return {k: v[0] for k, v in parse_qs(body.decode()).items()}
        value = json.loads(body)
        return value if isinstance(value, dict) else None
    except (ValueError, UnicodeDecodeError):
        return None


def _check_message(payload: dict) -> str | None:
    """What Slack refuses in a message body (as far as these tests need)."""
    blocks = payload.get("blocks")
    if not payload.get("text") and not blocks:
        return "no_text"
    if blocks is not None:
        if not isinstance(blocks, list) or len(blocks) > 50:
            return "invalid_blocks"
        for block in blocks:
            text = (block.get("text") or {}).get("text", "") if isinstance(block, dict) else ""
            if block.get("type") == "section" and not (0 < len(text) <= 3000):
                return "invalid_blocks"
    return None


def render_message(payload: dict) -> str:
    """A posted message as a person reads it in the channel: the blocks' text, one block a
    paragraph (the fallback `text` when there are no blocks)."""
    parts = []
    for block in payload.get("blocks") or []:
        if block.get("type") == "section":
            parts.append(block["text"]["text"])
        elif block.get("type") == "context":
            parts.append(" ".join(element.get("text", "") for element in block.get("elements", [])))
    return "\n".join(parts) if parts else payload.get("text", "")

