"""The fake Slack as a process of its own, for a person trying countwatch (docs/alerting.md):
    python -m tests.fakes.slack_recorder var/slack.jsonl     # prints the webhook URL
    SLACK_WEBHOOK_URL=<that URL> make demo
Every message the fake accepts is appended to the file as JSON, one per line."""
from __future__ import annotations

import json
import threading

from .slack import FakeSlack


def main() -> None:
    """`python -m tests.fakes.slack_recorder OUT.jsonl`: a fake Slack on loopback until SIGINT/SIGTERM;
    prints its webhook URL, writes each accepted message to OUT.jsonl as it arrives."""
    import signal
    import sys

    out = open(sys.argv[1], "a", encoding="utf-8")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with FakeSlack() as slack:
        print(slack.webhook_url, flush=True)
        written = 0
        while not stop.wait(0.2):
            accepted = slack.accepted()
            for request in accepted[written:]:
                out.write(json.dumps(request.payload, ensure_ascii=False) + "\n")
            out.flush()
            written = len(accepted)


if __name__ == "__main__":
    main()
