"""One side of the join: pending entries in slot arrays, first-wins insertion, eviction.

:class:`PendingSide` holds the entries of one side (predictions or labels) of
:class:`~monitor.engine.labels.join.JoinStore`: numpy arrays of slots (id, time, arrival
number, and the side's own columns), which grow by doubling up to the capacity,
and a dict from id to slot. Per entry there is no Python object besides the id
string, its dict entry and the slot number the dict holds.

``insert`` applies the side's rules to a batch exactly as if its items came one at
a time: an item whose id is pending is dropped (the first one wins), and adding
to a full side first evicts the oldest entry (smallest time, then earliest
arrival). A batch takes a few C-level passes over its ids; only a batch that must
evict out of time order, or that brings an id back after evicting its entry,
takes the per-item path, which finds its eviction candidates with one partial
sort and then keeps them in a heap.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.base import FloatArray, IntArray

__all__ = ["PendingSide"]

_MIN_SLOTS = 1024


class PendingSide:
    """The pending entries of one side: slots in numpy arrays, and a dict id -> slot."""

    def __init__(self, capacity: int, columns: Mapping[str, type[np.generic]]) -> None:
        self.capacity = capacity
        self.index: dict[str, int] = {}
        # The slot arrays grow (doubling, up to the capacity) with the high-water mark,
        # so that a large capacity costs memory only once it is used.
        self.ids: npt.NDArray[np.object_] = np.empty(0, dtype=object)
        self.ts = np.empty(0, dtype=np.float64)
        self.seq = np.empty(0, dtype=np.int64)
        self.cols = {name: np.empty(0, dtype=dtype) for name, dtype in columns.items()}
        self._free = np.empty(0, dtype=np.int64)
        self._n_free = 0
        # Slots at and past the high-water mark were never used; below it, a free slot
        # has ts = +inf so that scans over [0, hwm) pass it by.
        self.hwm = 0
        self.min_ts = math.inf  # a lower bound of the pending times

    def __len__(self) -> int:
        return len(self.index)

    def _grow(self, need: int) -> None:
        """Make room for slots [0, need)."""
        size = self.ts.size
        if need <= size:
            return
        size = min(self.capacity, max(need, 2 * size, _MIN_SLOTS))

        def grown(old: npt.NDArray[Any]) -> npt.NDArray[Any]:
            new = np.empty(size, dtype=old.dtype)
            new[: self.hwm] = old[: self.hwm]
            return new

        self.ids = grown(self.ids)
        self.ts = grown(self.ts)
        self.seq = grown(self.seq)
        self.cols = {name: grown(values) for name, values in self.cols.items()}
        free = np.empty(size, dtype=np.int64)
        free[: self._n_free] = self._free[: self._n_free]
        self._free = free

    def alloc(self, k: int) -> IntArray:
        """``k`` free slots (the caller checked there are enough)."""
        reuse = min(k, self._n_free)
        taken = self._free[self._n_free - reuse : self._n_free].copy()
        self._n_free -= reuse
        self._grow(self.hwm + k - reuse)
        fresh = np.arange(self.hwm, self.hwm + k - reuse, dtype=np.int64)
        self.hwm += k - reuse
        return np.concatenate([taken, fresh]) if reuse else fresh

    def release(self, slots: IntArray) -> None:
        """Free ``slots`` (their ids must already be out of the index)."""
        self.ids[slots] = None
        self.ts[slots] = math.inf
        self._free[self._n_free : self._n_free + slots.size] = slots
        self._n_free += slots.size

    def write(
        self,
        slots: IntArray,
        ids: Sequence[str],
        ts: FloatArray,
        seq: IntArray,
        cols: Mapping[str, npt.NDArray[Any]],
    ) -> None:
        """Fill ``slots`` and index them."""
        self.ids[slots] = ids
        self.ts[slots] = ts
        self.seq[slots] = seq
        for name, values in cols.items():
            self.cols[name][slots] = values
        self.index.update(zip(ids, slots.tolist(), strict=True))
        if ts.size:
            self.min_ts = min(self.min_ts, float(ts.min()))

    def remove(self, slots: IntArray) -> None:
        """Drop the entries in ``slots`` from the index and free them."""
        list(map(self.index.pop, self.ids[slots].tolist()))
        self.release(slots)

    def oldest(self, k: int) -> IntArray:
        """The ``k`` oldest pending slots by (time, arrival), oldest first (fewer if short)."""
        ts = self.ts[: self.hwm]
        if k < ts.size:
            kth = np.partition(ts, k - 1)[k - 1]
            cand = np.flatnonzero((ts <= kth) & (ts < math.inf))
        else:
            cand = np.flatnonzero(ts < math.inf)
        order = np.lexsort((self.seq[cand], ts[cand]))
        return cand[order[:k]].astype(np.int64)

    def expire(self, cutoff: float) -> int:
        """Drop entries older than ``cutoff``; how many."""
        if not self.min_ts < cutoff:
            return 0
        ts = self.ts[: self.hwm]
        old = np.flatnonzero(ts < cutoff)
        self.remove(old)
        self.min_ts = float(ts.min()) if len(self) else math.inf
        return int(old.size)

    def state(self) -> dict[str, Any]:
        """The pending entries in arrival order, compacted."""
        ts = self.ts[: self.hwm]
        live = np.flatnonzero(ts < math.inf)
        live = live[np.argsort(self.seq[live], kind="stable")]
        out: dict[str, Any] = {
            "ids": self.ids[live].tolist(),
            "ts": ts[live].copy(),
            "seq": self.seq[live].copy(),
        }
        for name, values in self.cols.items():
            out[name] = values[live].copy()
        return out

    def load(self, state: Mapping[str, Any]) -> None:
        """Refill from ``state`` output (the caller cleared this side)."""
        ids = [str(key) for key in state["ids"]]
        ts = np.asarray(state["ts"], dtype=np.float64)
        seq = np.asarray(state["seq"], dtype=np.int64)
        cols = {name: np.asarray(state[name], dtype=a.dtype) for name, a in self.cols.items()}
        for name, values in (("ts", ts), ("seq", seq), *cols.items()):
            if values.shape != (len(ids),):
                raise ValueError(f"join state: {name} has shape {values.shape}, not ({len(ids)},)")
        if len(set(ids)) != len(ids):
            raise ValueError("join state: an id is pending twice on one side")
        self.write(self.alloc(len(ids)), ids, ts, seq, cols)

    def insert(
        self,
        ids: list[str],
        ts: FloatArray,
        seq: IntArray,
        cols: Mapping[str, npt.NDArray[Any]],
    ) -> tuple[int, int]:
        """Add items in arrival order (first of an id wins, oldest evicted); (dropped, evicted)."""
        n = len(ids)
        before = len(self)
        # setdefault() keeps a pending entry and stands a negative token in for a new
        # one; an item got in exactly when its own token came back.
        token = np.fromiter(map(self.index.setdefault, ids, range(-1, -n - 1, -1)), np.int64, n)
        new = np.flatnonzero(token == -np.arange(1, n + 1))
        new_ids = [ids[i] for i in new.tolist()] if new.size < n else ids
        room = self.capacity - before
        evict = np.zeros(0, np.int64)
        if new.size > room:
            evict = self._bulk_evictions(before, new.size - room, ts[new], token)
            if evict.size == 0:
                list(map(self.index.pop, new_ids))
                return self._insert_one_by_one(ids, ts, seq, cols)
            self.remove(evict)
        self.write(
            self.alloc(new.size),
            new_ids,
            ts[new],
            seq[new],
            {name: values[new] for name, values in cols.items()},
        )
        return n - int(new.size), int(evict.size)

    def _bulk_evictions(self, before: int, k: int, new_ts: FloatArray, token: IntArray) -> IntArray:
        """The ``k`` slots to evict, or none when one-by-one order could differ.

        The batch evicts exactly the ``k`` oldest entries that were pending before it
        when they are all no newer than every newcomer (a newcomer is never older
        than an earlier arrival with the same time), and no later duplicate in the
        batch names an id evicted before it comes (it would get in again).
        """
        if k > before:
            return np.zeros(0, np.int64)
        oldest = self.oldest(k)
        if self.ts[oldest[-1]] > new_ts.min():
            return np.zeros(0, np.int64)
        if np.isin(token[token >= 0], oldest).any():
            return np.zeros(0, np.int64)
        return oldest

    def _insert_one_by_one(
        self,
        ids: list[str],
        ts: FloatArray,
        seq: IntArray,
        cols: Mapping[str, npt.NDArray[Any]],
    ) -> tuple[int, int]:
        """The exact per-item rule, for batches that evict out of time order."""
        n = len(ids)
        # At most n - room evictions, each the oldest still pending: of the entries
        # pending before the batch, only the n - room oldest can be among them.
        pool = max(0, min(len(self), n - (self.capacity - len(self))))
        slots = self.oldest(pool) if pool else np.zeros(0, np.int64)
        heap = list(
            zip(self.ts[slots].tolist(), self.seq[slots].tolist(), slots.tolist(), strict=True)
        )
        heapq.heapify(heap)
        names = list(cols)
        col_rows = list(zip(*(cols[name].tolist() for name in names), strict=True))
        dup = evicted = 0
        index = self.index
        for key, t, s, row in zip(ids, ts.tolist(), seq.tolist(), col_rows, strict=True):
            if key in index:
                dup += 1
                continue
            if len(index) >= self.capacity:
                _, _, slot = heapq.heappop(heap)
                self.remove(np.array([slot], np.int64))
                evicted += 1
            slot = int(self.alloc(1)[0])
            self.ids[slot] = key
            self.ts[slot] = t
            self.seq[slot] = s
            for name, value in zip(names, row, strict=True):
                self.cols[name][slot] = value
            index[key] = slot
            self.min_ts = min(self.min_ts, t)
            heapq.heappush(heap, (t, s, slot))
        return dup, evicted
