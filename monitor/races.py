"""Every race of an election from one source definition (Pilkada serentak: 545 races at once).

    [[sources]]
    kind = "sirekap"
    election = "pilkada2024"
    url = "https://sirekappilkada-obj-data.kpu.go.id/pilkada"
    races = ["pkwkp", "pkwkk"]          # governors; regents and mayors
    regions = ["32"]                    # optional: only races in or over these codes

At start-up (never in check-config, which stays offline) the daemon reads KPU's own documents
under `url` and expands the definition into one source per race:

    {url}/paslon/{race}.json        the race document: {region code: {candidate id: {...}}},
                                    one key per region that holds the race (paslon_pkwkp)
    {url}/hhcw/pkwkp/{prov}.json    a governor race's top document (Pilkada `tungsura` shape)
    {url}/hhcw/pkwkk/{prov}/{kab}.json   a regent's or mayor's
    {site}/wilayah/pilkada/pkwkp/0.json      the provinces, [{nama, kode, tingkat}] (wilayah)
    {site}/wilayah/pilkada/pkwkp/{prov}.json a province's kab/kota, same shape (district_32_32)

where `url` is https://sirekappilkada-obj-data.kpu.go.id/pilkada and {site}/wilayah/pilkada
its sibling, as Pemilu's wilayah/pemilu/ppwp/ sits beside pemilu/ (tests/fixtures/kpu/
pilkada2024 has real copies of these documents; PROVENANCE.md names their KPU paths).

Each race is a source of its own, named `{election}-{race}-{code}` (`pilkada2024-pkwkk-3204`),
so metrics, events, recordings, silences and routes keep `{source, region}`; its display name
("Pilbup Bandung 2024") is data, kept in the state database with the expansion, never a key.
`depth` and `export_depth` of the definition count from the national level, as for a national
source (4 = desa): a governor race (province) gets depth - 1, a regent race (kab/kota) depth - 2.
When KPU cannot be read at start-up, the last expansion saved in the state database is used.
"""
from __future__ import annotations

import dataclasses
import json
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import structlog

from .config import Config, SourceConfig
from .database import connect

log = structlog.get_logger("countwatch.races")

# race kind -> (level of the region that holds it, title of the race by the region's kind)
RACES = {"pkwkp": 1, "pkwkk": 2}
ELECTION_YEAR_DIGITS = 4


class DiscoveryError(Exception):
    """The races of an election could not be read, and no earlier expansion was saved."""


@dataclass(frozen=True)
class Race:
    election: str          # the definition's `election` (pilkada2024)
    race: str              # pkwkp | pkwkk
    region: str            # BPS code of the region that holds it (32, 3204)
    province: str
    display_name: str      # Pilgub Jawa Barat 2024, Pilbup Bandung 2024, Pilwalkot Bandung 2024
    candidates: int

    @property
    def name(self) -> str:
        return source_name(self.election, self.race, self.region)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def source_name(election: str, race: str, region: str) -> str:
    return f"{election}-{race}-{region}"


def outside_shard(source: SourceConfig, shard) -> bool:
    """A regent's or mayor's race is one kab/kota: shards split these races whole, by the
    kab/kota's code, like the kab/kota of a national tree (governor races split below)."""
    return shard is not None and source.race == "pkwkk" and not shard.owns(source.region)


def display_name(race: str, region_name: str, election: str) -> str:
    year = "".join(ch for ch in election if ch.isdigit())[-ELECTION_YEAR_DIGITS:]
    place = " ".join(word.capitalize() for word in region_name.split())
    if race == "pkwkp":
        title = "Pilgub"
    elif place.startswith("Kota "):
        title, place = "Pilwalkot", place[len("Kota "):]
    else:
        title = "Pilbup"
    return f"{title} {place} {year}".strip()


def race_url(source: SourceConfig, race: str, region: str) -> str:
    base = source.url.rstrip("/")
    if race == "pkwkp":
        return f"{base}/hhcw/pkwkp/{region}.json"
    return f"{base}/hhcw/pkwkk/{region[:2]}/{region}.json"


def wanted(source: SourceConfig, region: str) -> bool:
    """A race is kept when its region is one of `regions`, inside one, or holds one (a
    governor race over a listed kab/kota)."""
    return not source.regions or any(region.startswith(code) or code.startswith(region)
                                     for code in source.regions)


GetJSON = Callable[[str], object]


def discover(source: SourceConfig, get_json: GetJSON) -> list[Race]:
    """The races of one election definition, read from KPU's race and region documents."""
    base = source.url.rstrip("/")
    site, _, election_path = base.rpartition("/")
    regions_base = f"{site}/wilayah/{election_path}/pkwkp"
    provinces = _names(get_json(f"{regions_base}/0.json"), "wilayah 0.json")
    kabkota: dict[str, dict[str, str]] = {}
    races: list[Race] = []
    for race in source.races:
        document = get_json(f"{base}/paslon/{race}.json")
        if not isinstance(document, dict):
            raise DiscoveryError(f"paslon/{race}.json: expected an object keyed by region code")
        for region, candidates in sorted(document.items()):
            if len(region) != 2 * RACES[race] or not region.isascii() or not region.isdigit():
                continue                       # not a code at this race's level
            if not wanted(source, region):
                continue
            province = region[:2]
            if race == "pkwkp":
                name = provinces.get(province, province)
            else:
                if province not in kabkota:
                    kabkota[province] = _names(get_json(f"{regions_base}/{province}.json"),
                                               f"wilayah {province}.json")
                name = kabkota[province].get(region, region)
            races.append(Race(source.election, race, region, province, display_name(race, name, source.election),
                              len(candidates) if isinstance(candidates, dict) else 0))
    return races


def _names(document, where: str) -> dict[str, str]:
    if not isinstance(document, list):
        raise DiscoveryError(f"{where}: expected a list of regions")
    return {str(row["kode"]): str(row["nama"]) for row in document
            if isinstance(row, dict) and "kode" in row and "nama" in row}


def race_source(source: SourceConfig, race: Race) -> SourceConfig:
    level = RACES[race.race]
    return dataclasses.replace(
        source, name=race.name, url=race_url(source, race.race, race.region), region=race.region,
        depth=max(source.depth - level, 0), export_depth=max(source.export_depth - level, 0),
        race=race.race, display_name=race.display_name)


class RaceCache:
    """The last expansion of each election definition, in the state database (`races`
    table): display names are data kept here, and a start-up while KPU is unreachable
    watches what was discovered last time."""

    SCHEMA = ("CREATE TABLE IF NOT EXISTS races (definition TEXT PRIMARY KEY, updated_at TEXT NOT NULL, "
              "races TEXT NOT NULL)")

    def __init__(self, path: Path | str):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = connect(path)
        self._db.execute(self.SCHEMA)
        self._lock = threading.Lock()

    def save(self, definition: str, races: list[Race]) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO races VALUES (?, ?, ?)",
                             (definition, datetime.now(timezone.utc).isoformat(),
                              json.dumps([r.to_json() for r in races])))

    def load(self, definition: str) -> list[Race] | None:
        with self._lock:
            row = self._db.execute("SELECT races FROM races WHERE definition = ?", (definition,)).fetchone()
        return [Race(**item) for item in json.loads(row[0])] if row else None

    def close(self) -> None:
        self._db.close()


def fetch_json(source: SourceConfig, stop: threading.Event | None = None, rate_limiter=None) -> GetJSON:
    """A get_json for `discover` through the source's own fetcher (its headers, timeout,
    retries, body cap and rate limit)."""
    from .fetch import Fetcher
    from .sources.common import load_json

    fetcher = Fetcher(source, stop or threading.Event(), rate_limiter)

    def get(url: str):
        fetched = fetcher.fetch(url)
        return load_json(fetched.body or b"", fetched.content_type)
    return get


def expand(config: Config, get_json: Callable[[SourceConfig], GetJSON] = fetch_json,
           cache: RaceCache | None = None) -> tuple[Config, dict[str, list[Race]]]:
    """`config` with every election definition replaced by its races' sources (in the
    order of the definitions), and the races of each definition. Raises DiscoveryError when
    a definition's documents cannot be read and no expansion of it was saved."""
    from .fetch import FetchError
    from .sources.common import DocumentError

    sources: list[SourceConfig] = []
    found: dict[str, list[Race]] = {}
    for source in config.sources:
        if source.election is None:
            sources.append(source)
            continue
        try:
            races = discover(source, get_json(source))
        except (FetchError, DocumentError, DiscoveryError, KeyError) as error:
            races = cache.load(source.name) if cache is not None else None
            if races is None:
                raise DiscoveryError(f"source {source.name!r}: the races of {source.election} could not be "
                                     f"discovered ({error}) and none were saved by an earlier start") from None
            log.warning("races.cached", source=source.name, election=source.election, races=len(races),
                        error=str(error), action="watching the races discovered at the last start")
        else:
            if cache is not None:
                cache.save(source.name, races)
            log.info("races.discovered", source=source.name, election=source.election, races=len(races),
                     by_kind={kind: sum(1 for r in races if r.race == kind) for kind in source.races})
        found[source.name] = races
        sources.extend(race_source(source, race) for race in races)
    names = [s.name for s in sources]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DiscoveryError(f"two sources would be named {', '.join(duplicates)}: "
                             "two definitions of one election overlap")
    return dataclasses.replace(config, sources=tuple(sources)), found


# Documents per TPS at each level below the province, from KPU's 2024 counts (514 kab/kota,
# 7,277 kecamatan, 83,731 desa for 820,161 TPS): what a race's pass fetches is estimated from
# its TPS below the level its top document lists exactly.
DOCUMENTS_PER_TPS = {2: 514 / 820_161, 3: 7_277 / 820_161, 4: 83_731 / 820_161, 5: 1.0}


def pass_documents(source: SourceConfig, top: dict) -> tuple[int, bool]:
    """Documents a full pass of a race fetches: exact to its first level (the top document's
    table), estimated below from its TPS. Returns (documents, exact)."""
    from .sources.sirekap import parse

    fields = parse(top, source.region, source.zone)
    documents = 1 + (len(fields["children"]) if source.depth >= 1 else 0)
    level = (fields["level"] or 0) + 1
    tps = fields["stations"] or 0
    for below in range(level + 1, level + source.depth):
        documents += round(tps * DOCUMENTS_PER_TPS.get(below, 0.0))
    return documents, source.depth <= 1


def print_expansion(config: Config, out) -> int:
    """`countwatch races -c FILE`: every race with its name, display name and top document,
    the documents a full pass fetches and what that costs at the rate limit."""
    from .fetch import FetchError
    from .sources.common import DocumentError

    expanded, found = expand(config)
    by_name = {s.name: s for s in expanded.sources}
    for definition, races in found.items():
        source = next(s for s in config.sources if s.name == definition)
        get = fetch_json(source)
        total = 0
        exact_all = True
        print(f"{definition}: {len(races)} races of {source.election} "
              f"({', '.join(f'{sum(1 for r in races if r.race == k)} {k}' for k in source.races)})", file=out)
        print(f"{'source':<28} {'race':<36} {'depth':>5} {'documents':>10}  top document", file=out)
        for race in races:
            race_source_ = by_name[race.name]
            try:
                documents, exact = pass_documents(race_source_, get(race_source_.url))
            except (FetchError, DocumentError) as error:
                print(f"{race.name:<28} {race.display_name:<36} {race_source_.depth:>5} {'?':>10}  "
                      f"{race_source_.url} ({error})", file=out)
                exact_all = False
                continue
            total += documents
            exact_all &= exact
            print(f"{race.name:<28} {race.display_name:<36} {race_source_.depth:>5} {documents:>10}  "
                  f"{race_source_.url}", file=out)
        rate = source.rate_limit
        cost = f"{total / rate / 60:.1f} minutes at rate_limit {rate:g}/s" if rate else "no rate limit set"
        print(f"a full pass: {total:,} documents{'' if exact_all else ' (estimated below the first level)'}; "
              f"{cost} (the races share the host's bucket); a pass over an unchanged election: "
              f"{len(races)} requests", file=out)
    return 0
