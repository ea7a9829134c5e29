"""The one way countwatch says a duration, a moment and a zone (monitor/wording.py): detector
summaries, alert messages, the review and the demo all use it, so they agree."""
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from monitor.wording import WIB, duration, local_iso, when, zone_name


@pytest.mark.parametrize("value, text", [
    (0, "0s"), (48, "48s"), (59.4, "59s"), (59.6, "1m"), (62, "1m 02s"), (725, "12m 05s"), (2700, "45m"),
    (6000, "1h 40m"), (6840, "1h 54m"), (10800, "3h"), (86400, "1d"), (127800, "1d 11h"),
    (timedelta(hours=35, minutes=30), "1d 11h"), (-90, "-1m 30s"), (None, "—")])
def test_one_duration_wording(value, text):
    assert duration(value) == text


def test_moments_in_the_source_zone_beside_utc():
    moment = datetime(2018, 6, 27, 16, 6, 14, tzinfo=timezone.utc)
    assert when(moment, WIB) == "27 Jun 23:06 WIB (16:06 UTC)"
    assert when(moment, "Asia/Jakarta", year=True, seconds=True) == "27 Jun 2018 23:06:14 WIB (16:06:14 UTC)"
    late = datetime(2018, 6, 27, 18, 10, tzinfo=timezone.utc)
    assert when(late, WIB) == "28 Jun 01:10 WIB (27 Jun 18:10 UTC)"      # the day change shows
    assert when(late, WIB, date=False) == "01:10 WIB (18:10 UTC)"
    assert when(late, "UTC") == "27 Jun 18:10 UTC"
    assert when(None, WIB) == "—" and when(None, WIB, missing="an unknown time") == "an unknown time"


def test_zone_names():
    moment = datetime(2024, 2, 22, 16, 0, tzinfo=timezone.utc)
    assert zone_name(moment, WIB) == "WIB"
    assert zone_name(moment, ZoneInfo("Asia/Makassar")) == "WITA"
    assert zone_name(moment, timezone(timedelta(hours=9))) == "WIT"
    assert zone_name(moment, "America/Chicago") == "CST"
    assert zone_name(moment, timezone(timedelta(hours=5, minutes=30))) == "UTC+05:30"
    assert local_iso(moment, WIB) == "2024-02-22T23:00:00+07:00"


def test_a_pace_keeps_its_small_values():
    """A catch-up of +2 TPS over 12 hours is 0.16 TPS/h, not 0/h; large paces stay whole."""
    from monitor.wording import pace
    assert pace(2 * 3600 / 43800) == "0.16"
    assert pace(2.44) == "2.4"
    assert pace(9.96) == "10"
    assert pace(4739.4) == "4,739"
    assert pace(None) == "?"
