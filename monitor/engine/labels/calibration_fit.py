"""The reference's ``performance`` field: score calibration and confident-learning thresholds.

``driftd reference build`` fits them when the training data has a prediction that is a
probability and 0/1 labels (a binary classifier's reference): the calibration feeds
estimated performance before labels (CBPE), the thresholds the label-noise signal.
Anything else (no labels, a regression target, scores outside [0, 1]) fits nothing and
says why, so the daemon can tell the user what it cannot monitor.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt

from detectors.label_noise import LabelNoiseTest
from detectors.perf_calibration import as_floats
from detectors.performance import PerformanceEstimator

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
) -> tuple[dict[str, Any] | None, str | None]:
    """The ``performance`` field of a reference, or None and the reason it is not fitted.

    >>> rng = np.random.default_rng(0)
    >>> p = rng.random(2_000)
    >>> field, why = fit_performance(p, (rng.random(2_000) < p).astype(int))
    >>> sorted(field), why
    (['estimator', 'noise'], None)
    >>> fit_performance(p, None)
    (None, 'the training data has no label column')
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
        estimator = PerformanceEstimator.fit(scores, labels, threshold=threshold, n_bins=n_bins)
        noise = LabelNoiseTest.fit(scores, labels)
    except ValueError as exc:
        return None, str(exc)
    return {"estimator": estimator.to_dict(), "noise": noise.to_dict()}, None
