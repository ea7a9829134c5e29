"""KPU documents as the simulator serves them, in the shapes of real Sirekap 2024 documents
(github.com/ridwaanhall/pemilu2024.kpu.go.id, `pemilu/hhcw/ppwp/...`):

- aggregate (province .. desa): `ts`, `psu`, `mode`, `chart` {candidate: votes, persen},
  `table` {child: {psu, candidate: votes, persen, status_progress}}, `progres` {total, progres}.
  A child with nothing in yet is `{psu, persen: 0, status_progress: false}` without candidate
  keys (as province 95 was in the real national table of 15 Feb 2024); a TPS row's persen is
  the integer 100 or 0, a region's a float with two decimals.
- TPS: `mode`, `chart` ({"null": null, candidate: votes} or null), `images` (three, null when
  missing), `administrasi` (null when the form is not read), `psu`, `ts`, `status_suara`,
  `status_adm`. Its `ts` is when its own data came in.

URL layout (KPU's): /pemilu/hhcw/pkwkp/32.json, /pemilu/hhcw/pkwkp/32/3204.json, ... down to
/pemilu/hhcw/pkwkp/32/3204/320405/3204052003/3204052003008.json; region lists under
/wilayah/pemilu/pkwkp/32.json, ... as [{nama, id, kode, tingkat}].
"""
from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..model import is_station
from .count import WIB, CountModel, kpu_ts
from .electorate import Electorate, Region
from .geography import CANDIDATE_IDS

DOC_PREFIX = "/pemilu/hhcw/pkwkp/"
WILAYAH_PREFIX = "/wilayah/pemilu/pkwkp/"
IMAGE_HOST = "https://sirekap-obj-formc.simulator.invalid"   # .invalid: never resolves anywhere


@dataclass(frozen=True)
class Target:
    kind: str           # region | tps | wilayah
    code: str


def resolve(electorate: Electorate, path: str) -> Target | None:
    """The document a URL path names, or None. Every ancestor must be in the path, as on KPU's
    site: /pemilu/hhcw/pkwkp/32/3204.json, never /pemilu/hhcw/pkwkp/3204.json."""
    for prefix, kind in ((DOC_PREFIX, "region"), (WILAYAH_PREFIX, "wilayah")):
        if path.startswith(prefix) and path.endswith(".json"):
            chain = path[len(prefix):-len(".json")].split("/")
            break
    else:
        return None
    code = chain[-1]
    if kind == "region" and is_station(code=code):
        index = electorate.tps_index(code)
        if index is None or chain[:-1] != _lineage(electorate, code[:10]):
            return None
        return Target("tps", code)
    if electorate.region(code) is None or chain != _lineage(electorate, code):
        return None
    return Target(kind, code)


def _lineage(electorate: Electorate, code: str) -> list[str]:
    chain = []
    region = electorate.region(code)
    while region is not None:
        chain.append(region.code)
        region = electorate.region(region.parent) if region.parent else None
    return chain[::-1]


def render(model: CountModel, target: Target, cutoff: float, ts: str) -> tuple[Any, float]:
    """(document, last-modified Unix time) of a target at a publication (cutoff and ts)."""
    electorate = model.electorate
    if target.kind == "wilayah":
        return wilayah(electorate, target.code), model.count_start
    if target.kind == "tps":
        return tps_document(model, target.code, cutoff)
    return region_document(model, electorate.regions[target.code], cutoff, ts), cutoff


def _percent(reported: int, total: int) -> float:
    return round(100.0 * reported / total, 2) if total else 0.0


def _row(votes, persen) -> dict[str, Any]:
    row: dict[str, Any] = {"psu": "Reguler"}
    row.update(zip(CANDIDATE_IDS, votes))
    row["persen"] = persen
    row["status_progress"] = True
    return row


_NOT_IN = {"psu": "Reguler", "persen": 0, "status_progress": False}


def region_document(model: CountModel, region: Region, cutoff: float, ts: str) -> dict[str, Any]:
    electorate = model.electorate
    table: dict[str, Any] = {}
    reported, votes = 0, [0] * len(CANDIDATE_IDS)
    if region.level < 4:
        for code in region.children:
            child = electorate.regions[code]
            n, child_votes = model.count(child, cutoff)
            table[code] = _row(child_votes, _percent(n, child.stations)) if n else dict(_NOT_IN)
            reported += n
            votes = [a + b for a, b in zip(votes, child_votes)]
    else:
        for index in range(region.lo, region.hi):
            code = electorate.tps_code(index, region)
            if model.tps_in(index, region.kab, cutoff):
                tps_votes = model.tps_votes(index)
                table[code] = _row(tps_votes, 100)
                reported += 1
                votes = [a + b for a, b in zip(votes, tps_votes)]
            else:
                table[code] = dict(_NOT_IN)
    chart: dict[str, Any] = dict(zip(CANDIDATE_IDS, votes))
    chart["persen"] = _percent(reported, region.stations)
    return {"ts": ts, "psu": "Reguler", "mode": "hhcw", "chart": chart, "table": table,
            "progres": {"total": region.stations, "progres": reported}}


def tps_document(model: CountModel, code: str, cutoff: float) -> tuple[dict[str, Any], float]:
    electorate = model.electorate
    index = electorate.tps_index(code)
    assert index is not None
    desa = electorate.regions[code[:10]]
    if not model.tps_in(index, desa.kab, cutoff):
        # Nothing in yet: the document exists (KPU lists every TPS) but says nothing.
        return ({"mode": "hhcw", "chart": None, "images": [None, None, None], "administrasi": None,
                 "psu": None, "ts": kpu_ts(model.count_start), "status_suara": False, "status_adm": False},
                model.count_start)
    entered = min(model.entered_at(index, desa.kab) or cutoff, cutoff)
    votes = model.tps_votes(index)
    rng = random.Random(f"{electorate.seed}/tps/{code}")
    admin = _administrasi(model, index, rng)
    chart: dict[str, Any] = {"null": None}
    chart.update(zip(CANDIDATE_IDS, votes))
    return ({"mode": "hhcw", "chart": chart, "images": _images(code, entered, rng), "administrasi": admin,
             "psu": None, "ts": kpu_ts(entered), "status_suara": True, "status_adm": admin is not None},
            float(int(entered)))


def _administrasi(model: CountModel, index: int, rng: random.Random) -> dict[str, int] | None:
    electorate = model.electorate
    patch = model.patches.get(index)
    mode = patch.admin if patch else "normal"
    if mode == "null" or (patch is None and electorate.admin_missing[index]):
        return None
    registered = electorate.registered[index]
    valid = sum(electorate.tps_votes(index))
    invalid = electorate.invalid[index]
    if patch is not None:
        registered = patch.registered if patch.registered is not None else registered
        valid = sum(patch.true_votes) if patch.true_votes is not None else sum(model.tps_votes(index))
        invalid = patch.invalid if patch.invalid is not None else invalid
    ballots = valid + invalid
    dptb = min(ballots, rng.randint(0, 4))
    non_dpt = min(ballots - dptb, rng.randint(0, 4))
    users = ballots - dptb - non_dpt
    registered_l = registered // 2 + rng.randint(-8, 8) if registered > 16 else registered // 2
    if mode == "zero_registered":
        registered, registered_l = 0, 0

    def halves(total: int) -> tuple[int, int]:
        men = total // 2 + (rng.randint(-2, 2) if total > 4 else 0)
        return men, total - men

    users_l, users_p = halves(users)
    dptb_l, dptb_p = halves(dptb)
    non_l, non_p = halves(non_dpt)
    return {
        "suara_sah": valid, "suara_total": ballots,
        "pemilih_dpt_j": registered, "pemilih_dpt_l": registered_l, "pemilih_dpt_p": registered - registered_l,
        "pengguna_dpt_j": users, "pengguna_dpt_l": users_l, "pengguna_dpt_p": users_p,
        "pengguna_dptb_j": dptb, "pengguna_dptb_l": dptb_l, "pengguna_dptb_p": dptb_p,
        "suara_tidak_sah": invalid,
        "pengguna_total_j": ballots, "pengguna_total_l": users_l + dptb_l + non_l,
        "pengguna_total_p": users_p + dptb_p + non_p,
        "pengguna_non_dpt_j": non_dpt, "pengguna_non_dpt_l": non_l, "pengguna_non_dpt_p": non_p,
    }


def _images(code: str, entered: float, rng: random.Random) -> list[str]:
    """Three C1 form photos, uploaded in the hour before the data came in; the path splits the
    desa code in pairs as sirekap-obj-formc does."""
    folder = "/".join(code[i:i + 2] for i in range(0, 10, 2))
    bucket = f"{rng.getrandbits(16):04x}"
    urls = []
    for _ in range(3):
        taken = datetime.fromtimestamp(int(entered) - rng.randint(60, 3600), WIB)
        photo = uuid.UUID(int=rng.getrandbits(128), version=4)
        urls.append(f"{IMAGE_HOST}/{bucket}/pilkada/pkwkp/{folder}/{code}-{taken:%Y%m%d-%H%M%S}--{photo}.jpg")
    return urls


def wilayah(electorate: Electorate, code: str) -> list[dict[str, Any]]:
    """The children of a region as KPU's `wilayah` lists them: [{nama, id, kode, tingkat}].
    Kab/kota names are real; kecamatan, desa and TPS names are generated."""
    region = electorate.regions[code]
    if region.level == 4:
        return [{"nama": f"TPS {i - region.lo + 1:03d}", "id": int(electorate.tps_code(i, region)),
                 "kode": electorate.tps_code(i, region), "tingkat": 5} for i in range(region.lo, region.hi)]
    return [{"nama": electorate.regions[c].name, "id": int(c), "kode": c, "tingkat": region.level + 1}
            for c in region.children]
