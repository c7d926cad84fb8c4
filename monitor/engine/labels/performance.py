"""Model performance per segment, over tumbling windows of joined (prediction, label) pairs.

Two kinds of task:

- ``"binary"``: the prediction is a score for the positive class, the predicted
  class is ``score >= threshold``, and the label is 0/1 (a label counts as positive
  from 0.5 up). Metrics: accuracy, precision, recall, log loss (scores clipped to
  ``[1e-15, 1 - 1e-15]``) and Brier score.
- ``"regression"``: metrics MAE and RMSE.

A window of a segment holds exactly ``size_pairs`` of that segment's pairs, in
arrival order, and closes at the pair that fills it, even in the middle of a
batch; so the windows, and their rows in the output, do not depend on how the
pairs were cut into batches. A window keeps only additive counts and sums (n, the
confusion counts, the sums of log loss, Brier, |err| and err^2), per segment, and
for fairness per (segment, group) the counts n, predicted positives, tp, fn, fp
and tn. Fairness gaps (see :mod:`monitor.engine.labels.fairness`) are computed for binary
tasks only; group -1 means "no group" and counts toward no group.

A metric is NaN where it is undefined, e.g. precision in a window without a
predicted positive. NaN predictions or labels must be dropped before ``add``:
they would turn the sums of their window into NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal, get_args

import numpy as np
import numpy.typing as npt

from detectors.base import BoolArray, FloatArray, IntArray, State
from monitor.engine.labels.fairness import FAIRNESS_GAPS, fairness_gaps
from monitor.engine.labels.join import JoinedPairs

__all__ = [
    "BINARY_METRICS",
    "REGRESSION_METRICS",
    "ClosedPerformance",
    "PerformanceWindows",
    "RegressionError",
    "Task",
    "error_signal",
]

Task = Literal["binary", "regression"]
RegressionError = Literal["absolute", "squared"]

BINARY_METRICS: Final = ("accuracy", "precision", "recall", "log_loss", "brier")
REGRESSION_METRICS: Final = ("mae", "rmse")
PROBABILITY_CLIP: Final = 1e-15
"""Scores are clipped to ``[PROBABILITY_CLIP, 1 - PROBABILITY_CLIP]`` for the log loss."""

# Columns of the per-segment count and sum arrays, and of the per-group counts.
_N, _TP, _FP, _TN, _FN = range(5)
_LOG_LOSS, _BRIER, _ABS, _SQ = range(4)
_G_N, _G_PP, _G_TP, _G_FN, _G_FP, _G_TN = range(6)


def _positive(label: FloatArray) -> BoolArray:
    return np.asarray(label >= 0.5, dtype=np.bool_)


def error_signal(
    pairs: JoinedPairs,
    task: Task,
    threshold: float = 0.5,
    regression_error: RegressionError = "absolute",
) -> FloatArray:
    """Each pair's error: 0/1 misclassification (binary), or |err| / err^2 (regression)."""
    if task == "binary":
        wrong = (pairs.prediction >= threshold) != _positive(pairs.label)
        return np.asarray(wrong, dtype=np.float64)
    if task != "regression":
        raise ValueError(f"task must be 'binary' or 'regression', got {task!r}")
    err = pairs.label - pairs.prediction
    if regression_error == "absolute":
        return np.asarray(np.abs(err), dtype=np.float64)
    if regression_error == "squared":
        return np.asarray(err * err, dtype=np.float64)
    raise ValueError(f"regression_error must be 'absolute' or 'squared', got {regression_error!r}")


@dataclass(frozen=True)
class ClosedPerformance:
    """Windows that closed during one ``add``: one row each, in the order they closed.

    ``window`` is the window's number within its segment (0 for the first one), and
    ``last_pair`` the position, in the pairs given to ``add``, of the pair that
    closed it. ``metrics`` maps each metric name to one value per row.
    """

    segment: IntArray
    n: IntArray
    window: IntArray
    last_pair: IntArray
    metrics: dict[str, FloatArray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.segment.size)


def _ratio(numerator: npt.NDArray[Any], denominator: npt.NDArray[Any]) -> FloatArray:
    """numerator / denominator, NaN where the denominator is 0."""
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


class PerformanceWindows:
    """Per-segment tumbling windows of ``size_pairs`` joined pairs (see the module docstring)."""

    def __init__(
        self,
        task: Task,
        size_pairs: int,
        threshold: float = 0.5,
        n_groups: int = 0,
        min_group_size: int = 1,
    ) -> None:
        if task not in get_args(Task):
            raise ValueError(f"task must be 'binary' or 'regression', got {task!r}")
        for name, value, low in (
            ("size_pairs", size_pairs, 1),
            ("n_groups", n_groups, 0),
            ("min_group_size", min_group_size, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
            if value < low:
                raise ValueError(f"{name} must be >= {low}")
        if not np.isfinite(threshold):
            raise ValueError("threshold must be finite")
        self.task: Task = task
        self.size_pairs = int(size_pairs)
        self.threshold = float(threshold)
        self.n_groups = int(n_groups)
        self.min_group_size = int(min_group_size)
        # Groups matter only where there are predicted classes.
        self._fair = task == "binary" and self.n_groups > 0
        self.reset()

    def reset(self) -> None:
        """Forget every segment and open window."""
        self.n_segments = 0
        self._counts = np.zeros((0, 5), np.int64)
        self._sums = np.zeros((0, 4), np.float64)
        self._groups = np.zeros((0, self.n_groups, 6), np.int64)
        self._closed = np.zeros(0, np.int64)

    def ensure_segments(self, n_segments: int) -> None:
        """Grow to ``n_segments``; new segments start with an empty window."""
        extra = n_segments - self.n_segments
        if extra <= 0:
            return
        self._counts = np.concatenate([self._counts, np.zeros((extra, 5), np.int64)])
        self._sums = np.concatenate([self._sums, np.zeros((extra, 4), np.float64)])
        self._groups = np.concatenate([self._groups, np.zeros((extra, self.n_groups, 6), np.int64)])
        self._closed = np.concatenate([self._closed, np.zeros(extra, np.int64)])
        self.n_segments = n_segments

    def open_pairs(self) -> IntArray:
        """Pairs in every segment's open window so far."""
        return self._counts[:, _N].copy()

    def _contributions(
        self, pairs: JoinedPairs, order: IntArray
    ) -> tuple[IntArray, FloatArray, IntArray | None]:
        """Per-pair counts (m, 5), sums (m, 4) and group counts (m, 6), in ``order``."""
        pred = pairs.prediction[order]
        label = pairs.label[order]
        m = order.size
        ints = np.zeros((m, 5), np.int64)
        sums = np.zeros((m, 4), np.float64)
        ints[:, _N] = 1
        err = label - pred
        sums[:, _ABS] = np.abs(err)
        sums[:, _SQ] = err * err
        if self.task != "binary":
            return ints, sums, None
        y = _positive(label)
        yhat = pred >= self.threshold
        ints[:, _TP] = y & yhat
        ints[:, _FP] = ~y & yhat
        ints[:, _TN] = ~y & ~yhat
        ints[:, _FN] = y & ~yhat
        p = np.clip(pred, PROBABILITY_CLIP, 1.0 - PROBABILITY_CLIP)
        sums[:, _LOG_LOSS] = -np.where(y, np.log(p), np.log1p(-p))
        target = y.astype(np.float64)
        sums[:, _BRIER] = (pred - target) ** 2
        if not self._fair:
            return ints, sums, None
        groups = np.zeros((m, 6), np.int64)
        groups[:, _G_N] = 1
        groups[:, _G_PP] = yhat
        groups[:, _G_TP] = ints[:, _TP]
        groups[:, _G_FN] = ints[:, _FN]
        groups[:, _G_FP] = ints[:, _FP]
        groups[:, _G_TN] = ints[:, _TN]
        return ints, sums, groups

    def _check(self, pairs: JoinedPairs) -> IntArray:
        seg = np.asarray(pairs.segment, dtype=np.int64)
        if seg.size and int(seg.min()) < 0:
            raise ValueError(f"segment ids must be >= 0, got {int(seg.min())}")
        if self._fair and pairs.group.size:
            low, high = int(pairs.group.min()), int(pairs.group.max())
            if low < -1 or high >= self.n_groups:
                raise ValueError(
                    f"group codes must lie in [-1, {self.n_groups}), got [{low}, {high}]"
                )
        return seg

    def add(self, pairs: JoinedPairs) -> ClosedPerformance:
        """Count a batch of pairs (in arrival order); return the windows it closed."""
        seg = self._check(pairs)
        m = seg.size
        if m == 0:
            return self._empty()
        self.ensure_segments(int(seg.max()) + 1)
        size = self.size_pairs
        order = np.argsort(seg, kind="stable")
        s = seg[order]
        in_batch = np.bincount(s, minlength=self.n_segments)
        starts = np.cumsum(in_batch) - in_batch
        ordinal = self._counts[s, _N] + (np.arange(m) - starts[s])
        # Window of each pair, counted from the segment's open one (0).
        w = ordinal // size
        cut = np.empty(m, np.bool_)
        cut[0] = True
        cut[1:] = (s[1:] != s[:-1]) | (w[1:] != w[:-1])
        run_start = np.flatnonzero(cut)
        run_last = np.r_[run_start[1:], m] - 1
        run_seg = s[run_start]
        run_w = w[run_start]
        runs = run_start.size

        ints, sums, groups = self._contributions(pairs, order)
        total_ints = np.add.reduceat(ints, run_start, axis=0)
        total_sums = np.add.reduceat(sums, run_start, axis=0)
        first = run_w == 0  # a run that continues the open window
        total_ints[first] += self._counts[run_seg[first]]
        total_sums[first] += self._sums[run_seg[first]]
        total_groups = None
        if groups is not None:
            run_of = np.repeat(np.arange(runs), run_last - run_start + 1)
            g = pairs.group[order]
            has = g >= 0
            key = run_of[has] * self.n_groups + g[has]
            total_groups = np.stack(
                [
                    np.bincount(key, weights=groups[has, j], minlength=runs * self.n_groups)
                    for j in range(6)
                ],
                axis=-1,
            ).astype(np.int64)
            total_groups = total_groups.reshape(runs, self.n_groups, 6)
            total_groups[first] += self._groups[run_seg[first]]

        closes = (ordinal[run_last] + 1) % size == 0
        # The last run of each segment in the batch is its new open window.
        last = np.r_[run_seg[1:] != run_seg[:-1], True]
        keep = last & ~closes
        reset = last & closes
        self._counts[run_seg[keep]] = total_ints[keep]
        self._sums[run_seg[keep]] = total_sums[keep]
        self._counts[run_seg[reset]] = 0
        self._sums[run_seg[reset]] = 0.0
        if total_groups is not None:
            self._groups[run_seg[keep]] = total_groups[keep]
            self._groups[run_seg[reset]] = 0

        closed = np.flatnonzero(closes)
        last_pair = order[run_last[closed]]
        by_time = np.argsort(last_pair, kind="stable")
        closed, last_pair = closed[by_time], last_pair[by_time]
        window = self._closed[run_seg[closed]] + run_w[closed]
        self._closed += np.bincount(run_seg[closed], minlength=self.n_segments)
        return ClosedPerformance(
            segment=run_seg[closed].copy(),
            n=total_ints[closed, _N].copy(),
            window=window.astype(np.int64),
            last_pair=last_pair.astype(np.int64),
            metrics=self._metrics(
                total_ints[closed],
                total_sums[closed],
                None if total_groups is None else total_groups[closed],
            ),
        )

    def _metrics(
        self, ints: IntArray, sums: FloatArray, groups: IntArray | None
    ) -> dict[str, FloatArray]:
        n = ints[:, _N]
        if self.task == "regression":
            return {
                "mae": _ratio(sums[:, _ABS], n),
                "rmse": np.sqrt(_ratio(sums[:, _SQ], n)),
            }
        tp, fp, tn, fn = ints[:, _TP], ints[:, _FP], ints[:, _TN], ints[:, _FN]
        out = {
            "accuracy": _ratio(tp + tn, n),
            "precision": _ratio(tp, tp + fp),
            "recall": _ratio(tp, tp + fn),
            "log_loss": _ratio(sums[:, _LOG_LOSS], n),
            "brier": _ratio(sums[:, _BRIER], n),
        }
        if groups is not None:
            out.update(
                fairness_gaps(
                    groups[..., _G_N],
                    groups[..., _G_PP],
                    groups[..., _G_TP],
                    groups[..., _G_FN],
                    groups[..., _G_FP],
                    groups[..., _G_TN],
                    self.min_group_size,
                )
            )
        return out

    def _empty(self) -> ClosedPerformance:
        names = BINARY_METRICS if self.task == "binary" else REGRESSION_METRICS
        if self._fair:
            names = (*names, *FAIRNESS_GAPS)
        empty = np.zeros(0, np.int64)
        return ClosedPerformance(
            empty, empty.copy(), empty.copy(), empty.copy(), {k: np.zeros(0) for k in names}
        )

    def state_dict(self) -> State:
        """Open windows and window numbers, as arrays."""
        return {
            "task": self.task,
            "size_pairs": self.size_pairs,
            "n_groups": self.n_groups,
            "counts": self._counts.copy(),
            "sums": self._sums.copy(),
            "groups": self._groups.copy(),
            "closed": self._closed.copy(),
        }

    def load_state_dict(self, state: State) -> None:
        """Restore ``state_dict`` output made with the same task, size and groups."""
        made = (state["task"], int(state["size_pairs"]), int(state["n_groups"]))
        if made != (self.task, self.size_pairs, self.n_groups):
            raise ValueError(
                f"performance state was made with task, size_pairs, n_groups = {made}, "
                f"not {(self.task, self.size_pairs, self.n_groups)}"
            )
        counts = np.asarray(state["counts"], np.int64).copy()
        k = counts.shape[0]
        sums = np.asarray(state["sums"], np.float64).copy()
        groups = np.asarray(state["groups"], np.int64).copy()
        closed = np.asarray(state["closed"], np.int64).copy()
        shapes = ((sums, (k, 4)), (groups, (k, self.n_groups, 6)), (closed, (k,)))
        if counts.shape != (k, 5) or any(a.shape != want for a, want in shapes):
            raise ValueError("performance state arrays do not fit together")
        self._counts, self._sums, self._groups, self._closed = counts, sums, groups, closed
        self.n_segments = k
