"""Vector inputs sorted out: usable vectors apart from missing, malformed and non-finite ones.

An event's embedding arrives as a list of floats decoded from JSON, or as a row of an
array. Anything that is not a vector of the reference's length of finite numbers is
counted by kind and skipped, never raised: one bad event must not stop a batch.

>>> batch = sort_vectors([[1.0, 2.0], None, [1.0], [float("nan"), 1.0]], dim=2)
>>> batch.ok.tolist(), batch.missing.tolist(), batch.malformed.tolist()
([True, False, False, False], [False, True, False, False], [False, False, True, False])
>>> batch.nonfinite.tolist(), batch.vectors.tolist()
([False, False, False, True], [[1.0, 2.0]])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detectors.base import BoolArray, FloatArray


@dataclass(frozen=True)
class VectorBatch:
    """A batch of vectors sorted out: the usable ones and what happened to each row.

    ``vectors`` holds the rows where ``ok``; ``missing`` (None or NaN-only), ``malformed``
    (wrong length, not numbers) and ``nonfinite`` (a NaN or infinity among numbers) are
    per-row masks.
    """

    vectors: FloatArray
    ok: BoolArray
    missing: BoolArray
    malformed: BoolArray
    nonfinite: BoolArray


def sort_vectors(values: object, dim: int) -> VectorBatch:
    """Rows of a 2-D array, or a sequence of vectors (lists, arrays, None), checked."""
    if isinstance(values, np.ndarray) and values.ndim == 2 and values.dtype.kind in "iuf":
        rows = values.shape[0]
        if values.shape[1] != dim:
            none = np.zeros(rows, dtype=np.bool_)
            return VectorBatch(np.zeros((0, dim)), none, none, ~none, none)
        matrix = values.astype(np.float64, copy=False)
        finite = np.isfinite(matrix)
        all_bad = np.asarray(~finite.any(axis=1), dtype=np.bool_)
        nonfinite = np.asarray(~finite.all(axis=1) & ~all_bad, dtype=np.bool_)
        ok = ~(all_bad | nonfinite)
        none = np.zeros(rows, dtype=np.bool_)
        return VectorBatch(matrix[ok], ok, all_bad, none, nonfinite)
    items = list(values)  # type: ignore[call-overload]
    rows = len(items)
    matrix = np.zeros((rows, dim))
    missing, malformed, nonfinite = (np.zeros(rows, dtype=np.bool_) for _ in range(3))
    for i, item in enumerate(items):
        if item is None:
            missing[i] = True
            continue
        try:
            vector = np.asarray(item, dtype=np.float64)
        except (TypeError, ValueError):
            malformed[i] = True
            continue
        if vector.shape != (dim,):
            malformed[i] = True
            continue
        matrix[i] = vector
    finite = np.isfinite(matrix)
    all_bad = ~finite.any(axis=1) & ~(missing | malformed)
    missing |= all_bad
    nonfinite = ~finite.all(axis=1) & ~(missing | malformed)
    ok = ~(missing | malformed | nonfinite)
    return VectorBatch(matrix[ok], ok, missing, malformed, nonfinite)
