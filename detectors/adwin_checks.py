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
    """Bucket totals of every level for the streams of one pass, flattened for gathers.

    ``flat`` holds each level's ``(rows, width)`` matrix in turn, then one 0.0 that
    empty slots point at. Column 0 of level ``i`` in row ``r`` is block ``lo[i][r]``.
    """

    flat: FloatArray
    offsets: list[int]
    widths: list[int]
    lo: list[IntArray]

    @classmethod
    def build(cls, level_totals: list[FloatArray], level_lo: list[IntArray]) -> LevelArrays:
        """Flatten per-level matrices (all with the same number of rows)."""
        offsets: list[int] = []
        position = 0
        for arr in level_totals:
            offsets.append(position)
            position += arr.size
        flat = np.concatenate([arr.ravel() for arr in level_totals] + [np.zeros(1)])
        return cls(flat, offsets, [arr.shape[1] for arr in level_totals], level_lo)

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


def bucket_index(
    rows: IntArray, width: IntArray, levels: LevelArrays, max_buckets: int
) -> tuple[IntArray, FloatArray]:
    """Flat indices and sizes of every bucket slot, ``(n_levels * max_buckets, n_checks)``.

    Buckets run along axis 0, oldest first, so that running sums advance over
    contiguous rows of checks (numpy accumulates a short last axis slowly). Empty
    slots point at the zero slot and have size 0.
    """
    n_checks = rows.size
    n_levels = len(levels.widths)
    formed = blocks_formed(width, max_buckets, n_levels)
    slot = np.arange(max_buckets)[:, None]
    index = np.full((n_levels, max_buckets, n_checks), levels.zero_slot, dtype=np.int64)
    sizes = np.zeros((n_levels, max_buckets, n_checks), dtype=np.float64)
    for level in range(n_levels):
        if levels.widths[level] == 0:
            continue
        col = n_levels - 1 - level
        present = slot < formed[:, level] - 2 * formed[:, level + 1]
        first = levels.offsets[level] + rows * levels.widths[level]
        first += 2 * formed[:, level + 1] - levels.lo[level][rows]
        np.copyto(index[col], first + slot, where=present)
        np.copyto(sizes[col], float(1 << level), where=present)
    return index.reshape(-1, n_checks), sizes.reshape(-1, n_checks)


def score_checks(
    rows: IntArray,
    width: IntArray,
    total: FloatArray,
    variance: FloatArray,
    levels: LevelArrays,
    max_buckets: int,
    min_window_length: int,
    delta: float,
    track_closest: bool = False,
) -> tuple[BoolArray, float]:
    """Whether some cut fires in each check, and the closest relative call seen.

    The closest call is ``min | |dmu| - eps | / eps`` over the qualifying boundaries:
    how far the nearest decision was from flipping.
    """
    index, sizes = bucket_index(rows, width, levels, max_buckets)
    buckets = levels.flat[index]

    w = width.astype(np.float64)
    mwl = float(min_window_length)
    u0 = _running(np.add, None, buckets)
    u1 = _running(np.subtract, total, buckets)
    n0 = _running(np.add, None, sizes)
    n1 = np.subtract(w, n0)
    qualifies = n0 >= mwl
    qualifies &= n1 >= mwl

    unique_w, inverse = np.unique(width, return_inverse=True)
    delta_prime = np.array([math.log(2.0 * math.log(float(v)) / delta) for v in unique_w.tolist()])
    delta_prime = delta_prime[inverse]
    # Scratch buffers and in-place ufuncs: fresh temporaries of this size cost more in
    # page faults than the arithmetic itself. Each line keeps river's operation order.
    scratch = np.empty_like(u0)
    with np.errstate(divide="ignore", invalid="ignore"):
        delta_mean = np.divide(u0, n0, out=u0)
        np.subtract(delta_mean, np.divide(u1, n1, out=u1), out=delta_mean)
        np.abs(delta_mean, out=delta_mean)
        m_recip = np.subtract(n0, mwl, out=n0)
        m_recip += 1.0
        np.divide(1.0, m_recip, out=m_recip)
        np.subtract(n1, mwl, out=n1)
        n1 += 1.0
        np.divide(1.0, n1, out=n1)
        m_recip += n1
        epsilon = np.multiply(2.0, m_recip, out=scratch)
        epsilon *= variance / w
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
