"""Real Prometheus and Alertmanager for tests: Debian's binaries on free loopback ports, each with
its own temp dir, always stopped (use them as context managers).

    from tests.servers import start_alertmanager, start_prometheus

    with start_prometheus(config_text, rule_files=["alerts/rules/countwatch.yml"]) as prom:
        prom.wait_until(lambda: prom.query("up"), what="a first scrape")

    with start_alertmanager(am_config_text) as am:
        am.post_alerts([{"labels": {"alertname": "X"}}])

Nothing here depends on countwatch, so any test can reuse it. Requests go through urllib so the
helpers need nothing beyond the standard library.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

PROMETHEUS_BIN = os.environ.get("PROMETHEUS_BIN", "prometheus")
ALERTMANAGER_BIN = os.environ.get("ALERTMANAGER_BIN", "prometheus-alertmanager")
PROMTOOL_BIN = os.environ.get("PROMTOOL_BIN", "promtool")
AMTOOL_BIN = os.environ.get("AMTOOL_BIN", "amtool")

START_TIMEOUT = 30.0      # seconds; a cold TSDB start on a busy CI machine takes a few
STOP_TIMEOUT = 10.0


def free_port() -> int:
    """A port nobody listens on right now (the small race with another binder is handled by
    retrying the start, see `_start_with_retries`)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def terminate(process: subprocess.Popen, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM (a clean stop), then SIGKILL if it does not exit within `timeout`."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)


def have_binary(name: str) -> bool:
    return shutil.which(name) is not None


def http_json(method: str, url: str, body: Any = None, timeout: float = 5.0) -> Any:
    """One JSON request; raises urllib.error.HTTPError on 4xx/5xx (its body is in `.read()`)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        text = response.read()
    return json.loads(text) if text.strip() else None


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.25,
               what: str = "the condition", diagnostics: Callable[[], str] | None = None) -> Any:
    """Poll `predicate` until it returns something truthy (and return that), or fail after
    `timeout` seconds with `what` and, when given, `diagnostics()` in the message. Exceptions
    from the predicate count as "not yet" so a server that is still starting can be polled."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = predicate()
            if result:
                return result
        except Exception as exc:  # not ready yet; remember why for the failure message
            last_error = exc
        if time.monotonic() >= deadline:
            message = f"timed out after {timeout:.0f}s waiting for {what}"
            if last_error is not None:
                message += f" (last error: {last_error!r})"
            if diagnostics is not None:
                message += "\n" + diagnostics()
            raise TimeoutError(message)
        time.sleep(interval)


class Server:
    """A child process listening on 127.0.0.1:`port`, with a temp dir that is removed on stop."""

    name = "server"

    def __init__(self, process: subprocess.Popen, port: int, workdir: Path, log_path: Path):
        self.process = process
        self.port = port
        self.workdir = workdir
        self.log_path = log_path
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def log_text(self, tail: int = 40) -> str:
        """The last lines of the server's own log, for failure messages."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return f"--- last {tail} lines of {self.name} log ---\n" + "\n".join(lines[-tail:])

    def running(self) -> bool:
        return self.process.poll() is None

    def get(self, path: str, **params: Any) -> Any:
        query = urllib.parse.urlencode(params, doseq=True)
        return http_json("GET", f"{self.url}{path}" + (f"?{query}" if query else ""))

    def post(self, path: str, body: Any = None) -> Any:
        return http_json("POST", f"{self.url}{path}", body)

    def stop(self) -> None:
        """Terminate it (terminate()); then remove the temp dir."""
        terminate(self.process)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise _Exited(self.process.returncode)
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False


class _Exited(Exception):
    def __init__(self, code: int):
        super().__init__(f"exited with code {code}")
        self.code = code


class Prometheus(Server):
    name = "prometheus"

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        """Instant query; returns the result list (vector samples), raising on an API error."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return _prom_data(self.get("/api/v1/query", **params))["result"]

    def query_range(self, expr: str, start: float, end: float, step: float = 1.0) -> list[dict]:
        """Range query; returns the result list (matrix series), raising on an API error."""
        return _prom_data(self.get("/api/v1/query_range", query=expr, start=f"{start:.3f}",
                                   end=f"{end:.3f}", step=f"{step:g}"))["result"]

    def rules(self) -> list[dict]:
        """The loaded rule groups, as /api/v1/rules returns them (each rule has its `query`)."""
        return _prom_data(self.get("/api/v1/rules"))["groups"]

    def alerts(self) -> list[dict]:
        """Pending and firing alerts (each has `labels`, `annotations`, `state`, `value`)."""
        return _prom_data(self.get("/api/v1/alerts"))["alerts"]

    def targets(self) -> list[dict]:
        return _prom_data(self.get("/api/v1/targets"))["activeTargets"]

    def wait_until(self, predicate: Callable[[], Any], timeout: float = 30.0, what: str = "the condition",
                   interval: float = 0.25) -> Any:
        return wait_until(predicate, timeout, interval, what, diagnostics=self.log_text)


class Alertmanager(Server):
    name = "alertmanager"

    def __init__(self, *args, cluster_port: int | None = None):
        super().__init__(*args)
        self.cluster_port = cluster_port
        self.cluster_address = f"127.0.0.1:{cluster_port}" if cluster_port else None

    def alerts(self, **filters: Any) -> list[dict]:
        """/api/v2/alerts (each has `labels`, `annotations`, `status.state`, `status.inhibitedBy`,
        `status.silencedBy`); filters like `active=True, inhibited=False` pass through."""
        params = {k: str(v).lower() if isinstance(v, bool) else v for k, v in filters.items()}
        return self.get("/api/v2/alerts", **params)

    def post_alerts(self, alerts: list[dict]) -> None:
        """Push alerts as Prometheus would (`labels`, `annotations`, optional `startsAt`/`endsAt`)."""
        self.post("/api/v2/alerts", alerts)

    def silences(self) -> list[dict]:
        return self.get("/api/v2/silences")

    def status(self) -> dict:
        return self.get("/api/v2/status")

    def wait_until(self, predicate: Callable[[], Any], timeout: float = 30.0, what: str = "the condition",
                   interval: float = 0.25) -> Any:
        return wait_until(predicate, timeout, interval, what, diagnostics=self.log_text)


def _prom_data(payload: Mapping[str, Any]) -> Any:
    if payload.get("status") != "success":
        raise RuntimeError(f"Prometheus API error: {payload}")
    return payload["data"]


def _start_with_retries(launch: Callable[[], Server], attempts: int = 3) -> Server:
    """Start, wait for /-/ready; if the process dies first (most often: the free port was taken
    between picking and binding it) try again on new ports, a bounded number of times."""
    failures = []
    for _ in range(attempts):
        server = launch()
        try:
            wait_until(server._ready, START_TIMEOUT, 0.1, f"{server.name} to be ready")
            return server
        except Exception as exc:
            failures.append(f"{exc}\n{server.log_text()}")
            exited = server.process.poll() is not None
            server.stop()
            if not exited:          # alive but never ready: another try would not help
                break
    raise RuntimeError("could not start server:\n" + "\n\n".join(failures))


def _workdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


def _materialise_rules(rule_files: Iterable[str | os.PathLike] | Mapping[str, str], rules_dir: Path) -> list[str]:
    """Copy rule files (paths) or write them (name -> text) into the server's temp dir."""
    rules_dir.mkdir()
    names = []
    if isinstance(rule_files, Mapping):
        items = list(rule_files.items())
    else:
        items = [(Path(p).name, Path(p).read_text()) for p in rule_files]
    for index, (name, text) in enumerate(items):
        target = rules_dir / f"{index:02d}-{Path(name).name}"
        target.write_text(text)
        names.append(str(target))
    return names


def start_prometheus(config_text: str, rule_files: Iterable[str | os.PathLike] | Mapping[str, str] = (),
                     extra_args: Iterable[str] = ()) -> Prometheus:
    """Start Prometheus with `config_text` as its prometheus.yml, in a temp dir with its own TSDB.

    `rule_files` are paths to copy (or a {name: text} mapping to write); they are loaded by
    appending a `rule_files:` list to the config, so `config_text` must not have its own.
    The port is chosen here: read `.url` / `.port` afterwards. The web lifecycle API is on, so a
    test can rewrite `.config_path` and POST /-/reload.
    """
    rule_files = dict(rule_files) if isinstance(rule_files, Mapping) else list(rule_files)
    if rule_files and "\nrule_files:" in "\n" + config_text:
        raise ValueError("pass rule files either in config_text or as rule_files=, not both")

    def launch() -> Prometheus:
        workdir = _workdir("prometheus-")
        text = config_text
        if rule_files:
            paths = _materialise_rules(rule_files, workdir / "rules")
            text = text.rstrip("\n") + "\nrule_files:\n" + "".join(f"  - {json.dumps(p)}\n" for p in paths)
        config_path = workdir / "prometheus.yml"
        config_path.write_text(text)
        port = free_port()
        log_path = workdir / "prometheus.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [PROMETHEUS_BIN, f"--config.file={config_path}", f"--storage.tsdb.path={workdir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle",
                 # Debian's default console paths may not exist; they are not needed here.
                 f"--web.console.templates={workdir}", f"--web.console.libraries={workdir}",
                 *extra_args],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
        server = Prometheus(process, port, workdir, log_path)
        server.config_path = config_path
        return server

    return _start_with_retries(launch)


def start_alertmanager(config_text: str, cluster_listen: str | None = None, peers: Iterable[str] = (),
                       extra_args: Iterable[str] = ()) -> Alertmanager:
    """Start Alertmanager with `config_text` as its alertmanager.yml, in a temp dir.

    Clustering is off (`--cluster.listen-address=`) unless `cluster_listen` is given: "auto"
    picks a free loopback port, or pass an explicit "host:port"; `peers` are the other members'
    cluster addresses (`other.cluster_address`).
    """
    peers = list(peers)

    def launch() -> Alertmanager:
        workdir = _workdir("alertmanager-")
        config_path = workdir / "alertmanager.yml"
        config_path.write_text(config_text)
        port = free_port()
        cluster_port = None
        if cluster_listen is None:
            cluster_args = ["--cluster.listen-address="]
        else:
            address = cluster_listen
            if address == "auto":
                cluster_port = free_port()
                address = f"127.0.0.1:{cluster_port}"
            else:
                cluster_port = int(address.rpartition(":")[2])
            cluster_args = [f"--cluster.listen-address={address}",
                            # loopback clusters have no routable address to advertise
                            f"--cluster.advertise-address={address}",
                            *[f"--cluster.peer={peer}" for peer in peers]]
        log_path = workdir / "alertmanager.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [ALERTMANAGER_BIN, f"--config.file={config_path}", f"--storage.path={workdir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{port}", *cluster_args, *extra_args],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
        server = Alertmanager(process, port, workdir, log_path, cluster_port=cluster_port)
        server.config_path = config_path
        return server

    return _start_with_retries(launch)


def promtool(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Run promtool; the caller asserts on returncode / output."""
    return subprocess.run([PROMTOOL_BIN, *args], capture_output=True, text=True, timeout=timeout)


def amtool(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run([AMTOOL_BIN, *args], capture_output=True, text=True, timeout=timeout)


# --- PromQL -------------------------------------------------------------------------------
# Enough of PromQL's lexical structure to list the metric names an expression reads, so a test
# can hold rules and dashboards to monitor/metrics.py's table. (Prometheus 2.42 has no parse
# API to ask instead.) Strings, label matchers, ranges, grouping label lists, numbers,
# durations, Grafana variables, function calls and keywords are skipped; what is left are
# metric names.
_PROMQL_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
                    "group_right", "bool", "offset", "inf", "nan", "atan2"}
_STRINGS = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_GRAFANA_VARS = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[\w+\]\]")
_GROUPINGS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_TOKENS = re.compile(r"(?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?:ms|[smhdwy])?(?:\d+(?:ms|[smhdwy]))*)"
                      r"|(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)(?P<call>\s*\()?")


def promql_metric_names(expr: str) -> set[str]:
    """Metric names read by a PromQL expression: `rate(x_total{a="b"}[5m]) / y` -> {x_total, y}."""
    text = _STRINGS.sub('""', expr)
    text = _GRAFANA_VARS.sub("1", text)
    text = re.sub(r"\{[^}]*\}", "", text)          # label matchers (strings already blanked)
    text = re.sub(r"\[[^\]]*\]", "", text)         # ranges and subqueries
    text = _GROUPINGS.sub(" ", text)
    names = set()
    for match in _TOKENS.finditer(text):
        ident = match.group("ident")
        if ident is None or match.group("call") or ident.lower() in _PROMQL_KEYWORDS:
            continue
        names.add(ident)
    return names
