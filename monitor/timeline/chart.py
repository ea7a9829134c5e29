"""The picture of the night: progress (stations reported over stations) against time, stall
and outage spans shaded, alert markers on top.

matplotlib is an optional extra (`countwatch[report]`); without it `render_chart` says why it
drew nothing and the report says the chart was skipped. The Figure is built through the Agg
canvas directly, never pyplot: no global backend switch, no state shared with a caller.
"""
from __future__ import annotations

from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

from .build import Timeline

WIDTH_INCHES, PANEL_INCHES, EXTRA_INCHES, DPI = 12.0, 3.0, 1.0, 100
MAX_PANELS = 4


def chart_size(panels: int) -> tuple[int, int]:
    """(width, height) in pixels of a chart with this many panels."""
    panels = max(1, min(panels, MAX_PANELS))
    return int(WIDTH_INCHES * DPI), int((PANEL_INCHES * panels + EXTRA_INCHES) * DPI)


def chosen_series(timeline: Timeline) -> list[tuple[str, str]]:
    """Which (source, region) to draw: with a region filter, that one; otherwise each
    source's top document (the region with the most stations), at most MAX_PANELS."""
    keys = sorted(k for k, polls in timeline.series.items() if any(p.ratio is not None for p in polls))
    if timeline.filters.get("region"):
        return keys[:MAX_PANELS]
    best: dict[str, tuple[str, str]] = {}
    for key in keys:
        top = max((p.stations or 0 for p in timeline.series[key]), default=0)
        current = best.get(key[0])
        if current is None or top > max((p.stations or 0 for p in timeline.series[current]), default=0):
            best[key[0]] = key
    return [best[s] for s in sorted(best)][:MAX_PANELS]


def render_chart(timeline: Timeline, path: Path) -> dict[str, Any]:
    """Write the PNG; returns {"path": str} or {"path": None, "reason": why not}."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.dates import AutoDateLocator
        from matplotlib.figure import Figure
    except ImportError:
        return {"path": None, "reason": "matplotlib is not installed (pip install 'countwatch[report]')"}
    series = chosen_series(timeline)
    width, height = chart_size(len(series))
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    FigureCanvasAgg(figure)
    zone = timeline.zone
    axes_list = figure.subplots(max(1, len(series)), 1, sharex=True, squeeze=False)[:, 0]
    if not series:
        axes_list[0].text(0.5, 0.5, "no poll lines with station counts in these logs", ha="center",
                          va="center", transform=axes_list[0].transAxes)
    for axes, (source, region) in zip(axes_list, series):
        _panel(axes, timeline, source, region)
    bottom = axes_list[-1]
    locator = AutoDateLocator(tz=zone)
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(_unique_formatter(zone, "%H:%M", dated=True))
    label = timeline.first.astimezone(zone).tzname() if timeline.first else str(zone)
    bottom.set_xlabel(f"time ({label}, {zone}); UTC along the top")
    top = axes_list[0].secondary_xaxis("top")
    top_locator = AutoDateLocator(tz=timezone.utc)
    top.xaxis.set_major_locator(top_locator)
    top.xaxis.set_major_formatter(_unique_formatter(timezone.utc, "%H:%M UTC"))
    top.tick_params(labelsize=8)
    # the legend sits right of the plot: inside, it hides the first hours and their markers
    figure.subplots_adjust(left=0.07, right=0.80, top=1 - 0.55 / (height / DPI), bottom=0.55 / (height / DPI) + 0.05,
                           hspace=0.35)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a fixed canvas (no bbox_inches="tight") keeps the PNG's size predictable
    figure.savefig(path, dpi=DPI, format="png")
    ticks = [label.get_text() for label in bottom.get_xticklabels() if label.get_text()]
    return {"path": str(path), "width": width, "height": height, "series": [f"{s}/{r}" for s, r in series],
            "titles": [a.get_title(loc="left") for a in axes_list], "ticks": ticks,
            "labels": [t.get_text() for a in axes_list for t in a.texts]}


def _unique_formatter(zone, usual: str, dated: bool = False):
    """Tick labels as times, the date only where the day changes (first tick, midnight), with
    seconds where two ticks would otherwise read the same ("13:57 13:57" on a short run)."""
    from matplotlib.dates import num2date
    from matplotlib.ticker import Formatter

    class UniqueTicks(Formatter):
        def format_ticks(self, values):
            moments = [num2date(v, tz=zone) for v in values]
            for clock in (usual, usual.replace("%H:%M", "%H:%M:%S"), usual.replace("%H:%M", "%H:%M:%S.%f")):
                labels = [m.strftime(clock) for m in moments]
                if len(set(labels)) == len(labels):
                    break
            if dated:
                labels = [(f"{m.day} {m:%b}\n" if i == 0 or m.date() != moments[i - 1].date() else "") + label
                          for i, (m, label) in enumerate(zip(moments, labels))]
            return labels

        def __call__(self, x, pos=None):
            return self.format_ticks([x])[0]

    return UniqueTicks()


def _panel(axes, timeline: Timeline, source: str, region: str) -> None:
    polls = [p for p in timeline.series[(source, region)] if p.ratio is not None]
    times = [p.at for p in polls]
    axes.step(times, [100 * p.ratio for p in polls], where="post", color="#1f4e79", linewidth=1.6,
              label="stations reported (%)")
    axes.set_ylabel("% of stations")
    axes.set_title(timeline.place(source, region), fontsize=10, loc="left")
    axes.grid(True, alpha=0.3)
    end = timeline.last
    shaded = set()
    for incident in timeline.incidents:
        if incident.source != source or incident.point:
            continue
        if incident.stoppage and incident.region == region:
            label = None if "stall" in shaded else "stall (last advance → resolved)"
            shaded.add("stall")
            axes.axvspan(incident.started, incident.end_or(end), color="#f0a030", alpha=0.28, label=label)
    for span in timeline.outages:
        if span.source == source:
            label = None if "outage" in shaded else "failed polls"
            shaded.add("outage")
            axes.axvspan(span.start, span.end, color="#c03030", alpha=0.22, hatch="//", label=label)
    _markers(axes, timeline, source, region)
    axes.set_ylim(bottom=0, top=max(5.0, min(105.0, max((100 * p.ratio for p in polls), default=0) * 1.15)))
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def _markers(axes, timeline: Timeline, source: str, region: str) -> None:
    """Detections ▼, first notifications ●, reminders ○, resolutions ▲, point anomalies and
    catch-ups ◆, along the panel's top, each labelled with what it was and its local time (a
    catch-up with its size), so the chart reads without the legend. Only the panel's own
    region (a source's hundred TPS-level alerts would bury its story)."""
    zone = timeline.zone
    kinds = {"detected": ("v", "#c00000", True), "notified": ("o", "#2060c0", True),
             "reminder": ("o", "#2060c0", False), "resolved": ("^", "#208020", True),
             "observed": ("D", "#7030a0", True)}
    moments: dict[str, list[tuple[Any, str]]] = {k: [] for k in kinds}
    for incident in timeline.incidents:
        if (incident.source, incident.region) != (source, region):
            continue
        rule = "+".join(incident.rules)
        if incident.point:
            moments["observed"].append((incident.started, rule))
            continue
        if incident.detected:
            moments["detected"].append((incident.detected, rule))
        for note in incident.sent:
            reason = str(note.get("reason") or "")
            kind = "reminder" if reason == "repeat" else "notified"
            text = {"repeat": "reminder", "resolved": "resolution"}.get(reason, reason or "notification")
            moments[kind].append((note.at, text))
        if incident.resolved:
            moments["resolved"].append((incident.resolved, rule))
        resumed = incident.extra.get("catch_up")
        if resumed is not None:
            point, added, _ = resumed
            moments["observed"].append((point.at, f"catch-up +{added:,}"))
        else:
            moments["observed"] += [(o.at, str(o.get("rule"))) for o in incident.observed]
    from matplotlib.dates import date2num

    transform = axes.get_xaxis_transform()   # x in data, y in axes fraction: markers sit at the top
    for index, (kind, (marker, color, filled)) in enumerate(kinds.items()):
        points = sorted(moments[kind], key=lambda p: p[0])
        if not points:
            continue
        y = 0.93 - 0.075 * index
        axes.scatter([t for t, _ in points], [y] * len(points), marker=marker, s=36, transform=transform, zorder=5,
                     label=kind, clip_on=False, facecolors=color if filled else "none", edgecolors=color)
        free_from = None     # where the previous label ends
        for moment, text in points:
            label = f"{text} {moment.astimezone(zone):%H:%M}"
            if free_from is not None and moment < free_from:
                continue        # this label would print over the previous one
            free_from = moment + timedelta(seconds=_label_width(axes, label))
            axes.annotate(label, (date2num(moment), y), xycoords=transform,
                          xytext=(4, -3), textcoords="offset points", fontsize=6.5, color=color, zorder=6)


def _label_width(axes, label: str) -> float:
    """Seconds of x axis a marker label covers (6.5 pt text: about 5.5 px a character)."""
    from matplotlib.dates import num2date

    left, right = axes.get_xlim()
    span = (num2date(right) - num2date(left)).total_seconds()
    pixels = axes.get_window_extent().width or 1.0
    return (len(label) + 2) * 5.5 * span / pixels
