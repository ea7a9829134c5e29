"""Numbers that contradict themselves or the law, each its own rule.

- `regression`: stations reported (or the source's timestamp) went down. Sized like a
  correction: a few units taken back (a precinct withdrawn for a recount; a percentage
  wobbling by a hundredth) is `info` and never pages; a drop of `correction_share` (2%) or more
  of what was reported, such as test data cleared to zero, is a `warning`: that is news. In
  the real 2024 count stations reported never went down; a feed whose normal updates did
  would page at every one under a fixed warning, against a budget of one false page a month.
  An older timestamp (an older document served) is a `warning`. The votes that went down with
  the stations are the same cause: they are in the regression's details, not a `correction`
  of their own (one cause, one page). A growing *total* of stations (823,236 -> 823,378 on
  6 March 2024) is not a regression.
- `correction`: some candidate's votes went down while stations reported did not. 295 of 648
  real 2024 updates had one, so a few votes is `info` and must never page; a drop of
  `correction_share` (2%) or more of the region's votes is a `warning`: that much taken back
  is news.
- `over_capacity`: a TPS with more votes than its registered voters (plus the 2% reserve
  ballots) or than the legal maximum per TPS; 0 or missing registered voters means unknown.
- `inconsistent`: reported > total; candidates' sum != valid votes; children's votes not adding
  up to the parent's; the published percentage disagreeing with reported/total.
"""
from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from ..model import Event, RegionCount
from .base import Rule, event, label, lifecycle
from .history import History
from .text import count, when

MAX_LISTED = 10


class RegressionRule(Rule):
    name = "regression"

    def __call__(self, h: History, now: datetime) -> list[Event]:
        if not h.changed or h.previous is None or h.current is None:
            return []
        before, after = h.previous, h.current
        older = bool(before.published_at and after.published_at and after.published_at < before.published_at)
        fell = before.progress is not None and after.progress is not None and after.progress < before.progress
        if fell:
            decrease = before.progress - after.progress
            share = decrease / before.progress if before.progress > 0 else 0.0
            sized = share >= self.options.correction_share or after.progress <= 0
            unit = "stations reported" if after.stations_reported is not None else "percent"
            details = {"kind": "stations", "before": before.progress, "after": after.progress,
                       "decrease": decrease, "decrease_share": round(share, 6)}
            votes = vote_decreases(before.votes, after.votes)
            if votes:
                details["votes"] = votes
            if older:
                details["timestamp_before"] = before.published_at.isoformat()
            what = (" and its votes with them" if votes and after.stations_reported is not None
                    else " and votes with it" if votes else "")
            summary = (f"{label(h)} went backwards: {unit} fell from {count(before.progress)} to "
                       f"{count(after.progress)}{what} at {when(now, h.zone)}"
                       + (f", {100 * share:.1f}% of what was reported." if sized else "."))
            return [event(h, now, "regression", "observed", "warning" if sized else "info", summary, now, details)]
        if older:
            details = {"kind": "timestamp", "before": before.published_at.isoformat(),
                       "after": after.published_at.isoformat()}
            summary = (f"{label(h)} served older data: its timestamp went back from "
                       f"{when(before.published_at, h.zone)} to {when(after.published_at, h.zone)}.")
            return [event(h, now, "regression", "observed", "warning", summary, now, details)]
        return []


def vote_decreases(before: dict, after: dict) -> dict:
    """The candidates whose votes went down, their total and its share of the votes before
    ({} when none did)."""
    decreases = {c: after[c] - before[c] for c in before if c in after and after[c] < before[c]}
    if not decreases:
        return {}
    total = sum(before.values())
    decrease = -sum(decreases.values())
    return {"decreases": decreases, "total_decrease": decrease,
            "decrease_share": round(decrease / total if total > 0 else 0.0, 6)}


class CorrectionRule(Rule):
    name = "correction"

    def __call__(self, h: History, now: datetime) -> list[Event]:
        if not h.changed or h.previous is None or h.current is None:
            return []
        before, after = h.previous, h.current
        if before.progress is not None and after.progress is not None and after.progress < before.progress:
            return []          # the regression's: votes went down with the stations (one cause)
        details = vote_decreases(before.votes, after.votes)
        if not details:
            return []
        decreases, share = details["decreases"], details["decrease_share"]
        listed = ", ".join(f"{c} {count(d)}" for c, d in sorted(decreases.items()))
        sized = share >= self.options.correction_share
        summary = (f"Votes corrected downwards at {label(h)} at {when(now, h.zone)}: {listed}"
                   + (f", {100 * share:.1f}% of its votes." if sized else "."))
        return [event(h, now, "correction", "observed", "warning" if sized else "info", summary, now, details)]


class OverCapacityRule(Rule):
    name = "over_capacity"

    def __call__(self, h: History, now: datetime) -> list[Event]:
        snapshot = h.snapshot
        if snapshot is None or not (h.changed or "over_capacity" in h.open_alerts):
            return []
        offenders = []
        own = self._check(h.region, sum(snapshot.votes.values()), snapshot.valid_votes, snapshot.invalid_votes,
                          snapshot.registered_voters, snapshot.stations)
        if own:
            offenders.append(own)
        for code, child in snapshot.children.items():
            found = self._check(code, sum(child.votes.values()), None, None, child.registered_voters, child.stations)
            if found:
                offenders.append(found)
        details: dict[str, Any] = {"offenders": offenders[:MAX_LISTED], "offender_count": len(offenders),
                                   "max_votes_per_station": self.options.max_votes_per_station}
        if offenders:
            worst = max(offenders, key=lambda o: o["votes"] / max(o["limit"], 1))
            more = f" (and {len(offenders) - 1} more)" if len(offenders) > 1 else ""
            firing = (f"Over capacity at {label(h)}: {worst['region']} shows {count(worst['votes'])} votes "
                      f"where at most {count(worst['limit'])} are possible ({worst['why']}){more}.")
        else:
            firing = ""
        resolved = f"No more votes above capacity at {label(h)}."
        return lifecycle(h, now, "over_capacity", "over_capacity", "warning" if offenders else None, now,
                         details, {"firing": firing, "resolved": resolved})

    def _check(self, region: str, candidates: int, valid: int | None, invalid: int | None,
               registered: int | None, stations: int | None) -> dict | None:
        o = self.options
        votes = max(candidates, (valid or 0) + (invalid or 0))
        # The reason is worded only for an offender (a desa's table is checked row by row). It
        # names the reserve, or "at most 612 … (1 TPS of at most 600 voters)" reads as a slip.
        reserve = f" + {o.capacity_slack:.0%} reserve" if o.capacity_slack else ""
        if registered:
            # Registered voters 0 or missing is an unread form, not an empty TPS.
            limit = math.ceil(registered * (1 + o.capacity_slack))
            if votes > limit:
                return {"region": region, "votes": votes, "limit": limit, "why": f"{count(registered)} registered voters{reserve}"}
        if stations and o.max_votes_per_station:
            limit = math.ceil(stations * o.max_votes_per_station * (1 + o.capacity_slack))
            if votes > limit:
                return {"region": region, "votes": votes, "limit": limit,
                        "why": f"{count(stations)} TPS of at most {o.max_votes_per_station} voters{reserve}"}
        return None


class InconsistentRule(Rule):
    name = "inconsistent"

    def __call__(self, h: History, now: datetime) -> list[Event]:
        snapshot = h.snapshot
        if snapshot is None or not (h.changed or "inconsistent" in h.open_alerts):
            return []
        problems = self.problems(snapshot)
        details = {"checks": problems}
        firing = f"Inconsistent numbers at {label(h)}: " + "; ".join(p["message"] for p in problems[:3]) + "."
        resolved = f"The numbers at {label(h)} agree again."
        return lifecycle(h, now, "inconsistent", "inconsistent", "warning" if problems else None, now,
                         details, {"firing": firing, "resolved": resolved})

    def problems(self, s) -> list[dict]:
        o = self.options
        found: list[dict] = []
        if s.stations is not None and s.stations_reported is not None and s.stations_reported > s.stations:
            found.append({"check": "reported_over_total",
                          "message": f"{count(s.stations_reported)} stations reported of {count(s.stations)}"})
        if s.valid_votes is not None and s.votes and sum(s.votes.values()) != s.valid_votes:
            found.append({"check": "candidates_vs_valid",
                          "message": f"candidates add up to {count(sum(s.votes.values()))}, valid votes {count(s.valid_votes)}"})
        if s.percent is not None and s.stations and s.stations_reported is not None:
            computed = 100 * s.stations_reported / s.stations
            if abs(computed - s.percent) > o.percent_tolerance:
                found.append({"check": "percent_vs_progress",
                              "message": f"published {s.percent:.2f}% but {count(s.stations_reported)}/"
                                         f"{count(s.stations)} is {computed:.2f}%"})
        found += self._children(s.votes, s.children, s.stations, s.stations_reported)
        return found

    def _children(self, votes, children: dict[str, RegionCount], stations, reported) -> list[dict]:
        if not children or not votes:
            return []
        rows = list(children.values())
        found = []
        # Only a complete table can be added up: one child with nothing known proves nothing.
        if all(row.votes for row in rows):
            for candidate, total in votes.items():
                summed = sum(row.votes.get(candidate, 0) for row in rows)
                if abs(summed - total) > max(self.options.children_tolerance * total, 1):
                    found.append({"check": "children_vs_parent", "candidate": candidate,
                                  "message": f"children add up to {count(summed)} votes for {candidate}, "
                                             f"the parent shows {count(total)}"})
        if reported is not None and all(row.stations_reported is not None for row in rows):
            summed = sum(row.stations_reported for row in rows)
            if summed != reported:
                found.append({"check": "children_stations",
                              "message": f"children report {count(summed)} stations, the parent {count(reported)}"})
        return found
