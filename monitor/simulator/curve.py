"""The pace of data entry: what share of TPS has been keyed in by a given moment.

A piecewise-linear, non-decreasing curve through knots (time, share), so both directions are
closed-form: `share_at(t)` and its inverse `time_of(share)` are a bisection and an
interpolation. Times are Unix seconds (floats) to keep the hot path free of datetime arithmetic.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from datetime import datetime


class EntryCurve:
    def __init__(self, knots: list[tuple[datetime, float]]):
        if len(knots) < 2:
            raise ValueError("an entry curve needs at least two knots")
        self.times = [t.timestamp() for t, _ in knots]
        self.shares = [s for _, s in knots]
        for a, b in zip(self.times, self.times[1:]):
            if b <= a:
                raise ValueError("entry curve knots must be in increasing time order")
        for a, b in zip(self.shares, self.shares[1:]):
            if b <= a:
                raise ValueError("entry curve shares must increase strictly (the inverse must exist)")
        if not (0.0 <= self.shares[0] and self.shares[-1] <= 1.0):
            raise ValueError("entry curve shares must lie in [0, 1]")

    @property
    def final_share(self) -> float:
        return self.shares[-1]

    def share_at(self, t: float) -> float:
        """Share of TPS keyed in by Unix time t (flat before the first and after the last knot)."""
        i = bisect_right(self.times, t)
        if i == 0:
            return self.shares[0]
        if i == len(self.times):
            return self.shares[-1]
        t0, t1 = self.times[i - 1], self.times[i]
        s0, s1 = self.shares[i - 1], self.shares[i]
        return s0 + (s1 - s0) * (t - t0) / (t1 - t0)

    def time_of(self, share: float) -> float | None:
        """The Unix time at which `share` is reached; None if it never is."""
        if share > self.shares[-1]:
            return None
        if share <= self.shares[0]:
            return self.times[0]
        i = bisect_left(self.shares, share)
        t0, t1 = self.times[i - 1], self.times[i]
        s0, s1 = self.shares[i - 1], self.shares[i]
        return t0 + (t1 - t0) * (share - s0) / (s1 - s0)
