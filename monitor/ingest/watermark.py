"""The stream's event time, which a few outlier timestamps cannot move.

:class:`EventClock` follows the ``k``-th highest event time seen (``k`` is
``windows.watermark_outliers + 1``), not the highest: as long as fewer than ``k``
events are dated ahead of the bulk of the stream, the clock follows the bulk. A
burst of outliers that large is refused anyway (below), and an outlier stops being
one as soon as the bulk of the stream passes its time.

Every event is judged against the clock *before* it, computed per event, so the
result is a function of the sequence of events alone, never of how that sequence
was cut into poll batches: a replay with other batch boundaries gives the same
clock at every event.

With ``max_ahead`` (``schema.max_future_seconds``), an event dated more than that
ahead of the clock is refused (``Ticks.refused``; live, the wall clock stands in for a
clock that is behind it, see ``advance``). It still moves the clock, but as
if it were dated exactly ``max_ahead`` ahead: after a true jump of the stream (a
quiet night in a replayed backlog) the clock catches up within a few events, while
outliers can only drag it ``max_ahead`` per ``k`` of them. Until ``k`` events have
been seen the clock is ``-inf`` and nothing is refused.

The common case (no refusal in a batch) takes ``k`` vectorized passes; a batch with
a refusal takes a per-event pass, which gives the same result by construction.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from detectors.base import FloatArray

__all__ = ["EventClock", "Ticks"]


@dataclass(frozen=True)
class Ticks:
    """Per event of a batch: the stream's event time before it, and whether it was refused."""

    before: FloatArray
    refused: npt.NDArray[np.bool_]


class EventClock:
    """The ``rank``-th highest event time seen so far (``-inf`` until ``rank`` events)."""

    def __init__(self, rank: int) -> None:
        if rank < 1:
            raise ValueError("rank must be >= 1")
        self.rank = rank
        # The highest ``rank`` times seen, highest first; -inf pads a short history.
        self.top = np.full(rank, -math.inf)

    @property
    def time(self) -> float:
        """The stream's event time now."""
        return float(self.top[-1])

    def advance(
        self, ts: FloatArray, max_ahead: float | None = None, not_before: float = -math.inf
    ) -> Ticks:
        """Take a batch of event times in arrival order (see the module docstring).

        ``not_before`` is a lower bound of the clock for refusals only: live, the wall
        clock, so that events after a quiet night are not taken for outliers.
        """
        t = np.asarray(ts, dtype=np.float64)
        if t.size == 0:
            return Ticks(np.zeros(0), np.zeros(0, dtype=np.bool_))
        before, top = self._vectorized(t)
        if max_ahead is not None:
            base = np.maximum(before, not_before)
            refused = np.isfinite(base) & (t > base + max_ahead)
            if refused.any():
                return self._one_by_one(t, max_ahead, not_before)
        self.top = top
        return Ticks(before, np.zeros(t.size, dtype=np.bool_))

    def _vectorized(self, t: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(clock before each event, the new top) with nothing refused.

        The j-th highest of a set grown by ``x`` is ``max(j-th, min(x, (j-1)-th))`` of
        the set before it, so the running j-th highest is a running max over the
        running (j-1)-th highest, one ``maximum.accumulate`` per rank.
        """
        top = np.empty(self.rank)
        running = np.empty(t.size)
        above = np.empty(t.size)  # the running (j-1)-th highest before each event
        for j in range(self.rank):
            if j:
                np.minimum(t, above, out=running)
                np.maximum.accumulate(running, out=running)
            else:  # the running highest: nothing above it to cap it
                np.maximum.accumulate(t, out=running)
            np.maximum(running, self.top[j], out=running)
            top[j] = running[-1]
            above[0] = self.top[j]
            above[1:] = running[:-1]
        return above, top

    def _one_by_one(self, t: FloatArray, max_ahead: float, not_before: float) -> Ticks:
        """The same rule event by event, moving the clock by refused events capped."""
        ascending = self.top[::-1].tolist()
        before = np.empty(t.size)
        refused = np.zeros(t.size, dtype=np.bool_)
        for i, event_time in enumerate(t.tolist()):
            now = ascending[0]
            before[i] = now
            base = max(now, not_before)
            counted = event_time
            if math.isfinite(base) and event_time > base + max_ahead:
                refused[i] = True
                counted = base + max_ahead
            if counted > now:
                ascending.pop(0)
                bisect.insort(ascending, counted)
        self.top = np.asarray(ascending[::-1], dtype=np.float64)
        return Ticks(before, refused)

    def state(self) -> FloatArray:
        """The clock's state (its top times)."""
        return self.top.copy()

    def load(self, top: npt.ArrayLike) -> None:
        """Restore :meth:`state` output; a shorter or longer history is cut or padded."""
        values = np.sort(np.asarray(top, dtype=np.float64).ravel())[::-1][: self.rank]
        self.top = np.concatenate([values, np.full(self.rank - values.size, -math.inf)])
