"""Only http and https sources: the config refuses every other scheme (also when the URL comes
from the environment) without echoing credentials, `countwatch check-config` exits 2, and a
source that redirects to another scheme is refused at fetch time."""
from __future__ import annotations

import subprocess
import sys

import pytest

from monitor.cli import parse_config
from monitor.config import ConfigError
from monitor.fetch import Fetcher, FetchError
from tests.feed import Feed, Reply
from tests.reliability.procs import ROOT

REFUSED = ["file:///etc/passwd", "ftp://kpu.example/ppwp.json", "gopher://kpu.example/1", "javascript:alert(1)",
           "data:application/json,{}", "//kpu.example/ppwp.json", "http:/no-host.json", "https://", "kpu.example/ppwp.json",
           "unix:///var/run/docker.sock"]


def _config(url: str, environ=None):
    return parse_config({"sources": [{"name": "kpu", "kind": "sirekap", "url": url}]}, environ=environ or {})


@pytest.mark.parametrize("url", REFUSED)
def test_only_http_and_https_sources(url):
    with pytest.raises(ConfigError) as raised:
        _config(url)
    assert "sources[0] (kpu).url: must be an http:// or https:// URL" in str(raised.value)


def test_a_url_from_the_environment_is_checked_after_expansion_and_not_echoed():
    with pytest.raises(ConfigError) as raised:
        _config("${KPU_URL}", {"KPU_URL": "ftp://reader:s3cret-pw@kpu.example/ppwp.json?token=t0ken-v4lue"})
    message = str(raised.value)
    assert "must be an http:// or https:// URL" in message
    assert "s3cret-pw" not in message and "t0ken-v4lue" not in message
    assert _config("${KPU_URL}", {"KPU_URL": "HTTPS://kpu.example/ppwp.json"}).sources[0].url.startswith("HTTPS://")


def test_check_config_exits_2_on_a_file_source(tmp_path):
    config = tmp_path / "countwatch.toml"
    config.write_text('[[sources]]\nname = "kpu"\nkind = "sirekap"\nurl = "file:///etc/passwd"\n')
    result = subprocess.run([sys.executable, "-m", "monitor", "check-config", str(config)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "must be an http:// or https:// URL" in result.stderr


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://127.0.0.1/ppwp.json", "gopher://127.0.0.1:70/"])
def test_a_redirect_to_another_scheme_is_refused(location):
    with Feed() as feed:
        feed.set("/ppwp.json", Reply(302, b"", {"Location": location}))
        fetcher = Fetcher(_config(feed.url("/ppwp.json")).sources[0])
        with pytest.raises(FetchError) as raised:
            fetcher.fetch(feed.url("/ppwp.json"))
        fetcher.close()
    assert raised.value.result == "http_4xx" and "redirect to another host refused" in raised.value.detail
