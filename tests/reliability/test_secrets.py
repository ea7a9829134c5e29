"""Secrets never leave: a full `countwatch run` at debug level with a Slack webhook URL, a Slack
bot token, a basic-auth password for /metrics and a source header token, through an incident,
failing and rate-limited Slack calls, a receiver disabled by a bad token, a SIGHUP with a bad
config and a start that dies with a traceback. Then every output is scanned for each secret
and for the basic-auth header that carries one: the log file, the process's stdout/stderr,
/metrics, the recording, every row and byte of the state database (the outbox), and the
timeline report rebuilt from the log."""
from __future__ import annotations

import base64
import io
import signal
import socket
import sqlite3
import urllib.request
from datetime import datetime, timezone

from monitor.clock import ScenarioClock
from monitor.logs import configure_logging
from monitor.simulator import LiveScenario, SimulatorServer
from monitor.timeline import write_report
from tests.fakes import FakeSlack
from tests.reliability.procs import DaemonProcess

PASSWORD = "pa55-metrics-3f9c1b7e"
KPU_TOKEN = "kpu-bearer-77d0a51c9e"


def _config(tmp_path, feed_url: str, api_url: str, metrics_port: int) -> str:
    return f"""
[daemon]
state_dir = "{tmp_path / 'state'}"
instance = "secret-test"
[metrics]
listen = "127.0.0.1:{metrics_port}"
basic_auth_user = "prometheus"
basic_auth_password = "${{METRICS_PASSWORD}}"
[log]
format = "json"
level = "debug"
file = "{tmp_path / 'countwatch.log'}"

[[sources]]
name = "kpu"
kind = "sirekap"
url = "{feed_url}"
region = "32"
interval = "1s"
timeout = "1s"
retries = 0
headers = {{ Authorization = "Bearer ${{KPU_TOKEN}}" }}

[detection]
stall_prior = "4s"
stall_floor = "3s"
stall_ceiling = "6s"
critical_ceiling = "30s"
max_votes_per_station = 600

[alerting]
group_wait = "0s"
group_interval = "1s"
retry_initial = "300ms"
retry_max = "1s"

[[receivers]]
name = "oncall"
kind = "slack_webhook"
url = "${{SLACK_WEBHOOK_URL}}"

[[receivers]]
name = "ops"
kind = "slack_bot"
token = "${{SLACK_BOT_TOKEN}}"
channel = "#pemilu-ops"
api_url = "{api_url}"
"""


def _post(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(url, method="POST", data=b""), timeout=5).read()


def test_no_secret_in_any_output_of_a_full_run(tmp_path):
    configure_logging("json", stream=io.StringIO(), level="warning")     # the simulator's request lines
    scenario = LiveScenario(start=datetime.now(timezone.utc))
    with SimulatorServer(scenario, ScenarioClock(scenario.start, 1.0)) as server, FakeSlack() as slack:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            metrics_port = probe.getsockname()[1]
        config = tmp_path / "countwatch.toml"
        config.write_text(_config(tmp_path, server.url_for("/pemilu/hhcw/pkwkp/32.json"), slack.api_url, metrics_port))
        env = {"SLACK_WEBHOOK_URL": slack.webhook_url, "SLACK_BOT_TOKEN": slack.token,
               "METRICS_PASSWORD": PASSWORD, "KPU_TOKEN": KPU_TOKEN}
        daemon = DaemonProcess(config, tmp_path / "countwatch.log", env=env,
                               args=("--record", str(tmp_path / "polls.jsonl")))
        auth = "Basic " + base64.b64encode(f"prometheus:{PASSWORD}".encode()).decode()
        try:
            slack.fail_next("500", times=2, endpoint="webhook")
            slack.fail_next("429", retry_after=1, endpoint="chat.postMessage")
            daemon.start()
            daemon.wait_for(lambda: len(daemon.events("poll", result="ok")) >= 5, what="healthy polls")
            _post(server.base_url + "/_control/freeze")
            daemon.wait_for(lambda: daemon.events("notification.sent", receiver="oncall")
                            and daemon.events("notification.sent", receiver="ops"), what="both receivers told")
            slack.fail_next("invalid_token", endpoint="chat.postMessage")
            slack.fail_next("invalid_token", endpoint="chat.update")
            _post(server.base_url + "/_control/outage?mode=503")
            daemon.wait_for(lambda: daemon.events("receiver.disabled"), timeout=40, what="the bot disabled")
            _post(server.base_url + "/_control/ok")
            _post(server.base_url + "/_control/resume")
            daemon.wait_for(lambda: daemon.events("notification.sent", receiver="oncall", reason="resolved")
                            or [l for l in daemon.events("notification.sent", receiver="oncall")
                                if l.get("status") == "resolved"], timeout=40, what="the resolution sent")
            request = urllib.request.Request(f"http://127.0.0.1:{metrics_port}/metrics", headers={"Authorization": auth})
            metrics = urllib.request.urlopen(request, timeout=5).read().decode()
            config.write_text(config.read_text() + "\n[bogus]\nkey = 1\n")
            daemon.signal(signal.SIGHUP)
            daemon.wait_for(lambda: daemon.events("config.reload_failed"), what="the bad reload")
            assert daemon.stop() == 0
            # a second start on the same (now free) port, with the port taken: exit 2 naming the key
            with socket.socket() as squatter:
                squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # past TIME_WAIT
                squatter.bind(("127.0.0.1", metrics_port))
                squatter.listen(1)
                config.write_text(config.read_text().replace("\n[bogus]\nkey = 1\n", ""))
                daemon.start()
                assert daemon.process.wait(30) == 2
        finally:
            daemon.close()

    output = daemon.output.read_text(errors="replace")
    assert "[metrics] listen" in output and "Address already in use" in output      # the failed start said why
    logs = daemon.log_file.read_text(errors="replace")
    assert '"receiver.disabled"' in logs and '"notification.retry"' in logs and '"level": "debug"' in logs
    assert "countwatch_up" in metrics
    report = write_report([daemon.log_file], tmp_path / "report")
    reports = "".join(p.read_text(errors="replace") for p in (tmp_path / "report").glob("report.*"))
    assert report.endswith("report.md") and "kpu" in reports
    database = b"".join(p.read_bytes() for p in (tmp_path / "state").glob("countwatch.db*"))
    with sqlite3.connect(tmp_path / "state" / "countwatch.db") as db:
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        rows = repr([db.execute(f"SELECT * FROM {name}").fetchall() for name in tables])
        outbox = db.execute("SELECT receiver, count(*) FROM alert_outbox GROUP BY receiver").fetchall()
    assert dict(outbox).keys() == {"oncall", "ops"}                              # the outbox was written
    recording = (tmp_path / "polls.jsonl").read_text()
    secrets = {"webhook URL": env["SLACK_WEBHOOK_URL"], "webhook path secret": slack.webhook_secret,
               "bot token": env["SLACK_BOT_TOKEN"], "metrics password": PASSWORD, "basic-auth header": auth.split()[1],
               "source header token": KPU_TOKEN}
    for what, secret in secrets.items():
        for where, text in (("log file", logs), ("stdout/stderr and tracebacks", output), ("/metrics", metrics),
                            ("timeline report", reports), ("state database rows", rows), ("recording", recording)):
            assert secret not in text, f"the {what} leaked into the {where}"
        assert secret.encode() not in database, f"the {what} leaked into the state database file"


def test_a_secret_nested_in_a_log_field_is_masked_too():
    """The JSON renderer writes a str subclass's raw value: a Secret inside a dict or a list
    (headers, a receiver's settings) must be masked before it, like a top-level one."""
    import structlog

    from monitor.secret import Secret

    buffer = io.StringIO()
    configure_logging("json", stream=buffer, level="info")
    structlog.get_logger("test").info("settings", token=Secret(KPU_TOKEN), headers={"Authorization": Secret(KPU_TOKEN)},
                                      tokens=[Secret(PASSWORD)], plain={"a": [1, 2]})
    line = buffer.getvalue()
    assert KPU_TOKEN not in line and PASSWORD not in line
    assert '"headers": {"Authorization": "***"}' in line and '"plain": {"a": [1, 2]}' in line
