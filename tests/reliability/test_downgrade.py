"""Sources refuse a scheme downgrade on redirect (issue 14, item 8): https://host:P/ -> http://host:P/
has the same host:port string, and was followed with the source's Authorization header. The
loopback server speaks TLS and plain HTTP on one port (the test trusts its certificate)."""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from monitor.config import parse_config
from monitor.fetch import Fetcher, FetchError, _refused_redirect
from tests.reliability.hostile import DualSchemeServer, body, province_doc, self_signed

TOKEN = "Bearer source-t0ken-secret"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return self_signed(tmp_path_factory.mktemp("tls"))


def test_a_redirect_from_https_to_http_on_the_same_host_and_port_is_refused(certificate):
    cert, key = certificate
    with DualSchemeServer(cert, key, body(province_doc(400))) as server:
        source = parse_config({"sources": [{"name": "kpu", "kind": "sirekap", "url": server.url("https"),
                                            "headers": {"Authorization": TOKEN}, "retries": 0}]}).sources[0]
        fetcher = Fetcher(source)
        fetcher.session.verify = cert        # trust the test's certificate, as an operator's CA bundle would
        with pytest.raises(FetchError) as raised:
            fetcher.fetch(source.url)
        fetcher.close()
    assert raised.value.result == "http_4xx" and "from https to http refused" in raised.value.detail
    assert [(scheme, path) for scheme, path, _ in server.requests] == [("https", "/ppwp.json")]
    assert server.requests[0][2]["Authorization"] == TOKEN        # sent over TLS only


def test_the_redirect_rule_compares_schemes_and_effective_ports():
    """An upgrade http://host/ -> https://host/ (default ports) is how sites move to TLS and is
    followed; a downgrade or another port is not."""

    origin = urlsplit("http://sirekap.example/ppwp.json")
    assert _refused_redirect(origin, origin, urlsplit("https://sirekap.example/ppwp.json")) is None
    assert "from https to http" in _refused_redirect(urlsplit("https://sirekap.example/a"), urlsplit("https://sirekap.example/a"),
                                                     urlsplit("http://sirekap.example/a"))
    assert "another port" in _refused_redirect(origin, origin, urlsplit("http://sirekap.example:8080/a"))
