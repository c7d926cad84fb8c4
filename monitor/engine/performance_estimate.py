"""Estimated performance before labels (CBPE), per segment, over the feature windows.

A binary classifier's scores, calibrated once on the labelled reference
(:class:`~detectors.performance.PerformanceEstimator`, saved in the reference's
``performance`` field), give each event window its expected accuracy, precision,
recall, F1 and ROC AUC without a single label. The window statistics are the events per
calibration bin plus one count of invalid scores, which add like the feature windows'
bin counts.

So that every estimate covers exactly the events of its feature window, the scores are
counted by a second :class:`~monitor.engine.windows.Windows` fed the same segments,
event times and limits as the feature windows: its one column is each event's
calibration bin (invalid scores missing), on a profile whose bins are those calibration
bins. It therefore opens, slides and closes its panes at the same events, refuses and
counts late the same rows, and restores from the same kind of state.

Each closed window becomes one row of a :class:`~monitor.engine.results.WindowResults`
with the column ``prediction`` and the method ``perf_drop``: its score is the drop of
the alerting metric from the reference's estimate, judged by the estimator's own
threshold and clear level (the engine-verdict path of the decision book), so it
pages, resolves and deduplicates like every other drift alert.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import structlog

from detectors.base import FloatArray, IntArray, State
from detectors.binning import Binner
from detectors.feature_profiles import NumericProfile
from detectors.perf_metrics import PERFORMANCE_METRICS
from detectors.performance import PerformanceEstimate, PerformanceEstimator
from detectors.profile import ReferenceProfile, performance_from_dict
from monitor.config import PerformanceEstimationConfig, Settings, WindowsConfig
from monitor.engine.labels.calibration_fit import threshold_mismatch
from monitor.engine.results import WindowResults
from monitor.engine.side_windows import SideWindows
from monitor.engine.windows import Windows

PREDICTION_COLUMN: Final = "prediction"
"""The column of the ``perf_drop`` decisions (the prediction's, as in the feature windows)."""
METHOD: Final = "perf_drop"
SCORE_BIN_COLUMN: Final = "__score_bin__"
"""The one column of the score windows: each event's calibration bin."""
NO_CALIBRATION: Final = (
    "the reference has no score calibration: build it with `driftd reference build` from "
    "training data whose prediction is a probability and whose labels are 0/1"
)
NOT_BINARY: Final = "labels.task is not binary: CBPE estimates binary classifiers only"

log = structlog.get_logger()


@dataclass(frozen=True)
class SegmentEstimate:
    """The latest estimated performance of one segment's event window."""

    segment: str
    n: int
    invalid: int
    window_end_ts: float
    metrics: dict[str, float]
    drop: float
    threshold: float


def configured_estimator(
    estimator: PerformanceEstimator, cfg: PerformanceEstimationConfig
) -> PerformanceEstimator:
    """The reference's calibration under the configured alert rules."""
    return PerformanceEstimator(
        estimator.calibration,
        metric=cfg.metric,
        lower_bound=cfg.lower_bound,
        alpha=cfg.alpha,
        min_samples=cfg.min_samples,
        clear_ratio=estimator.clear_ratio,
    )


def start_performance_estimate(
    settings: Settings,
    reference: ReferenceProfile,
    n_segments: int,
    said: str | None = None,
) -> tuple[EstimatedPerformance | None, str | None]:
    """The CBPE windows of ``reference``, or None and why not (logged as
    ``performance_unmonitored`` once per reason; ``said`` is the reason already logged).
    With ``detectors.performance_estimation.enabled`` off: (None, None)."""
    cfg = settings.detectors.performance_estimation
    if not cfg.enabled:
        return None, None
    reason = None
    signals = ["perf_drop", "label_noise"]
    if settings.labels.task != "binary":
        reason = NOT_BINARY
    elif reference.performance is None:
        reason = NO_CALIBRATION
    else:
        # Estimates for another decision threshold than the configured one would be
        # another classifier's: none (label noise needs no threshold and runs on).
        reason = threshold_mismatch(reference.performance, settings.labels.decision_threshold)
        signals = ["perf_drop"]
    if reason is not None:
        if reason != said:
            log.warning(
                "performance_unmonitored", model=settings.model, signals=signals, reason=reason
            )
        return None, reason
    assert reference.performance is not None
    estimator, _ = performance_from_dict(reference.performance)
    column = reference.prediction.name if reference.prediction is not None else PREDICTION_COLUMN
    return (
        EstimatedPerformance(
            settings.model,
            configured_estimator(estimator, cfg),
            settings.windows,
            n_segments,
            column=column,
        ),
        None,
    )


def _bin_profile(n_bins: int) -> NumericProfile:
    """A profile whose fine bin ``k`` holds exactly the value ``k`` (0 .. n_bins - 1)."""
    return NumericProfile(
        name=SCORE_BIN_COLUMN,
        edges=np.arange(n_bins - 1, dtype=np.float64) + 0.5,
        counts=np.ones(n_bins, dtype=np.int64),
        coarse_starts=np.zeros(1, dtype=np.int64),
        n_missing=0,
    )


class EstimatedPerformance(SideWindows[SegmentEstimate]):
    """CBPE windows beside the feature windows (see the module docstring)."""

    def __init__(
        self,
        model: str,
        estimator: PerformanceEstimator,
        windows: WindowsConfig,
        n_segments: int = 1,
        column: str = PREDICTION_COLUMN,
    ) -> None:
        self.model = model
        self.column = column
        self.estimator = estimator
        super().__init__(Windows(Binner([_bin_profile(estimator.n_bins)]), windows, n_segments))
        self.invalid_scores = 0
        """Scores that were missing, not a number or outside [0, 1], since start."""

    def add(
        self,
        segments: IntArray,
        scores: FloatArray,
        ts: FloatArray,
        names: tuple[str, ...],
        max_ahead: float | None = None,
        not_before: float = -math.inf,
    ) -> WindowResults | None:
        """Count a batch's scores (the same rows and limits as the feature windows'
        ``add``); the ``perf_drop`` rows of the windows it closed, or None."""
        bins, ok = self.estimator.calibration.bin_of(scores)
        column = np.where(ok, bins, np.nan).astype(np.float64)
        closed = self.windows.add(segments, column[:, None], ts, max_ahead, not_before)
        kept = np.ones(ok.size, dtype=np.bool_)
        kept[closed.refused] = False
        self.invalid_scores += int(np.count_nonzero(kept & ~ok))
        if not len(closed):
            return None
        # Slot k < B is calibration bin k; the last slot counts the missing (invalid) scores.
        stats = closed.counts[:, 0, :]
        estimate = self.estimator.evaluate(stats)
        results = self._results(closed.segments, closed.end_ts, closed.rows, estimate, names)
        self._remember(results, estimate)
        return results

    def _results(
        self,
        segments: IntArray,
        end_ts: FloatArray,
        rows: IntArray,
        estimate: PerformanceEstimate,
        names: tuple[str, ...],
    ) -> WindowResults:
        k = int(segments.size)
        total = np.maximum(rows, 1).astype(np.float64)

        def column(values: Any) -> FloatArray:
            return np.asarray(values, dtype=np.float64).reshape(k, 1)

        return WindowResults(
            model=self.model,
            segments=tuple(names[s] for s in segments.tolist()),
            columns=(self.column,),
            window_end_ts=np.asarray(end_ts, dtype=np.float64),
            rows=np.asarray(rows, dtype=np.int64),
            n=np.asarray(estimate.n, dtype=np.int64).reshape(k, 1),
            missing_rate=column(estimate.invalid / total),
            scores={METHOD: column(estimate.statistic)},
            p_values={METHOD: column(estimate.p_value)},
            thresholds={METHOD: column(estimate.threshold)},
            clears={METHOD: column(estimate.clear)},
            verdicts={METHOD: estimate.verdict.reshape(k, 1)},
        )

    def _remember(self, results: WindowResults, estimate: PerformanceEstimate) -> None:
        values = {name: estimate.estimated.metric(name) for name in PERFORMANCE_METRICS}
        self.publish(
            results,
            lambda row, segment, end_ts: SegmentEstimate(
                segment=segment,
                n=int(estimate.n[row]),
                invalid=int(estimate.invalid[row]),
                window_end_ts=end_ts,
                metrics={name: float(v[row]) for name, v in values.items()},
                drop=float(estimate.statistic[row]),
                threshold=float(estimate.threshold[row]),
            ),
        )

    # -- checkpoints: the windows (SideWindows) and the invalid-score count ---------

    def state_dict(self) -> State:
        """The score windows and the invalid-score count."""
        return {**super().state_dict(), "invalid_scores": self.invalid_scores}

    def load_state_dict(self, state: State) -> None:
        """Restore :meth:`state_dict` output of an estimator on the same calibration."""
        super().load_state_dict(state)
        self.invalid_scores = int(state["invalid_scores"])
