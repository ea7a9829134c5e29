"""The fixtures are accounted for: every file has its provenance, the copies are what they
claim to be, and the constructed Situng 2019 documents agree with the real numbers they use."""
from __future__ import annotations

import csv
import json
import re
from fnmatch import fnmatch
from pathlib import Path

from monitor.sources.regions import SITUNG2019_PROVINCES

FIXTURES = Path(__file__).parent / "fixtures"
KPU = FIXTURES / "kpu"
SITUNG = KPU / "situng2019"


def test_every_fixture_file_is_listed_in_provenance():
    text = (KPU / "PROVENANCE.md").read_text()
    patterns = re.findall(r"`([^`\s]+)`", text)
    files = [p.relative_to(KPU).as_posix() for p in KPU.rglob("*") if p.is_file() and p.name != "PROVENANCE.md"]
    files += [p.relative_to(FIXTURES).as_posix() for p in (FIXTURES / "broken").iterdir()]
    unlisted = [f for f in files if not any(fnmatch(f, pattern) for pattern in patterns)]
    assert unlisted == []
    assert len(files) > 100


def test_situng2019_province_ids_match_the_copied_list():
    with open(SITUNG / "provinsi_2019_kpu_ids.csv") as handle:
        ids = {row["KPU ID"].strip() for row in csv.DictReader(handle)}
    assert ids == SITUNG2019_PROVINCES and len(ids) == 35


def test_constructed_situng2019_national_uses_the_real_last_version():
    with open(SITUNG / "situng2019_ppwp_national_votes.csv") as handle:
        last = list(csv.DictReader(handle))[-1]
    doc = json.loads((SITUNG / "static/json/hhcw/ppwp.json").read_text())
    assert last["situng_version_ts_wita"] == "2019-05-02 22:15:04"
    assert doc["ts"] == "2019-05-02 21:15:04"             # the same moment in WIB
    assert doc["chart"] == {"21": int(last["votes_21_jokowi_amin"]), "22": int(last["votes_22_prabowo_sandi"])}
    assert doc["progress"]["total"] == 813350
    assert round(doc["progress"]["proses"] / 813350 * 100, 5) == 62.61339
    assert set(doc["table"]) == SITUNG2019_PROVINCES
    for candidate in ("21", "22"):
        assert sum(row[candidate] for row in doc["table"].values()) == doc["chart"][candidate]


def test_constructed_west_java_agrees_with_its_national_row():
    national = json.loads((SITUNG / "static/json/hhcw/ppwp.json").read_text())
    west_java = json.loads((SITUNG / "static/json/hhcw/ppwp/26141.json").read_text())
    assert west_java["chart"] == national["table"]["26141"]
    assert len(west_java["table"]) == 27
    for candidate in ("21", "22"):
        assert sum(row[candidate] for row in west_java["table"].values()) == west_java["chart"][candidate]
