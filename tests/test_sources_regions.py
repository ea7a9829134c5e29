"""Region levels and the child-URL schemes of both KPU generations."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.config import SourceConfig
from monitor.sources import child_url, level_of

KPU = Path(__file__).parent / "fixtures" / "kpu"
BASE = "https://sirekap-obj-data.kpu.go.id/pemilu/hhcw"
PPWP = SourceConfig(name="kpu-ppwp", kind="sirekap", url=f"{BASE}/ppwp.json")
PILGUB = SourceConfig(name="pilgub", kind="sirekap", region="32",
                      url="https://sirekappilkada-obj-data.kpu.go.id/pilkada/hhcw/pkwkp/32.json")
SITUNG = SourceConfig(name="situng", kind="situng2019", url="https://pemilu2019.kpu.go.id/static/json/hhcw/ppwp.json")
FEED = SourceConfig(name="feed", kind="json", url="http://127.0.0.1/feed.json",
                    mapping={"reported": "a", "total": "b"})


@pytest.mark.parametrize("code, level", [
    ("0", 0), ("11", 1), ("1101", 2), ("110101", 3), ("1101012001", 4), ("1101012001001", 5),
    ("99", 1), ("", None), ("123", None), ("11a1", None), ("１１", None), ("11/..", None),
])
def test_sirekap_levels(code, level):
    assert level_of("sirekap", code) == level


def test_situng2019_levels_know_provinces_by_id():
    assert level_of("situng2019", "0") == 0
    assert level_of("situng2019", "26141") == 1 and level_of("situng2019", "-99") == 1
    assert level_of("situng2019", "26142") is None      # a kab/kota id: not told by its shape
    assert level_of("json", "0") is None and level_of("json", "11") is None


def test_sirekap_walk_from_national_to_tps():
    url = PPWP.url
    for parent, child in [("0", "11"), ("11", "1101"), ("1101", "110101"),
                          ("110101", "1101012001"), ("1101012001", "1101012001001")]:
        url = child_url(PPWP, url, parent, child)
    assert url == f"{BASE}/ppwp/11/1101/110101/1101012001/1101012001001.json"
    assert child_url(PPWP, PPWP.url, "0", "11") == f"{BASE}/ppwp/11.json"


def test_sirekap_urls_match_the_fixture_layout():
    # the fixtures keep KPU's paths, so the scheme must land on real files
    root = KPU / "sirekap2024" / "pemilu" / "hhcw" / "ppwp.json"
    national = json.loads(root.read_text())
    for code in national["table"]:
        assert child_url(PPWP, PPWP.url, "0", code) == f"{BASE}/ppwp/{code}.json"
    desa = "ppwp/11/1101/110101/1101012001"
    for code in json.loads((KPU / "sirekap2024/pemilu/hhcw" / f"{desa}.json").read_text())["table"]:
        url = child_url(PPWP, f"{BASE}/{desa}.json", "1101012001", code)
        assert (KPU / "sirekap2024/pemilu/hhcw" / url.removeprefix(BASE + "/")).is_file()


def test_pilkada_province_document_children():
    assert (child_url(PILGUB, PILGUB.url, "32", "3201")
            == "https://sirekappilkada-obj-data.kpu.go.id/pilkada/hhcw/pkwkp/32/3201.json")


def test_situng2019_urls():
    assert child_url(SITUNG, SITUNG.url, "0", "26141") == "https://pemilu2019.kpu.go.id/static/json/hhcw/ppwp/26141.json"
    assert (child_url(SITUNG, "https://pemilu2019.kpu.go.id/static/json/hhcw/ppwp/26141.json", "26141", "26142")
            == "https://pemilu2019.kpu.go.id/static/json/hhcw/ppwp/26141/26142.json")
    assert child_url(SITUNG, SITUNG.url, "0", "-99").endswith("/ppwp/-99.json")


def test_query_string_is_kept():
    assert child_url(PPWP, f"{BASE}/ppwp.json?v=3", "0", "11") == f"{BASE}/ppwp/11.json?v=3"


@pytest.mark.parametrize("source, parent_url, parent, child", [
    (PPWP, f"{BASE}/ppwp.json", "0", "../../etc"),           # codes come from the network
    (PPWP, f"{BASE}/ppwp.json", "0", "11/../12"),
    (PPWP, f"{BASE}/ppwp.json", "0", "1101"),                # skips a level
    (PPWP, f"{BASE}/ppwp/11/1101/110101/1101012001/1101012001001.json", "1101012001001", "1"),  # TPS: leaf
    (PPWP, f"{BASE}/ppwp", "0", "11"),                       # not a .json document
    (SITUNG, SITUNG.url, "0", "26141?x=1"),
    (FEED, FEED.url, "0", "11"),                             # json sources have no scheme
])
def test_refused_child_urls(source, parent_url, parent, child):
    with pytest.raises(ValueError):
        child_url(source, parent_url, parent, child)
