"""Segment keys to dense ids: escaped, admitted after a minimum of events, evicted when idle.

Metric labels only ever carry names from this table, never raw user input:

- a key is escaped into its name (:func:`segment_name`): backslash, control, format
  and other non-printable characters become ``\\xNN``/``\\uNNNN``/``\\UNNNNNNNN``, and
  a value shaped like a reserved name (``__other__``, any ``__x__``) gets a leading
  backslash, so it has a segment of its own. Backslashes are doubled, so two
  different keys never share a name. ``__missing__`` is the decoder's own marker of
  a null or absent value and is kept as it is (the decoder has already given a user
  value ``__missing__`` a leading backslash, see ``monitor.ingest.segment_keys``);
- a new name is admitted only after ``admit_after`` events; until then its events
  count in ``__other__``. The counts of waiting names are bounded (Misra-Gries), so a
  flood of distinct junk values takes no segment and no unbounded memory;
- past the cap, and for names longer than ``MAX_LABEL_LENGTH``, events count in
  ``__other__`` too;
- with ``idle_seconds``, a segment that has had no event for that long in the stream's
  event time is evicted: :meth:`SegmentTable.take_evicted` hands its id and name to
  the pipeline, which resets the id's state everywhere before the id is reused.

The stream's event time is the median timestamp of each batch, never decreasing, so one
odd timestamp cannot age every segment, and a replay evicts as the live run did.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from monitor.ingest.segment_keys import MISSING_SEGMENT

OTHER = "__other__"
"""Id 0: the events of every key that has no segment of its own."""
FREE = "__free__"
"""The name of an evicted segment's id until another name takes it."""
MAX_LABEL_LENGTH = 120
"""Longest segment name (escaped) that gets its own segment."""
STATE_VERSION = 2


def segment_name(key: str) -> str:
    """The label-safe, collision-free name of a segment key (see the module docstring)."""
    if not (key.isascii() and key.isprintable() and "\\" not in key):
        key = "".join(_escape_char(c) for c in key)
    if key.startswith("__") and key.endswith("__") and len(key) >= 4 and key != MISSING_SEGMENT:
        return "\\" + key
    return key


def _escape_char(c: str) -> str:
    if c == "\\":
        return "\\\\"
    if c.isprintable():
        return c
    code = ord(c)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


@dataclass(frozen=True)
class SegmentCounts:
    """Running totals of the table's decisions (for the metrics)."""

    overflow: int
    """Events counted in ``__other__`` because the table was full or the name too long."""
    unadmitted: int
    """Events counted in ``__other__`` while their name waited for admission."""
    admitted: int
    """Names given a segment of their own."""
    evicted: int
    """Segments evicted for being idle."""


class SegmentTable:
    """Maps segment keys to dense ids ``0..n-1``; id 0 is always ``__other__``."""

    def __init__(
        self,
        max_segments: int,
        admit_after: int = 0,
        idle_seconds: float | None = None,
        max_candidates: int = 10_000,
    ) -> None:
        if max_segments < 1:
            raise ValueError(f"max_segments must be >= 1, got {max_segments}")
        self.max_segments = max_segments
        self.admit_after = admit_after
        self.idle_seconds = idle_seconds
        self.max_candidates = max_candidates
        self._ids: dict[str, int] = {OTHER: 0}
        self._names: list[str] = [OTHER]
        self._free: list[int] = []
        """Evicted ids, a heap: the lowest is reused first."""
        self._last_seen: list[float] = [math.nan]
        """Stream event time of each id's latest batch; NaN: not yet known (restored)."""
        self._candidates: dict[str, int] = {}
        """Events seen (a lower bound) of names waiting for admission."""
        self._evicted: list[tuple[int, str]] = []
        self.clock = -math.inf
        """The stream's event time: the highest median batch timestamp so far."""
        self.overflow = 0
        self.unadmitted = 0
        self.admitted = 0
        self.evicted = 0

    def __len__(self) -> int:
        """Ids in use or free (the size per-segment arrays need)."""
        return len(self._names)

    @property
    def names(self) -> Sequence[str]:
        """Segment names by id (``FREE`` for an evicted id not reused yet)."""
        return tuple(self._names)

    @property
    def tracked(self) -> int:
        """Segments with an id of their own (``__other__`` excluded)."""
        return len(self._names) - 1 - len(self._free)

    @property
    def candidates(self) -> int:
        """Names waiting for admission that are counted now."""
        return len(self._candidates)

    def counts(self) -> SegmentCounts:
        """The running totals."""
        return SegmentCounts(self.overflow, self.unadmitted, self.admitted, self.evicted)

    def take_evicted(self) -> list[tuple[int, str]]:
        """(id, name) of the segments evicted since the last call; their ids may already
        be reused, so the caller resets each id's state before using the batch's ids."""
        out, self._evicted = self._evicted, []
        return out

    # -- the stream's keys -----------------------------------------------------------

    def assign(
        self, keys: npt.ArrayLike, ts: npt.ArrayLike | None = None, evict: bool = True
    ) -> npt.NDArray[np.int64]:
        """Ids of a batch of raw segment keys with their event times, in row order.

        Known names refresh their segment; new ones count towards admission (their
        events until then get id 0); idle segments are evicted (unless ``evict`` is
        False: a warm-up still holds ids) before new names are admitted, so a freed id
        serves at once.
        """
        texts = keys if isinstance(keys, list) else np.asarray(keys, dtype=object).ravel().tolist()
        if not texts:
            return np.zeros(0, dtype=np.int64)
        if set(map(type, texts)) != {str}:
            texts = list(map(str, texts))
        self._advance_clock(ts)
        # The distinct keys in sorted order, each row's position among them: hashing in
        # C, where sorting every row's text cost a third of a microsecond per event.
        uniques = sorted(dict.fromkeys(texts))
        position = {key: u for u, key in enumerate(uniques)}
        inverse = np.fromiter(map(position.__getitem__, texts), dtype=np.int64, count=len(texts))
        counts = np.bincount(inverse, minlength=len(uniques)).tolist()
        mapped = [0] * len(counts)
        new: list[tuple[int, str]] = []  # escaping is injective: names are distinct
        now = self._now()
        for u, key in enumerate(uniques):
            name = segment_name(key)
            found = self._ids.get(name)
            if found is not None:
                mapped[u] = found
                self._last_seen[found] = now
            elif len(name) > MAX_LABEL_LENGTH:
                self.overflow += counts[u]
            else:
                new.append((u, name))
        if evict:
            self._evict_idle()
        out = np.asarray(mapped, dtype=np.int64)[inverse]
        for u, name in new:
            self._count_new(name, u, counts[u], inverse, out)
        self._trim_candidates()
        return out

    def _count_new(
        self,
        name: str,
        unique: int,
        total: int,
        inverse: npt.NDArray[np.int64],
        out: npt.NDArray[np.int64],
    ) -> None:
        """Admit ``name`` once it reached ``admit_after`` events; its events before that,
        and all of them while the table is full, stay in ``__other__`` (id 0)."""
        seen = self._candidates.get(name, 0)
        waiting = max(0, self.admit_after - seen)
        if total <= waiting:
            self._candidates[name] = seen + total
            self.unadmitted += total
            return
        segment = self._take_id(name)
        if segment is None:
            self._candidates[name] = seen + total
            self.unadmitted += waiting
            self.overflow += total - waiting
            return
        self._candidates.pop(name, None)
        self.unadmitted += waiting
        rows = np.flatnonzero(inverse == unique)  # in arrival order
        out[rows[waiting:]] = segment

    def _take_id(self, name: str) -> int | None:
        if self._free:
            segment = heapq.heappop(self._free)
            self._names[segment] = name
            self._last_seen[segment] = self._now()
        elif len(self._names) <= self.max_segments:
            segment = len(self._names)
            self._names.append(name)
            self._last_seen.append(self._now())
        else:
            return None
        self._ids[name] = segment
        self.admitted += 1
        return segment

    def _now(self) -> float:
        """The clock, or NaN (age unknown) before any event time was seen."""
        return self.clock if math.isfinite(self.clock) else math.nan

    def _advance_clock(self, ts: npt.ArrayLike | None) -> None:
        if ts is None:
            return
        times = np.asarray(ts, dtype=np.float64)
        times = times[np.isfinite(times)]
        if times.size:
            self.clock = max(self.clock, float(np.median(times)))
        if math.isfinite(self.clock):
            # Restored segments of an unknown age get a full idle period from now.
            self._last_seen = [self.clock if math.isnan(t) else t for t in self._last_seen]

    def _evict_idle(self) -> None:
        if self.idle_seconds is None or not math.isfinite(self.clock):
            return
        cutoff = self.clock - self.idle_seconds
        free = set(self._free)
        for segment in range(1, len(self._names)):
            if segment not in free and self._last_seen[segment] < cutoff:
                name = self._names[segment]
                del self._ids[name]
                self._names[segment] = FREE
                self._last_seen[segment] = math.nan
                heapq.heappush(self._free, segment)
                self._evicted.append((segment, name))
                self.evicted += 1

    def _trim_candidates(self) -> None:
        """Keep at most ``max_candidates`` counts (Misra-Gries: each stays a lower bound)."""
        if len(self._candidates) <= self.max_candidates:
            return
        values = np.fromiter(self._candidates.values(), np.int64, len(self._candidates))
        cut = int(np.partition(values, -(self.max_candidates + 1))[-(self.max_candidates + 1)])
        self._candidates = {n: c - cut for n, c in self._candidates.items() if c > cut}

    # -- names already in some table (a checkpoint, a hand-over slice) --------------

    def ids(self, names: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Ids of segment *names* (not raw keys): a name new here is admitted at once,
        as it was by the table it came from; past the cap it gets id 0."""
        arr = np.asarray(names, dtype=object)
        if arr.size == 0:
            return np.zeros(0, dtype=np.int64)
        uniques, inverse = np.unique(arr.astype(str), return_inverse=True)
        mapped = np.zeros(uniques.size, dtype=np.int64)
        for i, name in enumerate(uniques.tolist()):
            found = self._ids.get(name)
            if found is None and name != FREE and len(name) <= MAX_LABEL_LENGTH:
                self._candidates.pop(name, None)
                found = self._take_id(name)
                if found is not None:
                    self._last_seen[found] = math.nan
            mapped[i] = found or 0
        return mapped[inverse.reshape(-1)]

    # -- checkpointing ---------------------------------------------------------------

    def state_dict(self) -> dict[str, object]:
        """Names in id order, idle and admission state, and the running totals."""
        return {
            "version": STATE_VERSION,
            "names": list(self._names),
            "last_seen": [None if math.isnan(t) else t for t in self._last_seen],
            "clock": self.clock if math.isfinite(self.clock) else None,
            "candidates": dict(self._candidates),
            "overflow": self.overflow,
            "unadmitted": self.unadmitted,
            "admitted": self.admitted,
            "evicted": self.evicted,
        }

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        """Restore ``state_dict`` output, or a table saved before admission and eviction
        existed (names and overflow only): its segments get a full idle period."""
        names = [str(n) for n in _list(state["names"])]
        if not names or names[0] != OTHER:
            raise ValueError("a segment table starts with __other__")
        if state.get("version") is None:
            # Saved before names were escaped: escape them now, as new keys would be.
            names = [OTHER, *(n if n == FREE else segment_name(n) for n in names[1:])]
        last_seen = _list(state.get("last_seen", [None] * len(names)))
        if len(last_seen) != len(names):
            raise ValueError("last_seen and names differ in length")
        self._names = names
        self._ids = {n: i for i, n in enumerate(names) if n != FREE}
        self._free = [i for i, n in enumerate(names) if n == FREE]
        heapq.heapify(self._free)
        self._last_seen = [_number(t, math.nan) for t in last_seen]
        self.clock = _number(state.get("clock"), -math.inf)
        candidates = state.get("candidates", {})
        if not isinstance(candidates, Mapping):
            raise ValueError("candidates is not a mapping")
        self._candidates = {str(n): int(c) for n, c in candidates.items()}
        self._evicted = []
        self.overflow = int(_number(state["overflow"], 0))
        self.unadmitted = int(_number(state.get("unadmitted"), 0))
        self.admitted = int(_number(state.get("admitted"), 0))
        self.evicted = int(_number(state.get("evicted"), 0))


def _list(x: object) -> list[object]:
    if not isinstance(x, list | tuple):
        raise ValueError(f"expected a list, got {type(x).__name__}")
    return list(x)


def _number(x: object, absent: float) -> float:
    """``x`` as a float, ``absent`` for None."""
    if x is None:
        return absent
    if not isinstance(x, int | float):
        raise ValueError(f"expected a number, got {type(x).__name__}")
    return float(x)
