"""The headline of `countwatch evaluate`: per publisher family, the paging notifications per
series-day that reach on-call and are false, per rule family, beside the oracle that knows the
generator's true law and the fixed thresholds of uptime tools; and the targets of issue #12:

- every stall lasting at least 2x the oracle's delay detected (stall, stale_source, region_stall);
- at most one false paging notification per 30 series-days per rule family (stoppage: stall,
  stale_source, region_stall, lagging; jump; consistency);
- median delay at most 1.5x the oracle's;
- outsized batches (5x the law's 1-in-10^4 batch) found by `jump`.

One row per family, worst first: worst is the highest false paging rate of any rule family
divided by the budget. A series is one source/region the daemon judges (a tree's children too).
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ..detectors import DetectionOptions
from ..replay import replay
from ..model import STOPPAGE
from .paging import pages
from .publishers import Generated, Truth, publish
from .scoring import Tally, Window, med
from .sweeps import BY_NAME, FAMILIES, laws
from .truelaw import FIXED, fixed_alarms, oracle_alarms

BUDGET = DetectionOptions().false_alarm_budget
RULE_FAMILIES = (STOPPAGE, "jump", "consistency")
DELAY_RULES = ("stall", "stale_source", "region_stall")


@dataclass
class Score:
    family: str
    series_days: float = 0.0
    false_pages: dict[str, int] = field(default_factory=dict)       # rule family -> false pages
    true_pages: int = 0
    oracle_false: int = 0
    fixed_false: dict[str, int] = field(default_factory=dict)
    tallies: dict[str, Tally] = field(default_factory=dict)         # "stall:countwatch", "stall:oracle", ...
    jumps_injected: int = 0
    jumps_found: int = 0
    lagging: int = 0                # children left behind (tree)
    lagging_found: int = 0          # ... flagged by a stoppage page on that child

    def merge(self, other: "Score") -> None:
        self.series_days += other.series_days
        self.true_pages += other.true_pages
        self.oracle_false += other.oracle_false
        self.jumps_injected += other.jumps_injected
        self.jumps_found += other.jumps_found
        self.lagging += other.lagging
        self.lagging_found += other.lagging_found
        for name, count in other.false_pages.items():
            self.false_pages[name] = self.false_pages.get(name, 0) + count
        for name, count in other.fixed_false.items():
            self.fixed_false[name] = self.fixed_false.get(name, 0) + count
        for name, tally in other.tallies.items():
            self.tallies.setdefault(name, Tally()).merge(tally)

    def rate(self, count: int) -> float:
        return count / self.series_days if self.series_days else 0.0

    @property
    def worst(self) -> tuple[float, str]:
        rates = {name: self.rate(self.false_pages.get(name, 0)) for name in self.false_pages or RULE_FAMILIES}
        name = max(rates, key=lambda n: rates[n], default=STOPPAGE)
        return rates.get(name, 0.0) * BUDGET / 86400, name


# -- windows of the truth ---------------------------------------------------------------------

def _resumed(g: Generated, start: datetime, end: datetime, value) -> float:
    """When the count visibly moved again after an incident (epoch seconds)."""
    level = None
    for pub in g.publications:
        if pub.at < start.timestamp():
            level = value(pub)
        elif pub.at >= end.timestamp() and level is not None and value(pub) > level:
            return pub.at
    return g.end.timestamp()


def _window(g: Generated, truth: Truth, until: float) -> Window:
    return Window(truth.start, datetime.fromtimestamp(until + g.law.poll, tz=truth.start.tzinfo), truth)


def windows(g: Generated) -> dict[str, list[Window]]:
    out: dict[str, list[Window]] = {"stall": [], "stale_source": [], "jump": [], "clear": []}
    for truth in g.truth:
        if truth.kind == "stall":
            out["stall"].append(_window(g, truth, _resumed(g, truth.start, truth.end, lambda p: p.reported)))
            if truth.ts_frozen:
                after = next((p.at for p in g.publications if p.at >= truth.end.timestamp()), g.end.timestamp())
                out["stale_source"].append(_window(g, truth, after))
        elif truth.kind == "child_stall":
            k = g.child_names.index(truth.region)
            out.setdefault(f"child:{truth.region}", []).append(
                _window(g, truth, _resumed(g, truth.start, truth.end, lambda p, k=k: p.children[k])))
        elif truth.kind == "lagging":
            out.setdefault(f"child:{truth.region}", []).append(Window(truth.start, truth.end, truth))
            out.setdefault("lagging", []).append(Window(truth.start, truth.end, truth))
        elif truth.kind in ("jump", "clear"):
            out[truth.kind].append(Window(truth.start, truth.end + timedelta(seconds=3 * g.law.poll), truth))
    return out


def _inside(moment: datetime, spans: list[Window]) -> bool:
    return any(w.start <= moment < w.end for w in spans)


def _true(event, spans: dict[str, list[Window]]) -> bool:
    family = event.family
    if family == STOPPAGE:
        own = spans["stall"] + spans["stale_source"]
        if event.region != "0":
            own = own + spans.get(f"child:{event.region}", [])
        return _inside(event.at, own)
    if family == "jump":
        return _inside(event.at, spans["jump"])
    if family == "consistency":
        return _inside(event.at, spans["clear"])
    return False


# -- one series -------------------------------------------------------------------------------

def score_series(item: tuple[str, int, int, float]) -> Score:
    family_name, seed, seeds, days = item
    law = laws(BY_NAME[family_name], seeds)[seed]
    g = publish(law, seed, days)
    events = list(replay(g.polls))
    spans = windows(g)
    score = Score(family_name, series_days=days * (1 + len(g.child_names)))
    score.false_pages = {name: 0 for name in RULE_FAMILIES}
    behind = {w.incident.region for w in spans.get("lagging", [])}
    flagged = set()
    for page in pages(events):
        for family in page.families:
            members = [e for e in page.members if e.family == family]
            if any(_true(e, spans) for e in members):
                score.true_pages += 1
            else:
                score.false_pages[family] = score.false_pages.get(family, 0) + 1
            flagged |= {e.region for e in members if family == STOPPAGE and e.region in behind}
    score.lagging, score.lagging_found = len(behind), len(flagged)

    def tally(name: str, alarms: list[datetime], spans_: list[Window]) -> None:
        into = score.tallies.setdefault(name, Tally())
        into.add(sorted(alarms), spans_, 0.0)

    firing = lambda rule, region="0": [e.at for e in events if e.rule == rule and e.state == "firing"
                                       and e.region == region]
    oracle = oracle_alarms(g, BUDGET)
    tally("stall:countwatch", firing("stall"), spans["stall"])
    tally("stall:oracle", oracle, spans["stall"])
    score.oracle_false += sum(1 for a in oracle if not _inside(a, spans["stall"]))
    for name, seconds in FIXED.items():
        alarms = fixed_alarms(g, seconds)
        tally(f"stall:{name}", alarms, spans["stall"])
        score.fixed_false[name] = sum(1 for a in alarms if not _inside(a, spans["stall"]))
    if law.timestamp:
        tally("stale_source:countwatch", firing("stale_source"), spans["stale_source"])
        tally("stale_source:oracle", oracle_alarms(g, BUDGET, "publication"), spans["stale_source"])
    for k, child in enumerate(g.child_names):
        own = spans.get(f"child:{child}", [])
        oracle_child = oracle_alarms(g, BUDGET, child=k)
        # A child left behind is no stall of its: it is scored by "children left behind paged"
        # (any stoppage page on it), not held to region_stall's delay against its whole series.
        stalls = [w for w in own if w.incident.kind == "child_stall"]
        tally("region_stall:countwatch", firing("region_stall", child), stalls)
        tally("region_stall:oracle", oracle_child, stalls)
        score.oracle_false += sum(1 for a in oracle_child if not _inside(a, own + spans["stall"]))
        for name, seconds in FIXED.items():
            alarms = fixed_alarms(g, seconds, child=k)
            score.fixed_false[name] += sum(1 for a in alarms if not _inside(a, own + spans["stall"]))
    score.jumps_injected = len(spans["jump"])
    jumps = [e.at for e in events if e.rule == "jump" and e.severity != "info"]
    score.jumps_found = sum(1 for w in spans["jump"] if any(w.start <= t < w.end for t in jumps))
    return score


def evaluate_families(seeds: int = 10, days: float = 8.0, names: list[str] | None = None,
                      jobs: int | None = None) -> list[Score]:
    chosen = names or [f.name for f in FAMILIES]
    work = [(name, seed, seeds, days) for name in chosen for seed in range(seeds)]
    jobs = jobs or os.cpu_count() or 1
    if jobs > 1 and len(work) > 1:
        with ProcessPoolExecutor(jobs) as pool:
            results = list(pool.map(score_series, work, chunksize=1))
    else:
        results = [score_series(item) for item in work]
    merged: dict[str, Score] = {}
    for result in results:
        merged.setdefault(result.family, Score(result.family)).merge(result)
    return sorted(merged.values(), key=lambda s: (-s.worst[0], s.family))


# -- the table --------------------------------------------------------------------------------

def _per_day(score: Score, count: int) -> str:
    return f"{score.rate(count):.3f}"


def _delay_ratio(score: Score, rule: str) -> float | None:
    ours, oracle = score.tallies.get(f"{rule}:countwatch"), score.tallies.get(f"{rule}:oracle")
    if ours is None or oracle is None:
        return None
    both = [k for k, (a, b) in enumerate(zip(ours.delays, oracle.delays)) if a is not None and b is not None]
    if not both:
        return None
    return med([ours.delays[k] for k in both]) / max(med([oracle.delays[k] for k in both]), 1.0)


def _long_stalls(score: Score, rule: str) -> tuple[int, int]:
    ours, oracle = score.tallies.get(f"{rule}:countwatch"), score.tallies.get(f"{rule}:oracle")
    if ours is None or oracle is None:
        return 0, 0
    eligible = [k for k, (d, length) in enumerate(zip(oracle.delays, oracle.lengths))
                if d is not None and length >= 2 * d]
    return sum(1 for k in eligible if ours.delays[k] is not None), len(eligible)


def table(scores: list[Score]) -> tuple[list[str], list[str]]:
    budget = 86400 / BUDGET
    lines = [
        "| family (axis swept) | series-days | pages / series-day (all) | false pages / series-day: stoppage · jump · consistency "
        "| worst ÷ budget | oracle | fixed 15 min · 60 min · 3 h | stalls ≥ 2× oracle delay detected "
        "(stall · stale · region) | median delay ÷ oracle's (stall · stale · region) | outsized batches found |",
        "|---|---|---|---|---|---|---|---|---|---|"]
    verdicts = []
    for s in scores:
        worst, _ = s.worst
        fp = " · ".join(_per_day(s, s.false_pages.get(n, 0)) for n in RULE_FAMILIES)
        other = {n: c for n, c in s.false_pages.items() if n not in RULE_FAMILIES and c}
        if other:
            fp += " (+ " + ", ".join(f"{n} {s.rate(c):.3f}" for n, c in sorted(other.items())) + ")"
        fixed = " · ".join(_per_day(s, s.fixed_false.get(n, 0)) for n in FIXED)
        longs = [_long_stalls(s, r) for r in DELAY_RULES]
        long_text = " · ".join(f"{a}/{b}" if b else "–" for a, b in longs)
        ratios = [_delay_ratio(s, r) for r in DELAY_RULES]
        ratio_text = " · ".join("–" if r is None else f"{r:.2f}" for r in ratios)
        jumps = f"{s.jumps_found}/{s.jumps_injected}" if s.jumps_injected else "–"
        if s.lagging:
            jumps += f"; children left behind paged: {s.lagging_found}/{s.lagging}"
        everything = s.true_pages + sum(s.false_pages.values())
        lines.append(f"| **{s.family}** ({BY_NAME[s.family].axis}) | {s.series_days:g} | {s.rate(everything):.3f} "
                     f"| {fp} | {worst:.1f} | "
                     f"{_per_day(s, s.oracle_false)} | {fixed} | {long_text} | {ratio_text} | {jumps} |")
        misses = []
        for rule, (found, eligible) in zip(DELAY_RULES, longs):
            if found < eligible:
                misses.append(f"{eligible - found} of {eligible} long {rule}s missed")
        for name in RULE_FAMILIES:
            rate = s.rate(s.false_pages.get(name, 0))
            if rate > budget:
                misses.append(f"{name} pages {rate / budget:.1f}× the budget")
        for rule, ratio in zip(DELAY_RULES, ratios):
            if ratio is not None and ratio > 1.5:
                misses.append(f"{rule} median delay {ratio:.2f}× the oracle's")
        if s.jumps_injected and s.jumps_found < s.jumps_injected:
            misses.append(f"{s.jumps_injected - s.jumps_found} of {s.jumps_injected} outsized batches missed")
        if s.lagging and s.lagging_found < s.lagging:
            misses.append(f"{s.lagging - s.lagging_found} of {s.lagging} children left behind never paged")
        verdicts.append(f"{s.family}: " + ("every target met" if not misses else "; ".join(misses)))
    return lines, verdicts


def headline(scores: list[Score]) -> list[str]:
    """All families together: paging notifications per series-day, the false ones per rule family."""
    total = Score("all")
    for s in scores:
        total.merge(s)
    parts = [f"{n} {total.rate(total.false_pages.get(n, 0)):.3f}" for n in RULE_FAMILIES]
    fixed = ", ".join(f"{n} {total.rate(total.fixed_false.get(n, 0)):.3f}" for n in FIXED)
    everything = total.true_pages + sum(total.false_pages.values())
    return [f"Paging notifications reaching on-call: {total.rate(everything):.3f} per series-day over "
            f"{total.series_days:g} series-days; the false ones per rule family (budget {86400 / BUDGET:.3f} "
            f"each): " + ", ".join(parts)
            + f"; the oracle {total.rate(total.oracle_false):.3f} (stoppage); fixed thresholds (stoppage) {fixed}; "
            f"{everything} pages in all, {total.true_pages} of them true."]


def report(seeds: int, days: float, names: list[str] | None = None, jobs: int | None = None) -> str:
    scores = evaluate_families(seeds, days, names, jobs)
    lines, verdicts = table(scores)
    return "\n".join([f"### Publisher families ({seeds} seeds × {days:g} days each, worst first)", "",
                      *headline(scores), "", *lines, "", *[f"- {v}" for v in verdicts], ""])
