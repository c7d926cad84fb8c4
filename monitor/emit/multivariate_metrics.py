"""Multivariate and embedding drift metrics, read at scrape time from the pipeline's windows.

One series per segment (and vector feature) for the latest judged window, bounded by the
segment table like every per-segment family, and one per model (and listed vector
feature) saying whether it runs at all. Refused vectors are counted with every other bad
value (``driftd_feature_invalid_total{feature,reason}``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Protocol

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

__all__ = ["embedding_families", "multivariate_families"]


class _SegmentWindow(Protocol):
    @property
    def segment(self) -> str: ...
    @property
    def error(self) -> float: ...
    @property
    def threshold(self) -> float: ...
    @property
    def lower(self) -> float: ...


class ReconstructionSource(Protocol):
    """What the metrics read of ``engine.multivariate_window.MultivariateWindows``."""

    def latest(self) -> Sequence[_SegmentWindow]:
        """The latest judged window of every segment."""
        ...


def multivariate_families(
    model: str, windows: ReconstructionSource | None, unavailable: str | None
) -> list[Metric]:
    """``driftd_multivariate_reconstruction_error{model,segment}`` (the latest window's mean
    capped error) with its breach levels ``_threshold`` and ``_lower``, and
    ``driftd_multivariate_unmonitored{model}`` = 1 while it is enabled but cannot run.
    Segments whose window scored no event are left out (NaN)."""
    labels = ["model", "segment"]
    error = GaugeMetricFamily(
        "driftd_multivariate_reconstruction_error",
        "Mean reconstruction error of the reference PCA over the segment's latest window "
        "(capped per event); it rises when features stop moving together as in the reference.",
        labels=labels,
    )
    upper = GaugeMetricFamily(
        "driftd_multivariate_reconstruction_error_threshold",
        "The mean error above which the latest window breaches (multivariate).",
        labels=labels,
    )
    lower = GaugeMetricFamily(
        "driftd_multivariate_reconstruction_error_lower",
        "The mean error below which the latest window breaches (features locked together).",
        labels=labels,
    )
    unmonitored = GaugeMetricFamily(
        "driftd_multivariate_unmonitored",
        "1 while multivariate drift is enabled but cannot run (the reference has no PCA: "
        "fewer than two numeric features, or built before it existed).",
        labels=["model"],
    )
    unmonitored.add_metric([model], float(unavailable is not None))
    for latest in windows.latest() if windows is not None else ():
        if math.isnan(latest.error):
            continue
        at = [model, latest.segment]
        error.add_metric(at, latest.error)
        upper.add_metric(at, latest.threshold)
        lower.add_metric(at, latest.lower)
    return [error, upper, lower, unmonitored]


class _EmbeddingWindow(Protocol):
    @property
    def segment(self) -> str: ...
    @property
    def distance(self) -> float: ...
    @property
    def threshold(self) -> float: ...


class EmbeddingSource(Protocol):
    """What the metrics read of ``engine.embedding_window.EmbeddingWindows``."""

    def latest(self) -> Sequence[_EmbeddingWindow]:
        """The latest judged window of every segment."""
        ...


def embedding_families(
    model: str, windows: Mapping[str, EmbeddingSource], unavailable: Mapping[str, str]
) -> list[Metric]:
    """``driftd_embedding_drift_distance{model,segment,feature}`` (the latest window mean's
    distance from the reference's, in whitened reference standard deviations) with its
    ``_threshold``, and ``driftd_embedding_unmonitored{model,feature}`` = 1 for each
    listed vector feature that cannot be monitored (0 for the monitored ones)."""
    labels = ["model", "segment", "feature"]
    distance = GaugeMetricFamily(
        "driftd_embedding_drift_distance",
        "Distance of the mean of the segment's latest window of vectors from the reference "
        "mean, in reference standard deviations of the projected, whitened coordinates.",
        labels=labels,
    )
    threshold = GaugeMetricFamily(
        "driftd_embedding_drift_threshold",
        "The distance above which the latest window breaches (embedding).",
        labels=labels,
    )
    unmonitored = GaugeMetricFamily(
        "driftd_embedding_unmonitored",
        "1 while a vector feature of schema.vector_features has no embedding model in the "
        "reference (embedding drift enabled but impossible); 0 while it is monitored.",
        labels=["model", "feature"],
    )
    for feature, source in sorted(windows.items()):
        unmonitored.add_metric([model, feature], 0.0)
        for latest in source.latest():
            if math.isnan(latest.distance):
                continue
            at = [model, latest.segment, feature]
            distance.add_metric(at, latest.distance)
            threshold.add_metric(at, latest.threshold)
    for feature in sorted(unavailable):
        unmonitored.add_metric([model, feature], 1.0)
    return [distance, threshold, unmonitored]
