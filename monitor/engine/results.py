"""What evaluation produces, and the latest-value store the metrics collector reads.

Evaluation runs on the consumer thread; Prometheus scrapes on the HTTP thread. The
store keeps only the latest result per (segment, feature, method), so its size is
bounded by the segment cap times the feature count, whatever the traffic. It holds
them as arrays per (segment, method) and builds the :class:`LatestScore` objects only
when asked (a scrape, a state snapshot), so its memory is a few bytes per cell.
"""

from __future__ import annotations

import math
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


class _MethodScores:
    """The latest score of one (segment, method) in every column, as arrays.

    One block per (segment, method) instead of one object per cell: at 1,000 segments x
    50 columns x 10 methods that is the difference between ~10k small arrays and ~500k
    Python objects (about 100 MB). NaN marks a column never scored.
    """

    __slots__ = ("columns", "end", "index", "n", "p_value", "score")

    def __init__(self, columns: tuple[str, ...]) -> None:
        self.columns = columns
        self.index = _column_index(columns)
        k = len(columns)
        self.score = np.full(k, np.nan)
        self.p_value = np.full(k, np.nan)
        self.n = np.zeros(k, np.int64)
        self.end = np.full(k, np.nan)

    def widen(self, columns: tuple[str, ...]) -> None:
        """Make room for the ``columns`` not held yet (never scored: NaN)."""
        extra = tuple(c for c in columns if c not in self.index)
        if not extra:
            return
        k = len(extra)
        self.columns = self.columns + extra
        self.index = _column_index(self.columns)
        self.score = np.concatenate([self.score, np.full(k, np.nan)])
        self.p_value = np.concatenate([self.p_value, np.full(k, np.nan)])
        self.n = np.concatenate([self.n, np.zeros(k, np.int64)])
        self.end = np.concatenate([self.end, np.full(k, np.nan)])


_INDEXES: dict[tuple[str, ...], dict[str, int]] = {}


def _column_index(columns: tuple[str, ...]) -> dict[str, int]:
    """One shared position map per column tuple (every segment has the same columns)."""
    found = _INDEXES.get(columns)
    if found is None:
        found = _INDEXES.setdefault(columns, {c: j for j, c in enumerate(columns)})
    return found


class LatestResults:
    """Thread-safe store of the latest scores and windows, read at scrape time."""

    def __init__(self, model: str) -> None:
        self.model = model
        self._lock = threading.Lock()
        self._scores: dict[str, dict[str, _MethodScores]] = {}
        self._windows: dict[str, LatestWindow] = {}
        self.windows_closed: dict[str, int] = {}

    def record(self, results: WindowResults, windows: bool = True) -> None:
        """Keep the scores of every window in ``results`` (later rows win).

        ``windows=False`` keeps only the scores: label-side windows (performance,
        label drift) are not the segment's feature window.
        """
        columns = results.columns
        positions: dict[tuple[str, ...], npt.NDArray[np.intp]] = {}
        with self._lock:
            for row, segment in enumerate(results.segments):
                end = float(results.window_end_ts[row])
                if windows:
                    missing = results.missing_rate[row]
                    self._windows[segment] = LatestWindow(
                        segment,
                        int(results.rows[row]),
                        end,
                        {
                            c: float(v)
                            for c, v in zip(columns, missing.tolist(), strict=True)
                            if not math.isnan(v)
                        },
                    )
                    self.windows_closed[segment] = self.windows_closed.get(segment, 0) + 1
                by_method = self._scores.setdefault(segment, {})
                for method, scores in results.scores.items():
                    block = by_method.get(method)
                    if block is None:
                        block = by_method[method] = _MethodScores(columns)
                    elif block.columns != columns:
                        block.widen(columns)
                    at = positions.get(block.columns)
                    if at is None:
                        at = positions[block.columns] = np.array(
                            [block.index[c] for c in columns], dtype=np.intp
                        )
                    values = scores[row]
                    scored = ~np.isnan(values)
                    where = at[scored]
                    block.score[where] = values[scored]
                    p_values = results.p_values.get(method)
                    block.p_value[where] = p_values[row][scored] if p_values is not None else np.nan
                    block.n[where] = results.n[row][scored]
                    block.end[where] = end

    def scores(self, segments: Collection[str] | None = None) -> list[LatestScore]:
        """A consistent copy of the latest scores (of ``segments`` only, when given)."""
        with self._lock:
            if segments is None:
                chosen = list(self._scores.items())
            else:
                chosen = [(s, m) for s, m in self._scores.items() if s in segments]
            out: list[LatestScore] = []
            for segment, by_method in chosen:
                for method, block in by_method.items():
                    scored = np.flatnonzero(~np.isnan(block.score)).tolist()
                    score = block.score.tolist()
                    p_value = block.p_value.tolist()
                    n = block.n.tolist()
                    end = block.end.tolist()
                    out.extend(
                        LatestScore(
                            segment, block.columns[j], method, score[j], p_value[j], n[j], end[j]
                        )
                        for j in scored
                    )
            return out

    def windows(self) -> list[LatestWindow]:
        """A consistent copy of the latest window per segment."""
        with self._lock:
            return list(self._windows.values())

    def forget_segments(self, segments: Collection[str]) -> None:
        """Drop everything kept for ``segments`` (evicted): their series leave /metrics."""
        with self._lock:
            for segment in segments:
                self._scores.pop(segment, None)
                self._windows.pop(segment, None)
                self.windows_closed.pop(segment, None)
