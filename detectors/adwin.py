"""ADWIN for many independent streams at once, identical to ``river.drift.ADWIN``.

One instance holds ``n_streams`` ADWIN windows (one per segment per metric).
``update(streams, values)`` takes a whole batch in arrival order, and reports the
same detections, at the same positions, with the same window width and estimation
afterwards, as one river ``ADWIN`` per stream fed element by element.

Why this can be exact:

* Within a run the bucket layout is a closed form of the run length
  (``adwin_layout``), and bucket totals are aligned pairwise tree sums, so level
  arrays built as ``L[i+1] = L[i][0::2] + L[i][1::2]`` reproduce river's totals bit
  for bit.
* ``total`` and ``variance`` are sequential accumulations; ``np.cumsum`` along a row
  is sequential too, so carrying the previous state in as the first column replays
  them exactly. Every increment uses river's operation order.
* All cut checks of a batch are scored in one matrix (one row per check, buckets
  oldest first). ``+ - * /`` and ``sqrt`` are correctly rounded in numpy as in Rust;
  the only libm call, ``ln``, is evaluated with ``math.log`` (the same libm), never
  ``np.log``. The arithmetic is therefore the same, not merely close:
  ``closest_call`` records the smallest relative margin ``| |dmu| - eps | / eps`` seen,
  so tests can show that no check sat on a knife edge either. Where a line regroups
  river's expression for speed (counts, which are whole numbers; doubling, which is
  exact), its comment says why the rounding cannot differ.
* A detection ends the run: river's wrapper discards the window on the next
  update. The width and estimation river reports right after a detection come from
  its delete-and-rescan loop, replayed by ``adwin_scalar`` for all of a pass's
  detections at once.

Memory per stream is river's own: at most ``max_buckets`` totals and variances per row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from detectors.adwin_checks import (
    DeltaPrimeTable,
    LevelArrays,
    bucket_index,
    check_positions,
    score_checks,
    slot_index,
)
from detectors.adwin_layout import blocks_formed, n_levels_for, ragged_concat
from detectors.adwin_scalar import settle_after_cuts
from detectors.base import DriftResult, FloatArray, IntArray, State, as_segments

_CHECK_CHUNK = 1024


@dataclass(frozen=True)
class ADWINResult(DriftResult):
    """Per-stream outcome: ``statistic`` is the window mean (river's ``estimation``),
    ``n`` the window width, ``drift`` whether the stream detected in this batch.

    ``drift_positions`` are the indices into the batch of the values at which a drift
    was detected (river's ``drift_detected`` was True right after them), and
    ``drift_streams`` the stream of each.
    """

    drift_positions: IntArray
    drift_streams: IntArray

    @property
    def estimation(self) -> FloatArray:
        """Alias of ``statistic``, in river's words."""
        return self.statistic

    @property
    def width(self) -> IntArray:
        """Alias of ``n``, in river's words."""
        return self.n


def _balanced_groups(lengths: IntArray) -> list[IntArray]:
    """Split rows into groups whose zero-padded matrix stays under twice their data.

    Streams in one batch can be very uneven (one busy segment, many quiet ones); a
    single padded matrix would then cost ``n_streams * longest`` cells.
    """
    by_length = np.argsort(-lengths, kind="stable")
    groups: list[IntArray] = []
    begin = 0
    while begin < by_length.size:
        longest = int(lengths[by_length[begin]])
        cumulative = np.cumsum(lengths[by_length[begin:]])
        padded = longest * np.arange(1, cumulative.size + 1)
        fits = np.flatnonzero(padded <= 2 * cumulative + 4096)
        end = begin + int(fits[-1]) + 1 if fits.size else begin + 1
        groups.append(np.sort(by_length[begin:end]))
        begin = end
    return groups


@dataclass
class _Pass:
    """Where each stream of one pass stopped: a detection offset, or -1."""

    detection: IntArray
    settled_width: IntArray
    settled_total: FloatArray


class BatchADWIN:
    """Batched, exact ADWIN over ``n_streams`` independent streams.

    Parameters match ``river.drift.ADWIN``; ``max_buckets`` must be at least 2 and
    ``min_window_length`` at least 1 (river's own guarantees that no bucket row is
    ever empty rely on them).
    """

    def __init__(
        self,
        n_streams: int = 1,
        delta: float = 0.002,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
        track_closest_call: bool = False,
    ) -> None:
        if not isinstance(n_streams, int) or n_streams < 1:
            raise ValueError(f"n_streams must be a positive integer, got {n_streams!r}")
        if not 0.0 < delta < 1.0:
            raise ValueError(f"delta must be in (0, 1), got {delta!r}")
        if not isinstance(clock, int) or clock < 1:
            raise ValueError(f"clock must be a positive integer, got {clock!r}")
        if not isinstance(max_buckets, int) or max_buckets < 2:
            raise ValueError(f"max_buckets must be an integer >= 2, got {max_buckets!r}")
        if not isinstance(min_window_length, int) or min_window_length < 1:
            raise ValueError(
                f"min_window_length must be a positive integer, got {min_window_length!r}"
            )
        if not isinstance(grace_period, int) or grace_period < 0:
            raise ValueError(f"grace_period must be a non-negative integer, got {grace_period!r}")
        self.n_streams = n_streams
        self.delta = float(delta)
        self.clock = clock
        self.max_buckets = max_buckets
        self.min_window_length = min_window_length
        self.grace_period = grace_period
        self.track_closest_call = track_closest_call
        self._delta_primes = DeltaPrimeTable(self.delta, clock)
        self.reset()

    # ------------------------------------------------------------------ state

    def reset(self) -> None:
        """Discard every window, as a freshly built detector."""
        s, m = self.n_streams, self.max_buckets
        self._run_length = np.zeros(s, dtype=np.int64)
        self._total = np.zeros(s, dtype=np.float64)
        self._variance = np.zeros(s, dtype=np.float64)
        self._row_totals = np.zeros((s, 0, m), dtype=np.float64)
        self._row_variances = np.zeros((s, 0, m), dtype=np.float64)
        self._reset_pending = np.zeros(s, dtype=np.bool_)
        self._settled_width = np.zeros(s, dtype=np.int64)
        self._settled_total = np.zeros(s, dtype=np.float64)
        self.n_detections = np.zeros(s, dtype=np.int64)
        self.closest_call = math.inf

    def ensure_streams(self, n_streams: int) -> None:
        """Grow to at least ``n_streams`` streams; new streams start empty."""
        extra = n_streams - self.n_streams
        if extra <= 0:
            return
        for name in (
            "_run_length",
            "_total",
            "_variance",
            "_row_totals",
            "_row_variances",
            "_reset_pending",
            "_settled_width",
            "_settled_total",
            "n_detections",
        ):
            arr = getattr(self, name)
            pad = np.zeros((extra, *arr.shape[1:]), dtype=arr.dtype)
            setattr(self, name, np.concatenate([arr, pad]))
        self.n_streams = n_streams

    @property
    def width(self) -> IntArray:
        """Current window width of every stream, as river reports it."""
        return np.where(self._reset_pending, self._settled_width, self._run_length)

    @property
    def estimation(self) -> FloatArray:
        """Current window mean of every stream (0.0 for an empty window, as river)."""
        width = self.width
        total = np.where(self._reset_pending, self._settled_total, self._total)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = total / width
        return np.where(width > 0, mean, 0.0)

    def state_dict(self) -> State:
        """Parameters and state as plain values and arrays.

        Bucket rows are trimmed to the levels the longest current run uses, so the
        state is canonical: it does not depend on how the input was batched.
        """
        n_levels = n_levels_for(int(self._run_length.max(initial=0)), self.max_buckets)
        return {
            "params": {
                "n_streams": self.n_streams,
                "delta": self.delta,
                "clock": self.clock,
                "max_buckets": self.max_buckets,
                "min_window_length": self.min_window_length,
                "grace_period": self.grace_period,
            },
            "run_length": self._run_length.copy(),
            "total": self._total.copy(),
            "variance": self._variance.copy(),
            "row_totals": self._row_totals[:, :n_levels].copy(),
            "row_variances": self._row_variances[:, :n_levels].copy(),
            "reset_pending": self._reset_pending.copy(),
            "settled_width": self._settled_width.copy(),
            "settled_total": self._settled_total.copy(),
            "n_detections": self.n_detections.copy(),
            "closest_call": self.closest_call,
        }

    def load_state_dict(self, state: State) -> None:
        """Restore ``state_dict`` output; parameters must match this instance's."""
        params = dict(state["params"])
        mine = self.state_dict()["params"]
        for key in ("delta", "clock", "max_buckets", "min_window_length", "grace_period"):
            if params[key] != mine[key]:
                raise ValueError(
                    f"state was saved with {key}={params[key]!r}, this detector has {mine[key]!r}"
                )
        self.n_streams = int(params["n_streams"])
        self._run_length = np.asarray(state["run_length"], dtype=np.int64).copy()
        self._total = np.asarray(state["total"], dtype=np.float64).copy()
        self._variance = np.asarray(state["variance"], dtype=np.float64).copy()
        self._row_totals = np.asarray(state["row_totals"], dtype=np.float64).copy()
        self._row_variances = np.asarray(state["row_variances"], dtype=np.float64).copy()
        self._reset_pending = np.asarray(state["reset_pending"], dtype=np.bool_).copy()
        self._settled_width = np.asarray(state["settled_width"], dtype=np.int64).copy()
        self._settled_total = np.asarray(state["settled_total"], dtype=np.float64).copy()
        self.n_detections = np.asarray(state["n_detections"], dtype=np.int64).copy()
        self.closest_call = float(state["closest_call"])

    # ----------------------------------------------------------------- update

    def update(self, segments: npt.ArrayLike, values: npt.ArrayLike) -> ADWINResult:
        """Feed ``values[i]`` to stream ``segments[i]``, in order, for every ``i``."""
        streams = as_segments(segments, self.n_streams)
        x = np.asarray(values, dtype=np.float64)
        if x.shape != streams.shape:
            raise ValueError(
                f"values must have the same shape as segments, got {x.shape} and {streams.shape}"
            )
        if not np.isfinite(x).all():
            raise ValueError("values must be finite; drop NaN and inf before ADWIN")

        # Stable radix sort on narrow ints is several times faster than on int64.
        key_type = np.int16 if self.n_streams <= np.iinfo(np.int16).max else np.int32
        order = np.argsort(streams.astype(key_type), kind="stable")
        grouped = x[order]
        lengths = np.bincount(streams, minlength=self.n_streams).astype(np.int64)
        starts = np.cumsum(lengths) - lengths
        consumed = np.zeros(self.n_streams, dtype=np.int64)
        positions: list[int] = []
        owners: list[int] = []
        detected = np.zeros(self.n_streams, dtype=np.bool_)

        active = np.flatnonzero(lengths > 0)
        while active.size:
            self._start_new_runs(active)
            still_active: list[IntArray] = []
            for group in _balanced_groups(lengths[active] - consumed[active]):
                streams_g = active[group]
                remaining = lengths[streams_g] - consumed[streams_g]
                # Cells past a row's length hold other streams' values; nothing reads them.
                cols = (starts[streams_g] + consumed[streams_g])[:, None] + np.arange(
                    int(remaining.max())
                )
                chunk = grouped[np.minimum(cols, grouped.size - 1)]
                outcome = self._advance(streams_g, chunk, remaining)
                hit = outcome.detection >= 0
                for row in np.flatnonzero(hit).tolist():
                    stream = int(streams_g[row])
                    at = int(consumed[stream] + outcome.detection[row])
                    positions.append(int(order[starts[stream] + at]))
                    owners.append(stream)
                    consumed[stream] = at + 1
                hit_streams = streams_g[hit]
                detected[hit_streams] = True
                self.n_detections[hit_streams] += 1
                self._reset_pending[hit_streams] = True
                self._settled_width[hit_streams] = outcome.settled_width[hit]
                self._settled_total[hit_streams] = outcome.settled_total[hit]
                still_active.append(hit_streams[consumed[hit_streams] < lengths[hit_streams]])
            active = np.concatenate(still_active)

        pos = np.asarray(positions, dtype=np.int64)
        own = np.asarray(owners, dtype=np.int64)
        by_position = np.argsort(pos, kind="stable")
        return ADWINResult(
            statistic=self.estimation,
            p_value=np.full(self.n_streams, np.nan),
            drift=detected,
            n=self.width,
            drift_positions=pos[by_position],
            drift_streams=own[by_position],
        )

    def _start_new_runs(self, streams: IntArray) -> None:
        """River discards the window on the update after a detection."""
        pending = streams[self._reset_pending[streams]]
        self._run_length[pending] = 0
        self._total[pending] = 0.0
        self._variance[pending] = 0.0
        self._row_totals[pending] = 0.0
        self._row_variances[pending] = 0.0
        self._reset_pending[pending] = False

    def _ensure_levels(self, n_levels: int) -> None:
        have = self._row_totals.shape[1]
        if n_levels > have:
            pad = np.zeros((self.n_streams, n_levels - have, self.max_buckets))
            self._row_totals = np.concatenate([self._row_totals, pad], axis=1)
            self._row_variances = np.concatenate([self._row_variances, pad.copy()], axis=1)

    def _advance(self, streams: IntArray, x: FloatArray, lengths: IntArray) -> _Pass:
        """Run every stream over its values until its first detection (or the end)."""
        m_buckets = self.max_buckets
        start = self._run_length[streams]
        width_before = (start[:, None] + np.arange(x.shape[1])).astype(np.float64)

        totals = np.cumsum(np.concatenate([self._total[streams][:, None], x], axis=1), axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            dv = x - totals[:, :-1] / width_before
            increment = width_before * dv * dv / (width_before + 1.0)
        # River adds no variance for a run's first value (width 1).
        increment[start == 0, 0] = 0.0
        variances = np.cumsum(
            np.concatenate([self._variance[streams][:, None], increment], axis=1), axis=1
        )

        end = start + lengths
        n_levels = n_levels_for(int(end.max()), m_buckets)
        self._ensure_levels(n_levels)
        formed_before = blocks_formed(start, m_buckets, n_levels)
        levels, variance_levels = self._level_arrays(streams, x, lengths, formed_before, n_levels)

        detection = np.full(streams.size, -1, dtype=np.int64)
        check_row, check_col = check_positions(
            start, lengths, self.clock, self.grace_period, self.min_window_length
        )
        for lo in range(0, check_row.size, _CHECK_CHUNK):
            rows = check_row[lo : lo + _CHECK_CHUNK]
            cols = check_col[lo : lo + _CHECK_CHUNK]
            undecided = detection[rows] < 0
            rows, cols = rows[undecided], cols[undecided]
            if rows.size == 0:
                continue
            fired, closest = score_checks(
                rows,
                start[rows] + cols + 1,
                totals[rows, cols + 1],
                variances[rows, cols + 1],
                levels,
                self.max_buckets,
                self.min_window_length,
                self._delta_primes,
                self.track_closest_call,
            )
            self.closest_call = min(self.closest_call, closest)
            first_rows, first_idx = np.unique(rows[fired], return_index=True)
            detection[first_rows] = cols[fired][first_idx]

        settled_width = np.zeros(streams.size, dtype=np.int64)
        settled_total = np.zeros(streams.size, dtype=np.float64)
        hit_rows = np.flatnonzero(detection >= 0)
        if hit_rows.size:
            hit_width = start[hit_rows] + detection[hit_rows] + 1
            hit_cols = detection[hit_rows] + 1
            index, sizes = bucket_index(hit_rows, hit_width, levels, self.max_buckets)
            # One row per window, its buckets oldest first and empty slots moved last.
            index, sizes = index.T, sizes.T
            packed = np.argsort(sizes == 0.0, axis=1, kind="stable")
            index = np.take_along_axis(index, packed, axis=1)
            sizes = np.take_along_axis(sizes, packed, axis=1)
            n_slots = int(np.count_nonzero(sizes, axis=1).max())
            index, sizes = index[:, :n_slots], sizes[:, :n_slots]
            settled = settle_after_cuts(
                sizes,
                levels.flat[index],
                variance_levels.flat[index],
                hit_width.astype(np.float64),
                totals[hit_rows, hit_cols],
                variances[hit_rows, hit_cols],
                self.delta,
                self.min_window_length,
            )
            if not settled.fired.all():
                raise AssertionError("batched and scalar ADWIN disagree on a cut")
            settled_width[hit_rows] = settled.width.astype(np.int64)
            settled_total[hit_rows] = settled.total

        keep = np.flatnonzero(detection < 0)
        self._run_length[streams[keep]] = end[keep]
        self._total[streams[keep]] = totals[keep, lengths[keep]]
        self._variance[streams[keep]] = variances[keep, lengths[keep]]
        if keep.size:
            # Keep, per level, exactly the buckets river holds at the end of the batch.
            index = slot_index(keep, end[keep], levels, self.max_buckets).index
            index = index.transpose(2, 0, 1)
            self._row_totals[streams[keep], :n_levels] = levels.flat[index]
            self._row_variances[streams[keep], :n_levels] = variance_levels.flat[index]
        return _Pass(detection, settled_width, settled_total)

    def _level_arrays(
        self,
        streams: IntArray,
        x: FloatArray,
        lengths: IntArray,
        formed_before: IntArray,
        n_levels: int,
    ) -> tuple[LevelArrays, LevelArrays]:
        """Per level: the stored row followed by every block this batch completes.

        Column 0 of level ``i`` is block ``2 * J_{i+1}`` (the oldest bucket of row ``i``),
        which is even, so pairing adjacent columns yields aligned level ``i + 1`` blocks
        that continue row ``i + 1`` exactly where it ended. Returns the bucket totals
        and the bucket variances, in the same layout.
        """
        rows = streams.size
        stored_counts = (formed_before[:, :-1] - 2 * formed_before[:, 1:]).T.copy()
        # Every level's width is known up front, so all levels are written straight
        # into one flat buffer per plane (totals, variances), ending in a zero slot.
        new_lengths = [lengths]
        for level in range(n_levels - 1):
            new_lengths.append((stored_counts[level] + new_lengths[-1]) >> 1)
        widths = np.array(
            [int((stored_counts[i] + new_lengths[i]).max()) for i in range(n_levels)],
            dtype=np.int64,
        )
        offsets = np.cumsum(widths * rows) - widths * rows
        flat = np.empty((2, int(widths.sum()) * rows + 1))
        flat[:, -1] = 0.0
        # Plane 0 holds bucket totals, plane 1 bucket variances: one gather and one
        # pairwise sum serve both.
        stored_rows = np.stack([self._row_totals[streams], self._row_variances[streams]])
        new_blocks = x[None]
        for level in range(n_levels):
            begin, width = int(offsets[level]), int(widths[level])
            blocks = flat[:, begin : begin + rows * width].reshape(2, rows, width)
            if level == 0:
                # Single items carry variance 0.0, so a level-1 merge is 0.0 + 0.0 + temp.
                ragged_concat(stored_rows[:1, :, 0], stored_counts[0], new_blocks, blocks[:1])
                blocks[1] = 0.0
            else:
                ragged_concat(stored_rows[:, :, level], stored_counts[level], new_blocks, blocks)
            pairs = width // 2
            older, newer = blocks[:, :, 0 : 2 * pairs : 2], blocks[:, :, 1 : 2 * pairs : 2]
            if level == 0:
                # Dividing by a size of 1.0 is exact, so level 0 skips it.
                new_blocks = np.empty((2, rows, pairs))
                np.add(older[0], newer[0], out=new_blocks[0])
                gap = np.subtract(older[0], newer[0], out=new_blocks[1])
                np.multiply(0.5 * gap, gap, out=new_blocks[1])
            else:
                size = float(1 << level)
                gap = older[0] / size - newer[0] / size
                new_blocks = older + newer
                new_blocks[1] += size * 0.5 * gap * gap
        lo = 2 * formed_before[:, 1:].T
        return (
            LevelArrays(flat[0], offsets, widths, lo),
            LevelArrays(flat[1], offsets, widths, lo),
        )
