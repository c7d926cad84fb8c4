"""Closed-form bucket layout of an ADWIN window, and ragged-array helpers.

Within a run (the stretch since the last reset) ADWIN never deletes a bucket, so
the exponential histogram after ``j`` inserts depends only on ``j`` and
``max_buckets`` (M). Let ``J_0 = j`` and ``J_{i+1} = max(0, floor((J_i - M + 1) / 2))``:
``J_i`` is the number of level-``i`` blocks (of ``2**i`` items) formed so far, and
``J_{i+1}`` of them have been merged one level up. Row ``i`` therefore holds the
aligned blocks ``[2*J_{i+1}, J_i)``, oldest first, ``c_i = J_i - 2*J_{i+1}`` of them.
"""

from __future__ import annotations

import numpy as np

from detectors.base import FloatArray, IntArray

_INT64_MAX = int(np.iinfo(np.int64).max)


def n_levels_for(width: int, max_buckets: int) -> int:
    """Number of bucket rows a window of ``width`` items needs."""
    levels = 0
    formed = width
    while formed > 0:
        levels += 1
        formed = max(0, (formed - max_buckets + 1) // 2)
    return levels


def blocks_formed(width: IntArray, max_buckets: int, n_levels: int) -> IntArray:
    """``J[..., i]``: level-``i`` blocks formed after ``width`` inserts.

    The result has shape ``width.shape + (n_levels + 1,)``: the extra last level is
    always computed so that ``J[..., i + 1]`` exists for every row.

    Nested floors collapse, ``floor((floor(x / 2) - a) / 2) = floor((x - 2a) / 4)``,
    so ``J_i = max(0, floor((J_0 - (M - 1) * (2**i - 1)) / 2**i))``: once the
    numerator turns negative it stays negative, as the recursion stays at 0.
    """
    # Capped lags keep int64 from overflowing; a lag of at least the width leaves 0 anyway.
    lag = np.array(
        [min((max_buckets - 1) * ((1 << i) - 1), _INT64_MAX) for i in range(n_levels + 1)],
        dtype=np.int64,
    )
    formed: IntArray = np.asarray(width, dtype=np.int64)[..., None] - lag
    # An arithmetic right shift is floor division by a power of 2, negatives included.
    np.right_shift(formed, np.minimum(np.arange(n_levels + 1), 63), out=formed)
    np.maximum(formed, 0, out=formed)
    return formed


def ragged_concat(left: FloatArray, left_len: IntArray, right: FloatArray, out: FloatArray) -> None:
    """Row-wise concatenation of the first ``left_len[r]`` entries of ``left`` and ``right``.

    ``left``, ``right`` and ``out`` are ``(planes, rows, columns)``; every plane is
    joined with the same layout, by one gather, into ``out``, which is as wide as the
    longest joined row needs. Cells past a row's own length hold whatever follows in
    the row; callers never read them.
    """
    planes, rows, n_left = left.shape
    width = out.shape[2]
    stride = 2 * n_left + right.shape[2]
    padding = np.zeros((planes, rows, n_left))
    joined = np.concatenate([left, right, padding], axis=2)
    # Row r reads its joined row from column n_left - left_len[r] on, which puts right's
    # first entry at column left_len[r]; the columns before it are then taken from left.
    first = np.arange(planes * rows).reshape(planes, rows) * stride + (n_left - left_len)
    joined.ravel().take(first[:, :, None] + np.arange(width), out=out, mode="clip")
    n_head = min(n_left, width)
    from_left = np.arange(n_head)[None, :] < left_len[:, None]
    np.copyto(out[:, :, :n_head], left[:, :, :n_head], where=from_left)
