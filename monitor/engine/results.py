"""What evaluation produces, and the latest-value store the metrics collector reads.

Evaluation runs on the consumer thread; Prometheus scrapes on the HTTP thread. The
store keeps only the latest result per (segment, feature, method), so its size is
bounded by the segment cap times the feature count, whatever the traffic.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from detectors.base import FloatArray, IntArray

WINDOW_COLUMN = "__window__"
"""The column of a segment window's own decisions (``samples``: too few events)."""
DATASET_COLUMN = "__dataset__"
"""The column of the dataset-level view (``share``: share of columns drifting)."""


@dataclass(frozen=True)
class WindowResults:
    """Scores of the segment windows that closed together: one row per closed window.

    Arrays are ``(k,)`` or ``(k, F)`` for ``k`` windows and the ``F`` monitored columns
    (features, then ``__prediction__`` if profiled). ``scores`` and ``p_values`` map a
    method to a ``(k, F)`` array, NaN where the method does not apply to a column (KS
    on a categorical, say) or has no p-value (PSI, JS).
    """

    model: str
    segments: tuple[str, ...]
    columns: tuple[str, ...]
    window_end_ts: FloatArray
    rows: IntArray
    n: IntArray
    missing_rate: FloatArray
    scores: dict[str, FloatArray]
    p_values: dict[str, FloatArray]
    thresholds: dict[str, FloatArray] = field(default_factory=dict)
    """Per method, the threshold each score was judged against (calibrated or fixed)."""
    clears: dict[str, FloatArray] = field(default_factory=dict)
    """Per method, the level below which a firing alert resolves."""
    verdicts: dict[str, npt.NDArray[np.int8]] = field(default_factory=dict)
    """Per method, the engine's verdict (``detectors.engine``: SKIP, CLEAR, BAND, BREACH,
    SEVERE). Methods without one (ADWIN, fairness) are judged by their fixed config."""

    def __len__(self) -> int:
        return len(self.segments)


@dataclass(frozen=True)
class LatestScore:
    """The most recent score of one (segment, column, method)."""

    segment: str
    column: str
    method: str
    score: float
    p_value: float
    n: int
    window_end_ts: float


@dataclass(frozen=True)
class LatestWindow:
    """The most recent closed window of one segment."""

    segment: str
    rows: int
    window_end_ts: float
    missing_rate: dict[str, float]


class LatestResults:
    """Thread-safe store of the latest scores and windows, read at scrape time."""

    def __init__(self, model: str) -> None:
        self.model = model
        self._lock = threading.Lock()
        self._scores: dict[tuple[str, str, str], LatestScore] = {}
        self._windows: dict[str, LatestWindow] = {}
        self.windows_closed: dict[str, int] = {}

    def record(self, results: WindowResults, windows: bool = True) -> None:
        """Keep the scores of every window in ``results`` (later rows win).

        ``windows=False`` keeps only the scores: label-side windows (performance,
        label drift) are not the segment's feature window.
        """
        with self._lock:
            for row, segment in enumerate(results.segments):
                end = float(results.window_end_ts[row])
                if windows:
                    self._windows[segment] = LatestWindow(
                        segment,
                        int(results.rows[row]),
                        end,
                        {
                            c: float(results.missing_rate[row, j])
                            for j, c in enumerate(results.columns)
                            if not np.isnan(results.missing_rate[row, j])
                        },
                    )
                    self.windows_closed[segment] = self.windows_closed.get(segment, 0) + 1
                for method, scores in results.scores.items():
                    p_values = results.p_values.get(method)
                    for j, column in enumerate(results.columns):
                        score = float(scores[row, j])
                        if np.isnan(score):
                            continue
                        p = float(p_values[row, j]) if p_values is not None else float("nan")
                        self._scores[(segment, column, method)] = LatestScore(
                            segment, column, method, score, p, int(results.n[row, j]), end
                        )

    def scores(self, segments: Collection[str] | None = None) -> list[LatestScore]:
        """A consistent copy of the latest scores (of ``segments`` only, when given)."""
        with self._lock:
            if segments is None:
                return list(self._scores.values())
            return [v for k, v in self._scores.items() if k[0] in segments]

    def windows(self) -> list[LatestWindow]:
        """A consistent copy of the latest window per segment."""
        with self._lock:
            return list(self._windows.values())

    def forget_segments(self, segments: Collection[str]) -> None:
        """Drop everything kept for ``segments`` (evicted): their series leave /metrics."""
        with self._lock:
            self._scores = {k: v for k, v in self._scores.items() if k[0] not in segments}
            for segment in segments:
                self._windows.pop(segment, None)
                self.windows_closed.pop(segment, None)
