"""A resolver that never answers (issue 14's last gap): getaddrinfo cannot be interrupted and is
bounded only by the resolver's own timeouts, minutes with a broken resolv.conf. The lookup runs
on the deadline's resolver threads, so the poll fails as `dns` at its own timeout, a stop ends it
at once, a pile of stuck lookups stays bounded, and numeric addresses never wait for it.

No real resolver can be made to hang on loopback from a test, so the C library's getaddrinfo is
replaced by one that blocks until the test releases it (the only stand-in here); everything else
(the fetcher, its deadline, a real HTTP server for the numeric address) is the real thing.

The bounds are generous (several times the timeout): they say that the request ended, not how
fast."""
from __future__ import annotations

import socket
import threading

import pytest

import monitor.deadline as deadline_module
from monitor.fetch import FetchError
from tests.feed import Feed, Reply, wait_until
from tests.reliability.hostile import body, province_doc
from tests.reliability.test_hangs import CLOSE, fetch_in_thread, stuck_fetcher


class HungResolver:
    """getaddrinfo that never answers for names (until released); numeric hosts are refused
    loudly, since the resolver must never be asked about them."""

    def __init__(self):
        self.release = threading.Event()
        self.asked: list[str] = []
        self.numeric_asked: list[str] = []
        self.real = socket.getaddrinfo

    def __call__(self, host, port, *args, **kwargs):
        try:
            socket.inet_pton(socket.AF_INET6 if ":" in str(host) else socket.AF_INET, str(host))
        except OSError:
            self.asked.append(host)
            self.release.wait(120)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        self.numeric_asked.append(host)
        return self.real(host, port, *args, **kwargs)


@pytest.fixture
def hung(monkeypatch):
    resolver = HungResolver()
    monkeypatch.setattr(deadline_module, "getaddrinfo", resolver)
    yield resolver
    resolver.release.set()      # the stuck resolver threads finish


def test_a_lookup_that_never_answers_fails_the_poll_as_dns_at_its_timeout(hung):
    url = "http://results.example.invalid/ppwp.json"
    fetcher = stuck_fetcher(url, "1s")
    try:
        outcome = fetch_in_thread(fetcher, url)
        # the resolver holds the lookup for 120 s: only the deadline can end the poll this soon
        assert wait_until(lambda: outcome, timeout=10), "the poll is still waiting for the resolver"
    finally:
        fetcher.close()
    error = outcome[0]
    assert isinstance(error, FetchError) and error.result == "dns", error
    assert error.detail == "host name lookup not finished within the timeout (1s)"
    assert hung.asked == ["results.example.invalid"]


def test_a_stop_ends_a_poll_waiting_for_the_resolver_at_once(hung):
    url = "http://results.example.invalid/ppwp.json"
    fetcher = stuck_fetcher(url, "120s")
    outcome = fetch_in_thread(fetcher, url)
    assert wait_until(lambda: hung.asked, timeout=10)
    assert not outcome                       # still waiting: its timeout is two minutes away
    fetcher.close()                          # what the daemon does when it stops
    assert wait_until(lambda: outcome, timeout=10), "the stop did not end the lookup's wait"
    assert isinstance(outcome[0], FetchError) and outcome[0].result in ("dns", "timeout"), outcome[0]


def test_stuck_lookups_stay_bounded_and_numeric_hosts_never_wait(hung):
    """More stuck lookups than resolver threads: each poll still ends at its timeout, the
    threads stay few, and a source on a numeric address is served meanwhile."""
    fetchers = [stuck_fetcher(f"http://host{i}.example.invalid/x.json", "1s") for i in range(10)]
    try:
        outcomes = [fetch_in_thread(f, f"http://host{i}.example.invalid/x.json") for i, f in enumerate(fetchers)]
        assert wait_until(lambda: all(outcomes), timeout=30), [len(o) for o in outcomes]
        assert all(isinstance(o[0], FetchError) and o[0].result == "dns" for o in outcomes), outcomes
        lookups = [t for t in threading.enumerate() if t.name == "dns-lookups"]
        assert 1 <= len(lookups) <= deadline_module._Resolver.THREADS
        # every resolver thread is stuck now; a numeric address does not queue behind them
        with Feed() as feed:
            feed.set("/good.json", Reply(200, body(province_doc(400)), CLOSE))
            good = stuck_fetcher(feed.url("/good.json"), "5s")
            try:
                fetched = good.fetch(feed.url("/good.json"))
            finally:
                good.close()
        assert fetched.status == 200 and fetched.body == body(province_doc(400))
        assert hung.numeric_asked and "127.0.0.1" in hung.numeric_asked
    finally:
        for fetcher in fetchers:
            fetcher.close()
