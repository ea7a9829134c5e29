"""The simulator's HTTP server on loopback: documents, conditional GET, gzip, the scripted
outages, the live control endpoints, stopping, and `run_simulator`."""
from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
from email.utils import formatdate
from pathlib import Path

import pytest
import requests

from monitor.clock import ManualClock
from monitor.simulator import SimulatorServer, get_scenario, run_simulator
from monitor.simulator.geography import CANDIDATE_IDS
from monitor.simulator.scenarios import INFLATED_DESA_PATH, INFLATED_TPS, INFLATED_TPS_PATH, wib

PROVINCE = "/pemilu/hhcw/pkwkp/32.json"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def jabar_server():
    clock = ManualClock(wib(27, 20, 1))
    server = SimulatorServer(get_scenario("jabar-2018"), clock, hang_seconds=10.0).start()
    yield server, clock
    server.stop()


def wait_until(condition, limit=5.0):
    """Poll a condition (bounded); the tests assert on states, never on durations."""
    done = threading.Event()
    for _ in range(int(limit / 0.01)):
        if condition():
            return
        done.wait(0.01)
    raise AssertionError("condition never became true")


def get(server, path, **kwargs):
    kwargs.setdefault("timeout", 5)
    return requests.get(server.url_for(path), **kwargs)


def test_serves_the_province_kab_desa_and_tps_documents(jabar_server):
    server, _ = jabar_server
    province = get(server, PROVINCE)
    assert province.status_code == 200
    assert province.headers["Content-Type"] == "application/json"
    doc = province.json()
    assert doc["ts"] == "2018-06-27 20:00:15"
    assert set(doc["table"]) == {code for code in doc["table"]} and len(doc["table"]) == 27
    kab = get(server, "/pemilu/hhcw/pkwkp/32/3204.json").json()
    assert kab["chart"]["persen"] == doc["table"]["3204"]["persen"]
    assert all(kab["chart"][c] == doc["table"]["3204"][c] for c in CANDIDATE_IDS)
    desa = get(server, INFLATED_DESA_PATH).json()
    assert desa["table"][INFLATED_TPS]["status_progress"] is True
    tps = get(server, INFLATED_TPS_PATH).json()
    assert sum(tps["chart"][c] for c in CANDIDATE_IDS) == 1223
    assert tps["administrasi"]["pemilih_dpt_j"] == 213


@pytest.mark.parametrize("path", ["/", "/pemilu/hhcw/pkwkp/3204.json", "/pemilu/hhcw/pkwkp/32/3299.json",
                                  "/pemilu/hhcw/ppwp.json", "/_control/freeze"])
def test_unknown_paths_are_404(jabar_server, path):
    server, _ = jabar_server
    assert get(server, path).status_code == 404


def test_conditional_get_etag_and_last_modified(jabar_server):
    server, clock = jabar_server
    first = get(server, PROVINCE)
    etag, last_modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert last_modified == formatdate(wib(27, 20, 0, 15).timestamp(), usegmt=True)
    clock.advance(120)                       # same publication (20:00:15 .. 20:05:15)
    again = get(server, PROVINCE, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["ETag"] == etag
    assert get(server, PROVINCE, headers={"If-Modified-Since": last_modified}).status_code == 304
    assert get(server, PROVINCE, headers={"If-None-Match": '"other"'}).status_code == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110).
    assert get(server, PROVINCE, headers={"If-None-Match": '"other"',
                                          "If-Modified-Since": last_modified}).status_code == 200
    clock.advance(300)                       # next publication
    fresh = get(server, PROVINCE, headers={"If-None-Match": etag, "If-Modified-Since": last_modified})
    assert fresh.status_code == 200 and fresh.headers["ETag"] != etag
    assert fresh.json()["ts"] == "2018-06-27 20:05:15"
    assert get(server, PROVINCE, headers={"If-Modified-Since": last_modified}).status_code == 200


def test_gzip_only_when_accepted(jabar_server):
    server, _ = jabar_server
    raw = requests.get(server.url_for(PROVINCE), headers={"Accept-Encoding": "identity"}, timeout=5,
                       stream=True).raw
    plain = raw.read()
    assert "Content-Encoding" not in raw.headers
    zipped = requests.get(server.url_for(PROVINCE), headers={"Accept-Encoding": "gzip"}, timeout=5,
                          stream=True).raw
    body = zipped.read(decode_content=False)
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body) == plain
    assert json.loads(plain)["progres"]["total"] == 74_962


def test_head_has_headers_without_body(jabar_server):
    server, _ = jabar_server
    head = requests.head(server.url_for(PROVINCE), timeout=5, headers={"Accept-Encoding": "identity"})
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["Content-Length"]) == len(get(server, PROVINCE, headers={"Accept-Encoding": "identity"}).content)


def test_script_before_during_and_after_the_freeze(jabar_server):
    server, clock = jabar_server
    clock.set(wib(27, 20, 56))
    assert get(server, PROVINCE).json()["ts"] == "2018-06-27 20:55:15"
    clock.set(wib(27, 21, 1))
    frozen = get(server, PROVINCE)
    assert frozen.json()["ts"] == "2018-06-27 21:00:15"
    for moment in (wib(27, 22), wib(28, 3), wib(28, 8, 30)):
        clock.set(moment)
        during = get(server, PROVINCE, headers={"If-None-Match": frozen.headers["ETag"]})
        assert during.status_code == 304, moment
    clock.set(wib(28, 8, 31))
    after = get(server, PROVINCE).json()
    assert after["ts"] == "2018-06-28 08:30:15"
    jump = next(i for i in server.scenario.incidents if i.kind == "jump")
    assert after["progres"]["progres"] - frozen.json()["progres"]["progres"] == jump.details["delta"]


@pytest.mark.parametrize("moment,status,title", [
    (wib(27, 23, 55), 503, "503 Service Temporarily Unavailable"),
    (wib(28, 1, 10), 502, "502 Bad Gateway"),
])
def test_outage_answers_5xx_html(jabar_server, moment, status, title):
    server, clock = jabar_server
    clock.set(moment)
    for path in (PROVINCE, INFLATED_TPS_PATH):
        response = get(server, path)
        assert response.status_code == status
        assert response.headers["Content-Type"] == "text/html"
        assert f"<title>{title}</title>" in response.text


def test_outage_hangs_past_the_client_timeout_then_the_site_is_back_still_frozen(jabar_server):
    server, clock = jabar_server
    clock.set(wib(28, 0, 30))
    with pytest.raises(requests.exceptions.ReadTimeout):
        get(server, PROVINCE, timeout=(2, 0.3))
    clock.set(wib(28, 1, 30))
    back = get(server, PROVINCE)
    assert back.status_code == 200 and back.json()["ts"] == "2018-06-27 21:00:15"


def test_a_hang_answers_once_the_outage_is_over():
    """A slow answer: the connection is held, the site comes back, the held request is served."""
    clock = ManualClock(wib(28, 0, 30))
    with SimulatorServer(get_scenario("jabar-2018"), clock, hang_seconds=30) as server:
        result = {}
        worker = threading.Thread(target=lambda: result.update(r=get(server, PROVINCE, timeout=10)))
        worker.start()
        wait_until(lambda: server.hanging == 1)
        clock.set(wib(28, 1, 30))
        worker.join(10)
        assert result["r"].status_code == 200
        assert result["r"].json()["ts"] == "2018-06-27 21:00:15"


def test_stop_releases_hanging_connections_and_refuses_new_ones():
    clock = ManualClock(wib(28, 0, 30))
    server = SimulatorServer(get_scenario("jabar-2018"), clock, hang_seconds=60).start()
    outcome = {}

    def hang():
        try:
            outcome["status"] = get(server, PROVINCE, timeout=30).status_code
        except requests.exceptions.ConnectionError as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=hang)
    worker.start()
    wait_until(lambda: server.hanging == 1)
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    stopper.join(5)
    worker.join(5)
    assert not stopper.is_alive() and not worker.is_alive()    # neither waited for the 60 s hang
    assert "status" not in outcome
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(server.url_for(PROVINCE), timeout=2)


def test_refuses_non_loopback_hosts():
    with pytest.raises(ValueError, match="loopback"):
        SimulatorServer(get_scenario("steady"), ManualClock(wib(27, 18)), host="0.0.0.0")


def test_concurrent_clients_across_publications():
    clock = ManualClock(wib(27, 18))
    with SimulatorServer(get_scenario("steady"), clock) as server:
        seen, errors = [], []

        def client():
            with requests.Session() as session:
                for _ in range(15):
                    try:
                        response = session.get(server.url_for("/pemilu/hhcw/pkwkp/32/3273.json"), timeout=5)
                        seen.append((response.status_code, response.json()["progres"]["total"]))
                    except Exception as exc:          # collected: asserted below
                        errors.append(exc)

        workers = [threading.Thread(target=client) for _ in range(6)]
        for worker in workers:
            worker.start()
        for _ in range(20):
            clock.advance(60)
        for worker in workers:
            worker.join(10)
        assert errors == []
        assert len(seen) == 90 and {s for s in seen} == {(200, seen[0][1])}


# -- live ---------------------------------------------------------------------------------

@pytest.fixture
def live_server():
    clock = ManualClock(wib(27, 18))
    server = SimulatorServer(get_scenario("live"), clock, hang_seconds=10.0).start()
    yield server, clock
    server.stop()


def control(server, action, method="POST", **params):
    return requests.request(method, server.url_for(f"/_control/{action}"), params=params, timeout=5)


def test_live_publishes_every_second(live_server):
    server, clock = live_server
    first = get(server, PROVINCE).json()
    clock.advance(1)
    second = get(server, PROVINCE).json()
    clock.advance(5)
    later = get(server, PROVINCE).json()
    assert first["ts"] == "2018-06-27 18:00:00" and second["ts"] == "2018-06-27 18:00:01"
    assert first["progres"]["progres"] < later["progres"]["progres"]
    assert first["progres"]["progres"] <= second["progres"]["progres"]
    assert server.scenario.start == wib(27, 18)


def test_live_freeze_and_resume(live_server):
    server, clock = live_server
    clock.advance(3)
    frozen = control(server, "freeze")
    assert frozen.status_code == 200
    state = frozen.json()
    assert state["frozen"] is True and state["ts"] == "2018-06-27 18:00:03"
    held = get(server, PROVINCE).json()
    clock.advance(60)
    assert get(server, PROVINCE).json() == held
    resumed = control(server, "resume").json()
    assert resumed["frozen"] is False
    after = get(server, PROVINCE).json()
    assert after["ts"] == "2018-06-27 18:01:03"
    assert after["progres"]["progres"] > held["progres"]["progres"]
    kinds = [(i.kind, i.end is not None) for i in server.scenario.incidents]
    assert kinds == [("freeze", True), ("jump", True)]
    jump = server.scenario.incidents[1]
    assert jump.details["delta"] == after["progres"]["progres"] - held["progres"]["progres"]


def test_live_outage_modes_and_ok(live_server):
    server, clock = live_server
    assert control(server, "outage", mode="503").json()["outage"] == "503"
    assert get(server, PROVINCE).status_code == 503
    assert control(server, "outage", mode="502").status_code == 200
    assert get(server, PROVINCE).status_code == 502
    assert control(server, "outage", mode="timeout").json()["outage"] == "timeout"
    with pytest.raises(requests.exceptions.ReadTimeout):
        get(server, PROVINCE, timeout=(2, 0.3))
    status = control(server, "status", method="GET").json()       # control works during an outage
    assert status["outage"] == "timeout"
    assert control(server, "ok").json()["outage"] is None
    assert get(server, PROVINCE).status_code == 200
    outages = [i for i in server.scenario.incidents if i.kind == "outage"]
    assert [i.details["mode"] for i in outages] == ["503", "502", "timeout"]
    assert all(i.end is not None for i in outages)


def test_live_control_errors(live_server):
    server, _ = live_server
    bad = control(server, "outage", mode="418")
    assert bad.status_code == 400 and "mode" in bad.json()["error"]
    assert control(server, "explode").status_code == 404
    assert control(server, "freeze", method="GET").status_code == 405
    assert control(server, "status", method="GET").json()["frozen"] is False


# -- run_simulator ----------------------------------------------------------------------------

def test_run_simulator_serves_until_stopped(capsys):
    stop = threading.Event()
    out = _Lines()
    result = {}
    worker = threading.Thread(target=lambda: result.update(
        rc=run_simulator("steady", 720, "127.0.0.1", 0, stream=out, stop_event=stop, setup_logging=False)))
    worker.start()
    url = out.wait_for("serving")
    assert "WIB" in out.text() and "720x" in out.text()
    assert requests.get(url + PROVINCE, timeout=5).json()["progres"]["total"] == 74_962
    stop.set()
    worker.join(5)
    assert result["rc"] == 0


def test_run_simulator_bad_scenario_and_busy_port(capsys):
    assert run_simulator("nope", 1.0, "127.0.0.1", 0, stream=_Lines(), setup_logging=False) == 2
    assert "jabar-2018" in capsys.readouterr().err
    with SimulatorServer(get_scenario("steady"), ManualClock(wib(27, 18))) as busy:
        assert run_simulator("steady", 1.0, "127.0.0.1", busy.port, stream=_Lines(), setup_logging=False) == 1


def test_simulate_process_stops_on_sigterm():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    code = "import sys; from monitor.simulator import run_simulator; " \
           "sys.exit(run_simulator('live', None, '127.0.0.1', 0))"
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env, cwd=ROOT)
    watchdog = threading.Timer(20, process.kill)     # a child that never prints must not hang the suite
    watchdog.start()
    try:
        url = None
        for line in process.stdout:
            if "serving" in line:
                url = line.split()[-1]
                break
        assert url and url.startswith("http://127.0.0.1:")
        assert requests.get(url + "/_control/status", timeout=5).json()["scenario"] == "live"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        log = process.stderr.read()
        assert "simulator.started" in log and "simulator.stopped" in log
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()


class _Lines:
    """A stream run_simulator prints to, readable from the test thread."""

    def __init__(self):
        self._parts: list[str] = []
        self._changed = threading.Condition()

    def write(self, text: str) -> int:
        with self._changed:
            self._parts.append(text)
            self._changed.notify_all()
        return len(text)

    def flush(self) -> None:
        pass

    def text(self) -> str:
        with self._changed:
            return "".join(self._parts)

    def wait_for(self, word: str) -> str:
        with self._changed:
            self._changed.wait_for(lambda: word in "".join(self._parts), timeout=10)
        for line in self.text().splitlines():
            if word in line:
                return line.split()[-1]
        raise AssertionError(f"{word!r} never printed")
