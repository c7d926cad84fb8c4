"""Binary classification metrics from per-bin positive and negative counts.

The counts are realized (labelled pairs) or expected (events times the calibrated
probability of their bin); the formulas are the same. Bins are ordered by score and each
lies on one side of the decision threshold, so the confusion matrix is exact, and ROC AUC
is the Mann-Whitney probability that a positive outscores a negative with pairs in the
same bin counting half.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from detectors.base import BoolArray, FloatArray, IntArray

PERFORMANCE_METRICS: Final = ("accuracy", "precision", "recall", "f1", "roc_auc")


@dataclass(frozen=True)
class PerformanceMetrics:
    """Per-segment metrics (``(S,)`` each); NaN where one is undefined (precision with no
    predicted positive, AUC without both classes, anything on an empty segment).

    ``n`` is the number of events (or pairs) behind them.
    """

    n: IntArray
    accuracy: FloatArray
    precision: FloatArray
    recall: FloatArray
    f1: FloatArray
    roc_auc: FloatArray

    def metric(self, name: str) -> FloatArray:
        """One metric by name (one of ``PERFORMANCE_METRICS``)."""
        if name not in PERFORMANCE_METRICS:
            raise ValueError(f"unknown metric {name!r}; known: {list(PERFORMANCE_METRICS)}")
        value: FloatArray = getattr(self, name)
        return value


def _ratio(num: FloatArray, den: FloatArray) -> FloatArray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan))


def metrics_from_counts(
    positives: FloatArray, negatives: FloatArray, positive_bins: BoolArray
) -> PerformanceMetrics:
    """Metrics of ``(S, B)`` positive and negative counts per score bin.

    >>> pos = np.array([[1.0, 3.0]]); neg = np.array([[3.0, 1.0]])
    >>> m = metrics_from_counts(pos, neg, np.array([False, True]))
    >>> float(m.accuracy[0]), float(m.precision[0]), float(m.roc_auc[0])
    (0.75, 0.75, 0.75)
    """
    tp = positives[:, positive_bins].sum(axis=1)
    fp = negatives[:, positive_bins].sum(axis=1)
    fn = positives[:, ~positive_bins].sum(axis=1)
    tn = negatives[:, ~positive_bins].sum(axis=1)
    total_pos, total_neg = tp + fn, fp + tn
    n = total_pos + total_neg
    negatives_below = np.cumsum(negatives, axis=1) - negatives
    concordant = (positives * (negatives_below + 0.5 * negatives)).sum(axis=1)
    return PerformanceMetrics(
        n=np.rint(n).astype(np.int64),
        accuracy=_ratio(tp + tn, n),
        precision=_ratio(tp, tp + fp),
        recall=_ratio(tp, total_pos),
        f1=_ratio(2.0 * tp, 2.0 * tp + fp + fn),
        roc_auc=_ratio(concordant, total_pos * total_neg),
    )


def expected_counts(events: FloatArray, calibrated: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Expected positives and negatives per bin of ``(S, B)`` event counts."""
    return events * calibrated, events * (1.0 - calibrated)


def influence_variance(
    metric: str, proportions: FloatArray, calibrated: FloatArray, positive_bins: BoolArray
) -> float:
    """Delta-method variance of one event's contribution to the estimated ``metric``.

    The estimate on a window of ``n`` events drawn from bins with ``proportions`` has
    variance about ``influence_variance / n``. The gradient is taken by central
    differences on the proportions (every metric here is a smooth function of them).
    """
    b = proportions.size
    step = 1e-6
    plus = proportions[None, :] + step * np.eye(b)
    minus = proportions[None, :] - step * np.eye(b)
    both = np.vstack([plus, minus])
    pos, neg = expected_counts(both, calibrated)
    values = metrics_from_counts(pos, neg, positive_bins).metric(metric)
    grad = (values[:b] - values[b:]) / (2.0 * step)
    if not np.all(np.isfinite(grad)):
        return float("nan")
    mean = float(proportions @ grad)
    return max(float(proportions @ grad**2) - mean**2, 0.0)
