"""Fairness gaps between groups, from per-group confusion counts of whole windows.

All three gaps are the largest minus the smallest rate over the groups that
qualify, per window (row):

- ``demographic_parity_difference``: the rate of predicted positives,
  ``predicted_pos / n``;
- ``tpr_gap``: the true positive rate ``tp / (tp + fn)``, over groups that also have
  at least one actual positive;
- ``fpr_gap``: the false positive rate ``fp / (fp + tn)``, over groups that also
  have at least one actual negative.

A group qualifies when it holds at least ``min_group_size`` pairs in the window
(for all three gaps: a rate from a handful of pairs is noise, not unfairness). A
gap is NaN when fewer than two groups qualify.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from detectors.base import FloatArray

__all__ = ["FAIRNESS_GAPS", "fairness_gaps"]

FAIRNESS_GAPS = ("demographic_parity_difference", "tpr_gap", "fpr_gap")
"""The keys of :func:`fairness_gaps`, in order."""


def _gap(
    numerator: FloatArray, denominator: FloatArray, qualifies: npt.NDArray[np.bool_]
) -> FloatArray:
    """max - min of numerator / denominator over qualifying cells, per row; NaN below two."""
    ok = qualifies & (denominator > 0)
    rate = np.divide(numerator, denominator, out=np.zeros_like(numerator), where=ok)
    high = np.max(np.where(ok, rate, -np.inf), axis=1, initial=-np.inf)
    low = np.min(np.where(ok, rate, np.inf), axis=1, initial=np.inf)
    enough = ok.sum(axis=1) >= 2
    return np.where(enough, high - np.where(enough, low, 0.0), np.nan)


def fairness_gaps(
    n: npt.ArrayLike,
    predicted_pos: npt.ArrayLike,
    tp: npt.ArrayLike,
    fn: npt.ArrayLike,
    fp: npt.ArrayLike,
    tn: npt.ArrayLike,
    min_group_size: int = 1,
) -> dict[str, FloatArray]:
    """The gaps (see the module docstring) of count arrays shaped ``(windows, groups)``."""
    if isinstance(min_group_size, bool) or not isinstance(min_group_size, int | np.integer):
        raise TypeError(f"min_group_size must be an int, got {type(min_group_size).__name__}")
    if min_group_size < 1:
        raise ValueError("min_group_size must be >= 1")
    arrays = {
        name: np.asarray(values, dtype=np.float64)
        for name, values in (
            ("n", n),
            ("predicted_pos", predicted_pos),
            ("tp", tp),
            ("fn", fn),
            ("fp", fp),
            ("tn", tn),
        )
    }
    shape = arrays["n"].shape
    if len(shape) != 2:
        raise ValueError(f"n must be shaped (windows, groups), got shape {shape}")
    for name, values in arrays.items():
        if values.shape != shape:
            raise ValueError(f"{name} has shape {values.shape} but n has shape {shape}")
    count = arrays["n"]
    qualifies = count >= min_group_size
    positives = arrays["tp"] + arrays["fn"]
    negatives = arrays["fp"] + arrays["tn"]
    return {
        "demographic_parity_difference": _gap(arrays["predicted_pos"], count, qualifies),
        "tpr_gap": _gap(arrays["tp"], positives, qualifies),
        "fpr_gap": _gap(arrays["fp"], negatives, qualifies),
    }
