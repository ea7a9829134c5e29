"""A generated Sirekap-2024-shaped tree (national -> 38 provinces -> 514 kab/kota -> 7,277
kecamatan -> 83,731 desa, whose tables list 820,161 TPS) and a fast loopback server for it.

The totals are real (docs/scaling.md; tests/fixtures/kpu/sirekap2024: TPS per province from
derived_tps_per_province.csv, region counts from KPU's wilayah tree); how they split below the
province is synthetic but deterministic (seeded). Documents have the shape of the real Pemilu
aggregates (`ts`, `chart`, `table`, `progres`), desa tables keyed by 13-digit TPS codes.

    tree = Tree.generate(scale=1.0)            # scale < 1: fewer regions and TPS, same shape
    tree.advance(0.005)                        # 0.5% more TPS report; changed documents re-rendered
    tree.freeze("3201")                        # a region that stops advancing (a stall)

    with TreeServer(tree) as server:           # asyncio on its own thread (tests)
        server.url("0")                        # .../pemilu/hhcw/ppwp.json
    process = spawn_server(scale=1.0)          # the same in its own process (the benchmark)

Control over HTTP (both): POST /_tree/advance?fraction=F, /_tree/freeze?region=C,
/_tree/unfreeze?region=C, /_tree/fail?path=P&times=N (answer 503), /_tree/reset[?paths=1]
(counters; paths=1 also counts requests per path); GET /_tree/stats, /_tree/paths?depth=D.
Every document carries an ETag and a 304 answers a matching If-None-Match, as KPU's object
store does, so a pass over an unchanged tree costs one request.
"""
from __future__ import annotations

import asyncio
import csv
import json
import math
import multiprocessing
import random
import resource
import threading
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
TPS_CSV = ROOT / "tests/fixtures/kpu/sirekap2024/derived_tps_per_province.csv"
# KPU's 2024 region counts below the provinces (DESIGN.md, "Real data at hand").
KABKOTA, KECAMATAN, DESA = 514, 7277, 83731
CANDIDATES = ("100025", "100026", "100027")
PREFIX = "/pemilu/hhcw/ppwp"
WIB = 7 * 3600                   # KPU's `ts` is WIB (UTC+7) without a zone marker


def document_path(code: str) -> str:
    """Sirekap's URL path of a region's document: ppwp.json, ppwp/11.json, ppwp/11/1101.json..."""
    if code == "0":
        return PREFIX + ".json"
    parts = [code[:n] for n in (2, 4, 6, 10, 13) if n <= len(code)]
    return PREFIX + "/" + "/".join(parts) + ".json"


def _apportion(total: int, weights: list[float]) -> list[int]:
    """Largest remainder with at least one each (every region has at least one child)."""
    n = len(weights)
    if total < n:
        raise ValueError(f"cannot give {n} regions at least one of {total}")
    spare = total - n
    scale = sum(weights)
    exact = [spare * w / scale for w in weights]
    counts = [int(x) for x in exact]
    order = sorted(range(n), key=lambda i: exact[i] - counts[i], reverse=True)
    for i in order[: spare - sum(counts)]:
        counts[i] += 1
    return [c + 1 for c in counts]


@dataclass
class Region:
    code: str
    level: int                         # 0 national .. 4 desa
    children: list[str] = field(default_factory=list)
    first_tps: int = 0                 # desa: its TPS are first_tps .. first_tps + n_tps - 1
    n_tps: int = 0
    # aggregates, kept current by Tree._recompute
    total: int = 0
    reported: int = 0
    votes: tuple[int, int, int] = (0, 0, 0)


class Tree:
    """The model behind the documents. TPS live in flat arrays (820k of them), regions in a
    dict; `docs` maps URL path -> (etag, body) and is what the server answers from."""

    def __init__(self, seed: int = 2024, clock=time.time):
        self.rng = random.Random(seed)
        self.clock = clock             # Unix seconds: the publisher's wall clock (tests pass theirs)
        self.regions: dict[str, Region] = {}
        self.tps_rank = array("d")     # a TPS reports once progress passes its rank
        self.tps_votes = array("H")    # 3 per TPS
        self.tps_desa: list[str] = []
        self.reported = bytearray()
        self.frozen: set[str] = set()
        self.progress = 0.0
        self.version = 0
        self.ts = clock()              # when the current publication was made
        self.docs: dict[str, tuple[bytes, bytes]] = {}
        self.lock = threading.Lock()
        self._by_rank: list[int] = []
        self._next = 0                 # index into _by_rank of the next TPS to report
        self._held: list[int] = []     # TPS that were due while their region was frozen

    # -- generation --------------------------------------------------------------------
    @classmethod
    def generate(cls, scale: float = 1.0, progress: float = 0.5, seed: int = 2024,
                 shape: tuple[int, int, int, int, int] | None = None, clock=time.time,
                 provinces: list[str] | None = None, tps_share: float = 1.0,
                 kab_fixed: dict[str, int] | None = None, kab_codes: dict[str, list[str]] | None = None) -> "Tree":
        """`scale` shrinks every count below the provinces alike (all 38 kept); `shape` =
        (provinces, kab/kota, kecamatan, desa, TPS) gives a small tree for tests (the first
        provinces of the CSV, or those listed in `provinces`, TPS split by their real weights).
        `tps_share` scales every province's TPS (Pilkada 2024 had fewer, larger TPS);
        `kab_fixed` gives a province its real number of kab/kota, `kab_codes` their real codes."""
        tree = cls(seed, clock)
        rng = tree.rng
        with open(TPS_CSV, newline="") as handle:
            all_provinces = [(row["prov_code"], int(row["tps_listed_in_wilayah_tree"]))
                             for row in csv.DictReader(handle) if row["prov_code"] != "99"]
        if provinces is not None:
            all_provinces = [p for p in all_provinces if p[0] in provinces]
        provinces = all_provinces
        if shape is not None:
            provinces = provinces[:shape[0]]
            counts = list(shape[1:4])
            tps_total = shape[4]
        else:
            counts = [round(n * scale) for n in (KABKOTA, KECAMATAN, DESA)]
            tps_total = round(sum(t for _, t in provinces) * scale * tps_share)
        counts[0] = max(counts[0], len(provinces))
        counts[1] = max(counts[1], counts[0])
        counts[2] = max(counts[2], counts[1])
        tps_total = max(tps_total, counts[2])
        national = tree.regions["0"] = Region("0", 0)
        weights = [t for _, t in provinces]
        # Kab/kota per province grow slower than its TPS (Jabar: 27 kab/kota, 140k TPS).
        fixed = {code: n for code, n in (kab_fixed or {}).items() if any(code == p for p, _ in provinces)}
        free = [(i, w) for i, ((code, _), w) in enumerate(zip(provinces, weights)) if code not in fixed]
        kab_counts = [fixed.get(code, 0) for code, _ in provinces]
        if free:
            spread = _apportion(max(counts[0] - sum(fixed.values()), len(free)), [math.sqrt(w) for _, w in free])
            for (i, _), n in zip(free, spread):
                kab_counts[i] = n
        counts[0] = sum(kab_counts)
        counts[1] = max(counts[1], counts[0])
        counts[2] = max(counts[2], counts[1])
        kabs: list[tuple[Region, float]] = []
        for (code, tps), n_kab in zip(provinces, kab_counts):
            province = tree.regions[code] = Region(code, 1)
            national.children.append(code)
            shares = [rng.uniform(0.5, 1.5) for _ in range(n_kab)]
            real = sorted((kab_codes or {}).get(code, []))
            for i, share in enumerate(shares):
                kab_code = real[i] if i < len(real) else f"{code}{i + 1:02d}"
                kab = tree.regions[kab_code] = Region(kab_code, 2)
                province.children.append(kab.code)
                kabs.append((kab, tps * share / sum(shares)))
        tree.province_tps = {code: tps for code, tps in provinces}
        kecs = tree._split(kabs, counts[1], 3, lambda parent, i: f"{parent}{i + 1:02d}")
        desas = tree._split(kecs, counts[2], 4, lambda parent, i: f"{parent}{2000 + i + 1:04d}")
        tps_counts = _apportion(tps_total, [w * rng.uniform(0.6, 1.4) for _, w in desas])
        for (desa, _), n in zip(desas, tps_counts):
            desa.first_tps, desa.n_tps = len(tree.tps_desa), n
            for _ in range(n):
                tree.tps_desa.append(desa.code)
                tree.tps_rank.append(rng.random())
                registered = rng.randint(150, 300)
                voters = int(registered * rng.uniform(0.7, 0.85))
                a = int(voters * rng.uniform(0.15, 0.35))
                b = int(voters * rng.uniform(0.45, 0.65))
                tree.tps_votes.extend((a, b, max(0, voters - a - b)))
        tree.reported = bytearray(len(tree.tps_desa))
        tree._by_rank = sorted(range(len(tree.tps_rank)), key=tree.tps_rank.__getitem__)
        tree._advance_to(progress)
        tree._recompute_all()
        tree.render_all()
        return tree

    def _split(self, parents: list[tuple[Region, float]], total: int, level: int, code_of) -> list[tuple[Region, float]]:
        """Give `total` children to `parents` in proportion to their weight (TPS)."""
        counts = _apportion(total, [w for _, w in parents])
        out = []
        for (parent, weight), n in zip(parents, counts):
            shares = [self.rng.uniform(0.5, 1.5) for _ in range(n)]
            for i, share in enumerate(shares):
                child = self.regions[code_of(parent.code, i)] = Region(code_of(parent.code, i), level)
                parent.children.append(child.code)
                out.append((child, weight * share / sum(shares)))
        return out

    # -- the count moving ----------------------------------------------------------------
    def _is_frozen(self, code: str) -> bool:
        return any(code.startswith(f) for f in self.frozen)

    def _advance_to(self, progress: float) -> set[str]:
        """Mark TPS with rank below `progress` reported (unless frozen); returns changed desa."""
        changed: set[str] = set()
        due = self._held
        self._held = []
        while self._next < len(self._by_rank) and self.tps_rank[self._by_rank[self._next]] < progress:
            due.append(self._by_rank[self._next])
            self._next += 1
        for index in due:
            desa = self.tps_desa[index]
            if self.frozen and self._is_frozen(desa):
                self._held.append(index)
                continue
            self.reported[index] = 1
            changed.add(desa)
        self.progress = max(self.progress, progress)
        return changed

    def advance(self, fraction: float) -> int:
        """`fraction` more of all TPS report (a publication); returns documents re-rendered."""
        with self.lock:
            changed = self._advance_to(self.progress + fraction)
            self.ts = self.clock()
            self.version += 1
            dirty: set[str] = set()
            for desa in changed:
                code = desa
                while code not in dirty:
                    dirty.add(code)
                    if code == "0":
                        break
                    code = self._parent(code)
            for code in sorted(dirty, key=len, reverse=True):   # leaves first
                self._recompute(self.regions[code])
            # A new publication re-stamps the top document even when nothing moved (KPU's
            # ts advances hourly): the stale_source detector sees a live publisher.
            dirty.add("0")
            for code in dirty:
                self._render(self.regions[code])
            return len(dirty)

    def freeze(self, code: str) -> None:
        with self.lock:
            self.frozen.add(code)

    def unfreeze(self, code: str) -> None:
        with self.lock:
            self.frozen.discard(code)

    @staticmethod
    def _parent(code: str) -> str:
        return {2: "0", 4: code[:2], 6: code[:4], 10: code[:6], 13: code[:10]}[len(code)]

    def _recompute(self, region: Region) -> None:
        if region.level == 4:
            a = b = c = reported = 0
            votes, flags = self.tps_votes, self.reported
            for i in range(region.first_tps, region.first_tps + region.n_tps):
                if flags[i]:
                    reported += 1
                    a += votes[3 * i]
                    b += votes[3 * i + 1]
                    c += votes[3 * i + 2]
            region.total, region.reported, region.votes = region.n_tps, reported, (a, b, c)
            return
        total = reported = a = b = c = 0
        for code in region.children:
            child = self.regions[code]
            total += child.total
            reported += child.reported
            a, b, c = a + child.votes[0], b + child.votes[1], c + child.votes[2]
        region.total, region.reported, region.votes = total, reported, (a, b, c)

    def _recompute_all(self) -> None:
        for region in sorted(self.regions.values(), key=lambda r: r.level, reverse=True):
            self._recompute(region)

    # -- documents -----------------------------------------------------------------------
    def _ts_text(self) -> str:
        # Wall time, as a live publisher's: a stamp from 2024 would rightly read as stale.
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.ts + WIB))

    @staticmethod
    def _persen(reported: int, total: int) -> float:
        return round(100.0 * reported / total, 2) if total else 0.0

    def _row(self, region: Region) -> dict:
        a, b, c = region.votes
        return {"psu": "Reguler", "100025": a, "100026": b, "100027": c,
                "persen": self._persen(region.reported, region.total), "status_progress": True}

    def _tps_row(self, index: int) -> dict:
        if not self.reported[index]:
            return {"psu": "Reguler", "100025": None, "100026": None, "100027": None, "persen": 0,
                    "status_progress": False}
        v = self.tps_votes
        return {"psu": "Reguler", "100025": v[3 * index], "100026": v[3 * index + 1], "100027": v[3 * index + 2],
                "persen": 100, "status_progress": True}

    def document(self, region: Region) -> dict:
        a, b, c = region.votes
        if region.level == 4:
            table = {f"{region.code}{i - region.first_tps + 1:03d}": self._tps_row(i)
                     for i in range(region.first_tps, region.first_tps + region.n_tps)}
        else:
            table = {code: self._row(self.regions[code]) for code in region.children}
        return {"ts": self._ts_text(), "psu": "Reguler", "mode": "hhcw",
                "chart": {"100025": a, "100026": b, "100027": c,
                          "persen": self._persen(region.reported, region.total)},
                "table": table, "progres": {"total": region.total, "progres": region.reported}}

    def _render(self, region: Region) -> None:
        body = json.dumps(self.document(region), separators=(",", ":")).encode()
        self.docs[document_path(region.code)] = (f'"{self.version}-{region.code}"'.encode(), body)

    def render_all(self) -> None:
        for region in self.regions.values():
            self._render(region)

    # -- what the benchmark and the tests ask --------------------------------------------
    def codes(self, max_level: int = 4) -> list[str]:
        """Region codes down to `max_level`, parents before children (the descent's order)."""
        out, frontier = [], ["0"]
        while frontier:
            out.extend(frontier)
            frontier = [c for code in frontier if self.regions[code].level < max_level
                        for c in self.regions[code].children]
        return out

    def counts(self) -> dict[str, int]:
        levels = [0] * 5
        for region in self.regions.values():
            levels[region.level] += 1
        return {"provinces": levels[1], "kabkota": levels[2], "kecamatan": levels[3], "desa": levels[4],
                "tps": len(self.tps_desa), "documents": len(self.docs)}


# --- a simultaneous election (Pilkada serentak 2024) ----------------------------------------
PILKADA_PREFIX = "/pilkada"
WILAYAH_PREFIX = "/wilayah/pilkada/pkwkp"
# Pilkada 2024 had fewer, larger TPS (up to 600 voters): Pilgub Jabar counted 73,862 TPS
# (tests/fixtures/kpu/pilkada2024) where Pemilu 2024 listed 140,457 in Jabar
# (derived_tps_per_province.csv). Every province's Pemilu count is scaled by that real ratio.
PILKADA_TPS_SHARE = 73_862 / 140_457
NO_GOVERNOR = {"34"}          # DI Yogyakarta's governor is not elected: 37 governor races
NO_REGENT = {"31"}            # DKI Jakarta's 6 kab/kota elect no one: 514 - 6 = 508 races
KAB_FIXED = {"31": 6, "32": 27}     # real counts, so that 37 + 508 = 545 races at scale 1
PROVINCES_JSON = ROOT / "tests/fixtures/kpu/sirekap2024/wilayah/pemilu/ppwp/0.json"
JABAR_JSON = ROOT / "tests/fixtures/kpu/pilkada2024/district_32_32_commit-481f1a6.json"


def race_path(race: str, code: str) -> str:
    """/pilkada/hhcw/pkwkp/32.json, /pilkada/hhcw/pkwkp/32/3204.json, /pilkada/hhcw/pkwkk/32/3204.json..."""
    parts = [code[:n] for n in (2, 4, 6, 10, 13) if n <= len(code)]
    return f"{PILKADA_PREFIX}/hhcw/{race}/" + "/".join(parts) + ".json"


class Election(Tree):
    """Every race of a simultaneous Pilkada over one generated country: a governor race per
    province (its tree: the province down to the desa) and a regent or mayor race per
    kab/kota (the kab/kota down to the desa), in Sirekap Pilkada's `tungsura` shape, plus
    the race documents (`paslon`) and region lists (`wilayah`) that monitor/races.py reads.
    The TPS are shared, as on the day: one TPS counts for its governor and its regent."""

    @classmethod
    def generate_election(cls, scale: float = 1.0, progress: float = 0.5, seed: int = 2024,
                          shape: tuple[int, int, int, int, int] | None = None, clock=time.time,
                          provinces: list[str] | None = None) -> "Election":
        """`scale` < 1 shrinks the kecamatan, desa and TPS but keeps every province and all 514
        kab/kota, so every one of the 545 races is there at any scale; `shape` is for tests."""
        with open(JABAR_JSON) as handle:
            jabar = [row["kode"] for row in json.load(handle)]
        tps_share, fixed = PILKADA_TPS_SHARE, None
        if shape is None and provinces is None:
            fixed = KAB_FIXED
            with open(TPS_CSV, newline="") as handle:
                tps = sum(int(row["tps_listed_in_wilayah_tree"]) for row in csv.DictReader(handle)
                          if row["prov_code"] != "99")
            shape = (38, KABKOTA, max(KABKOTA, round(KECAMATAN * scale)), max(KABKOTA, round(DESA * scale)),
                     round(tps * scale * PILKADA_TPS_SHARE))
        return cls.generate(scale, progress, seed, shape, clock, provinces, tps_share=tps_share,
                            kab_fixed=fixed, kab_codes={"32": jabar})

    def races(self) -> list[tuple[str, str]]:
        """(race kind, region code) of every race, governors first."""
        provinces = self.regions["0"].children
        return ([("pkwkp", p) for p in provinces if p not in NO_GOVERNOR]
                + [("pkwkk", k) for p in provinces if p not in NO_REGENT for k in self.regions[p].children])

    def candidates(self, race: str, code: str) -> tuple[str, str, str]:
        first = f"{1 if race == 'pkwkp' else 2}{code}"
        return (first + "1", first + "2", first + "3")

    def _race_of(self, code: str) -> list[tuple[str, str]]:
        """The races whose tree holds region `code`: its province's governor's and its
        kab/kota's regent's."""
        out = []
        if len(code) >= 2 and code[:2] not in NO_GOVERNOR:
            out.append(("pkwkp", code[:2]))
        if len(code) >= 4 and code[:2] not in NO_REGENT:
            out.append(("pkwkk", code[:4]))
        return out

    def _pilkada_document(self, region: Region, race: str, top: str) -> dict:
        ids = self.candidates(race, top)

        def progres(total, reported):
            return {"total": total, "persen": self._persen(reported, total), "progres": reported}

        if region.level == 4:
            table = {}
            for i in range(region.first_tps, region.first_tps + region.n_tps):
                code = f"{region.code}{i - region.first_tps + 1:03d}"
                done = bool(self.reported[i])
                row = {ids[k]: (self.tps_votes[3 * i + k] if done else None) for k in range(3)}
                row.update(psu="Reguler", progres=progres(1, 1 if done else 0), status_progress=done)
                table[code] = row
        else:
            table = {}
            for code in region.children:
                child = self.regions[code]
                row = dict(zip(ids, child.votes))
                row.update(psu="Reguler", progres=progres(child.total, child.reported), status_progress=True)
                table[code] = row
        chart = dict(zip(ids, region.votes))
        chart["progres"] = progres(region.total, region.reported)
        return {"mode": "hhcw", "psu": "Reguler", "ts": self._ts_text(),
                "progres": {"total": region.total, "progres": region.reported},
                "tungsura": {"chart": chart, "table": table}}

    frozen_races: frozenset[tuple[str, str]] = frozenset()

    def freeze_race(self, race: str, code: str) -> None:
        """One race's publisher stops (its documents are no longer re-rendered, `ts` and all)
        while the other races' count goes on, on the same TPS."""
        with self.lock:
            self.frozen_races = self.frozen_races | {(race, code)}

    def _render(self, region: Region) -> None:
        etag = f'"{self.version}-{region.code}"'.encode()
        for race, top in self._race_of(region.code):
            if (race, top) in self.frozen_races:
                continue
            body = json.dumps(self._pilkada_document(region, race, top), separators=(",", ":")).encode()
            self.docs[race_path(race, region.code)] = (etag, body)

    def advance(self, fraction: float) -> int:
        rendered = super().advance(fraction)
        with self.lock:
            # every race's top document is re-stamped by a publication, moved or not (KPU's
            # ts advances): a quiet race is not stale, a frozen one stops advancing
            tops = {code for _, code in self.races()}
            for code in tops:
                self._render(self.regions[code])
        return rendered + len(tops)

    def render_all(self) -> None:
        super().render_all()
        if not hasattr(self, "province_tps"):
            return
        with open(PROVINCES_JSON) as handle:
            names = {row["kode"]: row["nama"] for row in json.load(handle)}
        with open(JABAR_JSON) as handle:
            jabar = {row["kode"]: row["nama"] for row in json.load(handle)}
        provinces = self.regions["0"].children

        def listed(rows):
            return json.dumps(rows, separators=(",", ":")).encode()
        self.docs[WILAYAH_PREFIX + "/0.json"] = (b'"w0"', listed(
            [{"nama": names.get(p, p), "id": int(p), "kode": p, "tingkat": 1} for p in provinces]))
        for p in provinces:
            kabs = self.regions[p].children
            self.docs[f"{WILAYAH_PREFIX}/{p}.json"] = (f'"w{p}"'.encode(), listed(
                [{"nama": jabar.get(k) or f"{names.get(p, p)} {k[2:]}", "id": int(k), "kode": k, "tingkat": 2}
                 for k in kabs]))
        for race in ("pkwkp", "pkwkk"):
            document = {code: {cid: {"ts": "2024-11-21 21:55:15", "nama": f"Paslon {n + 1}", "nomor_urut": n + 1}
                               for n, cid in enumerate(self.candidates(race, code))}
                        for kind, code in self.races() if kind == race}
            self.docs[f"{PILKADA_PREFIX}/paslon/{race}.json"] = (f'"p{race}"'.encode(), listed(document))

    def race_paths(self, max_level: int = 4) -> list[str]:
        """Every race document down to `max_level`, race after race, parents first."""
        out = []
        for race, top in self.races():
            frontier = [top]
            while frontier:
                out.extend(race_path(race, code) for code in frontier)
                frontier = [c for code in frontier if self.regions[code].level < max_level
                            for c in self.regions[code].children]
        return out

    def race_tps(self) -> int:
        """TPS watched summed over the races (a TPS counts once per race it votes in)."""
        return sum(self.regions[code].total for _, code in self.races())


# --- the server ------------------------------------------------------------------------
_REASONS = {200: b"OK", 304: b"Not Modified", 404: b"Not Found", 400: b"Bad Request",
            503: b"Service Unavailable"}


class _Stats:
    def __init__(self):
        self.requests = 0
        self.not_modified = 0
        self.paths: dict[str, int] = {}
        self.started = time.monotonic()
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.track_paths = False
        self.connections = 0           # open now
        self.max_connections = 0       # the most open at once
        self.in_flight = 0             # requests received and not yet answered (with a delay)
        self.max_in_flight = 0         # the client's real concurrency

    def as_json(self) -> dict:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        span = (self.last_at - self.first_at) if self.first_at is not None and self.last_at else 0.0
        return {"requests": self.requests, "not_modified": self.not_modified,
                "cpu_seconds": usage.ru_utime + usage.ru_stime, "span_seconds": span,
                "max_connections": self.max_connections, "max_in_flight": self.max_in_flight,
                "paths": self.paths if self.track_paths else None}


class _Protocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive, GET only, just enough parsing for requests/urllib3: the server
    must stay far faster than the client it measures."""

    def __init__(self, server: "TreeServer"):
        self.server = server
        self.buffer = b""
        self.transport = None
        self.control = False           # a control client: not counted as a connection

    def connection_made(self, transport) -> None:
        self.transport = transport
        stats = self.server.stats
        stats.connections += 1
        stats.max_connections = max(stats.max_connections, stats.connections)

    def connection_lost(self, exc) -> None:
        if not self.control:
            self.server.stats.connections -= 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > 65536:
                    self.transport.close()
                return
            head, self.buffer = self.buffer[:end], self.buffer[end + 4:]
            self._answer(head)

    def _answer(self, head: bytes) -> None:
        line, _, headers = head.partition(b"\r\n")
        try:
            method, target, _ = line.split(b" ", 2)
        except ValueError:
            self._send(400, b"bad request", None, close=True)
            return
        lower = headers.lower()
        close = b"connection: close" in lower
        path = target.decode("latin-1")
        if path.startswith("/_tree/"):
            if not self.control:
                self.control = True
                self.server.stats.connections -= 1
            status, body = self.server.control(method.decode(), path)
            self._send(status, body, None, close)
            return
        stats = self.server.stats
        stats.requests += 1
        now = time.monotonic()
        stats.first_at = stats.first_at or now
        stats.last_at = now
        path = path.split("?", 1)[0]
        if stats.track_paths:
            stats.paths[path] = stats.paths.get(path, 0) + 1
        if self.server.delay:
            # An answer that takes a while, as a real server's does: the requests a client
            # keeps in flight meanwhile are its concurrency, which the tests bound.
            stats.in_flight += 1
            stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
            asyncio.get_running_loop().call_later(self.server.delay, self._answer_document, path, lower, close,
                                                  stats)
            return
        self._answer_document(path, lower, close, None)

    def _answer_document(self, path: str, lower: bytes, close: bool, delayed: _Stats | None) -> None:
        if delayed is not None:
            delayed.in_flight -= 1
            if self.transport.is_closing():
                return
        stats = self.server.stats
        failing = self.server.failing
        if failing.get(path):
            failing[path] -= 1
            self._send(503, b"unavailable", None, close)
            return
        entry = self.server.tree.docs.get(path)
        if entry is None:
            self._send(404, b"not found", None, close)
            return
        etag, body = entry
        at = lower.find(b"if-none-match:")
        if at >= 0:
            value = lower[at + 14:].split(b"\r\n", 1)[0].strip()
            if value == etag.lower():
                stats.not_modified += 1
                self._send(304, b"", etag, close)
                return
        self._send(200, body, etag, close)

    def _send(self, status: int, body: bytes, etag: bytes | None, close: bool) -> None:
        head = [b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                % (status, _REASONS.get(status, b"OK"), len(body))]
        if etag is not None:
            head.append(b"ETag: " + etag + b"\r\n")
        if close:
            head.append(b"Connection: close\r\n")
        self.transport.write(b"".join(head) + b"\r\n" + body)
        if close:
            self.transport.close()


class TreeServer:
    """Serves `tree` on 127.0.0.1 from an asyncio loop on its own thread."""

    def __init__(self, tree: Tree, port: int = 0, advance_every: float | None = None,
                 advance_fraction: float = 0.002, delay: float = 0.0):
        self.tree = tree
        self.delay = delay
        self.stats = _Stats()
        self.failing: dict[str, int] = {}      # path -> answers of 503 still to give
        self.port = port
        self.advance_every = advance_every
        self.advance_fraction = advance_fraction
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="tree-server", daemon=True)
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._server = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(self._loop.create_server(
            lambda: _Protocol(self), "127.0.0.1", self.port, backlog=1024, reuse_address=True))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        self._server.close()
        self._loop.run_until_complete(self._server.wait_closed())
        self._loop.close()

    def _tick(self) -> None:
        # A publisher on wall time: every `advance_every` seconds a new publication.
        while not self._stop.wait(self.advance_every):
            self.tree.advance(self.advance_fraction)

    def start(self) -> "TreeServer":
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("tree server did not start")
        if self.advance_every:
            self._ticker = threading.Thread(target=self._tick, name="tree-publisher", daemon=True)
            self._ticker.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        if self._ticker is not None:
            self._ticker.join(10)

    def __enter__(self) -> "TreeServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, code: str = "0") -> str:
        return self.base_url + document_path(code)

    def control(self, method: str, target: str) -> tuple[int, bytes]:
        parts = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        action = parts.path[len("/_tree/"):]
        tree = self.tree
        if action == "stats":
            races = ({"races": len(tree.races()), "race_tps": tree.race_tps(),
                      "race_documents": len(tree.race_paths(4))} if isinstance(tree, Election) else {})
            return 200, json.dumps({**self.stats.as_json(), **tree.counts(), **races,
                                    "progress": tree.progress}).encode()
        if action == "paths":
            depth = int(query.get("depth", 4))
            if isinstance(tree, Election):
                return 200, json.dumps(tree.race_paths(depth)).encode()
            return 200, json.dumps([document_path(c) for c in tree.codes(depth)]).encode()
        if method != "POST":
            return 400, b"POST only"
        if action == "advance":
            return 200, json.dumps({"rendered": tree.advance(float(query.get("fraction", 0.005)))}).encode()
        if action == "fail":
            self.failing[query["path"]] = int(query.get("times", 1))
            return 200, b"{}"
        if action == "freeze":
            tree.freeze(query["region"])
            return 200, b"{}"
        if action == "unfreeze":
            tree.unfreeze(query["region"])
            return 200, b"{}"
        if action == "reset":
            track = self.stats.track_paths or query.get("paths") == "1"
            open_now = self.stats.connections
            self.stats = _Stats()
            self.stats.track_paths = track
            self.stats.connections = open_now
            self.stats.max_connections = 0
            return 200, b"{}"
        return 404, b"unknown control"


def _serve_in_process(scale: float, progress: float, conn, election: bool = False) -> None:
    tree = (Election.generate_election(scale=scale, progress=progress) if election
            else Tree.generate(scale=scale, progress=progress))
    server = TreeServer(tree).start()
    conn.send(server.port)
    conn.recv()                          # any message (or the parent's end) stops the server
    server.stop()


class ServerProcess:
    """The tree and its server in a child process, so that serving does not share the
    client's interpreter lock (the benchmark measures the client)."""

    def __init__(self, scale: float = 1.0, progress: float = 0.5, election: bool = False):
        ctx = multiprocessing.get_context("fork")
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve_in_process, args=(scale, progress, child, election), daemon=True)
        self.process.start()
        if not self._conn.poll(600):
            self.process.kill()
            raise RuntimeError("tree server process did not start within 10 minutes")
        self.port = self._conn.recv()
        self.base_url = f"http://127.0.0.1:{self.port}"

    def url(self, code: str = "0") -> str:
        return self.base_url + document_path(code)

    def call(self, method: str, action: str, **params) -> dict | list:
        import urllib.request
        from urllib.parse import urlencode

        url = f"{self.base_url}/_tree/{action}" + (f"?{urlencode(params)}" if params else "")
        request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(request, timeout=600) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        try:
            self._conn.send("stop")
        except (BrokenPipeError, OSError):
            pass
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
