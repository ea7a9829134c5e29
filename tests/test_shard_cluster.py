"""Past one machine, with the real binaries on loopback: two countwatch shards (`countwatch run
--shard K/2`), a second replica of shard 1, a Prometheus per shard federated by a global one,
a 2-node Alertmanager cluster and the fake Slack. The shipped deploy/ configs are used with
test addresses and 1 s intervals.

Checks: every region is watched by exactly one shard (the replicas of a shard alike), the
global Prometheus sees every region, each from one shard, and one stall (a kab/kota of the
replicated shard stops) gives exactly one Slack message once the Alertmanager cluster has
settled: both replicas post the same alert to both nodes, the first node in the cluster
sends, the second finds the send in the gossiped notification log and stays quiet.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import tests.fakes.slack as fake_slack_module
from bench.tree import Tree, TreeServer
from monitor.cli import load_config
from monitor.poll import Shard
from tests.fakes.slack import FakeSlack
from tests.servers import free_port, have_binary, start_alertmanager, start_prometheus, terminate, wait_until

yaml = pytest.importorskip("yaml", reason="PyYAML (the [test] extra) reads the YAML configs")

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SHAPE = (3, 6, 12, 120, 12000)        # provinces, kab/kota, kecamatan, desa, TPS
PEER_TIMEOUT = 5.0                    # Alertmanager's default is 15 s; the test waits for it twice
# Seconds-scale thresholds for a tree that publishes every second. Only the stall rule speaks:
# the frozen kab/kota's own document also stops being re-stamped (stale_source) and its
# province's table shows it standing still (region_stall); those are other alerts, tested
# elsewhere, and would make this test about grouping rather than deduplication.
DETECTION = """
[detection]
stall_prior = "4s"
stall_floor = "3s"
stall_ceiling = "6s"
critical_ceiling = "10m"
disable = ["stale_source", "region_stall"]
"""

pytestmark = [
    pytest.mark.servers,
    pytest.mark.skipif(not (have_binary("prometheus") and have_binary("prometheus-alertmanager")),
                       reason="prometheus / prometheus-alertmanager not installed (make servers)"),
]


def test_shipped_shard_config_is_valid():
    config = load_config(DEPLOY / "countwatch-shard.toml")
    (source,) = config.sources
    assert (source.depth, source.export_depth) == (4, 2)
    assert {r.kind for r in config.alerting.receivers} == {"alertmanager"}
    assert len(config.alerting.routes) == len(config.alerting.receivers) == 2   # every node gets every alert


class Countwatch:
    """`python -m monitor run -c ... --shard K/N` with its own state, log and metrics port."""

    def __init__(self, workdir: Path, name: str, instance: str, shard: str, tree_url: str, am_urls: list[str]):
        workdir.mkdir()
        self.workdir = workdir
        self.port = free_port()
        self.log = workdir / "countwatch.log"
        receivers = "".join(f"""
[[receivers]]
name = "am-{i}"
kind = "alertmanager"
url = "{url}"
resend = "5s"

[[routes]]
match = {{}}
receiver = "am-{i}"
""" for i, url in enumerate(am_urls, 1))
        (workdir / "countwatch.toml").write_text(f"""
[daemon]
state_dir = "{workdir}"
instance = "{instance}"

[metrics]
listen = "127.0.0.1:{self.port}"

[log]
format = "json"
file = "{self.log}"

[[sources]]
name = "kpu"
kind = "sirekap"
url = "{tree_url}"
interval = "1s"
timeout = "2s"
retries = 0
depth = 2
export_depth = 2
concurrency = 2
rate_limit = 0

[alerting]
group_wait = "1s"
{receivers}
{DETECTION}
""")
        self.output = open(workdir / "output.txt", "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "-c", str(workdir / "countwatch.toml"), "--shard", shard],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=self.output, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.name = name

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=3) as response:
            return response.read().decode()

    def exported_regions(self) -> set[str]:
        regions = set()
        for line in self.metrics_text().splitlines():
            if line.startswith("countwatch_stations{"):
                regions.add(line.split('region="', 1)[1].split('"', 1)[0])
        return regions

    def polled_regions(self) -> set[str]:
        lines = [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]
        return {line["region"] for line in lines if line.get("event") == "poll"}

    def diagnostics(self) -> str:
        self.output.flush()
        return f"--- {self.name} ---\n" + "\n".join((self.workdir / "output.txt").read_text(errors="replace")
                                                    .splitlines()[-15:])

    def stop(self) -> None:
        terminate(self.process, timeout=15)
        self.output.close()


def alertmanager_config(url_file: Path, webhook_url: str) -> str:
    """deploy/alertmanager.yml with the fake Slack and short waits: the first notification of
    a group after 1 s; later changes to it (the stall escalating) not within the test."""
    url_file.write_text(webhook_url + "\n")
    config = yaml.safe_load((DEPLOY / "alertmanager.yml").read_text())
    config["route"].update(group_wait="1s", group_interval="10m", repeat_interval="1h")
    for receiver in config["receivers"]:
        for entry in receiver.get("slack_configs", []):
            entry["api_url_file"] = str(url_file)
    return yaml.safe_dump(config)


def shard_prometheus_config(shard: str, targets: list[str]) -> str:
    config = yaml.safe_load((DEPLOY / "prometheus-shard.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["global"]["external_labels"]["shard"] = shard
    # countwatch's own alerts go to Alertmanager through its receivers; the rules' copies of
    # the stall alert would be a second path to Slack, not what is tested here
    config.pop("rule_files")
    config.pop("alerting")
    config["scrape_configs"][0]["static_configs"][0]["targets"] = targets
    return yaml.safe_dump(config)


def global_prometheus_config(targets: list[str]) -> str:
    config = yaml.safe_load((DEPLOY / "prometheus-global.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["scrape_configs"][0]["static_configs"][0]["targets"] = targets
    return yaml.safe_dump(config)


def _accepts_attachments(original):
    def check(payload: dict) -> str | None:
        # Alertmanager's slack_configs send legacy `attachments` without top-level text, which
        # Slack accepts; the fake otherwise holds messages to today's text/blocks rules.
        if payload.get("attachments") and not payload.get("text") and not payload.get("blocks"):
            return None
        return original(payload)
    return check


def test_shards_replica_federation_and_one_slack_message_per_stall(tmp_path, monkeypatch):
    monkeypatch.setattr(fake_slack_module, "_check_message", _accepts_attachments(fake_slack_module._check_message))
    tree = Tree.generate(shape=SHAPE, progress=0.3)
    regions = set(tree.codes(2))
    # the stalled kab/kota: of the replicated shard, in a province that keeps moving without it
    frozen = next(code for code in tree.codes(2) if len(code) == 4 and Shard(1, 2).owns(code)
                  and len(tree.regions[code[:2]].children) > 1)
    closers = []
    try:
        tree_server = TreeServer(tree, advance_every=1.0, advance_fraction=0.004).start()
        closers.append(tree_server.stop)
        slack = FakeSlack()
        slack.start()
        closers.append(slack.stop)

        am_config = alertmanager_config(tmp_path / "slack_url", slack.webhook_url)
        cluster_args = [f"--cluster.peer-timeout={PEER_TIMEOUT:g}s"]
        am1 = start_alertmanager(am_config, cluster_listen="auto", extra_args=cluster_args)
        closers.append(am1.stop)
        am2 = start_alertmanager(am_config, cluster_listen="auto", peers=[am1.cluster_address],
                                 extra_args=cluster_args)
        closers.append(am2.stop)

        am_urls = [am1.url, am2.url]
        shard1a = Countwatch(tmp_path / "shard1a", "shard 1/2 replica a", "kpu-shard-1", "1/2", tree_server.url("0"), am_urls)
        shard1b = Countwatch(tmp_path / "shard1b", "shard 1/2 replica b", "kpu-shard-1", "1/2", tree_server.url("0"), am_urls)
        shard2 = Countwatch(tmp_path / "shard2", "shard 2/2", "kpu-shard-2", "2/2", tree_server.url("0"), am_urls)
        instances = [shard1a, shard1b, shard2]
        closers.extend(instance.stop for instance in instances)

        def diagnostics() -> str:
            return "\n".join(instance.diagnostics() for instance in instances)

        leaf1 = start_prometheus(shard_prometheus_config("1/2", [f"127.0.0.1:{shard1a.port}",
                                                                 f"127.0.0.1:{shard1b.port}"]))
        closers.append(leaf1.stop)
        leaf2 = start_prometheus(shard_prometheus_config("2/2", [f"127.0.0.1:{shard2.port}"]))
        closers.append(leaf2.stop)
        world = start_prometheus(global_prometheus_config([f"127.0.0.1:{leaf1.port}", f"127.0.0.1:{leaf2.port}"]))
        closers.append(world.stop)

        # -- every region is watched by exactly one shard --
        wait_until(lambda: all(i.exported_regions() for i in instances), 60, what="every instance exporting",
                   diagnostics=diagnostics)
        one, also_one, two = (i.exported_regions() for i in instances)
        assert one == also_one                                       # replicas watch the same regions
        assert one and two and not one & two and one | two == regions
        polled = [i.polled_regions() for i in instances]
        assert polled[0] == polled[1] == one and polled[2] == two    # poll log lines: the same split

        # -- the global Prometheus sees every region, each from one shard --
        def global_regions():
            series = world.query('countwatch_stations{source="kpu"}')
            seen = {s["metric"]["region"] for s in series}
            return series if seen == regions and len(series) == len(one) * 2 + len(two) else None

        series = world.wait_until(global_regions, timeout=60, what="every region in the global Prometheus")
        shards_of = {}
        for s in series:
            shards_of.setdefault(s["metric"]["region"], set()).add(s["metric"]["shard"])
        assert all(len(shards) == 1 for shards in shards_of.values())
        assert {r for r, shards in shards_of.items() if shards == {"1/2"}} == one
        assert {s["metric"]["instance"] for s in series if s["metric"]["shard"] == "1/2"} == {
            f"127.0.0.1:{shard1a.port}", f"127.0.0.1:{shard1b.port}"}   # both replicas, honor_labels kept them

        # -- the Alertmanager cluster has settled: two members, gossip ready --
        def settled():
            statuses = [am.status()["cluster"] for am in (am1, am2)]
            return all(s["status"] == "ready" and len(s["peers"]) == 2 for s in statuses)

        am2.wait_until(settled, timeout=60, what="a settled 2-node Alertmanager cluster")
        assert not slack.requests                                    # a healthy count: nothing to say
        # the shard Prometheuses' copy of a stall alert goes nowhere (deploy/alertmanager.yml):
        # countwatch tells it; were it routed to Slack, the count below would be two
        am1.post_alerts([{"labels": {"alertname": "CountwatchCountStalled", "source": "kpu", "region": frozen,
                                     "severity": "warning", "job": "countwatch"},
                          "annotations": {"summary": "from the rules"}}])

        # -- one stall, one Slack message --
        tree.freeze(frozen)
        wait_until(lambda: slack.accepted("webhook"), 60, what="the stall at the fake Slack",
                   diagnostics=lambda: diagnostics() + "\n" + am1.log_text(10) + "\n" + am2.log_text(10))
        # the second node notifies only after its position's wait, and only if the gossiped
        # notification log does not show the first node's send: give it that wait twice over
        time.sleep(2 * PEER_TIMEOUT + 2)
        messages = slack.accepted("webhook")
        assert len(messages) == 1, [m.payload for m in messages]
        assert len(slack.requests) == 1
        (attachment,) = messages[0].payload["attachments"]
        assert attachment["title"].startswith(f"[FIRING] kpu region {frozen}:")
        # warning, or already critical when the machine is slow: the severity is not the point
        assert "* stall:" in attachment["text"]
        # both nodes hold the alert (each replica posted it to each node), as one alert
        for am in (am1, am2):
            stalls = [a for a in am.alerts(active=True) if a["labels"]["alertname"] == "stall"]
            assert {a["labels"]["region"] for a in stalls} == {frozen}
            assert {a["labels"]["instance"] for a in stalls} == {"kpu-shard-1"}
        for instance in instances:
            assert instance.process.poll() is None, instance.diagnostics()
    finally:
        for close in reversed(closers):
            close()
