"""West Java as the simulator lays it out: the 27 kab/kota, the 2018 candidate pairs and the
size of the count.

Provenance of the copied facts:
- Kab/kota codes and names: `district_32_32` (the `wilayah` list of Jawa Barat) from
  github.com/razanfawwaz/pilkada-scrap at commit 481f1a67480bf6e66a1d0156aba371184f861207.
- TPS per kab/kota: `progres.total` of each row of the Pilgub Jabar 2024 province document
  (`pkwkp/32.json`, ts 2024-11-28 10:15:04 WIB, 73,862 TPS) from the same repository and commit.
  2018's own per-kab/kota split is not at hand, so 2024's is used as weights to share out
  2018's 74,962 TPS (KPU's figure for Pilgub Jabar 2018).
- Candidate pairs and statewide shares: the Pilgub Jabar 2018 result as published by KPU Jawa
  Barat (Rindu 32.88 %, Hasanah 12.62 %, Asyik 28.74 %, 2DM 25.77 %). The candidate ids are
  invented in Sirekap's style (numeric strings); 2018 had no Sirekap.
Kecamatan and desa below a kab/kota are generated (see electorate.py), not real.
"""
from __future__ import annotations

from dataclasses import dataclass

PROVINCE_CODE = "32"
PROVINCE_NAME = "JAWA BARAT"
TOTAL_TPS_2018 = 74_962

# (code, name, TPS in Pilgub Jabar 2024) — see the module docstring for the source.
KAB_KOTA: tuple[tuple[str, str, int], ...] = (
    ("3201", "BOGOR", 7908),
    ("3202", "SUKABUMI", 4318),
    ("3203", "CIANJUR", 4054),
    ("3204", "BANDUNG", 5859),
    ("3205", "GARUT", 4418),
    ("3206", "TASIKMALAYA", 2847),
    ("3207", "CIAMIS", 2084),
    ("3208", "KUNINGAN", 1927),
    ("3209", "CIREBON", 3318),
    ("3210", "MAJALENGKA", 2111),
    ("3211", "SUMEDANG", 2012),
    ("3212", "INDRAMAYU", 2780),
    ("3213", "SUBANG", 2652),
    ("3214", "PURWAKARTA", 1462),
    ("3215", "KARAWANG", 3793),
    ("3216", "BEKASI", 4236),
    ("3217", "BANDUNG BARAT", 2562),
    ("3218", "PANGANDARAN", 774),
    ("3271", "KOTA BOGOR", 1530),
    ("3272", "KOTA SUKABUMI", 551),
    ("3273", "KOTA BANDUNG", 3590),
    ("3274", "KOTA CIREBON", 547),
    ("3275", "KOTA BEKASI", 3673),
    ("3276", "KOTA DEPOK", 2763),
    ("3277", "KOTA CIMAHI", 823),
    ("3278", "KOTA TASIKMALAYA", 985),
    ("3279", "KOTA BANJAR", 285),
)


@dataclass(frozen=True)
class Candidate:
    id: str          # Sirekap-style id, the key in `chart` and `table` rows
    number: int      # nomor urut on the ballot
    name: str
    share: float     # statewide share of valid votes in 2018, the centre of the simulation


CANDIDATES: tuple[Candidate, ...] = (
    Candidate("1800001", 1, "RIDWAN KAMIL - UU RUZHANUL ULUM", 0.3288),
    Candidate("1800002", 2, "TB HASANUDDIN - ANTON CHARLIYAN", 0.1262),
    Candidate("1800003", 3, "SUDRAJAT - AHMAD SYAIKHU", 0.2874),
    Candidate("1800004", 4, "DEDDY MIZWAR - DEDI MULYADI", 0.2577),
)
CANDIDATE_IDS: tuple[str, ...] = tuple(c.id for c in CANDIDATES)


def is_kota(kab_code: str) -> bool:
    """BPS numbers kota from 71 upward; their villages are kelurahan (codes 1xxx), those of a
    kabupaten mostly desa (2xxx)."""
    return int(kab_code[2:]) >= 71
