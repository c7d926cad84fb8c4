"""The decision book's state machines, held as arrays instead of one object each.

At 1,000 segments x 51 columns x its methods a book holds ~300k state machines; as one
Python object each, keyed by a tuple of three strings, that was ~430 bytes apiece
(~130 MB). Here the book keeps name tables shared by every segment -- a *slot* per
(column, method) pair, numbered as pairs first appear -- and each segment holds one
array per field indexed by slot: ~62 bytes per state machine (window sizes are int32,
widened to int64 for the segment whose window first passes 2**31 - 1 values).

Every state machine also carries the sequence number of its creation, so that the
book lists them in the order a dict keyed by (segment, column, method) would have:
``states()`` and checkpoints come out exactly as they did from the object layout.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt

from detectors.rules import BAND, BREACH, CLEAR, SEVERE
from monitor.engine.decision_types import StateName

IntArray = npt.NDArray[np.int64]

OK: Final = 0
PENDING: Final = 1
FIRING: Final = 2
STATE_NAMES: Final[tuple[StateName, ...]] = ("ok", "pending", "firing")
STATE_CODES: Final = {name: code for code, name in enumerate(STATE_NAMES)}

NO_VERDICT: Final = 0
"""The verdict code of a state machine restored from a checkpoint that had none."""
VERDICT_NAMES: Final[tuple[str | None, ...]] = (None, "severe", "breach", "band", "clear")
VERDICT_CODES: Final = {name: code for code, name in enumerate(VERDICT_NAMES)}
ENGINE_VERDICTS: Final = {SEVERE: 1, BREACH: 2, BAND: 3, CLEAR: 4}
"""``detectors.rules`` verdict -> verdict code here."""

SCORE, P_VALUE, THRESHOLD, CLEAR_LEVEL, SINCE_TS, LAST_TS = range(6)
"""Rows of :attr:`SegmentMachines.values`."""

ABSENT: Final = -1
"""The sequence number of a slot the segment has no state machine in."""
SEQ_DTYPE: Final = np.int32
N_MIN, N_MAX = int(np.iinfo(np.int32).min), int(np.iinfo(np.int32).max)
SEQ_LIMIT = int(np.iinfo(SEQ_DTYPE).max)
"""Creation numbers are renumbered 0..n-1, in order, before they would pass this."""


class Row(NamedTuple):
    """One state machine as plain values (the fields of ``DecisionState``, in order)."""

    segment: str
    column: str
    method: str
    state: StateName
    streak: int
    score: float
    p_value: float
    threshold: float
    clear: float
    n: int
    since_ts: float
    last_ts: float
    verdict: str | None


Fields = tuple[
    str, str, str, StateName, int, float, float, float, float, int, float, float, str | None
]
"""The fields of a :class:`Row`, in order."""


class SegmentMachines:
    """One segment's state machines: field arrays indexed by the book's slots."""

    __slots__ = ("n", "seq", "state", "streak", "values", "verdict")

    def __init__(self, size: int) -> None:
        self.seq = np.full(size, ABSENT, SEQ_DTYPE)
        self.state = np.zeros(size, np.int8)
        self.streak = np.zeros(size, np.int32)
        self.verdict = np.zeros(size, np.int8)
        self.n: npt.NDArray[np.signedinteger[Any]] = np.zeros(size, np.int32)
        self.values = np.zeros((6, size), np.float64)

    def __len__(self) -> int:
        return len(self.seq)

    def grow(self, size: int) -> None:
        """Make room for slots up to ``size`` (absent in this segment)."""
        extra = size - len(self.seq)
        if extra <= 0:
            return
        self.seq = np.concatenate([self.seq, np.full(extra, ABSENT, SEQ_DTYPE)])
        self.state = np.concatenate([self.state, np.zeros(extra, np.int8)])
        self.streak = np.concatenate([self.streak, np.zeros(extra, np.int32)])
        self.verdict = np.concatenate([self.verdict, np.zeros(extra, np.int8)])
        self.n = np.concatenate([self.n, np.zeros(extra, self.n.dtype)])
        self.values = np.concatenate([self.values, np.zeros((6, extra), np.float64)], axis=1)

    def set_n(self, slots: IntArray, n: npt.NDArray[np.integer[Any]]) -> None:
        """Window sizes at ``slots``: int32, widened to int64 for the first one that needs it
        (a window past 2**31 - 1 values)."""
        if self.n.dtype != np.int64 and len(n) and (n.min() < N_MIN or n.max() > N_MAX):
            self.n = self.n.astype(np.int64)
        self.n[slots] = n

    def present(self) -> IntArray:
        """The slots holding a state machine."""
        return np.flatnonzero(self.seq != ABSENT)


class MachineStore:
    """Every segment's state machines, with the name tables their slots refer to.

    Not thread-safe: the book holds its lock around every call.
    """

    def __init__(self) -> None:
        self.column_names: list[str] = []
        self.method_names: list[str] = []
        self._column_index: dict[str, int] = {}
        self._method_index: dict[str, int] = {}
        self._columns_of: dict[tuple[str, ...], IntArray] = {}
        self._slot_table = np.full((0, 0), ABSENT, np.int64)
        """(column index, method index) -> slot."""
        self.slot_column: list[int] = []
        self.slot_method: list[int] = []
        self.segments: dict[str, SegmentMachines] = {}
        self._next_seq = 0

    # -- names and slots -------------------------------------------------------------

    def column_indices(self, columns: tuple[str, ...]) -> IntArray:
        """The column index of each of ``columns`` (registering new names)."""
        found = self._columns_of.get(columns)
        if found is None:
            found = np.array([self._register_column(c) for c in columns], np.int64)
            self._columns_of[columns] = found
        return found

    def _register_column(self, column: str) -> int:
        index = self._column_index.get(column)
        if index is None:
            index = self._column_index[column] = len(self.column_names)
            self.column_names.append(column)
        return index

    def method_index(self, method: str) -> int:
        """The index of ``method`` (registering a new name)."""
        index = self._method_index.get(method)
        if index is None:
            index = self._method_index[method] = len(self.method_names)
            self.method_names.append(method)
        return index

    def slots(self, columns: IntArray, method: int) -> IntArray:
        """The slot of each (column index, ``method``) pair, numbering new pairs."""
        rows, cols = self._slot_table.shape
        need_rows = max(rows, len(self.column_names))
        need_cols = max(cols, len(self.method_names))
        if (need_rows, need_cols) != (rows, cols):
            table = np.full((need_rows, need_cols), ABSENT, np.int64)
            table[:rows, :cols] = self._slot_table
            self._slot_table = table
        found: IntArray = self._slot_table[columns, method]
        for i in np.flatnonzero(found == ABSENT).tolist():
            column = int(columns[i])
            slot = int(self._slot_table[column, method])
            if slot == ABSENT:  # the same column twice in one call
                slot = len(self.slot_column)
                self._slot_table[column, method] = slot
                self.slot_column.append(column)
                self.slot_method.append(method)
            found[i] = slot
        return found

    # -- state machines --------------------------------------------------------------

    def machines(self, segment: str) -> SegmentMachines:
        """The segment's arrays, created or grown to hold every slot numbered so far."""
        size = len(self.slot_column)
        found = self.segments.get(segment)
        if found is None:
            found = self.segments[segment] = SegmentMachines(size)
        elif len(found) < size:
            found.grow(size)
        return found

    def create(self, machines: SegmentMachines, slots: IntArray, end: float) -> None:
        """Start state machines at ``slots`` (in order): ok, no streak, since ``end``."""
        count = len(slots)
        if self._next_seq + count > SEQ_LIMIT:
            self._renumber()
        machines.seq[slots] = np.arange(self._next_seq, self._next_seq + count)
        self._next_seq += count
        machines.state[slots] = OK
        machines.streak[slots] = 0
        machines.values[SINCE_TS, slots] = end

    def _renumber(self) -> None:
        """Number the held state machines 0..n-1 in creation order (evicted segments
        leave gaps; a long run would otherwise use up the numbers)."""
        held = [(m, m.present()) for m in self.segments.values()]
        seqs = np.concatenate([np.zeros(0, SEQ_DTYPE), *(m.seq[at] for m, at in held)])
        ranks = np.empty(len(seqs), SEQ_DTYPE)
        ranks[np.argsort(seqs)] = np.arange(len(seqs))
        start = 0
        for m, at in held:
            m.seq[at] = ranks[start : start + len(at)]
            start += len(at)
        self._next_seq = len(seqs)

    def forget(self, segment: str) -> None:
        """Drop the segment and all its state machines."""
        self.segments.pop(segment, None)

    def names(self, slot: int) -> tuple[str, str]:
        """(column, method) of ``slot``."""
        return self.column_names[self.slot_column[slot]], self.method_names[self.slot_method[slot]]

    def rows(self, segments: Sequence[str]) -> Iterator[Fields]:
        """Every state machine of ``segments`` (held ones, each once), in creation order,
        as the fields of a :class:`Row`: copies, safe to read after the store changed."""
        parts = [(self.segments[segment], self.segments[segment].present()) for segment in segments]
        if not sum(len(at) for _, at in parts):
            return iter(())
        order = np.argsort(np.concatenate([m.seq[at] for m, at in parts]))

        def gather(field: Callable[[SegmentMachines], npt.NDArray[Any]]) -> npt.NDArray[Any]:
            """``field`` of every state machine asked for, in creation order."""
            joined = np.concatenate([field(m)[..., at] for m, at in parts], axis=-1)
            return joined[..., order]

        slots = gather(lambda m: np.arange(len(m)))
        names = np.array(list(segments), object)
        segment_of = np.repeat(np.arange(len(parts)), [len(at) for _, at in parts])[order]
        columns = np.array(self.column_names, object)[np.array(self.slot_column)[slots]]
        methods = np.array(self.method_names, object)[np.array(self.slot_method)[slots]]
        states = np.array(STATE_NAMES, object)[gather(lambda m: m.state)]
        verdicts = np.array(VERDICT_NAMES, object)[gather(lambda m: m.verdict)]
        score, p_value, threshold, clear, since, last = gather(lambda m: m.values).tolist()
        found: Iterator[Fields] = iter(
            zip(
                names[segment_of].tolist(),
                columns.tolist(),
                methods.tolist(),
                states.tolist(),
                gather(lambda m: m.streak).tolist(),
                score,
                p_value,
                threshold,
                clear,
                gather(lambda m: m.n).tolist(),
                since,
                last,
                verdicts.tolist(),
                strict=True,
            )
        )
        return found

    def firing(self, segments: Iterable[str]) -> list[tuple[str, SegmentMachines, int]]:
        """(segment, its arrays, slot) of the firing state machines of ``segments`` (held
        ones, each once), in creation order."""
        found: list[tuple[int, str, SegmentMachines, int]] = []
        for segment in segments:
            m = self.segments[segment]
            slots = np.flatnonzero((m.seq != ABSENT) & (m.state == FIRING))
            found.extend(
                (seq, segment, m, slot)
                for seq, slot in zip(m.seq[slots].tolist(), slots.tolist(), strict=True)
            )
        found.sort(key=lambda item: item[0])
        return [(segment, m, slot) for _, segment, m, slot in found]

    def restore(self, rows: Sequence[Row]) -> None:
        """Hold ``rows`` (distinct state machines, in creation order) on an empty store."""
        by_segment: dict[str, list[int]] = {}
        slot_of: dict[tuple[str, str], int] = {}
        slots = np.empty(len(rows), np.int64)
        for i, row in enumerate(rows):
            by_segment.setdefault(row.segment, []).append(i)
            pair = (row.column, row.method)
            slot = slot_of.get(pair)
            if slot is None:
                column = self.column_indices((row.column,))
                slot = slot_of[pair] = int(self.slots(column, self.method_index(row.method))[0])
            slots[i] = slot
        for segment, picked in by_segment.items():
            m = self.machines(segment)
            at = slots[picked]
            mine = [rows[i] for i in picked]
            m.seq[at] = picked
            m.state[at] = [STATE_CODES[r.state] for r in mine]
            m.streak[at] = np.array([r.streak for r in mine], np.int32)
            m.set_n(at, np.array([r.n for r in mine], np.int64))
            m.verdict[at] = [VERDICT_CODES[r.verdict] for r in mine]
            m.values[:, at] = np.array(
                [[r.score, r.p_value, r.threshold, r.clear, r.since_ts, r.last_ts] for r in mine],
                np.float64,
            ).T
        self._next_seq = len(rows)
