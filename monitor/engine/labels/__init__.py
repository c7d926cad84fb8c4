"""Ground truth: joining late labels to predictions, and what the pairs say.

The pure core lives in three modules: :mod:`~monitor.engine.labels.join` (the bounded
id join), :mod:`~monitor.engine.labels.performance` (windowed per-segment metrics and the
error signal for concept drift) and :mod:`~monitor.engine.labels.fairness` (gaps between
groups). :mod:`~monitor.engine.labels.pair_quality` scores the pairs against the reference's
score calibration (realized against estimated performance, label noise, relabel
candidates), which :mod:`~monitor.engine.labels.calibration_fit` fits at reference build.
None of them does I/O.
"""

from __future__ import annotations

from monitor.engine.labels.fairness import FAIRNESS_GAPS, fairness_gaps
from monitor.engine.labels.join import COUNTERS, JoinedPairs, JoinStore
from monitor.engine.labels.pair_quality import PairQuality, RelabelCandidate
from monitor.engine.labels.performance import (
    BINARY_METRICS,
    REGRESSION_METRICS,
    ClosedPerformance,
    PerformanceWindows,
    error_signal,
)

__all__ = [
    "BINARY_METRICS",
    "COUNTERS",
    "FAIRNESS_GAPS",
    "REGRESSION_METRICS",
    "ClosedPerformance",
    "JoinStore",
    "JoinedPairs",
    "PairQuality",
    "PerformanceWindows",
    "RelabelCandidate",
    "error_signal",
    "fairness_gaps",
]
