"""The metrics endpoint can require basic auth and serve TLS only: a full daemon with both,
scraped by a client that trusts the test certificate (made by the openssl command line)."""
from __future__ import annotations

import base64
import socket
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest

from monitor.clock import WallClock
from monitor.cli import parse_config
from monitor.config import ConfigError
from monitor.daemon import Daemon
from monitor.metrics import Metrics
from tests.feed import Feed, Reply, wait_until
from tests.reliability.hostile import body, province_doc

PASSWORD = "metrics-pa55word-for-the-test"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    other_key = directory / "other-key.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(other_key), "2048"], check=True, capture_output=True, timeout=60)
    return cert, key, other_key


def _config(tmp_path, url: str, metrics: dict):
    return parse_config({"daemon": {"state_dir": str(tmp_path)},
                         "metrics": {"listen": "127.0.0.1:0", **metrics},
                         "sources": [{"name": "kpu", "kind": "sirekap", "url": url, "region": "32",
                                      "interval": "1s", "timeout": "1s"}]},
                        environ={"METRICS_PASSWORD": PASSWORD})


def _get(url: str, context: ssl.SSLContext | None = None, password: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if password is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"prometheus:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_metrics_over_tls_with_basic_auth(tmp_path, registry, certificate):
    cert, key, _ = certificate
    trusted = ssl.create_default_context(cafile=str(cert))
    with Feed() as feed:
        feed.set("/ppwp.json", Reply(200, body(province_doc(400))))
        config = _config(tmp_path, feed.url("/ppwp.json"), {
            "basic_auth_user": "prometheus", "basic_auth_password": "${METRICS_PASSWORD}",
            "tls_cert_file": str(cert), "tls_key_file": str(key)})
        daemon = Daemon(config, WallClock(), Metrics(registry))
        daemon.start()
        try:
            base = f"https://127.0.0.1:{daemon.metrics_port}"
            assert wait_until(lambda: daemon.watchers[0].passes >= 1, timeout=20)
            status, text = _get(base + "/metrics", trusted, PASSWORD)
            assert status == 200
            assert 'countwatch_stations_reported{region="32",source="kpu"} 400.0' in text
            assert _get(base + "/metrics", trusted)[0] == 401
            assert _get(base + "/metrics", trusted, "wrong")[0] == 401
            assert _get(base + "/healthz", trusted)[0] == 401
            assert _get(base + "/healthz", trusted, PASSWORD) == (200, "ok\n")
            # an untrusting client refuses the certificate; a plain-HTTP client gets no metrics
            with pytest.raises(urllib.error.URLError):
                _get(base + "/metrics", ssl.create_default_context(), PASSWORD)
            with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
                _get(f"http://127.0.0.1:{daemon.metrics_port}/metrics", None, PASSWORD)
            # a client that connects and never speaks does not hold up the next scrape
            with socket.create_connection(("127.0.0.1", daemon.metrics_port), timeout=5):
                assert _get(base + "/metrics", trusted, PASSWORD)[0] == 200
        finally:
            daemon.stop()


def test_tls_config_is_checked_at_start_up(tmp_path, certificate):
    cert, key, other_key = certificate
    cases = [({"tls_cert_file": str(cert)}, "metrics.tls_key_file: is required"),
             ({"tls_cert_file": str(cert), "tls_key_file": str(other_key)}, "do not load: KEY_VALUES_MISMATCH"),
             ({"tls_cert_file": str(tmp_path / "none.pem"), "tls_key_file": str(key)},
              "do not load: No such file or directory")]
    for metrics, message in cases:
        with pytest.raises(ConfigError) as raised:
            _config(tmp_path, "http://127.0.0.1:9/ppwp.json", metrics)
        assert message in str(raised.value)
        assert "PRIVATE KEY" not in str(raised.value)
    assert _config(tmp_path, "http://127.0.0.1:9/ppwp.json",
                   {"tls_cert_file": str(cert), "tls_key_file": str(key)}).metrics_tls == (str(cert), str(key))
