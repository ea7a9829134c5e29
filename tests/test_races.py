"""An election from one source definition: the daemon discovers the races from KPU's race
and region documents (a generated Pilkada on loopback: bench/tree.py's Election, one
province and four kab/kota = 5 races), names each race a source of its own, routes each by
its name (globs) and, when one race's publisher stops, that race alone alerts."""
from __future__ import annotations

import io
import json
import time

import pytest

from bench.tree import Election, TreeServer
from monitor import races
from monitor.cli import load_config, main, parse_config
from monitor.daemon import Daemon
from monitor.races import DiscoveryError, Race, RaceCache, display_name
from tests.fakes.slack import FakeSlack
from tests.feed import wait_until

NAMES = {"pilkada2024-pkwkp-32": "Pilgub Jawa Barat 2024", "pilkada2024-pkwkk-3201": "Pilbup Bogor 2024",
         "pilkada2024-pkwkk-3202": "Pilbup Sukabumi 2024", "pilkada2024-pkwkk-3203": "Pilbup Cianjur 2024",
         "pilkada2024-pkwkk-3204": "Pilbup Bandung 2024"}
# seconds-scale stall thresholds for a count published every second; only the stall rule
# speaks (the frozen race's documents also stop being re-stamped: stale_source, tested elsewhere)
DETECTION = """
[detection]
stall_prior = "4s"
stall_floor = "3s"
stall_ceiling = "6s"
critical_ceiling = "10m"
disable = ["stale_source", "region_stall"]
"""


def _election_toml(tmp_path, url: str, governors: str, regents: str, bandung: str, extra: str = "",
                   depth: int = 4) -> str:
    return f"""
[daemon]
state_dir = "{tmp_path / 'state'}"
instance = "races-test"
[metrics]
listen = "127.0.0.1:0"
[[sources]]
kind = "sirekap"
election = "pilkada2024"
url = "{url}"
races = ["pkwkp", "pkwkk"]
depth = {depth}
interval = "1s"
timeout = "2s"
retries = 0
concurrency = 2
rate_limit = 0
{extra}
[alerting]
group_wait = "1s"
[[receivers]]
name = "governors"
kind = "slack_webhook"
url = "{governors}"
[[receivers]]
name = "regents"
kind = "slack_webhook"
url = "{regents}"
[[receivers]]
name = "bandung"
kind = "slack_webhook"
url = "{bandung}"
[[routes]]
match = {{ source = "pilkada2024-pkwkp-*" }}
receiver = "governors"
[[routes]]
match = {{ source = "pilkada2024-pkwkk-*", severity = ["warning", "critical"] }}
receiver = "regents"
[[routes]]
match = {{ source = "pilkada2024-pkwkk-3204" }}
receiver = "bandung"
{DETECTION}
"""


@pytest.fixture
def election():
    # ~500 TPS per kab/kota, 10 TPS per second in all: every race's top moves every second
    tree = Election.generate_election(shape=(1, 4, 8, 16, 2000), provinces=["32"], progress=0.2)
    with TreeServer(tree, advance_every=1.0, advance_fraction=0.005) as server:
        yield tree, server


def test_display_names():
    assert display_name("pkwkp", "JAWA BARAT", "pilkada2024") == "Pilgub Jawa Barat 2024"
    assert display_name("pkwkk", "BANDUNG", "pilkada2024") == "Pilbup Bandung 2024"
    assert display_name("pkwkk", "KOTA BANDUNG", "pilkada2024") == "Pilwalkot Bandung 2024"


def test_check_config_stays_offline_and_accepts_routes_to_races_named_later(tmp_path, capsys):
    path = tmp_path / "countwatch.toml"
    # port 9 (discard): nothing answers there, and check-config must not ask
    path.write_text(_election_toml(tmp_path, "http://127.0.0.1:9/pilkada", "http://127.0.0.1:9/g",
                                   "http://127.0.0.1:9/r", "http://127.0.0.1:9/b"))
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "pkwkp/pkwkk races of pilkada2024" in out and "discovered at start" in out
    config = load_config(path)
    (definition,) = config.sources
    assert (definition.name, definition.election, definition.races) == ("pilkada2024", "pilkada2024",
                                                                        ("pkwkp", "pkwkk"))
    # an exact name no election can expand to is still refused
    bad = _election_toml(tmp_path, "http://127.0.0.1:9/pilkada", "http://127.0.0.1:9/g", "http://127.0.0.1:9/r",
                         "http://127.0.0.1:9/b").replace('source = "pilkada2024-pkwkk-3204"',
                                                         'source = "pilkada2019-pkwkk-3204"')
    path.write_text(bad)
    assert main(["check-config", str(path)]) == 2
    assert "no source named 'pilkada2019-pkwkk-3204'" in capsys.readouterr().err


def test_config_problems_of_an_election_definition():
    from monitor.configtools import ConfigError

    with pytest.raises(ConfigError) as error:
        parse_config({"sources": [{"kind": "json", "election": "pilkada-2024", "url": "http://x.example/p",
                                   "races": ["pkwkp", "dprd"], "regions": [32], "region": "32",
                                   "mapping": {"reported": "a", "total": "b"}}]})
    text = str(error.value)
    for expected in ("election: must be letters and digits", "kind: an election definition reads Sirekap",
                     "region: not used with `election`", "unknown race kind 'dprd'",
                     "region codes are BPS codes as strings"):
        assert expected in text


def test_discovery_names_filters_and_the_races_verb(tmp_path, election, capsys):
    tree, server = election
    config = load_config_text(tmp_path, _election_toml(tmp_path, server.base_url + "/pilkada", *["http://127.0.0.1:9/x"] * 3))
    expanded, found = races.expand(config)
    assert {s.name: s.display_name for s in expanded.sources} == NAMES
    by_name = {s.name: s for s in expanded.sources}
    governor, bandung = by_name["pilkada2024-pkwkp-32"], by_name["pilkada2024-pkwkk-3204"]
    assert governor.url == server.base_url + "/pilkada/hhcw/pkwkp/32.json"
    assert bandung.url == server.base_url + "/pilkada/hhcw/pkwkk/32/3204.json"
    assert (governor.region, governor.depth, governor.export_depth) == ("32", 3, 1)   # depth 4 from national
    assert (bandung.region, bandung.depth, bandung.export_depth) == ("3204", 2, 0)
    assert [r.candidates for r in found["pilkada2024"]] == [3] * 5

    filtered = load_config_text(tmp_path, _election_toml(tmp_path, server.base_url + "/pilkada",
                                                         *["http://127.0.0.1:9/x"] * 3, extra='regions = ["3204"]'))
    assert [s.name for s in races.expand(filtered)[0].sources] == ["pilkada2024-pkwkp-32", "pilkada2024-pkwkk-3204"]

    path = tmp_path / "election.toml"
    path.write_text(_election_toml(tmp_path, server.base_url + "/pilkada", *["http://127.0.0.1:9/x"] * 3))
    assert main(["races", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert "pilkada2024: 5 races of pilkada2024 (1 pkwkp, 4 pkwkk)" in out
    for name, display in NAMES.items():
        assert any(line.startswith(name) and display in line for line in out.splitlines())
    # the governor's pass: its tree down to the desa; each regent's: the kab/kota down to the desa
    documents = {line.split()[0]: int(line.split()[-2]) for line in out.splitlines() if line.startswith("pilkada2024-")}
    assert documents["pilkada2024-pkwkk-3204"] == 1 + len(tree.regions["3204"].children) + round(
        tree.regions["3204"].total * races.DOCUMENTS_PER_TPS[4])
    assert "a full pass:" in out and "no rate limit set" in out


def load_config_text(tmp_path, text: str):
    path = tmp_path / f"c{time.monotonic_ns()}.toml"
    path.write_text(text)
    return load_config(path)


def test_discovery_falls_back_to_the_last_saved_expansion(tmp_path):
    config = load_config_text(tmp_path, _election_toml(tmp_path, "http://127.0.0.1:9/pilkada", *["http://127.0.0.1:9/x"] * 3))
    with pytest.raises(DiscoveryError, match="could not be discovered"):
        races.expand(config)
    cache = RaceCache(tmp_path / "state" / "countwatch.db")
    try:
        cache.save("pilkada2024", [Race("pilkada2024", "pkwkk", "3204", "32", "Pilbup Bandung 2024", 3)])
        expanded, _ = races.expand(config, cache=cache)
    finally:
        cache.close()
    assert [(s.name, s.display_name) for s in expanded.sources] == [("pilkada2024-pkwkk-3204", "Pilbup Bandung 2024")]


def test_the_daemon_watches_each_race_and_a_stall_in_one_alerts_alone(tmp_path, election):
    tree, server = election
    with FakeSlack() as governors, FakeSlack() as regents, FakeSlack() as bandung:
        # depth 2 from the national level: the governor's race to its kab/kota, each regent's
        # race its own document (small series stall by chance at these second-scale thresholds)
        config = load_config_text(tmp_path, _election_toml(tmp_path, server.base_url + "/pilkada", governors.webhook_url,
                                                           regents.webhook_url, bandung.webhook_url, depth=2))
        daemon = Daemon(config, serve_http=False)
        try:
            assert [w.source.name for w in daemon.watchers] == list(NAMES)
            assert list(daemon._jobs()) == ["pilkada2024"]            # one job walks the five races in turn
            daemon.start()
            assert wait_until(lambda: all(w.passes >= 6 for w in daemon.watchers), 30)
            assert not [e for e in daemon.events if e.state == "firing"]     # a moving count: quiet
            tree.freeze_race("pkwkk", "3204")
            assert wait_until(lambda: bandung.accepted("webhook"), 40)
            time.sleep(3)                      # what else would have been told meanwhile
            firing = [e for e in daemon.events if e.state == "firing"]
        finally:
            daemon.stop()
        assert {(e.source, e.rule) for e in firing} == {("pilkada2024-pkwkk-3204", "stall")}
        assert {e.region for e in firing} == {"3204"}
        assert regents.accepted("webhook") and not governors.requests
        assert all("3204" in r.text for r in bandung.accepted("webhook"))
        # on-call reads the race by the name people know, before its source's code
        assert all("Pilbup Bandung 2024 · " in r.text for r in bandung.accepted("webhook"))
    cache = RaceCache(tmp_path / "state" / "countwatch.db")
    try:
        assert {r.name: r.display_name for r in cache.load("pilkada2024")} == NAMES
    finally:
        cache.close()


def test_shards_take_regent_races_whole_and_split_governor_races_at_the_kab_kota(tmp_path, election):
    from monitor.walker import Shard

    tree, server = election
    text = _election_toml(tmp_path, server.base_url + "/pilkada", *["http://127.0.0.1:9/x"] * 3)
    watched = []
    for index in (1, 2):
        shard = Shard(index, 2)
        own = text.replace(str(tmp_path / "state"), str(tmp_path / f"state{index}"))    # two machines
        daemon = Daemon(load_config_text(tmp_path, own), serve_http=False, shard=shard)
        try:
            names = [w.source.name for w in daemon.watchers]
            governor = daemon.watchers[0]
            assert governor.source.name == "pilkada2024-pkwkp-32" and governor.walker.split == 1
            for watcher in daemon.watchers[1:]:
                assert shard.owns(watcher.source.region) and watcher.walker.split == 0
            governor.poll_once()
            kabs = {r for r in governor.states if len(r) == 4}
        finally:
            daemon.stop()
        assert {k for k in kabs if shard.owns(k)} == {k for k in tree.regions["32"].children if shard.owns(k)}
        assert not {r for r in governor.states if len(r) > 4 and not shard.owns(r[:4])}   # nothing below others'
        watched.append(names[1:])
    assert sorted(watched[0] + watched[1]) == sorted(n for n in NAMES if "pkwkk" in n)     # each once


def test_every_dashboard_has_a_race_variable_that_the_source_choices_follow():
    import re
    from pathlib import Path

    for path in sorted((Path(__file__).resolve().parent.parent / "grafana/dashboards").glob("*.json")):
        variables = json.loads(path.read_text())["templating"]["list"]
        names = [v["name"] for v in variables]
        assert names.index("race") < names.index("source"), path.name
        race = variables[names.index("race")]
        pattern = re.compile(race["regex"].strip("/"))
        assert [m.group(1) for name in NAMES if (m := pattern.match(name))] == \
            ["pilkada2024-pkwkp"] + ["pilkada2024-pkwkk"] * 4
        assert pattern.match("kpu-ppwp") is None and race["allValue"] == ".*"
        assert "${race}" in variables[names.index("source")]["query"]["query"], path.name
