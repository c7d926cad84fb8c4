"""Scoring many ADWIN cut checks at once, with river's exact arithmetic.

One row per check (a stream at run length ``W``), one column per bucket, oldest
first: row ``L-1`` first, row 0 last, ``max_buckets`` slots per row, empty slots
holding zero. Running sums along a row give river's ``u0``/``n0`` and, with a
sequential subtract-accumulate from the window total, its ``u1``; ``n1 = W - n0``.

An empty slot repeats the boundary before it (same ``u0``, ``n0``), so it cannot
change whether *some* cut of the row fires; before the first bucket ``n0 = 0`` and
the ``n0 >= mwl`` test (``mwl >= 1``) rules it out, as it does river's last boundary
(``n1 = 0``). The operation order of every float expression is river's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from detectors.adwin_layout import blocks_formed
from detectors.base import BoolArray, FloatArray, IntArray


@dataclass(frozen=True)
class LevelArrays:
    """Bucket totals (or variances) of every level for one pass, flattened for gathers.

    ``flat`` holds each level's ``(rows, width)`` matrix in turn, then one 0.0 that
    empty slots point at. Column 0 of level ``i`` in row ``r`` is block ``lo[i, r]``.
    """

    flat: FloatArray
    offsets: IntArray
    widths: IntArray
    lo: IntArray

    @property
    def zero_slot(self) -> int:
        """Index of the 0.0 that empty bucket slots read."""
        return self.flat.size - 1


def check_positions(
    start: IntArray, lengths: IntArray, clock: int, grace_period: int, min_window_length: int
) -> tuple[IntArray, IntArray]:
    """(row, offset) of every update in the pass after which river runs its cut test.

    The test runs when the run length ``W`` is a multiple of ``clock`` and exceeds the
    grace period; below ``2 * min_window_length`` no boundary can qualify, so those
    checks are skipped as they could never fire.
    """
    first_w = np.maximum(start + 1, max(grace_period + 1, 2 * min_window_length))
    first_w = ((first_w + clock - 1) // clock) * clock
    last_w = start + lengths
    per_row = np.maximum(0, (last_w - first_w) // clock + 1)
    rows = np.repeat(np.arange(start.size, dtype=np.int64), per_row)
    seq_start = np.cumsum(per_row) - per_row
    step = np.arange(rows.size, dtype=np.int64) - np.repeat(seq_start, per_row)
    w = first_w[rows] + step * clock
    return rows, w - start[rows] - 1


class DeltaPrimeTable:
    """River's ``ln(2 ln(W) / delta)`` at check widths, each computed once.

    Checks happen at multiples of ``clock``, so the values are kept by ``W // clock``
    up to ``max_entries``; wider windows (and any other width) are computed on the
    spot. ``math.log`` is the libm river calls, so every value is river's.
    """

    def __init__(self, delta: float, clock: int, max_entries: int = 1 << 15) -> None:
        self.delta = delta
        self.clock = clock
        self.max_entries = max_entries
        self.values = np.empty(0, dtype=np.float64)

    def _compute(self, widths: list[int]) -> FloatArray:
        return np.array(
            [math.log(2.0 * math.log(float(w)) / self.delta) if w > 1 else math.nan for w in widths]
        )

    def at(self, width: IntArray) -> FloatArray:
        """The value for every entry of ``width``."""
        if width.size == 0:
            return np.empty(0, dtype=np.float64)
        steps, off_clock = np.divmod(width, self.clock)
        needed = int(steps.max()) + 1
        if needed > self.max_entries or off_clock.any():
            unique_w, inverse = np.unique(width, return_inverse=True)
            return self._compute(unique_w.tolist())[inverse]
        have = self.values.size
        if needed > have:
            grown = min(self.max_entries, max(needed, 2 * have))
            extra = self._compute(list(range(have * self.clock, grown * self.clock, self.clock)))
            self.values = np.concatenate([self.values, extra])
        result: FloatArray = self.values[steps]
        return result


def _running(op: np.ufunc, start: FloatArray | None, steps: FloatArray) -> FloatArray:
    """Sequential ``op``-accumulation down axis 0, optionally from ``start``.

    A loop over the (few) rows with whole-row ufunc calls is several times faster
    than ``ufunc.accumulate``, which does not vectorise across columns, and it keeps
    river's left-to-right order exactly.
    """
    out = np.empty_like(steps)
    if start is None:
        out[0] = steps[0]
    else:
        op(start, steps[0], out=out[0])
    for row in range(1, steps.shape[0]):
        op(out[row - 1], steps[row], out=out[row])
    return out


@dataclass(frozen=True)
class Slots:
    """The bucket slots of windows of known widths, ``(n_levels, max_buckets, n)``.

    Each level's slots run oldest first; levels run lowest first, or highest first
    (all buckets oldest first) when built ``oldest_first``. ``index`` points into a
    ``LevelArrays.flat``; empty slots point at its zero slot and are not ``present``.
    ``formed`` and ``formed_above`` are ``J_i`` and ``J_{i+1}`` of every level (rows)
    and window (columns), and ``level`` is each row's level number, in that order.
    """

    index: IntArray
    present: BoolArray
    formed: IntArray
    formed_above: IntArray
    level: IntArray

    def items_through(self) -> FloatArray:
        """Items in each slot and every older one: the running size sum, oldest first.

        Levels above ``i`` hold the oldest ``2 * J_{i+1} * 2**i`` items, and slot ``s``
        of level ``i`` adds ``2**i`` each for itself and the slots before it, up to the
        level's own ``J_i * 2**i``; an empty slot repeats the boundary before it. The
        numbers are whole, so this equals the running sum exactly.
        """
        size = (1 << self.level).astype(np.float64)[:, None]
        older = (2 * self.formed_above).astype(np.float64) * size
        through_level = self.formed.astype(np.float64) * size
        steps = np.arange(1.0, self.index.shape[1] + 1.0)[None, :] * size
        through: FloatArray = older[:, None, :] + steps[:, :, None]
        np.minimum(through, through_level[:, None, :], out=through)
        return through


def slot_index(
    rows: IntArray,
    width: IntArray,
    levels: LevelArrays,
    max_buckets: int,
    oldest_first: bool = False,
) -> Slots:
    """The bucket slots of windows of ``width`` items in pass rows ``rows``."""
    n_levels = levels.widths.size
    all_formed = blocks_formed(width, max_buckets, n_levels).T
    level = np.arange(n_levels, dtype=np.int64)
    formed, formed_above = all_formed[:-1], all_formed[1:]
    offsets, widths, lo = levels.offsets, levels.widths, levels.lo
    if oldest_first:
        level, formed, formed_above = level[::-1], formed[::-1], formed_above[::-1]
        offsets, widths, lo = offsets[::-1], widths[::-1], lo[::-1]
    slot = np.arange(max_buckets)[None, :, None]
    count = formed - 2 * formed_above
    first = offsets[:, None] + rows[None, :] * widths[:, None]
    first += 2 * formed_above - lo[:, rows]
    present = slot < count[:, None, :]
    index = np.where(present, first[:, None, :] + slot, levels.zero_slot)
    return Slots(index, present, formed, formed_above, level)


def bucket_index(
    rows: IntArray, width: IntArray, levels: LevelArrays, max_buckets: int
) -> tuple[IntArray, FloatArray]:
    """Flat indices and sizes of every bucket slot, ``(n_levels * max_buckets, n_checks)``.

    Buckets run along axis 0, oldest first, so that running sums advance over
    contiguous rows of checks (numpy accumulates a short last axis slowly). Empty
    slots point at the zero slot and have size 0.
    """
    n_checks = rows.size
    slots = slot_index(rows, width, levels, max_buckets, oldest_first=True)
    sizes = np.where(slots.present, (1 << slots.level).astype(np.float64)[:, None, None], 0.0)
    return slots.index.reshape(-1, n_checks), sizes.reshape(-1, n_checks)


def score_checks(
    rows: IntArray,
    width: IntArray,
    total: FloatArray,
    variance: FloatArray,
    levels: LevelArrays,
    max_buckets: int,
    min_window_length: int,
    delta_primes: DeltaPrimeTable,
    track_closest: bool = False,
) -> tuple[BoolArray, float]:
    """Whether some cut fires in each check, and the closest relative call seen.

    The closest call is ``min | |dmu| - eps | / eps`` over the qualifying boundaries:
    how far the nearest decision was from flipping.
    """
    n_checks = rows.size
    slots = slot_index(rows, width, levels, max_buckets, oldest_first=True)
    buckets = levels.flat[slots.index.reshape(-1, n_checks)]

    w = width.astype(np.float64)
    mwl = float(min_window_length)
    u0 = _running(np.add, None, buckets)
    u1 = _running(np.subtract, total, buckets)
    n0 = slots.items_through().reshape(-1, n_checks)
    n1 = np.subtract(w, n0)
    qualifies = n0 >= mwl
    qualifies &= n1 >= mwl

    delta_prime = delta_primes.at(width)
    # Scratch buffers and in-place ufuncs: fresh temporaries of this size cost more in
    # page faults than the arithmetic itself. Each line keeps river's operation order.
    scratch = np.empty_like(u0)
    with np.errstate(divide="ignore", invalid="ignore"):
        delta_mean = np.divide(u0, n0, out=u0)
        np.subtract(delta_mean, np.divide(u1, n1, out=u1), out=delta_mean)
        np.abs(delta_mean, out=delta_mean)
        # Counts are whole numbers far below 2**53, so ``n - mwl + 1.0`` is exact in
        # either grouping.
        m_recip = np.subtract(n0, mwl - 1.0, out=n0)
        np.divide(1.0, m_recip, out=m_recip)
        np.subtract(n1, mwl - 1.0, out=n1)
        np.divide(1.0, n1, out=n1)
        m_recip += n1
        # River's ``2.0 * m * (v / w)``: doubling is exact, and v / w <= DBL_MAX / 2 as
        # w >= 2, so doubling v / w instead rounds the same product once, identically.
        epsilon = np.multiply(m_recip, 2.0 * (variance / w), out=scratch)
        epsilon *= delta_prime
        np.sqrt(epsilon, out=epsilon)
        third = np.multiply(2.0 / 3.0 * delta_prime, m_recip, out=n1)
        epsilon += third
        closest = math.inf
        if track_closest and qualifies.any():
            margin = np.abs(delta_mean[qualifies] - epsilon[qualifies]) / epsilon[qualifies]
            closest = float(margin.min())
        np.greater(delta_mean, epsilon, out=qualifies, where=qualifies)
    result: BoolArray = np.any(qualifies, axis=0)
    return result, closest
