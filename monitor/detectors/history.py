"""What the rules read: the content of a series' document (`Reading`), a child row's tracker
(`ChildTrack`), what one poll brought (`Facts`, from SeriesState.observe) and the read-only
view a rule gets at one poll (`History`). The series' state and its ledger are in series.py.
"""
from __future__ import annotations

from array import array
from collections.abc import ItemsView, KeysView, ValuesView
from collections.abc import Mapping as AbcMapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping

from ..model import Event, Poll, Snapshot, iso_utc, parse_iso, progress_ratio

if TYPE_CHECKING:
    from .series import SeriesState

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


SHARED_VOTE_KEYS = 4096            # distinct candidate lists kept for sharing (then it starts afresh)
_vote_keys: dict[tuple, tuple] = {}
_PLAIN = (dict, MappingProxyType)
_INTS = {int}


SHARED_FLOATS = 4096               # distinct floats kept for sharing (then it starts afresh)
_floats: dict[float, float] = {}


def _same(value):
    """One object for equal floats kept by many series (24 B each): a reading's percentage
    (Sirekap's, to two decimals), a child's units, ratio and percentage as its parent's
    tracker holds them (a few hundred values among thousands of desa), our polling interval.
    Exact: only a float is given a float, a zero (0.0 or -0.0) or NaN is left as it is."""
    if type(value) is not float or not value or value != value:
        return value
    shared = _floats.get(value)
    if shared is None:
        if len(_floats) >= SHARED_FLOATS:
            _floats.clear()
        shared = _floats[value] = value
    return shared


def _candidates(votes: Mapping[str, int]) -> tuple:
    """The candidates as one tuple shared by every reading that lists the same ones in the
    same order (a race's)."""
    keys = tuple(votes)
    shared = _vote_keys.get(keys)
    if shared is None:
        if len(_vote_keys) >= SHARED_VOTE_KEYS:
            _vote_keys.clear()
        shared = _vote_keys[keys] = keys
    return shared


def _counts(votes: Mapping[str, int], keys: tuple) -> tuple:
    # a dict (or a read-only view of one) gives its values in its keys' order
    return tuple(votes.values()) if type(votes) in _PLAIN else tuple(votes[key] for key in keys)


class _Candidates(AbcMapping):
    """What both kinds of votes read from their candidates' tuple (`_keys`) alike. First in
    their bases, so that an array's own __contains__, __iter__ and __len__ (over the counts)
    never answer for the mapping."""

    __slots__ = ()

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __iter__(self):
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def values(self) -> ValuesView:
        return _Values(self)

    def items(self) -> ItemsView:
        return _Items(self)


class Votes(_Candidates, array):
    """A reading's votes, candidate -> votes, read-only: the counts an array of 8-byte ints
    that is itself the mapping, with the candidates (one tuple shared by a race's readings) in
    its one slot. A national tree keeps one per series: as a dict they were 184 B for three
    candidates (232 for six) and an int object per count (28 B each); as an object holding
    the candidates and an array, 48 + 88 B; here 96 B for three counts. Counts that are not
    all ints (or do not fit 8 bytes) are kept as they were, in an `ObjectVotes`. Equal to any
    mapping with the same items, as the dict was; unhashable like it. (It is an array only
    for its layout: none of the array's own methods is part of its interface.)"""

    __slots__ = ("_keys",)

    def __new__(cls, votes: Mapping[str, int] = MappingProxyType({})):
        keys = _candidates(votes)
        values = _counts(votes, keys)
        if not values or set(map(type, values)) == _INTS:
            try:
                made = array.__new__(cls, "q", values)
            except OverflowError:
                pass
            else:
                made._keys = keys
                return made
        return ObjectVotes(keys, values)

    @classmethod
    def of(cls, votes: Mapping[str, int]) -> "Votes | ObjectVotes":
        kind = type(votes)
        if kind is Votes or kind is ObjectVotes:
            return votes
        return Votes(votes) if votes else NO_VOTES

    def __getitem__(self, key: str) -> int:
        try:
            return _item(self, self._keys.index(key))
        except ValueError:
            raise KeyError(key) from None

    def get(self, key: str, default=None):
        return self[key] if key in self._keys else default

    def keys(self):
        return KeysView(self)

    @property
    def _values(self):
        return _counts_of(self)

    def __eq__(self, other: object) -> bool:
        if type(other) is Votes and other._keys is self._keys:
            return _equal(self, other)
        if isinstance(other, AbcMapping):
            return dict(zip(self._keys, self._values)) == other
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None   # type: ignore[assignment]
    __lt__ = __le__ = __gt__ = __ge__ = object.__lt__   # (the array's would order the counts)

    def __repr__(self) -> str:
        return repr(dict(zip(self._keys, self._values)))

    def __reduce_ex__(self, protocol):
        return (Votes, (dict(zip(self._keys, self._values)),))

    def __copy__(self):
        return self                                       # read-only

    def __deepcopy__(self, memo):
        return self


_item = array.__getitem__
_counts_of = array.tolist
_equal = array.__eq__


class ObjectVotes(_Candidates):
    """Votes whose counts are not all 8-byte ints (kept as they were, types and all): the
    candidates' shared tuple and a tuple of the counts."""

    __slots__ = ("_keys", "_values")

    def __init__(self, keys: tuple, values: tuple):
        self._keys, self._values = keys, values

    def __getitem__(self, key: str) -> int:
        try:
            return self._values[self._keys.index(key)]
        except ValueError:
            raise KeyError(key) from None

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AbcMapping):
            return dict(zip(self._keys, self._values)) == other
        return NotImplemented

    __hash__ = None   # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(dict(zip(self._keys, self._values)))

    def __reduce__(self):
        return (Votes, (dict(zip(self._keys, self._values)),))


class _Values(ValuesView):
    """Votes.values(), iterated from the counts themselves (the mixin looks each key up)."""

    __slots__ = ()

    def __iter__(self):
        mapping = self._mapping
        return array.__iter__(mapping) if type(mapping) is Votes else iter(mapping._values)


class _Items(ItemsView):
    __slots__ = ()

    def __iter__(self):
        mapping = self._mapping
        return zip(mapping._keys, array.__iter__(mapping) if type(mapping) is Votes else mapping._values)


NO_VOTES = Votes()


# slots: a national tree keeps 91,561 of each (a dict per instance was ~100-200 B more)
@dataclass(frozen=True, slots=True)
class Reading:
    """What the series' document said, reduced to what the rules compare over time."""

    at: datetime                         # our clock: the poll that first saw this content
    published_at: datetime | None
    stations: int | None
    stations_reported: int | None
    percent: float | None
    votes: Mapping[str, int] = field(default_factory=lambda: NO_VOTES)   # a Votes (of(), from_json())

    @classmethod
    def of(cls, snapshot: Snapshot) -> "Reading":
        return cls(snapshot.at, snapshot.published_at, snapshot.stations, snapshot.stations_reported,
                   _same(snapshot.percent), Votes.of(snapshot.votes))

    @property
    def progress(self) -> float | None:
        """The number that must grow: stations reported, or the percentage when that is all
        the source gives."""
        if self.stations_reported is not None:
            return self.stations_reported
        return self.percent

    @property
    def progress_ratio(self) -> float | None:
        return progress_ratio(self.stations, self.stations_reported, self.percent)

    def same_content(self, snapshot: Snapshot) -> bool:
        return (snapshot.stations_reported == self.stations_reported and snapshot.stations == self.stations
                and snapshot.percent == self.percent and snapshot.published_at == self.published_at
                and snapshot.votes == self.votes)

    def to_json(self) -> list:
        return [_epoch(self.at), self.published_at.isoformat() if self.published_at else None,
                self.stations, self.stations_reported, self.percent, dict(self.votes)]

    @classmethod
    def from_json(cls, data: list) -> "Reading":
        at, published, stations, reported, pct, votes = data
        return cls(_from_epoch(at), parse_iso(published), stations, reported, _same(pct), Votes.of(votes or {}))


# A child's share of its siblings' flow is learned over about SHARE_ARRIVALS of its arrivals
# (known to ~6%: a share guessed 20% high pages on silences e^(0.2 x 8) = 5x likelier than the
# budget), over no fewer than ~20 intervals for a child bringing many units at each change and
# no more than ~200 for one bringing one now and then (a share changes as a count goes on).
SHARE_ARRIVALS = 300
SHARE_WEIGHT = 0.1
SCATTER_WEIGHT = 0.02      # how clumped its units come, over about its last 100 intervals


def share_weight(gained: float, clumping: float) -> float:
    """EWMA weight of an interval in which a child gained `gained` units (clumped so)."""
    return min(SHARE_WEIGHT, max(gained / clumping / SHARE_ARRIVALS, SCATTER_WEIGHT / 2))


def share_memory(gained: float, clumping: float) -> float:
    """Arrivals the share is effectively known from once the EWMA is full: its effective
    count of intervals (2 - w) / w times the arrivals of a usual one."""
    weight = share_weight(gained, clumping)
    return (2 - weight) / weight * gained / clumping


class ChildTrack:
    """One child region as its parent's table shows it, for region_stall. Progress of a
    child is measured against the parent's advance (stations), not the clock, so a slow night
    or a national freeze does not look like a child standing still.

    Until the child's second change there are no intervals to learn from: what is learned
    (spacing, gained, advanced, scatter, least, learned) is read from shared class defaults,
    and the parent's ledger turns the tracker into a `LearningTrack` (`learning()`), which
    keeps them, at that change. Every desa of a tree has a tracker in its kecamatan: six slots
    (48 B) of each unchanged one."""

    __slots__ = ("signature", "parent_mark", "changed_at", "changes", "percent", "complete", "ratio", "ref_ratio",
                 "ref_parent", "ref_at", "stations", "units", "excess")
    FIELDS = ("signature", "parent_mark", "changed_at", "changes", "spacing", "percent", "complete", "ratio",
              "ref_ratio", "ref_parent", "ref_at", "stations", "units", "gained", "advanced", "scatter", "excess",
              "least", "learned")
    LEARNED = ("spacing", "gained", "advanced", "scatter", "least", "learned")

    # what is learned, until the child's second change (LearningTrack keeps its own)
    spacing: float | None = None   # EWMA of parent stations advanced between two child changes
    gained: float | None = None
    advanced: float | None = None
    scatter: float | None = None
    least: float | None = None     # the smallest gain of a change seen: a percentage row's granularity
    learned: int = 0               # intervals in the averages (since the last restart)

    def __init__(self, signature: int, parent_mark: float, changed_at: float, changes: int = 0,
                 percent: float | None = None, complete: bool = False, ratio: float | None = None,
                 ref_ratio: float | None = None, ref_parent: float | None = None, ref_at: float | None = None,
                 stations: int | None = None, units: float | None = None, excess: float = 0.0):
        self.signature = signature             # hash of (reported, percent, votes) as last seen
        self.parent_mark = parent_mark         # parent's stations reported when the child last changed
        self.changed_at = changed_at           # epoch seconds (our clock) of that change
        self.changes = changes                 # changes seen (the first sighting is not one)
        self.percent = percent
        self.complete = complete
        # For `lagging`: the child's progress ratio now, and the child's and the parent's ratios at
        # the start of the window it is judged over (epoch seconds `ref_at`; the window restarts
        # whenever the child is seen keeping up).
        self.ratio = ratio
        self.ref_ratio = ref_ratio
        self.ref_parent = ref_parent
        self.ref_at = ref_at
        # All the child's stations as its row last said (not saved: the next table says it again).
        # `lagging` weighs its evidence in stations when it has them, not in percentage points.
        self.stations = stations
        # For region_stall, the child's own units (stations reported, or hundredths of a point when
        # the row gives only its percentage) at its last change, and over its recent inter-change
        # intervals the averages of: units gained, stations its siblings brought, and the squared
        # departure of the units gained from what its share of those said, per unit a usual
        # interval brings (whence its clumping: 1 for units arriving one by one).
        self.units = units
        self.excess = excess                   # the parent's winsorized excess (high water - paced) at that change

    @classmethod
    def of(cls, signature, parent_mark, changed_at, changes=0, spacing=None, percent=None, complete=False,
           ratio=None, ref_ratio=None, ref_parent=None, ref_at=None, stations=None, units=None, gained=None,
           advanced=None, scatter=None, excess=0.0, least=None, learned=0) -> "ChildTrack":
        """A tracker with every field (in FIELDS' order): a LearningTrack when it has learned any."""
        track = cls(signature, parent_mark, changed_at, changes, percent, complete, ratio, ref_ratio, ref_parent,
                    ref_at, stations, units, excess)
        if (spacing, gained, advanced, scatter, least, learned) != (None, None, None, None, None, 0):
            track = track.learning()
            track.spacing, track.gained, track.advanced, track.scatter, track.least, track.learned = (
                spacing, gained, advanced, scatter, least, learned)
        return track

    def learning(self) -> "LearningTrack":
        """This tracker, able to keep what it learns (itself when it already is)."""
        if type(self) is LearningTrack:
            return self
        return LearningTrack(self.signature, self.parent_mark, self.changed_at, self.changes, self.percent,
                             self.complete, self.ratio, self.ref_ratio, self.ref_parent, self.ref_at, self.stations,
                             self.units, self.excess)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ChildTrack):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in ChildTrack.FIELDS)

    __hash__ = None   # type: ignore[assignment]

    def __repr__(self) -> str:
        return "ChildTrack(" + ", ".join(f"{name}={getattr(self, name)!r}" for name in ChildTrack.FIELDS) + ")"

    def to_json(self) -> list:
        out = [self.signature, self.parent_mark, _compact(self.changed_at), self.changes,
               self.spacing, self.percent, int(self.complete)]
        if self.ratio is not None or self.ref_ratio is not None or self.units is not None:
            out += [self.ratio, self.ref_ratio, self.ref_parent, self.ref_at]
        if self.units is not None:
            out += [self.units, self.gained, self.advanced, self.scatter, _compact(self.excess), self.least,
                    self.learned]
        return out

    @classmethod
    def from_json(cls, data: list) -> "ChildTrack":
        sig, mark, changed_at, changes, spacing, pct, complete = data[:7]
        ratio, ref_ratio, ref_parent, ref_at = data[7:11] if len(data) >= 11 else (None, None, None, None)
        units, gained, advanced, scatter, excess, least, learned = (data[11:18] if len(data) >= 18
                                                                    else (None, None, None, None, 0.0, None, 0))
        return cls.of(sig, mark, float(changed_at), changes, spacing, pct, bool(complete),
                      ratio, ref_ratio, ref_parent, ref_at, None, units, gained, advanced, scatter, float(excess), least,
                      learned)

    def restart(self) -> None:
        """Forget the share: a silence region_stall paged on has just ended, and whatever the
        child does now (a catch-up, or a crawl after its pace fell a hundredfold in its tail)
        says more about its rate than the intervals before it (a sequential test's estimate
        restarts after its alarm). Until it is learned again the few intervals seen weigh
        little (region_stall's predictive)."""
        if type(self) is not LearningTrack:
            return                                        # nothing learned yet: nothing to forget
        self.gained = self.advanced = self.scatter = None
        self.learned = 0

    def learn_units(self, units: float | None, advance: float, excess: float, in_stations: bool) -> None:
        """A change of the child that ends an interval of `advance` parent stations: what it
        brought in the child's own units joins the averages, against what its *siblings*
        brought (the parent's advance less the child's own stations when its units are
        stations), since a child standing still is missing from its parent's advance: its share
        is of the flow that goes on without it. (An EWMA whose memory is about SHARE_ARRIVALS
        of the child's arrivals but no fewer than 1 / SHARE_WEIGHT intervals, a plain mean over
        its first intervals.) An interval in which the parent's advance was discounted (someone's
        backlog came in: this child's after its own stall, or a sibling's) is an incident, not
        learned from: the child's units would count the backlog in full and the parent's
        advance would not."""
        if units is None or self.units is None:
            self.gained = self.advanced = self.scatter = None
            return
        gained = max(units - self.units, 0.0)
        if gained > 0:
            self.least = gained if self.least is None else min(self.least, gained)
        if abs(excess - self.excess) > 1e-6:
            return
        if in_stations:
            advance -= gained
        if advance <= 0:
            return
        self.learned += 1
        if self.gained is None or self.advanced is None:
            self.gained, self.advanced = round(gained, 6), round(advance, 6)
            return
        # Weighed by what a usual interval brings, not this one: weights that grew with the
        # gain would bias the share upwards (by ~15% for a child gaining a few units a change).
        weight = max(share_weight(self.gained, self.clumping), 1 / self.learned)
        share = self.gained / self.advanced if self.advanced > 0 else None
        if share is not None and self.gained > 0:
            # Per unit this interval was expected to bring, or a usual one when it expected
            # fewer (a night interval expecting 0.1 unit that brings 3 would weigh like a
            # whole clumped day; a morning's interval expecting twice the usual, not half).
            departure = (gained - share * advance) ** 2 / max(share * advance, self.gained)
            # A variance needs many more intervals than a mean to be known (~20% from 100):
            # how clumped a child's units come is a lasting habit of its data, learned slowly.
            slow = max(SCATTER_WEIGHT, 1 / self.learned)
            self.scatter = round(departure if self.scatter is None else
                                 (1 - slow) * self.scatter + slow * departure, 6)
        self.gained = round((1 - weight) * self.gained + weight * gained, 6)
        self.advanced = round((1 - weight) * self.advanced + weight * advance, 6)

    @property
    def share(self) -> float | None:
        """The child's units per station its siblings bring, over its recent intervals (None: unknown)."""
        if self.gained is None or not self.advanced or self.gained <= 0:
            return None
        return self.gained / self.advanced

    @property
    def clumping(self) -> float:
        """Units per independent arrival: the scatter of the units gained about the share's
        expectation, per unit gained (a Poisson stream's is 1; never taken below 1)."""
        if self.scatter is None or self.share is None:
            return 1.0
        # The yardstick is noisy too: the siblings' advance A scatters like a Poisson count, so
        # units gained scatter about share x A by share x (clumping + share) per unit expected.
        return max(1.0, self.scatter - self.share)

    def behind(self, parent_ratio: float | None) -> tuple[float, float] | None:
        """(gained, due): the child's gain in ratio since the window began, and the gain the
        parent's pace would have brought it (each remaining unit of the child coming in at the
        hazard the parent's remaining units did: parent gain x child remaining / parent
        remaining). None when the ratios are not known."""
        if None in (self.ratio, self.ref_ratio, self.ref_parent, parent_ratio) or parent_ratio >= 1.0:
            return None
        due = max(parent_ratio - self.ref_parent, 0.0) * (1.0 - self.ratio) / (1.0 - parent_ratio)
        return self.ratio - self.ref_ratio, due


class LearningTrack(ChildTrack):
    """A ChildTrack from its child's second change on: it keeps what it learns."""

    __slots__ = ChildTrack.LEARNED

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.spacing = self.gained = self.advanced = self.scatter = self.least = None
        self.learned = 0


@dataclass(frozen=True)
class MirrorView:
    """The latest reading of the same region at a mirror source, and when it reached each of
    its recent progress values (for the lag between the two)."""

    source: str
    reading: Reading
    advances: tuple[tuple[float, float], ...]      # the mirror's (epoch seconds, progress), oldest first
    own_advances: tuple[tuple[float, float], ...]  # the same for the series being judged


@dataclass
class Facts:
    """What one poll brought, as the series' ledger (SeriesState.observe) saw it."""

    previous: Reading | None              # content in force before this poll
    current: Reading | None               # content in force after it
    changed: bool = False                 # this poll brought new content
    advance: float = 0                    # progress gained over the high-water mark (0: none)
    advance_gap: float | None = None      # our-clock seconds since the previous advance, at an advance
    source_gap: float | None = None       # the same on the source's clock, when it dates its data
    new_publication: bool = False
    incident: bool = False                # this advance ended an incident (not learned from)
    learned: tuple = ()                   # what it added to the daily rhythm: (hour, advances, stations, exposure) each


@dataclass(frozen=True)
class History:
    """What a rule sees at one poll: the poll, what it brought (`facts`), the thresholds in
    force and the series' state after the ledger took the poll in (read-only by convention)."""

    poll: Poll
    state: "SeriesState"
    facts: Facts
    stall: Any                            # Thresholds in force for the stall (before this poll's advance)
    stale: Any                            # Thresholds for the source's timestamp, or None
    zone: tzinfo
    complete: bool                        # the count is finished: no stall alerts
    phase: str = "counting"               # not_started | counting | tail | complete (phase.py)
    ancestor_stalled: bool = False        # a parent series has an open stall (a national freeze)
    mirror: MirrorView | None = None
    units: str = "TPS"                    # what the source counts, as its summaries say it

    @property
    def previous(self) -> Reading | None:
        return self.facts.previous

    @property
    def current(self) -> Reading | None:
        return self.facts.current

    @property
    def changed(self) -> bool:
        return self.facts.changed

    @property
    def advance(self) -> float:
        return self.facts.advance

    @property
    def advance_gap(self) -> float | None:
        return self.facts.advance_gap

    @property
    def source_gap(self) -> float | None:
        return self.facts.source_gap

    @property
    def new_publication(self) -> bool:
        return self.facts.new_publication

    @property
    def incident(self) -> bool:
        return self.facts.incident

    @property
    def snapshot(self) -> Snapshot | None:
        return self.poll.snapshot

    @property
    def source(self) -> str:
        return self.state.source

    @property
    def region(self) -> str:
        return self.state.region

    @property
    def open_alerts(self) -> Mapping[str, Event]:
        return self.state.open_alerts


def _epoch(moment: datetime | None) -> float | int | None:
    """Seconds since 1970 (UTC): an int when whole, else exact to the microsecond."""
    if moment is None:
        return None
    micros = (moment - _EPOCH) // timedelta(microseconds=1)
    return micros // 1_000_000 if micros % 1_000_000 == 0 else micros / 1e6


def _from_epoch(value: float | int | None) -> datetime | None:
    if value is None:
        return None
    return _EPOCH + timedelta(microseconds=round(value * 1_000_000))


def _compact(value: float) -> float | int:
    """Values are quantized when they enter the state (Judge), so JSON keeps them exactly."""
    return int(value) if float(value).is_integer() else value


__all__ = ["ChildTrack", "Facts", "History", "MirrorView", "Reading", "iso_utc"]
