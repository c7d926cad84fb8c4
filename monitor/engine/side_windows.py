"""Windows kept beside the feature windows: the part every such method shares.

Estimated performance, multivariate drift and embedding drift each keep their own
:class:`~monitor.engine.windows.Windows`, fed the same events and limits as the
feature windows, so that they close at exactly the same events. What they share is
here: the latest judged window per segment (read at scrape time, from another
thread), eviction, checkpoints and the per-partition hand-over, all of which go to
the windows themselves.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from detectors.base import FloatArray, IntArray, State
from detectors.rules import BREACH, SEVERE
from monitor.engine.results import WindowResults
from monitor.engine.windows import ClosedWindows, Windows

LatestT = TypeVar("LatestT")


class SideWindows(Generic[LatestT]):
    """A method's windows beside the feature windows, and its latest window per segment."""

    def __init__(self, windows: Windows) -> None:
        self.windows = windows
        self.lock = threading.Lock()
        """Guards ``latest_of``: the pipeline writes it, scrapes read it."""
        self.latest_of: dict[str, LatestT] = {}
        """The latest judged window of each segment, by segment name."""

    def latest(self) -> list[LatestT]:
        """The latest judged window of every segment."""
        with self.lock:
            return list(self.latest_of.values())

    def forget_segments(self, segments: IntArray, names: Collection[str]) -> None:
        """Reset the windows of evicted ``segments`` (their ids are about to be reused)."""
        self.windows.forget_segments(np.asarray(segments, dtype=np.int64))
        with self.lock:
            for name in names:
                self.latest_of.pop(name, None)

    def state_dict(self) -> State:
        """The open windows."""
        return {"windows": self.windows.state_dict()}

    def load_state_dict(self, state: State) -> None:
        """Restore :meth:`state_dict` output made against the same reference model."""
        self.windows.load_state_dict(state["windows"])

    def slice(self, segments: Sequence[int]) -> State:
        """The open windows of ``segments`` alone."""
        return self.windows.slice(segments)

    def merge(self, part: State, segments: Sequence[int]) -> None:
        """Add a :meth:`slice` of another replica as ``segments``."""
        self.windows.merge(part, segments)

    def drop(self, segments: Sequence[int]) -> None:
        """Forget the open windows of ``segments`` (handed over)."""
        self.windows.drop(segments)

    def publish(
        self, results: WindowResults, latest: Callable[[int, str, float], LatestT]
    ) -> WindowResults:
        """Keep ``latest(row, segment, window_end_ts)`` of each row of ``results`` as its
        segment's latest window (under the lock scrapes take); ``results`` back."""
        with self.lock:
            for row, segment in enumerate(results.segments):
                self.latest_of[segment] = latest(row, segment, float(results.window_end_ts[row]))
        return results


class JudgedWindows(Protocol):
    """What a side method's ``evaluate`` returns, per closed window (one row each)."""

    @property
    def statistic(self) -> FloatArray: ...
    @property
    def p_value(self) -> FloatArray: ...
    @property
    def threshold(self) -> FloatArray: ...
    @property
    def clear(self) -> FloatArray: ...
    @property
    def verdict(self) -> npt.NDArray[Any]: ...
    @property
    def n(self) -> IntArray: ...


def one_column_results(
    model: str,
    closed: ClosedWindows,
    names: tuple[str, ...],
    column: str,
    method: str,
    scores: JudgedWindows,
    missing_rate: npt.ArrayLike,
    severe_ratio: float,
) -> WindowResults:
    """The ``method`` rows of the windows ``closed``, all on ``column``: a breach at
    ``severe_ratio`` times its threshold or more counts as severe (it fires at once)."""
    verdict = scores.verdict.copy()
    with np.errstate(invalid="ignore"):
        severe = (verdict == BREACH) & (scores.statistic >= severe_ratio * scores.threshold)
    verdict[severe] = SEVERE
    k = len(closed)

    def as_column(values: npt.ArrayLike) -> FloatArray:
        return np.asarray(values, dtype=np.float64).reshape(k, 1)

    return WindowResults(
        model=model,
        segments=tuple(names[s] for s in closed.segments.tolist()),
        columns=(column,),
        window_end_ts=np.asarray(closed.end_ts, dtype=np.float64),
        rows=closed.rows,
        n=scores.n.reshape(k, 1),
        missing_rate=as_column(missing_rate),
        scores={method: as_column(scores.statistic)},
        p_values={method: as_column(scores.p_value)},
        thresholds={method: as_column(scores.threshold)},
        clears={method: as_column(scores.clear)},
        verdicts={method: verdict.reshape(k, 1)},
    )
