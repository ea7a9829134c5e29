"""The simulated electorate of West Java: the region tree down to ~75,000 TPS, each TPS with its
registered voters, its votes and its place in the order in which data comes in.

Everything is drawn from one seed, so the same seed gives the same electorate in every
process. Nothing here knows about time: a scenario turns "what share of a kab/kota is in" into
a threshold on each TPS's `rank` (a number in [0, 1): lower comes in earlier), and
`RankedRegion.count` answers "how many TPS and how many votes are in below that threshold" by
bisection over prefix sums, so a document at any level costs a few bisections, not a walk over
its TPS. Parents' sums equal their children's by construction: every level counts the same TPS.
"""
from __future__ import annotations

import random
import threading
from array import array
from bisect import bisect_right
from dataclasses import dataclass
from functools import lru_cache

from .geography import CANDIDATES, KAB_KOTA, PROVINCE_CODE, PROVINCE_NAME, TOTAL_TPS_2018, is_kota

N_CANDIDATES = len(CANDIDATES)
TPS_PER_KECAMATAN = 120       # 74,962 / 120 ≈ 625 kecamatan; Jawa Barat had 627 in 2018
TPS_PER_DESA = 12.6           # ≈ 5,950 desa/kelurahan; Jawa Barat had 5,957


@dataclass(frozen=True)
class Region:
    code: str
    name: str
    level: int                    # 1 provinsi, 2 kab/kota, 3 kecamatan, 4 desa (5 is a TPS)
    parent: str | None
    children: tuple[str, ...]     # region codes; empty for a desa (its children are TPS)
    lo: int                       # its TPS are the global indices lo .. hi-1
    hi: int
    kab: str | None               # the kab/kota it lies in (None for the province)

    @property
    def stations(self) -> int:
        return self.hi - self.lo


class RankedRegion:
    """A region's TPS sorted by rank, with prefix sums of their votes."""

    def __init__(self, ranks: list[float], prefix: tuple[array, ...]):
        self.ranks = ranks
        self.prefix = prefix

    def count(self, threshold: float) -> tuple[int, tuple[int, ...]]:
        n = bisect_right(self.ranks, threshold)
        return n, tuple(p[n] for p in self.prefix)


def split(total: int, parts: int, rng: random.Random, spread: float = 0.5) -> list[int]:
    """`total` shared into `parts` uneven positive parts (largest remainder), deterministic
    given the rng state."""
    weights = [1.0 - spread + 2 * spread * rng.random() for _ in range(parts)]
    scale = (total - parts) / sum(weights)
    raw = [w * scale for w in weights]
    sizes = [1 + int(r) for r in raw]
    order = sorted(range(parts), key=lambda i: raw[i] - int(raw[i]), reverse=True)
    for i in order[: total - sum(sizes)]:
        sizes[i] += 1
    return sizes


class Electorate:
    def __init__(self, seed: int = 2018, total_tps: int = TOTAL_TPS_2018):
        self.seed = seed
        self.regions: dict[str, Region] = {}
        self.rank = array("d")
        self.votes = tuple(array("l") for _ in range(N_CANDIDATES))
        self.registered = array("l")
        self.invalid = array("l")
        self.admin_missing = bytearray()    # 1: the TPS document carries `administrasi: null`
        self.kab_speed: dict[str, float] = {}
        self._ranked: dict[str, RankedRegion] = {}
        self._lock = threading.Lock()
        self._build(total_tps)

    # -- construction -------------------------------------------------------------------
    def _build(self, total_tps: int) -> None:
        rng = random.Random(self.seed)
        weights = [tps for _, _, tps in KAB_KOTA]
        kab_sizes = _proportional(total_tps, weights)
        kab_codes = []
        for (code, name, _), size in zip(KAB_KOTA, kab_sizes):
            kab_codes.append(code)
            # Cities count faster than rural kabupaten: shorter distances to the PPK.
            self.kab_speed[code] = (1.04 if is_kota(code) else 0.96) + 0.08 * rng.random()
            self._build_kab(code, name, size, random.Random(f"{self.seed}/{code}"))
        self.regions[PROVINCE_CODE] = Region(PROVINCE_CODE, PROVINCE_NAME, 1, None, tuple(kab_codes),
                                             0, len(self.rank), None)

    def _build_kab(self, code: str, name: str, size: int, rng: random.Random) -> None:
        lo = len(self.rank)
        n_kec = max(4, round(size / TPS_PER_KECAMATAN))
        base = _kab_shares(rng)
        kec_codes = []
        for k, kec_size in enumerate(split(size, n_kec, rng), start=1):
            kec_code = f"{code}{k:02d}"
            kec_codes.append(kec_code)
            self._build_kec(kec_code, code, kec_size, base, rng)
        self.regions[code] = Region(code, name, 2, PROVINCE_CODE, tuple(kec_codes), lo, len(self.rank), code)

    def _build_kec(self, code: str, kab: str, size: int, base: list[float], rng: random.Random) -> None:
        lo = len(self.rank)
        # Some kecamatan send their forms in early, some late: a per-kecamatan skew of rank.
        skew = 0.6 + rng.random()
        village_prefix = "1" if is_kota(kab) else "2"
        n_desa = max(2, min(size, round(size / TPS_PER_DESA)))
        desa_codes = []
        for d, desa_size in enumerate(split(size, n_desa, rng, spread=0.6), start=1):
            desa_code = f"{code}{village_prefix}{d:03d}"
            desa_codes.append(desa_code)
            desa_lo = len(self.rank)
            for _ in range(desa_size):
                self._add_tps(rng, base, skew)
            self.regions[desa_code] = Region(desa_code, f"DESA {village_prefix}{d:03d}", 4, code, (),
                                             desa_lo, len(self.rank), kab)
        self.regions[code] = Region(code, f"KECAMATAN {code[-2:]}", 3, kab, tuple(desa_codes),
                                    lo, len(self.rank), kab)

    def _add_tps(self, rng: random.Random, base: list[float], skew: float) -> None:
        r = rng.random
        # 220..600, mean ≈ 410 (31.7 M voters / 74,962 TPS ≈ 423 in 2018), within the Pilkada
        # maximum per TPS, so only the scripted TPS can be over capacity.
        registered = 220 + int(380 * r())
        ballots = int(registered * (0.64 + 0.18 * r()))
        invalid = int(ballots * 0.06 * r())
        valid = ballots - invalid
        weights = [b * (0.7 + 0.6 * r()) for b in base]
        scale = valid / sum(weights)
        split_votes = [int(w * scale) for w in weights]
        split_votes[0] += valid - sum(split_votes)     # rounding remainder to the first pair
        for column, v in zip(self.votes, split_votes):
            column.append(v)
        self.rank.append(r() ** skew)
        self.registered.append(registered)
        self.invalid.append(invalid)
        # ~4 % of real 2024 TPS documents in the sample had `administrasi: null` (data missing).
        self.admin_missing.append(1 if r() < 0.04 else 0)

    # -- queries ------------------------------------------------------------------------
    def region(self, code: str) -> Region | None:
        return self.regions.get(code)

    def tps_code(self, index: int, desa: Region) -> str:
        return f"{desa.code}{index - desa.lo + 1:03d}"

    def tps_index(self, code: str) -> int | None:
        """Global index of a 13-digit TPS code, None when no such TPS."""
        desa = self.regions.get(code[:10])
        if len(code) != 13 or desa is None or desa.level != 4 or not code[10:].isdigit():
            return None
        index = desa.lo + int(code[10:]) - 1
        return index if desa.lo <= index < desa.hi else None

    def tps_codes(self, desa: Region) -> list[str]:
        return [self.tps_code(i, desa) for i in range(desa.lo, desa.hi)]

    def tps_votes(self, index: int) -> tuple[int, ...]:
        return tuple(column[index] for column in self.votes)

    def ranked(self, code: str) -> RankedRegion:
        """The sorted view of a kab/kota, kecamatan or desa, built once on first use."""
        with self._lock:
            cached = self._ranked.get(code)
            if cached is not None:
                return cached
            region = self.regions[code]
            order = sorted(range(region.lo, region.hi), key=self.rank.__getitem__)
            prefix = []
            for column in self.votes:
                sums = array("l", [0])
                total = 0
                for i in order:
                    total += column[i]
                    sums.append(total)
                prefix.append(sums)
            ranked = RankedRegion([self.rank[i] for i in order], tuple(prefix))
            self._ranked[code] = ranked
            return ranked


def _proportional(total: int, weights: list[int]) -> list[int]:
    scale = total / sum(weights)
    raw = [w * scale for w in weights]
    sizes = [int(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: raw[i] - sizes[i], reverse=True)
    for i in order[: total - sum(sizes)]:
        sizes[i] += 1
    return sizes


def _kab_shares(rng: random.Random) -> list[float]:
    """Each kab/kota leans its own way around the statewide result (not its real 2018 result)."""
    shares = [c.share * (0.75 + 0.5 * rng.random()) for c in CANDIDATES]
    total = sum(shares)
    return [s / total for s in shares]


@lru_cache(maxsize=4)
def electorate(seed: int = 2018) -> Electorate:
    """The shared, immutable electorate of a seed (built once per process, in about 0.3 s)."""
    return Electorate(seed)
