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
    """
    out = np.empty((*width.shape, n_levels + 1), dtype=np.int64)
    formed = width.astype(np.int64, copy=True)
    for level in range(n_levels + 1):
        out[..., level] = formed
        formed = np.maximum(0, (formed - max_buckets + 1) // 2)
    return out


def ragged_concat(
    left: FloatArray, left_len: IntArray, right: FloatArray, right_len: IntArray
) -> FloatArray:
    """Row-wise concatenation of the first ``left_len[r]`` and ``right_len[r]`` entries.

    ``left`` must be zero beyond ``left_len`` (stored bucket rows are). Rows are padded
    with zeros on the right; padding is never read by callers. ``left_len`` takes few
    distinct values (at most ``max_buckets + 1``), so rows are shifted in groups with
    contiguous slice copies instead of element-wise scatters.
    """
    rows = left.shape[0]
    width = int((left_len + right_len).max()) if rows else 0
    out = np.zeros((rows, max(width, left.shape[1] + right.shape[1])), dtype=np.float64)
    out[:, : left.shape[1]] = left
    if right.shape[1]:
        for shift in np.flatnonzero(np.bincount(left_len)).tolist():
            group = np.flatnonzero(left_len == shift)
            out[group, shift : shift + right.shape[1]] = right[group]
    return out[:, :width]
