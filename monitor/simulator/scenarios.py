"""The scripted scenarios: `jabar-2018` (the night countwatch was born from) and `steady`.

Both play the Pilgub Jabar 2018 count from 17:00 WIB on Wednesday 27 June 2018 to 10:00 WIB
on the 28th (17 h: ~85 s at the default speed of 720). The site publishes every 5 minutes at
:00:15 past (Sirekap's HH:00:15 habit), every 15 minutes between 00:00 and 06:00 WIB, and data
entry slows down overnight. docs/simulator.md has the script in WIB and UTC.
"""
from __future__ import annotations

from datetime import datetime, timezone

from .count import WIB, CountModel, TpsPatch
from .curve import EntryCurve
from .electorate import electorate
from .geography import PROVINCE_CODE
from .scenario import GroundTruth, ScriptedScenario, schedule

SEED = 2018
PROVINCE_PATH = "/pemilu/hhcw/pkwkp/32.json"

# The desa and TPS of the OCR-inflated form: 1,223 votes on 213 registered voters, the
# numbers of a real 2024 misread (TPS 3101011003008), moved into a generated Bandung desa.
INFLATED_DESA = "3204052003"
INFLATED_TPS = "3204052003008"
INFLATED_DESA_PATH = "/pemilu/hhcw/pkwkp/32/3204/320405/3204052003.json"
INFLATED_TPS_PATH = "/pemilu/hhcw/pkwkp/32/3204/320405/3204052003/3204052003008.json"


def wib(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """A moment of June 2018 given in WIB, as aware UTC."""
    return datetime(2018, 6, day, hour, minute, second, tzinfo=WIB).astimezone(timezone.utc)


START = wib(27, 17)
END = wib(28, 10)

# Share of all TPS keyed in by each moment: nothing before the polls close at 13:00, a busy
# evening, a slow night, a morning rush. Never 100 %: some forms take days.
CURVE_2018 = [
    (wib(27, 13), 0.0), (wib(27, 14), 0.01), (wib(27, 17), 0.12), (wib(27, 19), 0.27),
    (wib(27, 21), 0.40), (wib(27, 23), 0.49), (wib(28, 1), 0.54), (wib(28, 5), 0.58),
    (wib(28, 7), 0.63), (wib(28, 8, 30), 0.69), (wib(28, 10), 0.76), (wib(28, 16), 0.90),
    (wib(29, 12), 0.97),
]

FREEZE_LAST = wib(27, 21, 0, 15)      # the last publication before the freeze stays up...
RESUME = wib(28, 8, 30, 15)           # ...until this one, which carries the whole night at once
OUTAGE_PHASES = [                     # the site down, then back up (still frozen)
    (wib(27, 23, 50), wib(28, 0, 20), "503"),
    (wib(28, 0, 20), wib(28, 1, 0), "timeout"),
    (wib(28, 1, 0), wib(28, 1, 30), "502"),
]
INFLATED_AT = wib(27, 19, 40)

# Pilkada's legal maximum of voters per TPS (DESIGN.md: 600 in Pilkada 2024); the detectors'
# default of 300 is Pemilu's and would flag ordinary Pilkada TPS as over capacity.
DETECTION = {"max_votes_per_station": 600}

DEFAULT_SPEED = 720.0
INTERVAL = "2m"     # scenario time: 2.5 polls per 5-minute publication
# Wall time, like the fetcher's retry backoff: at 720x a 2 s timeout was 24 scenario minutes
# per failed poll and two retries another 18, so the demo's outage (23:50 WIB) was reported
# at 01:18. 0.5 s (6 scenario minutes) on loopback, and no retries: every poll of the night
# counts as one.
TIMEOUT = "500ms"   # the simulated hangs outlast it
RETRIES = 0


def _province_source(name: str) -> dict:
    return {"name": name, "kind": "sirekap", "path": PROVINCE_PATH, "region": PROVINCE_CODE,
            "depth": 1, "interval": INTERVAL, "timeout": TIMEOUT, "retries": RETRIES,
            "detection": dict(DETECTION)}


def _patches() -> tuple[TpsPatch, ...]:
    return (
        TpsPatch(INFLATED_TPS, report_at=INFLATED_AT, votes=(58, 641, 511, 13), true_votes=(58, 64, 51, 12),
                 registered=213, invalid=1),
        # Decoys in the watched desa: missing data that must not read as votes above capacity.
        TpsPatch("3204052003004", report_at=wib(27, 19, 10), admin="zero_registered"),
        TpsPatch("3204052003010", report_at=wib(27, 20, 20), admin="null"),
    )


def jabar_2018() -> ScriptedScenario:
    model = CountModel(electorate(SEED), EntryCurve(CURVE_2018), _patches())
    publications = schedule(wib(27, 13), wib(29, 12), pauses=((FREEZE_LAST, RESUME),))
    frozen = model.state(PROVINCE_CODE, FREEZE_LAST.timestamp())
    resumed = model.state(PROVINCE_CODE, RESUME.timestamp())
    first_missed = next(t for t in schedule(wib(27, 13), wib(29, 12)) if t > FREEZE_LAST.timestamp())
    incidents = [
        GroundTruth("freeze", FREEZE_LAST, RESUME, {
            "summary": "the site stops publishing: ts and counts stand still at 21:00:15 WIB",
            "last_published_at": FREEZE_LAST.astimezone(WIB).isoformat(),
            "first_missed_publication": datetime.fromtimestamp(first_missed, WIB).isoformat(),
            "stations_reported": frozen.stations_reported, "stations": frozen.stations,
            "paths": "all", "expected_rules": ["stall", "stale_source"]}),
        GroundTruth("outage", OUTAGE_PHASES[0][0], OUTAGE_PHASES[-1][1], {
            "summary": "the site is down (503, then hanging, then 502), then back up still frozen",
            "phases": [{"start": a.isoformat(), "end": b.isoformat(), "mode": m} for a, b, m in OUTAGE_PHASES],
            "paths": "all", "expected_rules": ["outage"]}),
        GroundTruth("jump", RESUME, RESUME, {
            "summary": "publishing resumes with the whole night in one update",
            "stations_reported_before": frozen.stations_reported,
            "stations_reported_after": resumed.stations_reported,
            "delta": resumed.stations_reported - frozen.stations_reported,
            "expected_rules": ["jump"]}),
        GroundTruth("over_capacity", INFLATED_AT, END, {
            "summary": "an OCR-inflated form: 1,223 votes on a TPS of 213 registered voters",
            "region": INFLATED_TPS, "desa": INFLATED_DESA, "path": INFLATED_TPS_PATH,
            "desa_path": INFLATED_DESA_PATH, "registered_voters": 213, "votes": 1223, "valid_votes": 185,
            "expected_rules": ["over_capacity"]}),
    ]
    decoys = [
        {"region": "3204052003004", "what": "administrasi reads 0 registered voters next to real votes",
         "from": wib(27, 19, 10)},
        {"region": "3204052003010", "what": "administrasi null (form not read) next to real votes",
         "from": wib(27, 20, 20)},
    ]
    sources = [_province_source("kpu-jabar"),
               {"name": "kpu-jabar-desa", "kind": "sirekap", "path": INFLATED_DESA_PATH,
                "region": INFLATED_DESA, "depth": 1, "interval": INTERVAL, "timeout": TIMEOUT, "retries": RETRIES,
                "detection": dict(DETECTION)}]
    return ScriptedScenario(
        name="jabar-2018",
        description="Pilgub Jabar 2018: the count freezes at 21:00 WIB, the site goes down at 23:50, "
                    "publishing resumes at 08:30 the next morning with a catch-up jump",
        model=model, start=START, end=END, default_speed=DEFAULT_SPEED, sources=sources,
        publications=publications, outages=OUTAGE_PHASES, incidents=incidents, decoys=decoys)


def steady() -> ScriptedScenario:
    model = CountModel(electorate(SEED), EntryCurve(CURVE_2018))
    return ScriptedScenario(
        name="steady",
        description="Pilgub Jabar 2018 counted without incident: every publication goes out, slower at night",
        model=model, start=START, end=END, default_speed=DEFAULT_SPEED,
        sources=[_province_source("kpu-jabar")],
        publications=schedule(wib(27, 13), wib(29, 12)), outages=[], incidents=[])

