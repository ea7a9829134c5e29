"""Text from a source cannot inject formatting, mentions or links into Slack messages.

End to end: a json source names its region with mrkdwn (mentions, a link, bold, italic,
strike, code, a quote on a new line, a bare URL, @here) and later serves an HTML error page
whose title carries the same; the real detectors put both into event summaries and
`last_error`; the real pipeline sends them to a fake Slack through the webhook and the bot.
Every text object of every accepted request is then read the way Slack's mrkdwn would."""
from __future__ import annotations

import io
import json
import re
from datetime import datetime, timezone

from hypothesis import given, strategies as st
from prometheus_client import CollectorRegistry

from alerts.format import escape_slack
from alerts.pipeline import AlertPipeline
from monitor.clock import ManualClock
from monitor.cli import parse_config
from monitor.detectors import Judge
from monitor.logs import configure_logging
from monitor.metrics import Metrics
from monitor.poll import SourceWatcher
from tests.fakes import FakeSlack
from tests.feed import Feed, Reply

START = datetime(2024, 2, 15, 13, 0, 0, tzinfo=timezone.utc)
HOSTILE = ("Kab <!channel> <@U0ADMIN> <https://evil.example|click> *URGENT1* _ITAL2_ ~STRK3~ `CODE4` ```BLK5``` "
           "https://evil.example/login @here")
TITLE = "*HACKED6* _ITAL7_ ~STRK8~ `CODE9` https://evil.example/a @channel &amp;"
TOKENS = ("URGENT1", "ITAL2", "STRK3", "CODE4", "BLK5", "HACKED6", "ITAL7", "STRK8", "CODE9")
# What Slack would parse in mrkdwn: <...> links/mentions, *bold*, _italic_, ~strike~, `code`.
SPANS = {"bold": re.compile(r"(?<![0-9A-Za-z])\*\S(?:[^*\n]*\S)?\*(?![0-9A-Za-z])"),
         "italic": re.compile(r"(?<![0-9A-Za-z])_\S(?:[^_\n]*\S)?_(?![0-9A-Za-z])"),
         "strike": re.compile(r"(?<![0-9A-Za-z])~\S(?:[^~\n]*\S)?~(?![0-9A-Za-z])"),
         "code": re.compile(r"`[^`]+`")}


def _texts(payload: dict) -> list[dict]:
    """Every mrkdwn text object of a message (sections, context elements) and its `text`."""
    objects = [{"type": "mrkdwn", "text": payload.get("text", ""), "top": True}]
    for block in payload.get("blocks") or []:
        if "text" in block:
            objects.append(block["text"])
        objects += [e for e in block.get("elements", []) if e.get("type") == "mrkdwn"]
    return objects


def test_source_text_reaches_slack_inert(tmp_path):
    configure_logging("json", stream=io.StringIO(), level="warning")
    registry = CollectorRegistry()
    with Feed() as feed, FakeSlack() as slack:
        config = parse_config({
            "daemon": {"state_dir": str(tmp_path)},
            "detection": {"stall_prior": "10m", "stall_floor": "5m", "stall_ceiling": "20m"},
            "sources": [{"name": "kpu", "kind": "json", "url": feed.url("/feed.json"), "region": "0",
                         "interval": "60s", "timeout": "1s", "retries": 0,
                         "mapping": {"reported": "reported", "total": "total", "name": "name"}}],
            "alerting": {"group_wait": "0s", "group_interval": "1m"},
            "receivers": [{"name": "oncall", "kind": "slack_webhook", "url": "${HOOK}"},
                          {"name": "ops", "kind": "slack_bot", "token": "${TOKEN}", "channel": "#ops",
                           "api_url": slack.api_url}],
        }, environ={"HOOK": slack.webhook_url, "TOKEN": slack.token})
        clock = ManualClock(START)
        metrics = Metrics(registry)
        pipeline = AlertPipeline(config, metrics, clock, tmp_path / "countwatch.db")
        watcher = SourceWatcher(config.sources[0], Judge(config), metrics, clock, None, pipeline.handle)
        rules = []
        for minute in range(40):
            if minute < 5:
                document = Reply(200, json.dumps({"name": HOSTILE, "reported": 10 + minute, "total": 100}).encode())
            elif minute < 30:
                document = Reply(200, json.dumps({"name": HOSTILE, "reported": 14, "total": 100}).encode())
            else:
                document = Reply(200, f"<html><title>{TITLE}</title></html>".encode(), {"Content-Type": "text/html"})
            feed.set("/feed.json", document)
            rules += [(e.rule, e.state) for e in watcher.poll_once()]
            pipeline.tick()
            clock.advance(60)
        pipeline.drain(2.0)
        pipeline.stop()
        watcher.close()
        accepted = slack.accepted()

    assert ("stall", "firing") in rules and ("outage", "firing") in rules, rules
    assert {r.endpoint for r in accepted} >= {"webhook", "chat.postMessage"}
    texts = [obj for request in accepted for obj in _texts(request.payload)]
    joined = "\n".join(obj["text"] for obj in texts)
    assert "(Kab " in joined and "HACKED6" in joined                  # the source's text did arrive
    for obj in texts:
        text = obj["text"]
        links = re.findall(r"<([^>]*)>", text)
        # the only links are our own (the source document's URL, on the feed), none a mention
        assert all(link.startswith(feed.base_url) for link in links), links
        for name, span in SPANS.items():
            found = [m for m in span.findall(text) if any(token in m for token in TOKENS)]
            assert not found, (name, found, text)
        assert "\n&gt;" not in text and "\n>" not in text
        if not obj.get("top"):
            assert obj.get("verbatim") is True        # Slack links no bare URL nor @here in it
    assert "∗URGENT1∗" in joined and "∗HACKED6∗" in joined and "&lt;!channel&gt;" in joined


@given(st.text())
def test_escaped_text_has_no_markup_left(text):
    escaped = escape_slack(text)
    assert "<" not in escaped and ">" not in escaped and "\n" not in escaped and "`" not in escaped
    assert not re.search(r"&(?!amp;|lt;|gt;)", escaped)
    for span in SPANS.values():
        assert not span.search(escaped), escaped
