"""Region codes and the URL scheme that leads from a document to its children's documents.

Both KPU generations nest a child's document in a directory named after the parent document:
  Sirekap 2024  .../pemilu/hhcw/ppwp.json -> ppwp/11.json -> ppwp/11/1101.json -> ...
                .../pilkada/hhcw/pkwkp/32.json -> pkwkp/32/3201.json
  Situng 2019   .../static/json/hhcw/ppwp.json -> ppwp/26141.json -> ppwp/26141/<kab>.json -> ...
so a child's URL is the parent's with `.json` replaced by `/<child>.json`.
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from ..model import STATION_LEVEL as TPS_LEVEL

# BPS code length -> level: provinsi, kab/kota, kecamatan, desa/kelurahan, TPS.
_SIREKAP_LEVELS = {2: 1, 4: 2, 6: 3, 10: 4, 13: 5}
_SITUNG_ID = re.compile(r"-?[0-9]{1,9}\Z")

# Situng 2019 used KPU-internal ids, so a province cannot be told from its id's shape: these
# are the 34 provinces and overseas (-99), from ugifractal/explore_situng provinsi.csv (copied
# to tests/fixtures/kpu/situng2019/provinsi_2019_kpu_ids.csv; a test keeps the two equal).
SITUNG2019_PROVINCES = frozenset({
    "1", "6728", "12920", "14086", "15885", "17404", "20802", "22328", "24993", "25405",
    "25823", "26141", "32676", "41863", "42385", "51578", "53241", "54020", "55065", "58285",
    "60371", "61965", "64111", "928068", "65702", "67393", "69268", "72551", "74716", "75425",
    "76096", "77085", "78203", "81877", "-99",
})


def is_sirekap_code(code: str) -> bool:
    return len(code) in _SIREKAP_LEVELS and code.isascii() and code.isdigit()


def level_of(kind: str, region_code: str) -> int | None:
    """0 national, 1 provinsi, 2 kab/kota, 3 kecamatan, 4 desa, 5 TPS; None when the code does
    not say (a json source, a Situng 2019 id below province level, an odd code)."""
    if region_code == "0" and kind in ("sirekap", "situng2019"):
        return 0
    if kind == "sirekap":
        return _SIREKAP_LEVELS.get(len(region_code)) if is_sirekap_code(region_code) else None
    if kind == "situng2019":
        return 1 if region_code in SITUNG2019_PROVINCES else None
    return None


def child_url(source, parent_url: str, parent_region: str, child_code: str) -> str:
    """The URL of `child_code`'s document, below the document at `parent_url`.

    Child codes come from the fetched document, i.e. from the network: only well-formed codes
    are put into a URL (no `/`, `..` or query tricks), and a Sirekap child must sit exactly one
    level below its parent. Raises ValueError otherwise, and for json sources, which have no
    child scheme (use depth = 0 there)."""
    kind = source.kind
    if kind == "sirekap":
        parent_level = level_of(kind, parent_region)
        if parent_level is None or parent_level >= TPS_LEVEL:
            raise ValueError(f"region {parent_region!r} has no children in Sirekap's scheme")
        if not is_sirekap_code(child_code) or level_of(kind, child_code) != parent_level + 1:
            raise ValueError(f"{child_code!r} is not a level-{parent_level + 1} code below {parent_region!r}")
    elif kind == "situng2019":
        if not _SITUNG_ID.match(child_code):
            raise ValueError(f"{child_code!r} is not a Situng 2019 region id")
    else:
        raise ValueError(f"{kind!r} sources have no child URL scheme (set depth = 0)")
    parts = urlsplit(parent_url)
    if not parts.path.endswith(".json"):
        raise ValueError(f"parent URL {parent_url!r} does not end in .json")
    # Query and fragment are kept: a cache-busting or auth parameter applies to the whole tree.
    return urlunsplit(parts._replace(path=parts.path[: -len(".json")] + f"/{child_code}.json"))
