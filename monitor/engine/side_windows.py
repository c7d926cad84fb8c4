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
from collections.abc import Collection, Sequence
from typing import Generic, TypeVar

import numpy as np

from detectors.base import IntArray, State
from monitor.engine.windows import Windows

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
