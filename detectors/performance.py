"""Estimated performance before labels arrive (CBPE-style), and realized performance.

A binary classifier's scores are calibrated once on labelled reference data
(:class:`~detectors.perf_calibration.ScoreCalibration`). From then on a window's scores
alone give its expected confusion matrix, so its expected accuracy, precision, recall,
F1 and ROC AUC: each event in bin ``k`` is a positive with the calibrated probability
``q_k``. This is what NannyML calls confidence-based performance estimation; it holds as
long as the calibration does (P(y | score) unchanged), whatever the scores' distribution
does.

What a window keeps is additive, so panes sum into windows and partitions merge by
addition: per segment the events per score bin plus one count of invalid scores
(``accumulate_scores``, ``(S, B + 1)``), and for joined pairs the negatives and the
positives per bin plus one count of invalid pairs (``accumulate_outcomes``,
``(S, 2B + 1)``).

The alert is on one metric: a window breaches when its estimate drops below the
reference's estimate by more than ``z(alpha)`` sampling standard deviations for its size
(the delta-method variance of the estimate, with the reference's own sampling error),
or below ``lower_bound`` when one is set. ``statistic`` is that drop and ``threshold`` the
drop at which it breaches, so a larger score is worse, as for every other method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from detectors.base import DriftResult, FloatArray, IntArray, State, as_segments
from detectors.perf_calibration import ScoreCalibration, binary_labels
from detectors.perf_metrics import (
    PERFORMANCE_METRICS,
    PerformanceMetrics,
    expected_counts,
    influence_variance,
    metrics_from_counts,
)
from detectors.rules import BAND, BREACH, CLEAR, SKIP
from detectors.values import check_int

DEFAULT_ALPHA: Final = 1e-4
"""One-sided false-alarm rate per decision of the calibrated drop."""


@dataclass(frozen=True)
class PerformanceEstimate(DriftResult):
    """Per-segment estimated performance of a window and its verdict.

    ``statistic`` is the drop of the alerting ``metric`` from the reference's estimate,
    ``threshold`` the drop at which it breaches (the calibrated drop, or the distance to
    ``lower_bound`` if that is nearer), ``clear`` the drop below which a firing alert
    resolves, ``p_value`` the one-sided normal p-value of the drop, ``sd`` its sampling
    standard deviation. ``verdict`` is SKIP (fewer than ``min_samples`` valid scores, or
    an undefined metric), CLEAR, BAND or BREACH; ``drift`` is ``verdict == BREACH``.
    ``n`` counts valid scores and ``invalid`` the missing or out-of-range ones.
    """

    invalid: IntArray
    metric: str
    reference: float
    estimated: PerformanceMetrics
    sd: FloatArray
    threshold: FloatArray
    clear: FloatArray
    verdict: npt.NDArray[np.int8]

    @property
    def score(self) -> FloatArray:
        """The drop, compared with ``threshold`` (alias of ``statistic``)."""
        return self.statistic


@dataclass(frozen=True)
class RealizedPerformance:
    """Per-segment performance of joined (score, label) pairs: ``realized`` from the
    labels, ``estimated`` from the same pairs' scores alone, so the two can be exported
    side by side. ``invalid`` counts pairs with an invalid score or label."""

    n: IntArray
    invalid: IntArray
    realized: PerformanceMetrics
    estimated: PerformanceMetrics


class PerformanceEstimator:
    """Fitted calibration plus alert rules: accumulate, evaluate, serialize.

    >>> rng = np.random.default_rng(1)
    >>> p = rng.beta(1, 1, 20_000)
    >>> est = PerformanceEstimator.fit(p, rng.random(20_000) < p)
    >>> round(est.reference_value, 2)  # expected accuracy of a uniform calibrated score
    0.75
    >>> seg = np.repeat([0, 1], 2_000)
    >>> window = np.concatenate([rng.beta(1, 1, 2_000), rng.beta(1, 1, 2_000) * 0.2 + 0.4])
    >>> result = est.evaluate(est.accumulate_scores(seg, window, n_segments=2))
    >>> result.estimated.accuracy.round(2).tolist(), result.drift.tolist()
    ([0.75, 0.56], [False, True])
    """

    def __init__(
        self,
        calibration: ScoreCalibration,
        metric: str = "accuracy",
        lower_bound: float | None = None,
        alpha: float = DEFAULT_ALPHA,
        min_samples: int = 500,
        clear_ratio: float = 0.5,
    ) -> None:
        if metric not in PERFORMANCE_METRICS:
            raise ValueError(f"unknown metric {metric!r}; known: {list(PERFORMANCE_METRICS)}")
        if lower_bound is not None and not 0.0 <= lower_bound <= 1.0:
            raise ValueError(f"lower_bound must be in [0, 1], got {lower_bound!r}")
        if not 0.0 < alpha < 0.5:
            raise ValueError(f"alpha must be in (0, 0.5), got {alpha!r}")
        if not 0.0 <= clear_ratio <= 1.0:
            raise ValueError(f"clear_ratio must be in [0, 1], got {clear_ratio!r}")
        self.calibration = calibration
        self.metric = metric
        self.lower_bound = None if lower_bound is None else float(lower_bound)
        self.alpha = float(alpha)
        self.min_samples = check_int("min_samples", min_samples, 1)
        self.clear_ratio = float(clear_ratio)
        counts = calibration.reference_counts.astype(np.float64)
        self.reference_n = int(counts.sum())
        self.reference_estimate = self._estimate(counts[None, :])
        self.reference_value = float(self.reference_estimate.metric(metric)[0])
        self.unit_variance = influence_variance(
            metric, counts / counts.sum(), calibration.calibrated, calibration.positive_bins
        )
        from scipy import special  # noqa: PLC0415

        self._z = float(-special.ndtri(self.alpha))  # scipy.stats.norm.isf, without scipy.stats

    @classmethod
    def fit(
        cls,
        scores: npt.ArrayLike,
        labels: npt.ArrayLike,
        threshold: float = 0.5,
        n_bins: int = 50,
        **rules: Any,
    ) -> PerformanceEstimator:
        """Calibrate on labelled reference pairs; ``rules`` go to ``__init__``."""
        return cls(ScoreCalibration.fit(scores, labels, threshold, n_bins), **rules)

    @property
    def n_bins(self) -> int:
        """Number of score bins ``B``."""
        return self.calibration.n_bins

    # ------------------------------------------------------------ accumulate

    def accumulate_scores(
        self, segments: npt.ArrayLike, scores: npt.ArrayLike, n_segments: int
    ) -> IntArray:
        """``(S, B + 1)``: events per score bin, then invalid scores, per segment."""
        seg = as_segments(segments, n_segments)
        bins, ok = self.calibration.bin_of(scores)
        if bins.shape != seg.shape:
            raise ValueError(f"{seg.size} segments for {bins.size} scores")
        width = self.n_bins + 1
        cell = seg * width + np.where(ok, bins, self.n_bins)
        return np.bincount(cell, minlength=n_segments * width).reshape(n_segments, width)

    def accumulate_outcomes(
        self,
        segments: npt.ArrayLike,
        scores: npt.ArrayLike,
        labels: npt.ArrayLike,
        n_segments: int,
    ) -> IntArray:
        """``(S, 2B + 1)``: negatives per bin, positives per bin, then invalid pairs."""
        seg = as_segments(segments, n_segments)
        bins, ok = self.calibration.bin_of(scores)
        if bins.shape != seg.shape:
            raise ValueError(f"{seg.size} segments for {bins.size} scores")
        y, y_ok = binary_labels(labels, bins.size)
        b = self.n_bins
        width = 2 * b + 1
        cell = seg * width + np.where(ok & y_ok, y * b + bins, 2 * b)
        return np.bincount(cell, minlength=n_segments * width).reshape(n_segments, width)

    # ------------------------------------------------------------ evaluate

    def _estimate(self, events: FloatArray) -> PerformanceMetrics:
        pos, neg = expected_counts(events, self.calibration.calibrated)
        return metrics_from_counts(pos, neg, self.calibration.positive_bins)

    def _check(self, stats_: IntArray, width: int) -> IntArray:
        arr = np.asarray(stats_)
        if arr.ndim != 2 or arr.shape[1] != width:
            raise ValueError(f"statistics must have shape (S, {width}), got {arr.shape}")
        return arr.astype(np.int64, copy=False)

    def evaluate(self, score_stats: npt.ArrayLike) -> PerformanceEstimate:
        """Estimated performance and the verdict of every segment's window."""
        counts = self._check(np.asarray(score_stats), self.n_bins + 1)
        events = counts[:, : self.n_bins].astype(np.float64)
        estimated = self._estimate(events)
        n = estimated.n
        value = estimated.metric(self.metric)
        drop = self.reference_value - value
        # An empty segment has an infinite sd: its NaNs are masked below, so no warnings.
        from scipy import special  # noqa: PLC0415

        with np.errstate(divide="ignore", invalid="ignore"):
            sd = np.sqrt(self.unit_variance * (1.0 / n + 1.0 / self.reference_n))
            # scipy.stats.norm.sf(x) is ndtr(-x): scipy.stats costs ~45 MiB to import.
            p_value = np.where(sd > 0, special.ndtr(-(drop / sd)), np.where(drop > 0, 0.0, 1.0))
            threshold = self._z * sd
            if self.lower_bound is not None:
                threshold = np.minimum(threshold, self.reference_value - self.lower_bound)
            clear = threshold - (1.0 - self.clear_ratio) * self._z * sd
        skip = (n < self.min_samples) | ~np.isfinite(value) | ~np.isfinite(sd)
        verdict = np.where(drop >= threshold, BREACH, np.where(drop < clear, CLEAR, BAND))
        verdict = np.where(skip, SKIP, verdict).astype(np.int8)
        nan = np.nan
        return PerformanceEstimate(
            statistic=np.where(np.isfinite(value), drop, nan),
            p_value=np.where(skip, nan, p_value),
            drift=verdict == BREACH,
            n=n,
            invalid=counts[:, self.n_bins],
            metric=self.metric,
            reference=self.reference_value,
            estimated=estimated,
            sd=np.where(n > 0, sd, nan),
            threshold=np.where(n > 0, threshold, nan),
            clear=np.where(n > 0, clear, nan),
            verdict=verdict,
        )

    def realized(self, outcome_stats: npt.ArrayLike) -> RealizedPerformance:
        """Realized and estimated performance of every segment's joined pairs."""
        b = self.n_bins
        counts = self._check(np.asarray(outcome_stats), 2 * b + 1)
        neg = counts[:, :b].astype(np.float64)
        pos = counts[:, b : 2 * b].astype(np.float64)
        realized = metrics_from_counts(pos, neg, self.calibration.positive_bins)
        return RealizedPerformance(
            n=realized.n,
            invalid=counts[:, 2 * b],
            realized=realized,
            estimated=self._estimate(pos + neg),
        )

    # ------------------------------------------------------------ serialize

    def to_dict(self) -> dict[str, Any]:
        """The calibration and the rules as plain values, for the saved reference."""
        return {
            "calibration": self.calibration.to_dict(),
            "metric": self.metric,
            "lower_bound": self.lower_bound,
            "alpha": self.alpha,
            "min_samples": self.min_samples,
            "clear_ratio": self.clear_ratio,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PerformanceEstimator:
        """Rebuild from ``to_dict`` output."""
        rules = {k: data[k] for k in ("metric", "lower_bound", "alpha", "min_samples")}
        return cls(
            ScoreCalibration.from_dict(data["calibration"]),
            clear_ratio=data["clear_ratio"],
            **rules,
        )


class PerformanceDetector:
    """River-shaped estimated and realized performance over ``n_segments`` segments.

    ``update(segments, scores)`` counts a batch of scores and returns every segment's
    :class:`PerformanceEstimate` of everything seen since construction or ``reset``;
    ``update_labels(segments, scores, labels)`` counts joined pairs and returns the
    :class:`RealizedPerformance`. Windowing is the caller's.

    >>> rng = np.random.default_rng(2)
    >>> p = rng.beta(0.5, 0.5, 20_000)
    >>> detector = PerformanceDetector(PerformanceEstimator.fit(p, rng.random(20_000) < p))
    >>> scores = rng.beta(0.5, 0.5, 1_000)
    >>> result = detector.update(np.zeros(1_000, dtype=int), scores)
    >>> result.verdict.tolist(), int(result.n[0])
    ([-1], 1000)
    >>> labels = rng.random(1_000) < scores
    >>> pairs = detector.update_labels(np.zeros(1_000, dtype=int), scores, labels)
    >>> bool(abs(pairs.realized.accuracy[0] - pairs.estimated.accuracy[0]) < 0.05)
    True
    """

    def __init__(self, estimator: PerformanceEstimator, n_segments: int = 1) -> None:
        self.estimator = estimator
        self.n_segments = check_int("n_segments", n_segments, 1)
        self.reset()

    def reset(self) -> None:
        """Forget every score and pair, keeping the segments."""
        b = self.estimator.n_bins
        self.score_counts = np.zeros((self.n_segments, b + 1), dtype=np.int64)
        self.outcome_counts = np.zeros((self.n_segments, 2 * b + 1), dtype=np.int64)

    def update(self, segments: npt.ArrayLike, values: npt.ArrayLike) -> PerformanceEstimate:
        """Count a batch of scores (``values``: one score per row) and evaluate."""
        self.score_counts += self.estimator.accumulate_scores(segments, values, self.n_segments)
        return self.estimator.evaluate(self.score_counts)

    def update_labels(
        self, segments: npt.ArrayLike, scores: npt.ArrayLike, labels: npt.ArrayLike
    ) -> RealizedPerformance:
        """Count a batch of joined (score, label) pairs; realized against estimated."""
        self.outcome_counts += self.estimator.accumulate_outcomes(
            segments, scores, labels, self.n_segments
        )
        return self.estimator.realized(self.outcome_counts)

    def state_dict(self) -> State:
        """The score and outcome counts."""
        return {"scores": self.score_counts.copy(), "outcomes": self.outcome_counts.copy()}

    def load_state_dict(self, state: State) -> None:
        """Restore ``state_dict`` output (of a detector with the same bins and segments)."""
        scores = np.asarray(state["scores"], dtype=np.int64)
        outcomes = np.asarray(state["outcomes"], dtype=np.int64)
        if scores.shape != self.score_counts.shape or outcomes.shape != self.outcome_counts.shape:
            raise ValueError(
                f"state shapes {scores.shape}, {outcomes.shape} do not fit this detector's "
                f"{self.score_counts.shape}, {self.outcome_counts.shape}"
            )
        self.score_counts, self.outcome_counts = scores.copy(), outcomes.copy()
