"""Score calibration for binary classifiers: a monotone (isotonic) binning of the scores.

The reference's scores are cut into bins on their quantiles, with the decision threshold
as one of the edges, so that every bin lies wholly on one side of it: counting events per
bin then gives the predicted class of each exactly. Within a bin the calibrated
probability of the positive class is the reference's positive rate, made monotone in the
score by a weighted pool-adjacent-violators pass (isotonic regression over the bins).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.base import BoolArray, FloatArray, IntArray
from detectors.values import check_int


def isotonic_fit(rates: FloatArray, weights: FloatArray) -> FloatArray:
    """Weighted least-squares non-decreasing fit of ``rates`` (pool adjacent violators).

    Bins of zero weight take the fitted value of the nearest weighted bin below them (or
    above, before the first), which keeps the fit monotone.

    >>> isotonic_fit(np.array([0.1, 0.4, 0.2, 0.9]), np.array([1.0, 1.0, 3.0, 2.0])).tolist()
    [0.1, 0.25, 0.25, 0.9]
    """
    out = np.full(rates.shape, np.nan)
    present = np.flatnonzero(weights > 0)
    if not present.size:
        return out
    # Each block: (weighted mean, weight, number of bins pooled).
    means: list[float] = []
    masses: list[float] = []
    sizes: list[int] = []
    for i in present:
        means.append(float(rates[i]))
        masses.append(float(weights[i]))
        sizes.append(1)
        while len(means) > 1 and means[-2] > means[-1]:
            mass = masses[-2] + masses[-1]
            mean = (means[-2] * masses[-2] + means[-1] * masses[-1]) / mass
            size = sizes[-2] + sizes[-1]
            del means[-1], masses[-1], sizes[-1]
            means[-1], masses[-1], sizes[-1] = mean, mass, size
    out[present] = np.repeat(means, sizes)
    filled = np.maximum.accumulate(np.where(weights > 0, np.arange(rates.size), -1))
    out = np.where(filled >= 0, out[np.maximum(filled, 0)], out[present[0]])
    return np.asarray(out, dtype=np.float64)


def _float_or_nan(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")


def as_floats(values: npt.ArrayLike) -> FloatArray:
    """Values as float64; what is not a number (None, a string, an object) becomes NaN,
    to be counted as invalid rather than raise in the middle of a batch."""
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        arr = np.asarray(values, dtype=object)
        flat = [_float_or_nan(v) for v in arr.ravel().tolist()]
        return np.asarray(flat, dtype=np.float64).reshape(arr.shape)


def valid_scores(scores: npt.ArrayLike) -> tuple[FloatArray, BoolArray]:
    """Scores as float64, and where each is a probability (finite, in [0, 1])."""
    arr = as_floats(scores)
    if arr.ndim != 1:
        raise ValueError(f"scores must be one-dimensional, got shape {arr.shape}")
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(arr) & (arr >= 0.0) & (arr <= 1.0)
    return arr, np.asarray(ok, dtype=np.bool_)


def binary_labels(labels: npt.ArrayLike, size: int) -> tuple[IntArray, BoolArray]:
    """Labels as 0/1 int64, and which are valid (exactly 0 or 1; NaN, None, 0.5 are not)."""
    num = as_floats(labels)
    if num.shape != (size,):
        raise ValueError(f"labels must have shape ({size},), got {num.shape}")
    ok = (num == 0.0) | (num == 1.0)
    return np.where(ok, num, 0.0).astype(np.int64), np.asarray(ok, dtype=np.bool_)


@dataclass(frozen=True)
class ScoreCalibration:
    """Bins of the score, each on one side of ``threshold``, with P(y=1 | bin).

    ``edges`` (``B + 1``, from 0 to 1) hold ``threshold``; bin ``k`` is
    ``[edges[k], edges[k+1])`` (the last one closed), and a score at or above the
    threshold is a predicted positive. ``calibrated[k]`` is the isotonic fit of the
    reference's positive rate per bin; ``reference_counts`` and ``reference_positives``
    are the reference's events and positives per bin.

    >>> rng = np.random.default_rng(0)
    >>> p = rng.beta(2, 2, 4_000)
    >>> cal = ScoreCalibration.fit(p, rng.random(4_000) < p, n_bins=8)
    >>> cal.n_bins, float(cal.edges[cal.positive_bins.argmax()])
    (8, 0.5)
    >>> bool(np.all(np.diff(cal.calibrated) >= 0))
    True
    """

    edges: FloatArray
    threshold: float
    calibrated: FloatArray
    reference_counts: IntArray
    reference_positives: IntArray

    @classmethod
    def fit(
        cls,
        scores: npt.ArrayLike,
        labels: npt.ArrayLike,
        threshold: float = 0.5,
        n_bins: int = 50,
    ) -> ScoreCalibration:
        """Calibrate on labelled reference pairs; pairs with an invalid score or label
        are left out (at least 2 valid pairs of each class are needed)."""
        n_bins = check_int("n_bins", n_bins, 2, 1000)
        if not (isinstance(threshold, float | int) and 0.0 < threshold < 1.0):
            raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
        threshold = float(threshold)
        p, p_ok = valid_scores(scores)
        y, y_ok = binary_labels(labels, p.size)
        ok = p_ok & y_ok
        p, y = p[ok], y[ok]
        if min(int(y.sum()), int(y.size - y.sum())) < 2:
            raise ValueError(
                "calibration needs at least 2 valid reference pairs of each class, "
                f"got {int(y.sum())} positives and {int(y.size - y.sum())} negatives"
            )
        below = p[p < threshold]
        above = p[p >= threshold]
        n_below = int(np.clip(round(n_bins * below.size / p.size), 1, n_bins - 1))
        inner = [np.array([threshold])]
        for side, k in ((below, n_below), (above, n_bins - n_below)):
            if side.size and k > 1:
                inner.append(np.quantile(side, np.linspace(0, 1, k + 1)[1:-1]))
        cuts = np.unique(np.concatenate(inner))
        cuts = cuts[(cuts > 0.0) & (cuts < 1.0)]
        edges = np.concatenate([[0.0], cuts, [1.0]])
        bins = np.searchsorted(cuts, p, side="right")
        counts = np.bincount(bins, minlength=cuts.size + 1)
        positives = np.bincount(bins, weights=y, minlength=cuts.size + 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            rates = np.where(counts > 0, positives / np.maximum(counts, 1), 0.0)
        return cls(
            edges=edges,
            threshold=threshold,
            calibrated=isotonic_fit(rates, counts.astype(np.float64)),
            reference_counts=counts.astype(np.int64),
            reference_positives=positives.astype(np.int64),
        )

    @property
    def n_bins(self) -> int:
        """Number of score bins ``B``."""
        return int(self.edges.size - 1)

    @property
    def positive_bins(self) -> BoolArray:
        """``(B,)``: bins whose scores are predicted positive (at or above the threshold)."""
        return np.asarray(self.edges[:-1] >= self.threshold, dtype=np.bool_)

    def bin_of(self, scores: npt.ArrayLike) -> tuple[IntArray, BoolArray]:
        """Bin index of every score (0 where invalid), and which scores are valid."""
        p, ok = valid_scores(scores)
        bins = np.searchsorted(self.edges[1:-1], np.where(ok, p, 0.0), side="right")
        return bins.astype(np.int64), ok

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers, for the saved reference."""
        return {
            "edges": self.edges.tolist(),
            "threshold": self.threshold,
            "calibrated": self.calibrated.tolist(),
            "reference_counts": self.reference_counts.tolist(),
            "reference_positives": self.reference_positives.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScoreCalibration:
        """Rebuild from ``to_dict`` output, checking its shape."""
        edges = np.asarray(data["edges"], dtype=np.float64)
        calibrated = np.asarray(data["calibrated"], dtype=np.float64)
        counts = np.asarray(data["reference_counts"], dtype=np.int64)
        positives = np.asarray(data["reference_positives"], dtype=np.int64)
        threshold = float(data["threshold"])
        if edges.ndim != 1 or edges.size < 3 or np.any(np.diff(edges) <= 0):
            raise ValueError("calibration edges must increase, with at least 2 bins")
        if threshold not in edges[1:-1]:
            raise ValueError(f"the threshold {threshold} is not a bin edge")
        for name, arr in (("calibrated", calibrated), ("counts", counts), ("positives", positives)):
            if arr.shape != (edges.size - 1,):
                raise ValueError(f"{name} must have {edges.size - 1} values, got {arr.shape}")
        return cls(edges, threshold, calibrated, counts, positives)
