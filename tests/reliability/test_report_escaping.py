"""`countwatch timeline` on a log whose fields were written by an attacker (issue #14, item 16):
a `state` that closes the class attribute and adds `onmouseover=`, tags in a summary, an
instance and a receiver. The HTML page is read back with a real parser (html.parser) and may
hold only the tags and attributes the report itself writes; the Markdown report holds no raw
HTML at all (Markdown passes it through to whoever renders it)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

from tests.reliability.procs import ROOT

NIGHT = ROOT / "tests" / "fixtures" / "logs" / "night-a.log"
ATTRIBUTE = 'x" onmouseover="alert(1)" data-x="'
TAGS = "<img src=x onerror=alert(2)><script>alert(3)</script>"
# the report's own vocabulary: anything else in the page came from a log line
PAGE_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "ul", "li", "p", "em", "img",
             "table", "thead", "tbody", "tr", "th", "td"}
PAGE_ATTRIBUTES = {"charset", "class", "src", "alt"}


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _hostile_log(tmp_path: Path) -> Path:
    lines = NIGHT.read_text(encoding="utf-8").splitlines()
    firing = next(json.loads(l) for l in lines if '"detector.event"' in l and '"firing"' in l)
    sent = next(json.loads(l) for l in lines if '"notification.sent"' in l)
    extra = [
        {**firing, "state": ATTRIBUTE, "summary": TAGS},
        {**firing, "summary": TAGS, "instance": "cw-a"},
        {**sent, "receiver": "<b onclick=alert(4)>oncall</b>", "error": TAGS},
        {"event": "daemon.started", "level": "info", "timestamp": firing["timestamp"],
         "instance": "cw-<i>b</i>' onfocus='alert(5)"},
    ]
    path = tmp_path / "hostile.log"
    path.write_text("\n".join(lines + [json.dumps(e) for e in extra]) + "\n", encoding="utf-8")
    return path


def _timeline(log: Path, fmt: str) -> str:
    result = subprocess.run([sys.executable, "-m", "monitor", "timeline", str(log), "--format", fmt], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_html_report_holds_only_its_own_tags_and_attributes(tmp_path):
    page = Page()
    page.feed(_timeline(_hostile_log(tmp_path), "html"))
    page.close()
    assert {tag for tag, _ in page.tags} <= PAGE_TAGS, {tag for tag, _ in page.tags} - PAGE_TAGS
    attributes = {name for _, attrs in page.tags for name in attrs}
    assert attributes <= PAGE_ATTRIBUTES, attributes - PAGE_ATTRIBUTES
    classes = {attrs["class"] for tag, attrs in page.tags if "class" in attrs}
    assert all(re.fullmatch(r"kind-[a-z_]+", css) for css in classes), classes
    assert "kind-other" in classes                  # the made-up state, shown as text, styled as nothing
    text = "".join(page.text)
    # what the attacker wrote is on the page as text, for the reviewer to see
    assert TAGS in text and ATTRIBUTE in text and "<b onclick=alert(4)>oncall</b>" in text


def test_the_markdown_report_holds_no_raw_html(tmp_path):
    report = _timeline(_hostile_log(tmp_path), "md")
    assert "<" not in report and ">" not in report.replace("→", "")
    assert "&lt;img src=x onerror=alert(2)&gt;&lt;script&gt;" in report
    assert "&lt;b onclick=alert(4)&gt;oncall&lt;/b&gt;" in report
