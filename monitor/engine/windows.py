"""Per-segment windows over binned counts: tumbling or sliding, by event count and/or event time.

Counts live in one tensor ``panes[pane, segment, feature, slot]`` (the binner's slot
layout), int32 while every window's events fit in it (``COUNT_DTYPE``; it widens to
int64, once, before a window could hold more than ``2**31 - 1`` events), which halves
the largest array the daemon keeps. Closed windows and checkpoints carry int64 counts
whatever the dtype held. A batch's counts are added in place (``np.add.at`` on the
touched slots only): no temporary the size of the whole tensor.

A tumbling window is one pane; a sliding window is a ring of ``P`` panes, evaluated
each time a pane closes once the ring is full, so consecutive windows overlap by
``P - 1`` panes.

Events of a segment are taken in arrival order, and a pane closes exactly at the
event that fills it (count) or at the first event of a later event-time pane (time),
even in the middle of a poll batch. So the windows, and what they contain, do not
depend on how the stream was cut into batches: a restart that re-polls with other
batch boundaries rebuilds the same windows.

Event time. Time panes are epoch-aligned (``floor(ts / pane_seconds)``). The stream's
event time is an :class:`~monitor.ingest.watermark.EventClock` (the
``windows.watermark_outliers + 1``-th highest time seen, taken before each event), so
a few events dated ahead of the rest cannot move it; the watermark is that time minus
``windows.allowed_lateness_seconds``. Against the values before each event:

- with time windows, an event dated more than ``max_ahead``
  (``schema.max_future_seconds``) ahead of the stream's time is refused
  (``ClosedWindows.refused``; the pipeline dead-letters it);
- an event whose pane the watermark has passed is late: counted
  (``ClosedWindows.late``) and left out of the windows;
- an event dated beyond the pane after the stream's current one counts in that next
  pane: an early event cannot open a pane of the future, only the next one, as the
  first events of every new pane do;
- an event of an earlier pane than its segment's open one (but not late) joins the
  open pane.

A quiet segment's pane is closed once the watermark has passed its end, which the
next event of the segment would do anyway, so only when the window is emitted
depends on the batches, never what it holds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.base import FloatArray, IntArray, State
from detectors.binning import Binner
from monitor.config import WindowsConfig
from monitor.ingest.watermark import EventClock

COUNT_DTYPE = np.int32
"""The dtype of the open panes while every window's events fit in it."""
_COUNT_MAX = int(np.iinfo(COUNT_DTYPE).max)


@dataclass(frozen=True)
class ClosedWindows:
    """Windows that closed during one ``add``: one row per closed window.

    ``refused``, ``refused_ahead`` and ``late`` are about the batch that was added:
    the positions of its rows refused as dated too far ahead of the stream (they count
    nowhere), how many seconds ahead of the stream's event time each of them was, and
    how many of its rows were late (counted, in no window).
    """

    segments: IntArray
    counts: IntArray
    end_ts: FloatArray
    refused: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    refused_ahead: FloatArray = field(default_factory=lambda: np.zeros(0))
    late: int = 0

    def __len__(self) -> int:
        return int(self.segments.size)

    @property
    def rows(self) -> IntArray:
        """Events in each window (every event is binned or missing in feature 0)."""
        return np.asarray(self.counts[:, 0, :].sum(axis=1), dtype=np.int64)


def _spans(pos: IntArray, limit: IntArray) -> tuple[IntArray, IntArray]:
    """Row indices ``pos[i] .. limit[i]-1`` for every i, and the owner i of each."""
    lengths = limit - pos
    owner = np.repeat(np.arange(pos.size), lengths)
    first = np.cumsum(lengths) - lengths
    rows = pos[owner] + (np.arange(owner.size) - first[owner])
    return rows.astype(np.int64), owner.astype(np.int64)


class Windows:
    """Open panes of every segment, and the closing rules."""

    def __init__(self, binner: Binner, config: WindowsConfig, n_segments: int = 1) -> None:
        self.binner = binner
        self.config = config
        self.n_panes = config.panes if config.mode == "sliding" else 1
        self.pane_events = (
            math.ceil(config.size_events / self.n_panes) if config.size_events else None
        )
        self.pane_seconds = (
            config.duration_seconds / self.n_panes if config.duration_seconds else None
        )
        self._cell = binner.n_features * binner.stride
        self.n_segments = 0
        self._panes: npt.NDArray[np.signedinteger[Any]] = np.zeros(
            (self.n_panes, 0, binner.n_features, binner.stride), COUNT_DTYPE
        )
        self._pane_rows = np.zeros((self.n_panes, 0), np.int64)
        self._head = np.zeros(0, np.int64)
        self._completed = np.zeros(0, np.int64)
        self._pane_id = np.zeros(0, np.int64)
        self._last_ts = np.zeros(0, np.float64)
        self.clock = EventClock(config.watermark_outliers + 1)
        self.late_events = 0
        self.ensure_segments(n_segments)

    @property
    def watermark(self) -> float:
        """The stream's event time minus the allowed lateness (``-inf`` at first)."""
        return self.clock.time - self.config.allowed_lateness_seconds

    def ensure_segments(self, n_segments: int) -> None:
        """Grow to ``n_segments``; new segments start with empty panes."""
        extra = n_segments - self.n_segments
        if extra <= 0:
            return
        p = self.n_panes
        self._panes = np.concatenate(
            [self._panes, np.zeros((p, extra, *self._panes.shape[2:]), self._panes.dtype)], axis=1
        )
        self._pane_rows = np.concatenate([self._pane_rows, np.zeros((p, extra), np.int64)], 1)
        self._head = np.concatenate([self._head, np.zeros(extra, np.int64)])
        self._completed = np.concatenate([self._completed, np.zeros(extra, np.int64)])
        self._pane_id = np.concatenate([self._pane_id, np.full(extra, -1, np.int64)])
        self._last_ts = np.concatenate([self._last_ts, np.full(extra, -math.inf)])
        self.n_segments = n_segments

    def open_rows(self) -> IntArray:
        """Events in every segment's open (unevaluated) window so far."""
        return np.asarray(self._pane_rows.sum(axis=0), dtype=np.int64)

    def forget_segments(self, segments: IntArray) -> None:
        """Reset ``segments`` to empty panes, as if new: their ids are reused for other
        segments (an evicted segment's events never count towards the next one's)."""
        seg = np.asarray(segments, dtype=np.int64)
        seg = seg[seg < self.n_segments]
        self._panes[:, seg] = 0
        self._pane_rows[:, seg] = 0
        self._head[seg] = 0
        self._completed[seg] = 0
        self._pane_id[seg] = -1
        self._last_ts[seg] = -math.inf

    def add(
        self,
        segments: IntArray,
        X: npt.ArrayLike,
        ts: FloatArray,
        max_ahead: float | None = None,
        not_before: float = -math.inf,
    ) -> ClosedWindows:
        """Count a batch (rows in arrival order) and return the windows it closed.

        With ``max_ahead`` and time windows, rows dated more than that ahead of the
        stream's event time are refused (see the module docstring); ``not_before`` is
        the wall clock where events are live (:meth:`EventClock.advance`).
        """
        seg_all = np.asarray(segments, dtype=np.int64)
        if seg_all.size == 0:
            return self._close_quiet()
        ts_all = np.asarray(ts, dtype=np.float64)
        # Count windows do not depend on event time: an unsorted replay is fine there.
        limit = max_ahead if self.pane_seconds is not None else None
        ticks = self.clock.advance(ts_all, limit, not_before)
        take = ~ticks.refused
        refused = np.flatnonzero(ticks.refused).astype(np.int64)
        effective: IntArray | None = None
        late = 0
        if self.pane_seconds is not None:
            effective, on_time = self._effective_panes(ts_all, ticks.before)
            late = int((take & ~on_time).sum())
            take &= on_time
        self.late_events += late
        kept = np.flatnonzero(take)
        closed = self._add_rows(
            seg_all[kept],
            np.asarray(X, dtype=np.float64)[kept],
            ts_all[kept],
            None if effective is None else effective[kept],
        )
        ahead = ts_all[refused] - np.maximum(ticks.before[refused], not_before)
        return replace(closed, refused=refused, refused_ahead=ahead, late=late)

    def _effective_panes(
        self, ts: FloatArray, before: FloatArray
    ) -> tuple[IntArray, npt.NDArray[np.bool_]]:
        """Each row's pane, capped at the pane after the stream's current one, and whether
        it is on time."""
        assert self.pane_seconds is not None
        pane = np.floor(ts / self.pane_seconds)
        known = np.isfinite(before)
        # -inf before the clock has seen enough events: nothing is late or capped yet.
        cap = np.where(known, np.floor(before / self.pane_seconds) + 1, np.inf)
        passed = np.where(
            known,
            np.floor((before - self.config.allowed_lateness_seconds) / self.pane_seconds),
            -np.inf,
        )
        return np.minimum(pane, cap).astype(np.int64), pane >= passed

    def _add_rows(
        self, seg: IntArray, X: FloatArray, ts: FloatArray, effective: IntArray | None
    ) -> ClosedWindows:
        """Count accepted, on-time rows whose time panes are ``effective``."""
        if seg.size == 0:
            return self._close_quiet()
        self.ensure_segments(int(seg.max()) + 1)
        self._widen_for(seg.size)
        key_type = np.int16 if self.n_segments <= 32767 else np.int32
        order = np.argsort(seg.astype(key_type), kind="stable")
        seg_s = seg[order]
        ts_s = ts[order]
        slots = self.binner.flat_slots(X[order])
        counts = np.bincount(seg_s, minlength=self.n_segments)
        starts = np.cumsum(counts) - counts
        pane_id = effective[order] if effective is not None else None
        if pane_id is not None:
            assert self.pane_seconds is not None
            # A window's end is its last event, but never past the end of its pane.
            ts_s = np.minimum(ts_s, (pane_id + 1) * self.pane_seconds)

        closed: list[tuple[IntArray, IntArray, FloatArray]] = []
        active = np.flatnonzero(counts)
        pos = starts[active].copy()
        end = starts[active] + counts[active]
        while active.size:
            limit = end.copy()
            head = self._head[active]
            if self.pane_events is not None:
                room = self.pane_events - self._pane_rows[head, active]
                limit = np.minimum(limit, pos + room)
            if pane_id is not None:
                unset = self._pane_id[active] < 0
                self._pane_id[active[unset]] = pane_id[pos[unset]]
                limit = np.minimum(limit, self._time_limit(pane_id, active, pos, limit))
            rows, owner = _spans(pos, limit)
            offset = (head[owner] * self.n_segments + active[owner]) * self._cell
            # Only the touched slots: a bincount over the whole tensor would allocate
            # (and add) segments x features x slots counts for every batch.
            np.add.at(
                self._panes.reshape(-1),
                (slots[:, rows] + offset).ravel(),
                self._panes.dtype.type(1),
            )
            self._pane_rows[head, active] += limit - pos
            took = limit > pos
            self._last_ts[active[took]] = np.maximum(
                self._last_ts[active[took]], np.maximum.reduceat(ts_s[rows], _firsts(limit - pos))
            )
            full = np.zeros(active.size, dtype=np.bool_)
            if self.pane_events is not None:
                full |= self._pane_rows[head, active] >= self.pane_events
            if pane_id is not None:
                jump = limit < end
                jump[jump] &= pane_id[limit[jump]] > self._pane_id[active[jump]]
                # A pane emptied by a count close just before the jump is not a window.
                full |= jump & (self._pane_rows[head, active] > 0)
                self._pane_id[active[jump]] = pane_id[limit[jump]]
            if full.any():
                closed.append(self._close(active[full]))
            pos = limit
            keep = pos < end
            active, pos, end = active[keep], pos[keep], end[keep]

        quiet = self._close_quiet()
        if len(quiet):
            closed.append((quiet.segments, quiet.counts, quiet.end_ts))
        return _stack(closed, self._panes.shape[2:])

    def _widen_for(self, rows: int) -> None:
        """Hold the panes as int64 from now on if ``rows`` more events could push a
        window's count (so any of its slots) past ``COUNT_DTYPE``."""
        if self._panes.dtype == np.int64 or self.n_segments == 0:
            return
        if int(self._pane_rows.sum(axis=0).max()) + rows > _COUNT_MAX:
            self._panes = self._panes.astype(np.int64)

    def _time_limit(
        self, pane_id: IntArray, active: IntArray, pos: IntArray, limit: IntArray
    ) -> IntArray:
        """First row at or after ``pos`` in a later time pane than the segment's open one."""
        rows, owner = _spans(pos, limit)
        later = pane_id[rows] > self._pane_id[active[owner]]
        first = np.where(later, rows, np.iinfo(np.int64).max)
        out = limit.copy()
        if rows.size:
            took = limit > pos
            mins = np.minimum.reduceat(first, _firsts(limit - pos))
            out[took] = np.minimum(limit[took], mins)
        return out

    def _close(self, segs: IntArray) -> tuple[IntArray, IntArray, FloatArray]:
        """Close the open pane of ``segs``; emit the windows whose ring is now full."""
        self._completed[segs] += 1
        ready = segs[self._completed[segs] >= self.n_panes]
        window = self._panes[:, ready].sum(axis=0, dtype=np.int64)
        end_ts = self._last_ts[ready].copy()
        self._head[segs] = (self._head[segs] + 1) % self.n_panes
        self._panes[self._head[segs], segs] = 0
        self._pane_rows[self._head[segs], segs] = 0
        return ready, window, end_ts

    def _close_quiet(self) -> ClosedWindows:
        """Close panes whose event-time end the stream's watermark has passed."""
        if self.pane_seconds is None or not math.isfinite(self.watermark):
            return _stack([], self._panes.shape[2:])
        current = math.floor(self.watermark / self.pane_seconds)
        open_rows = self._pane_rows[self._head, np.arange(self.n_segments)]
        stale = np.flatnonzero((open_rows > 0) & (self._pane_id >= 0) & (self._pane_id < current))
        if stale.size == 0:
            return _stack([], self._panes.shape[2:])
        out = self._close(stale)
        self._pane_id[stale] = -1
        return _stack([out], self._panes.shape[2:])

    def state_dict(self) -> State:
        """All panes and closing state, as arrays."""
        return {
            "fingerprint": self.binner.fingerprint,
            "panes": self._panes.astype(np.int64),
            "pane_rows": self._pane_rows.copy(),
            "head": self._head.copy(),
            "completed": self._completed.copy(),
            "pane_id": self._pane_id.copy(),
            "last_ts": self._last_ts.copy(),
            "clock": self.clock.state(),
            "late_events": self.late_events,
        }

    def load_state_dict(self, state: State) -> None:
        """Restore ``state_dict`` output made against the same binning."""
        if state["fingerprint"] != self.binner.fingerprint:
            raise ValueError("window state was made against another reference profile")
        self._pane_rows = np.asarray(state["pane_rows"], np.int64).copy()
        self._panes = _fit(np.asarray(state["panes"], np.int64), self._pane_rows)
        self._head = np.asarray(state["head"], np.int64).copy()
        self._completed = np.asarray(state["completed"], np.int64).copy()
        self._pane_id = np.asarray(state["pane_id"], np.int64).copy()
        self._last_ts = np.asarray(state["last_ts"], np.float64).copy()
        if "clock" in state:
            self.clock.load(state["clock"])
            self.late_events = int(state["late_events"])
        else:
            # Older state kept only the highest time, which may be an outlier's: it
            # counts as one time seen, so it cannot move the clock alone.
            self.clock.load([float(state["watermark"])])
        self.n_segments = int(self._head.size)

    # -- hand-over: one partition's segments move to another replica ---------------

    def slice(self, segments: Sequence[int]) -> State:
        """The open panes and closing state of ``segments`` alone (rows in that order)."""
        rows = np.asarray(segments, dtype=np.int64)
        return {
            "fingerprint": self.binner.fingerprint,
            "panes": self._panes[:, rows].astype(np.int64),
            "pane_rows": self._pane_rows[:, rows].copy(),
            "head": self._head[rows].copy(),
            "completed": self._completed[rows].copy(),
            "pane_id": self._pane_id[rows].copy(),
            "last_ts": self._last_ts[rows].copy(),
        }

    def merge(self, part: State, segments: Sequence[int]) -> None:
        """Add a :meth:`slice` (made elsewhere) into ``segments`` (distinct ids): counts
        add; a segment that had nothing here takes the slice's closing state, else the
        later of the two (closing state is the segment's own)."""
        if part["fingerprint"] != self.binner.fingerprint:
            raise ValueError("slice windows were binned against another profile")
        rows = np.asarray(segments, dtype=np.int64)
        self.ensure_segments(int(rows.max()) + 1 if rows.size else 0)
        fresh = (self._pane_rows[:, rows].sum(axis=0) == 0) & (self._completed[rows] == 0)
        self._pane_rows[:, rows] += np.asarray(part["pane_rows"], np.int64)
        panes = self._panes.astype(np.int64)
        panes[:, rows] += np.asarray(part["panes"], np.int64)
        self._panes = _fit(panes, self._pane_rows)
        for mine, key in (
            (self._head, "head"),
            (self._completed, "completed"),
            (self._pane_id, "pane_id"),
            (self._last_ts, "last_ts"),
        ):
            theirs = np.asarray(part[key], mine.dtype)
            mine[rows] = np.where(fresh, theirs, np.maximum(mine[rows], theirs))

    def drop(self, segments: Sequence[int]) -> None:
        """Empty the panes of ``segments`` (handed over: their next owner counts them)."""
        rows = np.asarray(segments, dtype=np.int64)
        self._panes[:, rows] = 0
        self._pane_rows[:, rows] = 0
        self._head[rows] = 0
        self._completed[rows] = 0
        self._pane_id[rows] = -1
        self._last_ts[rows] = -math.inf


def _fit(panes: IntArray, pane_rows: IntArray) -> npt.NDArray[np.signedinteger[Any]]:
    """``panes`` as ``COUNT_DTYPE`` when every window's events fit in it, else int64."""
    windows = pane_rows.sum(axis=0)
    if windows.size and int(windows.max()) > _COUNT_MAX:
        return panes.copy()
    return panes.astype(COUNT_DTYPE)


def _firsts(lengths: IntArray) -> IntArray:
    """reduceat start positions of the non-empty spans of ``lengths``."""
    nonzero = lengths[lengths > 0]
    return (np.cumsum(nonzero) - nonzero).astype(np.int64)


def _stack(
    parts: list[tuple[IntArray, IntArray, FloatArray]], cell_shape: tuple[int, ...]
) -> ClosedWindows:
    if not parts:
        return ClosedWindows(
            np.zeros(0, np.int64), np.zeros((0, *cell_shape), np.int64), np.zeros(0)
        )
    return ClosedWindows(
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
    )
