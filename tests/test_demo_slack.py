"""`countwatch demo` with Slack on, pointed at the fake Slack on loopback (issue 13): what on-call
reads agrees with itself and with the review. One incident id from Slack to the console to the
report and back (`timeline --incident`), region names in Slack and on the chart, reminders
re-rendered, an outage's length the same in its resolution and in the report."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from monitor.wording import duration
from tests.fakes.slack import render_message

ID = re.compile(r"incident ([0-9a-f]{12})")


def test_the_demo_with_slack_on_tells_one_consistent_story(tmp_path, slack):
    out = tmp_path / "demo"
    env = {**os.environ, "SLACK_WEBHOOK_URL": slack.webhook_url}
    run = subprocess.run([sys.executable, "-m", "monitor", "demo", "--out", str(out), "--metrics-listen",
                          "127.0.0.1:0"], capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    console = run.stdout
    assert "alerts:    the console (below) and Slack" in console

    messages = [r.payload for r in slack.accepted("webhook")]
    assert len(messages) >= 10
    texts = [render_message(m) for m in messages]
    slack_ids = {ID.search(m["text"]).group(1) for m in messages}          # the fallback text carries it
    assert all(ID.search(t) for t in texts)                                  # and so do the blocks
    console_ids = set(ID.findall("\n".join(line for line in console.splitlines() if line.startswith("["))))
    assert slack_ids == console_ids

    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    reported = {i for incident in report["incidents"] for i in incident["alert_ids"]}
    assert slack_ids <= reported, slack_ids - reported
    assert "Jawa Barat (32)" in "\n".join(texts)
    assert "kpu-jabar: Jawa Barat (32)" in report["chart"]["titles"]

    # a reminder says how things stand now, not what was news hours before
    reminders = [t for t in texts if "Still open after" in t]
    assert reminders and not any("data is now" in t.split("\n")[0] for t in reminders)

    # the outage: its resolution and the report measure the same span
    for incident in (i for i in report["incidents"] if i["rules"] == ["outage"]):
        said = [line for t in texts for line in t.splitlines()
                if f"{incident['source']}/{incident['region']} answers again since" in line]
        assert said, incident["region"]
        assert all(f"after {duration(incident['length_seconds'])} of failures" in line for line in said), \
            (said, incident["length_seconds"])

    # from Slack to the review: the incident the first stall message names
    stall_id = next(ID.search(t).group(1) for t in texts if "No new polling stations at kpu-jabar/32" in t)
    found = subprocess.run([sys.executable, "-m", "monitor", "timeline", str(out / "countwatch.log"), "--incident",
                            stall_id, "--format", "json"], capture_output=True, text=True, timeout=120)
    assert found.returncode == 0, found.stderr
    # one notification group can cover several series (a busy run may group another region's
    # stoppage with it): each is a review incident carrying the same id, one of them kpu-jabar/32
    incidents = json.loads(found.stdout)["incidents"]
    assert incidents and all(stall_id in i["alert_ids"] for i in incidents), incidents
    ours = [i for i in incidents if (i["source"], i["region"]) == ("kpu-jabar", "32")]
    assert len(ours) == 1, [(i["source"], i["region"], i["rules"]) for i in incidents]
    assert "stall" in ours[0]["rules"] and ours[0]["notified"] is not None
