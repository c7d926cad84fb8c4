"""Ground truth: joining late labels to predictions, and what the pairs say.

The pure core lives in three modules: :mod:`~monitor.engine.labels.join` (the bounded
id join), :mod:`~monitor.engine.labels.performance` (windowed per-segment metrics and the
error signal for concept drift) and :mod:`~monitor.engine.labels.fairness` (gaps between
groups). None of them does I/O.
"""

from __future__ import annotations

from monitor.engine.labels.fairness import FAIRNESS_GAPS, fairness_gaps
from monitor.engine.labels.join import COUNTERS, JoinedPairs, JoinStore
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
    "PerformanceWindows",
    "error_signal",
    "fairness_gaps",
]
