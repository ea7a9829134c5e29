"""`countwatch timeline` and `write_report`: read the logs, rebuild, render, write."""
from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from statistics import median
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .build import Timeline, build_timeline
from .chart import render_chart
from .clocks import align, estimate_offsets
from .fmt import duration
from .html import render_html
from .polls import by_series, poll_points
from .records import LogRecord, read_logs, with_rotated
from .render import render_json, render_markdown

DEFAULT_TIMEZONE = "Asia/Jakarta"   # KPU's WIB; DESIGN.md's [daemon] timezone default
FORMATS = ("md", "html", "json")


def review(log_files: list[Path], zone: tzinfo, *, source: str | None = None, region: str | None = None,
           start: datetime | None = None, end: datetime | None = None,
           align_clocks: bool = False, incident: str | None = None) -> Timeline:
    records, stats = read_logs([Path(p) for p in log_files])
    offsets = estimate_offsets(records)
    if align_clocks:
        records = align(records, offsets)
    instances = _instances(records, offsets)
    note = _clock_note(records, offsets, align_clocks)
    known = [abs(e["offset_seconds"]) for e in offsets.values() if e.get("offset_seconds") is not None]
    skew = timedelta(0) if align_clocks or not known else timedelta(seconds=max(known))
    return build_timeline(records, stats, zone, instances=instances, source=source, region=region,
                          start=start, end=end, clock_note=note, skew=skew, incident_id=incident)


def _instances(records: list[LogRecord], offsets: dict[str, dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for record in records:
        info = out.setdefault(record.instance, {"lines": 0, "first": record.at, "last": record.at})
        info["lines"] += 1
        info["first"] = min(info["first"], record.at)
        info["last"] = max(info["last"], record.at)
    for name, info in out.items():
        estimate = offsets.get(name, {})
        info["offset_seconds"] = estimate.get("offset_seconds")
        info["samples"] = estimate.get("samples", 0)
        if len(out) == 1:
            info["offset_text"] = "only instance"
        elif estimate.get("reference") == name:
            info["offset_text"] = "reference"
        elif estimate.get("offset_seconds") is None:
            info["offset_text"] = f"unknown ({estimate.get('samples', 0)} shared observations)"
        else:
            seconds = estimate["offset_seconds"]
            info["offset_text"] = (f"{'+' if seconds >= 0 else ''}{duration(seconds)} vs {estimate['reference']} "
                                   f"({estimate['samples']} shared observations)")
    return out


def _clock_note(records: list[LogRecord], offsets: dict[str, dict], aligned: bool) -> str:
    if len(offsets) < 2:
        return ""
    note = ("Lines of several instances are merged by their own timestamps (ties: instance name, then each "
            "instance's own line order).")
    gaps = [(b.at - a.at).total_seconds() for polls in by_series(poll_points(records)).values()
            for a, b in zip(polls, polls[1:])]
    interval = median(gaps) if gaps else 0.0
    skewed = {name: e for name, e in offsets.items()
              if e.get("offset_seconds") is not None and abs(e["offset_seconds"]) > interval}
    for name, estimate in sorted(skewed.items()):
        seconds = estimate["offset_seconds"]
        note += (f" {name}'s clock looks {duration(abs(seconds))} {'ahead of' if seconds > 0 else 'behind'} "
                 f"{estimate['reference']}'s (median over {estimate['samples']} new counts both saw; "
                 f"good to about one poll interval, {duration(interval)}).")
    if skewed:
        note += (" Times were moved onto the reference instance's clock (--align-clocks)." if aligned else
                 " Times are shown as each instance logged them; --align-clocks moves them onto the reference "
                 "instance's clock.")
    return note


def render(timeline: Timeline, fmt: str, chart: dict) -> str:
    return {"md": render_markdown, "html": render_html, "json": render_json}[fmt](timeline, chart)


def _chart(timeline: Timeline, path: Path, link_from: Path | None) -> dict:
    try:
        chart = render_chart(timeline, path)
    except Exception as error:  # noqa: BLE001 - a chart that fails must not cost the report
        return {"path": None, "reason": f"drawing failed ({type(error).__name__}: {error})"}
    if chart.get("path"):
        chart["link"] = os.path.relpath(path, link_from) if link_from else str(path)
    return chart


def write_report(log_files: list[Path], out_dir: Path) -> str:
    """report.md (the main one, returned), report.html, report.json and timeline.png in out_dir.
    Each log file is read with its rotated siblings (the caller names the live file)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    timeline = review(with_rotated(log_files), ZoneInfo(DEFAULT_TIMEZONE))
    chart = _chart(timeline, out_dir / "timeline.png", out_dir)
    for fmt, name in (("md", "report.md"), ("html", "report.html"), ("json", "report.json")):
        (out_dir / name).write_text(render(timeline, fmt, chart), encoding="utf-8")
    return str(out_dir / "report.md")


def _moment(text: str | None, zone: tzinfo) -> datetime | None:
    """An ISO time; without a zone it is read in the report's zone (WIB by default), which is
    how a reviewer quotes times of the night."""
    if text is None:
        return None
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "timeline", help="rebuild incidents from countwatch's JSON logs: report and chart",
        description="Rebuild the incidents of a night from countwatch's JSON logs (plain, rotated or gzipped; "
                    "one or several instances) into a post-incident report and a progress chart.")
    parser.add_argument("logs", nargs="+", metavar="LOG", help="log files or directories of log files")
    parser.add_argument("--source", help="only this source")
    parser.add_argument("--region", help="only this region")
    parser.add_argument("--incident", metavar="ID", help="only this incident: the id Slack, the console and the "
                        "webhook show (or the report's #N)")
    parser.add_argument("--from", dest="start", metavar="T", help="only incidents still open at or after T (ISO; "
                        "without a zone: in --timezone)")
    parser.add_argument("--to", dest="end", metavar="T", help="only incidents begun at or before T")
    parser.add_argument("--format", choices=FORMATS, help="md (default), html or json; default from --out's suffix")
    parser.add_argument("--chart", metavar="FILE.png", help="also draw the progress chart into this PNG")
    parser.add_argument("--out", metavar="FILE", help="write the report here instead of stdout")
    parser.add_argument("--timezone", default=DEFAULT_TIMEZONE, help="the source's local zone shown beside UTC "
                        f"(default {DEFAULT_TIMEZONE}, WIB)")
    parser.add_argument("--align-clocks", action="store_true", help="shift each instance's times by its estimated "
                        "clock offset before merging (see docs/timeline.md)")
    parser.set_defaults(func=run)
    return parser


def run(args) -> int:
    try:
        zone = ZoneInfo(args.timezone)
        start, end = _moment(args.start, zone), _moment(args.end, zone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        print(f"countwatch timeline: {error}", file=sys.stderr)
        return 2
    timeline = review([Path(p) for p in args.logs], zone, source=args.source, region=args.region,
                      start=start, end=end, align_clocks=args.align_clocks, incident=args.incident)
    for path, error in timeline.stats.unreadable:
        print(f"countwatch timeline: cannot read {path}: {error}", file=sys.stderr)
    if timeline.stats.absurd:
        print(f"countwatch timeline: skipped {timeline.stats.absurd:,} line(s) with an impossible value; "
              f"the first: {timeline.stats.first_absurd}", file=sys.stderr)
    if not timeline.stats.files:
        print("countwatch timeline: no readable log file", file=sys.stderr)
        return 2
    if not timeline.stats.records:
        print(f"countwatch timeline: no countwatch log lines in {', '.join(timeline.stats.files)}", file=sys.stderr)
        return 2
    if args.incident and not timeline.incidents:
        print(f"countwatch timeline: no incident {args.incident} in these logs", file=sys.stderr)
        return 2
    fmt = args.format or {".html": "html", ".htm": "html", ".json": "json"}.get(Path(args.out or "").suffix, "md")
    out = Path(args.out) if args.out else None
    if args.chart:
        chart = _chart(timeline, Path(args.chart), out.parent if out else None)
        if not chart.get("path"):
            print(f"countwatch timeline: chart skipped: {chart['reason']}", file=sys.stderr)
    else:
        chart = {"path": None, "reason": "not requested (--chart FILE.png draws it)"}
    text = render(timeline, fmt, chart)
    try:
        if out is None:
            sys.stdout.write(text)
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text, encoding="utf-8")
    except OSError as error:
        print(f"countwatch timeline: cannot write the report: {error}", file=sys.stderr)
        return 1
    return 0
