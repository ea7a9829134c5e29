"""Fetching against a real loopback server: conditional GET, body caps (decompressed too),
redirects, retries within the budget, and the failure classes."""
from __future__ import annotations

import gzip
import socket

import pytest

from monitor.config import SourceConfig
from monitor.fetch import USER_AGENT, Fetcher, FetchError
from tests.feed import Feed, Reply

DOC = b'{"ts": "2024-02-22 23:00:15", "progres": {"total": 10, "progres": 5}}'


def source(url: str, **overrides) -> SourceConfig:
    values = dict(name="t", kind="sirekap", url=url, timeout=2.0, retries=0, rate_limit=0.0)
    values.update(overrides)
    return SourceConfig(**values)


@pytest.fixture
def feed():
    with Feed() as running:
        yield running


def test_plain_get_sends_user_agent_and_returns_body(feed):
    feed.set("/ppwp.json", Reply(body=DOC))
    fetched = Fetcher(source(feed.url("/ppwp.json"))).fetch(feed.url("/ppwp.json"))
    assert fetched.status == 200 and fetched.body == DOC
    assert feed.requests[0][1]["User-Agent"] == USER_AGENT
    assert "countwatch" in USER_AGENT


def test_a_get_with_the_callers_validators_gives_not_modified(feed):
    feed.set("/ppwp.json", Reply(body=DOC, etag='"v1"'))
    fetcher = Fetcher(source(feed.url("/ppwp.json")))
    first = fetcher.fetch(feed.url("/ppwp.json"))
    # without validators (the walker keeps them only after the document parsed): full body again
    assert fetcher.fetch(feed.url("/ppwp.json")).status == 200
    assert "If-None-Match" not in feed.requests[-1][1]
    second = fetcher.fetch(feed.url("/ppwp.json"), validators=(first.etag, first.last_modified))
    assert second.not_modified and second.body is None
    assert feed.requests[-1][1]["If-None-Match"] == '"v1"'


def test_gzip_body_is_decompressed(feed):
    feed.set("/g.json", Reply(body=DOC, gzip=True))
    assert Fetcher(source(feed.url("/g.json"))).fetch(feed.url("/g.json")).body == DOC


def test_body_over_cap_is_too_large(feed):
    feed.set("/big.json", Reply(body=b"x" * 5000))
    with pytest.raises(FetchError) as error:
        Fetcher(source(feed.url("/big.json"), max_body_bytes=1000)).fetch(feed.url("/big.json"))
    assert error.value.result == "too_large"


def test_gzip_bomb_is_capped_after_decompression(feed):
    bomb = b"0" * (20 * 1024 * 1024)          # 20 MiB of zeros is ~20 KiB compressed
    feed.set("/bomb.json", Reply(body=bomb, gzip=True))
    with pytest.raises(FetchError) as error:
        Fetcher(source(feed.url("/bomb.json"), max_body_bytes=1024 * 1024)).fetch(feed.url("/bomb.json"))
    assert error.value.result == "too_large"


@pytest.mark.parametrize("status,result", [(403, "http_403"), (404, "http_4xx"), (500, "http_5xx"),
                                           (503, "http_5xx")])
def test_http_errors_are_classified(feed, status, result):
    feed.set("/e.json", Reply(status=status, body=b"<html>error</html>", headers={"Content-Type": "text/html"}))
    with pytest.raises(FetchError) as error:
        Fetcher(source(feed.url("/e.json"))).fetch(feed.url("/e.json"))
    assert error.value.result == result


def test_read_timeout_is_classified(feed):
    feed.set("/slow.json", Reply(body=DOC, delay=3))
    with pytest.raises(FetchError) as error:
        Fetcher(source(feed.url("/slow.json"), timeout=0.3)).fetch(feed.url("/slow.json"))
    assert error.value.result == "timeout"


def test_slow_drip_body_stops_at_the_budget(feed):
    feed.set("/drip.json", Reply(body=DOC * 10, drip=0.05))
    with pytest.raises(FetchError) as error:
        Fetcher(source(feed.url("/drip.json"), timeout=0.5)).fetch(feed.url("/drip.json"), budget=0.6)
    assert error.value.result == "timeout"


def test_connection_refused_is_connect():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x.json"
    with pytest.raises(FetchError) as error:
        Fetcher(source(url)).fetch(url)
    assert error.value.result == "connect"


def test_unresolvable_host_is_dns():
    url = "http://countwatch-test.invalid/ppwp.json"    # .invalid never resolves (RFC 6761)
    with pytest.raises(FetchError) as error:
        Fetcher(source(url)).fetch(url)
    assert error.value.result == "dns"


def test_retry_recovers_from_one_5xx(feed):
    answers = iter([Reply(status=502, body=b"bad gateway"), Reply(body=DOC)])
    feed.set("/flaky.json", lambda handler: next(answers))
    fetched = Fetcher(source(feed.url("/flaky.json"), retries=2)).fetch(feed.url("/flaky.json"))
    assert fetched.body == DOC and fetched.attempts == 2


def test_retries_are_bounded(feed):
    feed.set("/down.json", Reply(status=503))
    with pytest.raises(FetchError):
        Fetcher(source(feed.url("/down.json"), retries=2)).fetch(feed.url("/down.json"), budget=10)
    assert len(feed.requests) == 3


def test_redirect_same_host_followed_other_host_refused(feed):
    feed.set("/old.json", Reply(status=301, headers={"Location": "/new.json"}))
    feed.set("/new.json", Reply(body=DOC))
    assert Fetcher(source(feed.url("/old.json"))).fetch(feed.url("/old.json")).body == DOC
    feed.set("/away.json", Reply(status=302, headers={"Location": "http://example.invalid/x.json"}))
    with pytest.raises(FetchError) as error:
        Fetcher(source(feed.url("/away.json"))).fetch(feed.url("/away.json"))
    assert error.value.result == "http_4xx" and "another host" in error.value.detail


def test_redirect_loop_is_bounded(feed):
    feed.set("/a.json", Reply(status=302, headers={"Location": "/b.json"}))
    feed.set("/b.json", Reply(status=302, headers={"Location": "/a.json"}))
    with pytest.raises(FetchError) as error:
        Fetcher(source(feed.url("/a.json"))).fetch(feed.url("/a.json"))
    assert "redirects" in error.value.detail
    assert len(feed.requests) == 6


def test_gzip_helper_roundtrip():
    # guards the fixture itself: a compressed reply really is smaller than the bomb
    assert len(gzip.compress(b"0" * 1_000_000)) < 10_000
