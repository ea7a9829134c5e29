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


def sirekap_level(region_code: str) -> int | None:
    """Sirekap's codes are BPS codes, whose length is their level: 0 national, 1 provinsi,
    2 kab/kota, 3 kecamatan, 4 desa, 5 TPS; None for an odd code."""
    if region_code == "0":
        return 0
    return _SIREKAP_LEVELS.get(len(region_code)) if is_sirekap_code(region_code) else None


def situng2019_level(region_code: str) -> int | None:
    """0 national, 1 a province; None below (a KPU-internal id does not say its level)."""
    if region_code == "0":
        return 0
    return 1 if region_code in SITUNG2019_PROVINCES else None


# Child codes come from the fetched document, i.e. from the network: only well-formed codes
# are put into a URL (no `/`, `..` or query tricks). Each raises ValueError for anything else.
def sirekap_child_url(parent_url: str, parent_region: str, child_code: str) -> str:
    """A Sirekap child sits exactly one level below its parent."""
    parent_level = sirekap_level(parent_region)
    if parent_level is None or parent_level >= TPS_LEVEL:
        raise ValueError(f"region {parent_region!r} has no children in Sirekap's scheme")
    if not is_sirekap_code(child_code) or sirekap_level(child_code) != parent_level + 1:
        raise ValueError(f"{child_code!r} is not a level-{parent_level + 1} code below {parent_region!r}")
    return nested_url(parent_url, child_code)


def situng2019_child_url(parent_url: str, parent_region: str, child_code: str) -> str:
    if not _SITUNG_ID.match(child_code):
        raise ValueError(f"{child_code!r} is not a Situng 2019 region id")
    return nested_url(parent_url, child_code)


def nested_url(parent_url: str, child_code: str) -> str:
    """Both KPU generations' scheme: the parent's URL with `.json` replaced by `/<child>.json`."""
    parts = urlsplit(parent_url)
    if not parts.path.endswith(".json"):
        raise ValueError(f"parent URL {parent_url!r} does not end in .json")
    # Query and fragment are kept: a cache-busting or auth parameter applies to the whole tree.
    return urlunsplit(parts._replace(path=parts.path[: -len(".json")] + f"/{child_code}.json"))


# --- names ------------------------------------------------------------------------------------
# Region codes are keys; names are data for people. The names of BPS-coded (Sirekap) regions
# come from KPU's own wilayah lists (monitor/data/wilayah, PROVENANCE.md there); names a source
# publishes itself (a `json` source's `name`) are learned at run time and cached in the state
# database, so a restart while the source is down still names what it named before.
_KEEP_CASE = {"Dki": "DKI", "Di": "DI"}


def styled_name(name: str, level: int | None) -> str:
    """KPU's capitals in title case, with "Kab." or "Kota" at the kab/kota level:
    `BANDUNG` -> `Kab. Bandung`, `KOTA BANDUNG` -> `Kota Bandung`."""
    words = [_KEEP_CASE.get(w.capitalize(), w.capitalize()) for w in str(name).split()]
    if level == 2 and words:
        kind = "Kota" if words[0] == "Kota" else "Kab."
        if words[0] in ("Kota", "Kab.", "Kabupaten"):
            words = words[1:]
        return f"{kind} {' '.join(words)}"
    return " ".join(words)


def region_label(code: str, name: str | None) -> str:
    """`Kab. Bandung (3204)`; the bare code when no name is known (never an error)."""
    return f"{name} ({code})" if name else str(code)


def _packaged_names() -> dict[str, str]:
    import json
    from importlib import resources

    names: dict[str, str] = {}
    folder = resources.files("monitor") / "data" / "wilayah"
    for item in folder.iterdir():
        if not item.name.endswith(".json"):
            continue
        try:
            rows = json.loads(item.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for row in rows if isinstance(rows, list) else []:
            if isinstance(row, dict) and isinstance(row.get("kode"), str) and isinstance(row.get("nama"), str):
                names[row["kode"]] = styled_name(row["nama"], row.get("tingkat"))
    return names


class RegionNames:
    """Display names of (source, region). `name()` never raises: an unknown region has none."""

    SCHEMA = ("CREATE TABLE IF NOT EXISTS region_names (source TEXT NOT NULL, region TEXT NOT NULL, "
              "name TEXT NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (source, region))")

    def __init__(self, kinds: dict[str, str], db_path=None):
        import threading

        from . import KINDS                           # the kinds table, which imports this module

        self.kinds = dict(kinds)                      # source name -> kind
        self._kind_table = KINDS
        self._packaged = _packaged_names()
        self._learned: dict[tuple[str, str], str] = {}
        self._announced: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._db = None
        if db_path is not None:
            try:
                from ..database import connect
                self._db = connect(db_path)
                self._db.execute(self.SCHEMA)
                for source, region, name in self._db.execute("SELECT source, region, name FROM region_names"):
                    self._learned[(source, region)] = name
            except Exception:   # noqa: BLE001 - names are a nicety: a broken database costs only names
                self._db = None

    def _bps_named(self, source: str) -> bool:
        """Are the source's codes BPS codes, named by the packaged wilayah lists?"""
        kind = self._kind_table.get(self.kinds.get(source, ""))
        return kind is not None and kind.bps_names

    def name(self, source: str, region: str) -> str | None:
        learned = self._learned.get((source, region))
        if learned:
            return learned
        if self._bps_named(source):
            return self._packaged.get(region)
        return None

    def below(self, source: str, top: str, depth: int) -> list[tuple[str, str]]:
        """(code, name) of the named regions of `source` from `top` down to `depth` levels
        below it (the series it exports): what region_info publishes for dashboards."""
        out = {region: name for (src, region), name in self._learned.items() if src == source}
        if self._bps_named(source):
            first = sirekap_level(top)
            first = 0 if first is None else first
            for code, name in self._packaged.items():
                level = sirekap_level(code)
                if level is not None and first <= level <= first + depth and (top == "0" or code.startswith(top)):
                    out.setdefault(code, name)
        return sorted(out.items())

    def label(self, source: str, region: str) -> str:
        return region_label(region, self.name(source, region))

    def learn(self, source: str, region: str, name: str, level: int | None = None) -> None:
        """A name the source published for its region, kept for the next start."""
        name = styled_name(name, level) if name.isupper() else name
        if not name or self._learned.get((source, region)) == name:
            return
        with self._lock:
            self._learned[(source, region)] = name
            if self._db is not None:
                try:
                    from datetime import datetime, timezone
                    self._db.execute("INSERT OR REPLACE INTO region_names VALUES (?, ?, ?, ?)",
                                     (source, region, name, datetime.now(timezone.utc).isoformat()))
                    self._db.commit()
                except Exception:   # noqa: BLE001
                    pass

    def named(self, event):
        """The event with `details.region_name` (for every message about it), when known. A
        name the source published for its region (a json feed's `name`) is learned, kept in
        the state database, and styled like the others."""
        published = event.details.get("region_name")
        if isinstance(published, str) and published.strip():
            kind = self._kind_table.get(self.kinds.get(event.source, ""))
            self.learn(event.source, event.region, published.strip(),
                       kind.level_of(event.region) if kind is not None else None)
        name = self.name(event.source, event.region)
        if not name:
            return event
        if (event.source, event.region) not in self._announced:
            # once per series and run: the log is the record the review rebuilds names from
            self._announced.add((event.source, event.region))
            import structlog
            structlog.get_logger("countwatch.names").info("region.named", source=event.source,
                                                          region=event.region, name=name)
        if event.details.get("region_name") == name:
            return event
        import dataclasses
        return dataclasses.replace(event, details={**event.details, "region_name": name})

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
