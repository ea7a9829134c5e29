"""The review's chart: a PNG of the expected size that is not blank, panels per source, and a
report that still renders (and says so) when matplotlib is missing."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from monitor.timeline import review, write_report
from monitor.timeline.chart import chart_size, chosen_series, render_chart

NIGHT = Path(__file__).parent / "fixtures" / "logs" / "night-a.log"
WIB = ZoneInfo("Asia/Jakarta")
image = pytest.importorskip("matplotlib.image")


def test_png_opens_has_the_expected_size_and_is_not_blank(tmp_path):
    timeline = review([NIGHT], WIB)
    result = render_chart(timeline, tmp_path / "chart.png")
    assert result["series"] == ["kpu-jabar/32"]
    pixels = image.imread(tmp_path / "chart.png")
    width, height = chart_size(1)
    assert (width, height) == (1200, 400)
    assert pixels.shape[:2] == (height, width)
    rgb = pixels[..., :3]
    assert rgb.std() > 0.05                   # a white canvas has none
    # the stall span is shaded orange somewhere: red high, blue clearly lower
    orange = (rgb[..., 0] > 0.85) & (rgb[..., 2] < 0.8) & (rgb[..., 1] > 0.7)
    assert orange.sum() > 5000


def test_one_panel_per_source_top_region(tmp_path):
    other = tmp_path / "other.log"
    rows = []
    for text in NIGHT.read_text(encoding="utf-8").splitlines():
        try:
            data = json.loads(text)
        except ValueError:
            continue
        if data.get("event") == "poll":
            # a second source, and a child region of the first with fewer stations
            rows.append(json.dumps({**data, "source": "kpu-pusat", "region": "0"}))
            if data.get("stations"):
                rows.append(json.dumps({**data, "region": "3201", "stations": 5000,
                                        "stations_reported": data["stations_reported"] // 20}))
    other.write_text("\n".join(rows) + "\n", encoding="utf-8")
    timeline = review([NIGHT, other], WIB)
    assert chosen_series(timeline) == [("kpu-jabar", "32"), ("kpu-pusat", "0")]
    render_chart(timeline, tmp_path / "two.png")
    assert image.imread(tmp_path / "two.png").shape[:2] == (700, 1200)
    only = review([NIGHT, other], WIB, region="3201")
    assert chosen_series(only) == [("kpu-jabar", "3201")]


def test_without_matplotlib_the_report_renders_and_says_so(tmp_path, monkeypatch):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.dates", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)     # `import` of a None entry raises ImportError
    main = Path(write_report([NIGHT], tmp_path))
    text = main.read_text(encoding="utf-8")
    assert "Chart skipped: matplotlib is not installed" in text
    assert "| #1 " in text
    assert not (tmp_path / "timeline.png").exists()
    assert "Chart skipped: matplotlib is not installed" in (tmp_path / "report.html").read_text(encoding="utf-8")


def test_markers_say_what_and_when_reminders_differ_and_names_title_the_panel(tmp_path):
    named = tmp_path / "named.log"
    text = NIGHT.read_text(encoding="utf-8")
    named.write_text(json.dumps({"source": "kpu-jabar", "region": "32", "name": "Jawa Barat", "event": "region.named",
                                 "level": "info", "timestamp": "2018-06-27T12:00:00Z", "instance": "cw-a"})
                     + "\n" + text, encoding="utf-8")
    result = render_chart(review([named], WIB), tmp_path / "chart.png")
    assert result["titles"] == ["kpu-jabar: Jawa Barat (32)"]
    labels = result["labels"]
    assert any(label.startswith("stall+stale_source 21:50") for label in labels), labels
    assert any(label.startswith("first 21:50") for label in labels), labels
    assert any(label.startswith("catch-up +") for label in labels), labels
    assert len(result["ticks"]) == len(set(result["ticks"]))


def test_ticks_never_repeat_on_a_short_run(tmp_path):
    from datetime import datetime, timedelta, timezone
    short = tmp_path / "short.log"
    start = datetime(2018, 6, 27, 6, 57, tzinfo=timezone.utc)
    lines = [json.dumps({"source": "kpu-jabar", "region": "32", "result": "ok", "stations_reported": 100 + i,
                         "stations": 1000, "changed": True, "event": "poll", "level": "info",
                         "timestamp": (start + timedelta(seconds=10 * i)).isoformat().replace("+00:00", "Z"),
                         "instance": "cw"}) for i in range(15)]
    short.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = render_chart(review([short], WIB), tmp_path / "short.png")
    assert len(result["ticks"]) >= 3
    assert len(result["ticks"]) == len(set(result["ticks"])), result["ticks"]
