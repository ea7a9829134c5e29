"""Grafana provisioning, docker-compose.yml and the Dockerfile, checked statically (there is
no Grafana server and no Docker engine here): every file they name exists, the paths inside the
containers line up with the mounts, and the addresses agree with prometheus.yml and countwatch's
config, which is validated by countwatch's own config schema."""
from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path, PurePosixPath

import pytest

from monitor.cli import parse_config
from tests.test_grafana_dashboards import DATASOURCE_UID, DASHBOARDS_DIR, load_dashboards

yaml = pytest.importorskip("yaml", reason="PyYAML (the [test] extra) reads the YAML configs")

ROOT = Path(__file__).resolve().parent.parent
PROVISIONING = ROOT / "grafana" / "provisioning"
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
PROMETHEUS = yaml.safe_load((ROOT / "prometheus.yml").read_text())
ALERTMANAGER = yaml.safe_load((ROOT / "alerts" / "alertmanager.yml").read_text())


def datasources() -> list[dict]:
    found = []
    for path in sorted((PROVISIONING / "datasources").glob("*.y*ml")):
        document = yaml.safe_load(path.read_text())
        assert document["apiVersion"] == 1, path
        found.extend(document["datasources"])
    return found


def dashboard_providers() -> list[dict]:
    found = []
    for path in sorted((PROVISIONING / "dashboards").glob("*.y*ml")):
        document = yaml.safe_load(path.read_text())
        assert document["apiVersion"] == 1, path
        found.extend(document["providers"])
    return found


def bind_mounts(service: str) -> dict[PurePosixPath, Path]:
    """{path in the container: path in the repo} for a service's ./ bind mounts."""
    mounts = {}
    for volume in SERVICES[service].get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./") or source == ".":
            mounts[PurePosixPath(target)] = (ROOT / source).resolve()
    return mounts


def host_path(service: str, container_path: str) -> Path | None:
    """Where a path inside the container comes from in the repo, through the bind mounts."""
    path = PurePosixPath(container_path)
    for target, source in bind_mounts(service).items():
        if path == target or target in path.parents:
            return source / path.relative_to(target)
    return None


def flag(service: str, name: str) -> str:
    for arg in SERVICES[service]["command"]:
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    raise KeyError(f"{service}: no --{name}")


def countwatch_config_text() -> str:
    (entry,) = [c for c in SERVICES["countwatch"]["configs"] if c["target"].endswith(".toml")]
    return COMPOSE["configs"][entry["source"]]["content"]


# --- Grafana provisioning --------------------------------------------------------------------

def test_one_prometheus_datasource_with_the_uid_the_dashboards_use():
    (datasource,) = datasources()
    assert datasource["type"] == "prometheus"
    assert datasource["uid"] == DATASOURCE_UID
    assert datasource["access"] == "proxy"
    # The datasource is the Prometheus the stack runs (host networking: the same address).
    assert datasource["url"] == f"http://{flag('prometheus', 'web.listen-address')}"
    # $__rate_interval is derived from it: it must be the real scrape interval.
    assert datasource["jsonData"]["timeInterval"] == PROMETHEUS["global"]["scrape_interval"]


def test_the_dashboard_provider_points_at_the_mounted_dashboards_dir():
    (provider,) = dashboard_providers()
    assert provider["type"] == "file"
    source = host_path("grafana", provider["options"]["path"])
    assert source == DASHBOARDS_DIR.resolve(), f"{provider['options']['path']} is not grafana/dashboards"
    assert sorted(p.name for p in source.glob("*.json")) == sorted(load_dashboards())


def test_grafana_reads_the_provisioning_dir_and_a_home_dashboard_that_exists():
    assert host_path("grafana", "/etc/grafana/provisioning") == PROVISIONING.resolve()
    home = SERVICES["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert host_path("grafana", home).is_file(), home


# --- docker-compose.yml ----------------------------------------------------------------------

def test_every_file_compose_mounts_or_builds_from_exists():
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source}"
            else:
                assert source in COMPOSE.get("volumes", {}), f"{name}: undeclared volume {source}"
        if "build" in service:
            context = service["build"] if isinstance(service["build"], str) else service["build"]["context"]
            assert (ROOT / context / "Dockerfile").is_file(), name
    for secret in COMPOSE.get("secrets", {}).values():
        assert "file" not in secret or (ROOT / secret["file"]).exists()


def test_the_stack_has_the_four_parts_on_loopback():
    assert {"feed", "countwatch", "prometheus", "alertmanager", "grafana"} <= set(SERVICES)
    for name, service in SERVICES.items():
        assert service.get("network_mode") == "host", f"{name}: the loopback addresses assume host networking"
    assert flag("alertmanager", "cluster.listen-address") == ""
    assert SERVICES["grafana"]["environment"]["GF_SERVER_HTTP_ADDR"] == "127.0.0.1"


def test_prometheus_in_compose_finds_its_config_and_rule_files():
    config_file = flag("prometheus", "config.file")
    assert host_path("prometheus", config_file) == (ROOT / "prometheus.yml").resolve()
    config_dir = PurePosixPath(config_file).parent
    for pattern in PROMETHEUS["rule_files"]:
        in_container = config_dir / pattern          # rule_files are relative to the config file
        directory = host_path("prometheus", str(in_container.parent))
        assert directory is not None, f"{in_container.parent} is not mounted"
        assert sorted(directory.glob(in_container.name)) == sorted((ROOT / "alerts" / "rules").glob("*.yml"))
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in PROMETHEUS["scrape_configs"]}
    assert targets["prometheus"] == [flag("prometheus", "web.listen-address")]
    (alertmanagers,) = PROMETHEUS["alerting"]["alertmanagers"]
    assert alertmanagers["static_configs"][0]["targets"] == [flag("alertmanager", "web.listen-address")]


def test_alertmanager_in_compose_gets_its_config_and_the_webhook_secret():
    assert host_path("alertmanager", flag("alertmanager", "config.file")) == (ROOT / "alerts" / "alertmanager.yml").resolve()
    url_files = {c["api_url_file"] for r in ALERTMANAGER["receivers"] for c in r.get("slack_configs", [])}
    secrets = {f"/run/secrets/{s}" if isinstance(s, str) else s.get("target", f"/run/secrets/{s['source']}")
               for s in SERVICES["alertmanager"]["secrets"]}
    assert url_files <= secrets
    for secret in SERVICES["alertmanager"]["secrets"]:
        name = secret if isinstance(secret, str) else secret["source"]
        assert name in COMPOSE["secrets"]


def test_countwatch_config_in_compose_is_valid_and_agrees_with_the_other_services():
    config = parse_config(tomllib.loads(countwatch_config_text()), path="docker-compose.yml:countwatch_toml",
                          environ={})
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in PROMETHEUS["scrape_configs"]}
    assert targets["countwatch"] == [config.metrics_listen]
    # It watches the simulator that the feed service serves.
    feed = SERVICES["feed"]["command"]
    assert feed[0] == "simulate"
    port = feed[feed.index("--port") + 1]
    (source,) = config.sources
    assert source.url.startswith(f"http://127.0.0.1:{port}/")
    mounted = {c["target"] for c in SERVICES["countwatch"]["configs"]}
    assert SERVICES["countwatch"]["command"][-1] in mounted


def test_dockerfile_copies_only_files_that_exist():
    dockerfile = (ROOT / "Dockerfile").read_text()
    copies = re.findall(r"^COPY\s+(.+)$", dockerfile, flags=re.MULTILINE)
    assert copies
    for line in copies:
        *sources, _target = shlex.split(line)
        for source in sources:
            assert (ROOT / source).exists(), source
    assert re.search(r"^USER\s+(?!root)\w+", dockerfile, flags=re.MULTILINE), "run countwatch as a non-root user"
    assert '"countwatch"' in dockerfile
