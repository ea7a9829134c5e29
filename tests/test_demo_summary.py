"""The demo's closing summary: like events of one minute are one line, others one line each."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from monitor.demo import GROUP_AT, summarize
from monitor.model import Event

T = datetime(2018, 6, 28, 1, 32, 5, tzinfo=timezone.utc)


def event(seconds: float, region: str, rule: str = "jump", state: str = "observed", severity: str = "info") -> Event:
    return Event(at=T + timedelta(seconds=seconds), rule=rule, state=state, severity=severity, source="kpu-jabar",
                 region=region, summary=f"about {region}")


def test_a_burst_of_like_events_is_one_line_naming_the_regions():
    burst = [event(i, f"32{i:02d}") for i in range(1, 10)]
    lines = summarize([event(0, "32", "stall", "resolved", "critical"), *burst], []).splitlines()
    said = lines[lines.index("What countwatch said:") + 1:]
    assert said == [
        "  28 Jun 08:32 WIB (01:32 UTC)  resolved  critical stall         kpu-jabar/32: about 32",
        "  28 Jun 08:32 WIB (01:32 UTC)  observed  info     jump          kpu-jabar: 9 regions "
        "(3201, 3202, 3203, 3204, 3205, 3206 and 3 more); first: about 3201",
    ]


def test_fewer_than_the_group_size_are_listed_one_by_one():
    few = [event(i, f"32{i:02d}") for i in range(1, GROUP_AT)]
    lines = summarize(few, []).splitlines()
    said = lines[lines.index("What countwatch said:") + 1:]
    assert [line.split(": ", 1)[0].split()[-1] for line in said] == [f"kpu-jabar/32{i:02d}" for i in range(1, GROUP_AT)]


def test_named_regions_are_named_in_the_summary():
    from dataclasses import replace
    from monitor.sources.regions import RegionNames

    names = RegionNames({"kpu-jabar": "sirekap"})
    stall = names.named(event(0, "32", "stall", "firing", "warning"))
    lines = summarize([stall, replace(names.named(event(60, "3273")), summary="about Kota Bandung")], []).splitlines()
    said = lines[lines.index("What countwatch said:") + 1:]
    assert "kpu-jabar/Jawa Barat (32): about 32" in said[0]
    assert "kpu-jabar/Kota Bandung (3273): about Kota Bandung" in said[1]
