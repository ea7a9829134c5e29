"""kill -9 at the worst moments: a child process queues a notification and SIGKILLs itself;
the restarted pipeline must send exactly what was pending, once."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry

from alerts.pipeline import AlertPipeline
from monitor.clock import ManualClock
from monitor.metrics import Metrics
from tests.fakes import FakeSlack
from tests.fakes.events import NIGHT, config

ROOT = Path(__file__).resolve().parent.parent

CHILD = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from prometheus_client import CollectorRegistry
    from alerts.pipeline import AlertPipeline
    from monitor.clock import ManualClock
    from monitor.metrics import Metrics
    from tests.fakes.events import NIGHT, config, stall

    state_dir, moment = Path(sys.argv[1]), sys.argv[2]
    cfg = config(receivers=[{"name": "oncall", "kind": "slack_webhook", "url": "${HOOK_URL}"}],
                 state_dir=str(state_dir), environ=dict(os.environ))
    pipeline = AlertPipeline(cfg, Metrics(CollectorRegistry()), ManualClock(NIGHT), state_dir / "countwatch.db")
    if moment == "after_send":
        # the one window that can duplicate: Slack has the message, the outbox does not know yet
        notifier = pipeline.notifiers["oncall"]
        real = notifier.notify
        def notify_then_die(notification):
            real(notification)
            os.kill(os.getpid(), signal.SIGKILL)
        notifier.notify = notify_then_die
    pipeline.handle([stall()])        # group_wait 0s: written to the outbox now; no worker runs
    assert len(pipeline.outbox.pending()) == 1
    if moment == "after_send":
        pipeline.tick()
    os.kill(os.getpid(), signal.SIGKILL)
""")


def run_child(tmp_path: Path, slack: FakeSlack, moment: str) -> subprocess.CompletedProcess:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "HOOK_URL": slack.webhook_url, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(script), str(tmp_path), moment], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def restart(tmp_path: Path, slack: FakeSlack, minutes: int) -> AlertPipeline:
    cfg = config(receivers=[{"name": "oncall", "kind": "slack_webhook", "url": "${HOOK_URL}"}],
                 state_dir=str(tmp_path), environ={"HOOK_URL": slack.webhook_url})
    clock = ManualClock(NIGHT + timedelta(minutes=minutes))
    return AlertPipeline(cfg, Metrics(CollectorRegistry()), clock, tmp_path / "countwatch.db")


def test_kill_after_queueing_before_sending_then_restart_sends_exactly_once(tmp_path, slack):
    child = run_child(tmp_path, slack, "before_send")
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert slack.requests == []                       # it died with the notification only queued

    for minutes in (1, 2):                            # two restarts: the second finds nothing to send
        pipeline = restart(tmp_path, slack, minutes)
        pipeline.tick()
        pipeline.tick()
        rows = pipeline.records()["outbox"]
        pipeline.stop()
    assert [(r["status"], r["possible_duplicate"]) for r in rows] == [("sent", 0)]
    assert [r.notification_id for r in slack.accepted("webhook")] == [rows[0]["id"]]
    assert len(slack.requests) == 1


def test_kill_between_send_and_record_gives_at_most_one_marked_duplicate(tmp_path, slack):
    child = run_child(tmp_path, slack, "after_send")
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert len(slack.accepted("webhook")) == 1

    for minutes in (1, 2):
        pipeline = restart(tmp_path, slack, minutes)
        pipeline.tick()
        pipeline.stop()
    sent = slack.accepted("webhook")
    assert len(sent) == 2                             # exactly one duplicate, never more
    assert sent[0].notification_id == sent[1].notification_id   # same idempotency key
    assert "possible duplicate" in json.dumps(sent[1].payload["blocks"])
    assert "possible duplicate" not in json.dumps(sent[0].payload["blocks"])
