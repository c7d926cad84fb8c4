"""The reference's ``performance`` field: score calibration and confident-learning thresholds.

``driftd reference build`` fits them when the training data has a prediction that is a
probability and 0/1 labels (a binary classifier's reference): the calibration feeds
estimated performance before labels (CBPE), the thresholds the label-noise signal.
Anything else (no labels, a regression target, scores outside [0, 1]) fits nothing and
says why, so the daemon can tell the user what it cannot monitor.

The calibration puts ``labels.decision_threshold`` at one of its bin edges: the
estimated precision, recall, accuracy and F1 are those of that threshold.
:func:`threshold_mismatch` says when a reference was fitted for another threshold than
the daemon's.

Shards of one training set (``reference build --grid-from``) are fitted on the grid's
calibration: its bin edges and threshold, and its per-class label-noise thresholds.
What each shard then stores adds up (events and positives per score bin; valid and
suspicious pairs), so :func:`merge_performance` gives exactly the field fitted on the
union on that grid. Fields fitted on each shard's own scores do not add up (their bin
edges are each shard's quantiles, their noise thresholds each shard's means): their
merge is refused, with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from detectors.label_noise import ConfidentThresholds, LabelNoiseTest
from detectors.perf_calibration import ScoreCalibration, as_floats, isotonic_fit
from detectors.performance import PerformanceEstimator
from detectors.profile import performance_from_dict

MIN_PAIRS: Final = 100
"""Valid labelled pairs needed at least to fit a calibration."""
MIN_VALID_SHARE: Final = 0.99
"""Share of labelled rows whose score must be a probability: fewer, and the prediction is
not a probability (a regression output, a logit), so nothing is fitted."""


def fit_performance(
    prediction: npt.ArrayLike | None,
    label: npt.ArrayLike | None,
    threshold: float = 0.5,
    n_bins: int = 50,
    grid: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any] | None, str | None]:
    """The ``performance`` field of a reference, or None and the reason it is not fitted.

    ``threshold`` is the decision threshold (``labels.decision_threshold``): a score at or
    above it is a predicted positive, and it becomes a bin edge of the calibration.
    ``grid``, another reference's ``performance`` field, fixes the bin edges, the
    threshold (which must equal ``threshold``) and the label-noise thresholds, so that
    shards fitted on one grid merge by addition (:func:`merge_performance`).

    >>> rng = np.random.default_rng(0)
    >>> p = rng.random(2_000)
    >>> field, why = fit_performance(p, (rng.random(2_000) < p).astype(int))
    >>> sorted(field), why
    (['estimator', 'noise'], None)
    >>> fit_performance(p, None)
    (None, 'the training data has no label column')
    >>> calibration_threshold(fit_performance(p, p > 0.3, threshold=0.7)[0])
    0.7
    """
    if prediction is None:
        return None, "the training data has no prediction column"
    if label is None:
        return None, "the training data has no label column"
    scores = as_floats(prediction).ravel()
    labels = as_floats(label).ravel()
    if scores.shape != labels.shape:
        return None, "prediction and label columns differ in length"
    with np.errstate(invalid="ignore"):
        labelled = (labels == 0.0) | (labels == 1.0)
        is_probability = np.isfinite(scores) & (scores >= 0.0) & (scores <= 1.0)
    n_labelled = int(labelled.sum())
    if n_labelled < MIN_PAIRS:
        return None, f"{n_labelled} rows have a 0/1 label, fewer than {MIN_PAIRS}"
    share = float((labelled & is_probability).sum()) / n_labelled
    if share < MIN_VALID_SHARE:
        return None, (
            f"only {share:.1%} of the labelled rows have a prediction in [0, 1]: "
            "not a binary classifier's probability"
        )
    try:
        if grid is None:
            estimator = PerformanceEstimator.fit(scores, labels, threshold=threshold, n_bins=n_bins)
            noise = LabelNoiseTest.fit(scores, labels)
        else:
            grid_estimator, grid_noise = performance_from_dict(grid)
            grid_threshold = grid_estimator.calibration.threshold
            if grid_threshold != threshold:
                return None, (
                    f"the grid's score calibration has its decision threshold at "
                    f"{grid_threshold:g}, not at {threshold:g} (labels.decision_threshold)"
                )
            estimator = _estimator_on_grid(scores, labels, grid_estimator)
            noise = _noise_on_grid(scores, labels, grid_noise)
    except ValueError as exc:
        return None, str(exc)
    return {"estimator": estimator.to_dict(), "noise": noise.to_dict()}, None


def calibration_threshold(performance: Mapping[str, Any]) -> float:
    """The decision threshold a reference's ``performance`` field was fitted for."""
    estimator, _ = performance_from_dict(performance)
    return estimator.calibration.threshold


def threshold_mismatch(performance: Mapping[str, Any], decision_threshold: float) -> str | None:
    """Why the reference's score calibration cannot serve ``decision_threshold``
    (``labels.decision_threshold``), or None when it was fitted for that threshold.

    The estimated precision, recall, accuracy and F1 count a score at or above the
    calibration's threshold as a predicted positive; for another threshold they would
    be another classifier's, so the daemon does not estimate them (it says so).

    >>> rng = np.random.default_rng(0)
    >>> p = rng.random(2_000)
    >>> field, _ = fit_performance(p, (rng.random(2_000) < p).astype(int))
    >>> threshold_mismatch(field, 0.5) is None
    True
    >>> print(threshold_mismatch(field, 0.7))  # doctest: +ELLIPSIS
    the reference's score calibration was fitted for a decision threshold of 0.5, ...
    """
    fitted = calibration_threshold(performance)
    if fitted == float(decision_threshold):
        return None
    return (
        f"the reference's score calibration was fitted for a decision threshold of "
        f"{fitted:g}, and labels.decision_threshold is {decision_threshold:g}: its estimated "
        "precision, recall, accuracy and F1 would be another threshold's. Rebuild the "
        "reference with this config (driftd reference build -c CONFIG)"
    )


def _valid_pairs(scores: npt.NDArray[np.float64], labels: npt.NDArray[np.float64]) -> Any:
    with np.errstate(invalid="ignore"):
        return (
            np.isfinite(scores)
            & (scores >= 0.0)
            & (scores <= 1.0)
            & ((labels == 0.0) | (labels == 1.0))
        )


def _calibration(
    edges: npt.NDArray[np.float64],
    threshold: float,
    counts: npt.NDArray[np.int64],
    positives: npt.NDArray[np.int64],
) -> ScoreCalibration:
    """A calibration from its bins' events and positives, as ``ScoreCalibration.fit``
    finishes one: the isotonic fit of the positive rate per bin, weighted by events."""
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.where(counts > 0, positives / np.maximum(counts, 1), 0.0)
    calibrated = isotonic_fit(rates, counts.astype(np.float64))
    return ScoreCalibration(edges, threshold, calibrated, counts, positives)


def _estimator_on_grid(
    scores: npt.NDArray[np.float64],
    labels: npt.NDArray[np.float64],
    grid: PerformanceEstimator,
) -> PerformanceEstimator:
    """``grid``'s bins and rules, with the events and positives of these pairs."""
    ok = _valid_pairs(scores, labels)
    bins, _ = grid.calibration.bin_of(scores[ok])
    n_bins = grid.calibration.n_bins
    counts = np.bincount(bins, minlength=n_bins).astype(np.int64)
    positives = np.bincount(bins, weights=labels[ok], minlength=n_bins).astype(np.int64)
    if min(int(positives.sum()), int(counts.sum() - positives.sum())) < 2:
        raise ValueError("calibration needs at least 2 valid reference pairs of each class")
    calibration = grid.calibration
    return _with_rules(
        _calibration(calibration.edges, calibration.threshold, counts, positives), grid
    )


def _with_rules(calibration: ScoreCalibration, rules: PerformanceEstimator) -> PerformanceEstimator:
    return PerformanceEstimator(
        calibration,
        metric=rules.metric,
        lower_bound=rules.lower_bound,
        alpha=rules.alpha,
        min_samples=rules.min_samples,
        clear_ratio=rules.clear_ratio,
    )


def _noise_on_grid(
    scores: npt.NDArray[np.float64],
    labels: npt.NDArray[np.float64],
    grid: LabelNoiseTest,
) -> LabelNoiseTest:
    """``grid``'s per-class thresholds and rules, with these pairs' suspicious count."""
    margins = grid.thresholds.margins(scores, labels)
    pairs = int(margins.valid.sum())
    if pairs == 0:
        raise ValueError("no valid labelled pair for the label-noise thresholds")
    thresholds = ConfidentThresholds(
        grid.thresholds.thresholds, pairs, int(margins.suspicious.sum())
    )
    return LabelNoiseTest(
        thresholds, alpha=grid.alpha, min_samples=grid.min_samples, clear_ratio=grid.clear_ratio
    )


def _canonical(field: Mapping[str, Any]) -> str:
    return json.dumps(field, sort_keys=True)


def merge_performance(
    fields: Sequence[Mapping[str, Any] | None],
) -> tuple[dict[str, Any] | None, str | None]:
    """The ``performance`` field of the shards' data taken together, or None and why not.

    Exact where the shards were fitted on one grid (:func:`fit_performance` with
    ``grid``): their events and positives per score bin add up (the calibrated rates are
    fitted again on the sums), as do their valid and suspicious pairs under the shared
    label-noise thresholds. Identical fields are kept as they are. Anything else is
    refused: a shard without a calibration, or calibrations with other bin edges,
    threshold, noise thresholds or alert rules (each fitted on its own scores).
    (None, None) when no shard has one.

    >>> rng = np.random.default_rng(0)
    >>> p = rng.random(4_000)
    >>> y = (rng.random(4_000) < p).astype(int)
    >>> grid, _ = fit_performance(p[:1_000], y[:1_000])
    >>> shards = [fit_performance(p[s], y[s], grid=grid)[0] for s in (slice(0, 2_500),
    ...                                                                slice(2_500, None))]
    >>> merge_performance(shards)[0] == fit_performance(p, y, grid=grid)[0]
    True
    >>> own = [fit_performance(p[s], y[s])[0] for s in (slice(0, 2_000), slice(2_000, None))]
    >>> print(merge_performance(own)[1])  # doctest: +ELLIPSIS
    the shards' score calibrations have other bin edges ...
    """
    present = [f for f in fields if f is not None]
    if not present:
        return None, None
    if len(present) < len(fields):
        missing = [i for i, f in enumerate(fields) if f is None]
        return None, f"shards {missing} (0-based) have no score calibration"
    if len({_canonical(f) for f in present}) == 1:
        return dict(present[0]), None
    loaded = [performance_from_dict(f) for f in present]
    estimators = [e for e, _ in loaded]
    noises = [n for _, n in loaded]
    first, first_noise = estimators[0], noises[0]
    base = first.calibration
    for estimator in estimators[1:]:
        other = estimator.calibration
        if base.edges.shape != other.edges.shape or not np.array_equal(base.edges, other.edges):
            return None, (
                "the shards' score calibrations have other bin edges (each was fitted on "
                "its own scores' quantiles, so their counts do not add up)"
            )
        if other.threshold != base.threshold:
            return None, "the shards' score calibrations have other decision thresholds"
        if _rules(estimator) != _rules(first):
            return None, "the shards' score calibrations have other alert rules"
    for noise in noises[1:]:
        if not np.array_equal(noise.thresholds.thresholds, first_noise.thresholds.thresholds):
            return None, (
                "the shards' label-noise thresholds differ (each is its shard's mean "
                "confidence per class, and which pairs are suspicious depends on them)"
            )
        if _noise_rules(noise) != _noise_rules(first_noise):
            return None, "the shards' label-noise tests have other alert rules"
    counts = np.sum([e.calibration.reference_counts for e in estimators], axis=0)
    positives = np.sum([e.calibration.reference_positives for e in estimators], axis=0)
    estimator = _with_rules(_calibration(base.edges, base.threshold, counts, positives), first)
    thresholds = ConfidentThresholds(
        first_noise.thresholds.thresholds,
        sum(n.thresholds.reference_pairs for n in noises),
        sum(n.thresholds.reference_suspicious for n in noises),
    )
    noise = LabelNoiseTest(
        thresholds,
        alpha=first_noise.alpha,
        min_samples=first_noise.min_samples,
        clear_ratio=first_noise.clear_ratio,
    )
    return {"estimator": estimator.to_dict(), "noise": noise.to_dict()}, None


def _rules(estimator: PerformanceEstimator) -> tuple[Any, ...]:
    return (
        estimator.metric,
        estimator.lower_bound,
        estimator.alpha,
        estimator.min_samples,
        estimator.clear_ratio,
    )


def _noise_rules(noise: LabelNoiseTest) -> tuple[Any, ...]:
    return (noise.alpha, noise.min_samples, noise.clear_ratio)
