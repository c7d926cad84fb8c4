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
  so tests can show that no check sat on a knife edge either.
* A detection ends the run: river's wrapper discards the window on the next
  update. The width and estimation river reports right after a detection come from
  its delete-and-rescan loop, replayed by ``adwin_scalar`` once per detection.

Memory per stream is river's own: at most ``max_buckets`` totals and variances per row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from detectors.adwin_checks import LevelArrays, bucket_index, check_positions, score_checks
from detectors.adwin_layout import blocks_formed, n_levels_for, ragged_concat
from detectors.adwin_scalar import settle_after_cut
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
        width_after = (start[:, None] + np.arange(1, x.shape[1] + 1)).astype(np.float64)

        totals = np.cumsum(np.concatenate([self._total[streams][:, None], x], axis=1), axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            dv = x - totals[:, :-1] / (width_after - 1.0)
            increment = (width_after - 1.0) * dv * dv / width_after
        increment = np.where(width_after > 1.0, increment, 0.0)
        variances = np.cumsum(
            np.concatenate([self._variance[streams][:, None], increment], axis=1), axis=1
        )

        end = start + lengths
        n_levels = n_levels_for(int(end.max()), m_buckets)
        self._ensure_levels(n_levels)
        formed_before = blocks_formed(start, m_buckets, n_levels)
        level_totals, level_variances, level_lo = self._level_arrays(
            streams, x, lengths, formed_before, n_levels
        )

        detection = np.full(streams.size, -1, dtype=np.int64)
        levels = LevelArrays.build(level_totals, level_lo)
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
                self.delta,
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
            index, sizes = bucket_index(hit_rows, hit_width, levels, self.max_buckets)
            bucket_totals = levels.flat[index]
            bucket_variances = LevelArrays.build(level_variances, level_lo).flat[index]
            for j, row in enumerate(hit_rows.tolist()):
                k = int(detection[row])
                present = sizes[:, j] > 0
                settled = settle_after_cut(
                    sizes[present, j],
                    bucket_totals[present, j],
                    bucket_variances[present, j],
                    float(hit_width[j]),
                    float(totals[row, k + 1]),
                    float(variances[row, k + 1]),
                    self.delta,
                    self.min_window_length,
                )
                if not settled.fired:
                    raise AssertionError("batched and scalar ADWIN disagree on a cut")
                settled_width[row] = int(settled.width)
                settled_total[row] = settled.total

        keep = detection < 0
        self._store_rows(
            streams[keep],
            end[keep],
            totals[keep, lengths[keep]],
            variances[keep, lengths[keep]],
            [t[keep] for t in level_totals],
            [v[keep] for v in level_variances],
            [lo_[keep] for lo_ in level_lo],
        )
        return _Pass(detection, settled_width, settled_total)

    def _level_arrays(
        self,
        streams: IntArray,
        x: FloatArray,
        lengths: IntArray,
        formed_before: IntArray,
        n_levels: int,
    ) -> tuple[list[FloatArray], list[FloatArray], list[IntArray]]:
        """Per level: the stored row followed by every block this batch completes.

        Column 0 of level ``i`` is block ``2 * J_{i+1}`` (the oldest bucket of row ``i``),
        which is even, so pairing adjacent columns yields aligned level ``i + 1`` blocks
        that continue row ``i + 1`` exactly where it ended.
        """
        new_tot, new_var, new_len = x, x, lengths
        level_totals: list[FloatArray] = []
        level_variances: list[FloatArray] = []
        level_lo: list[IntArray] = []
        for level in range(n_levels):
            stored = formed_before[:, level] - 2 * formed_before[:, level + 1]
            tot = ragged_concat(self._row_totals[streams, level], stored, new_tot, new_len)
            if level == 0:
                # Single items carry variance 0.0, so a level-1 merge is 0.0 + 0.0 + temp.
                var = np.zeros_like(tot)
            else:
                var = ragged_concat(self._row_variances[streams, level], stored, new_var, new_len)
            level_totals.append(tot)
            level_variances.append(var)
            level_lo.append(2 * formed_before[:, level + 1])
            pairs = tot.shape[1] // 2
            size = float(1 << level)
            older, newer = tot[:, 0 : 2 * pairs : 2], tot[:, 1 : 2 * pairs : 2]
            gap = older / size - newer / size
            new_tot = older + newer
            new_var = var[:, 0 : 2 * pairs : 2] + var[:, 1 : 2 * pairs : 2] + size * 0.5 * gap * gap
            new_len = (stored + new_len) // 2
        return level_totals, level_variances, level_lo

    def _store_rows(
        self,
        streams: IntArray,
        end: IntArray,
        total: FloatArray,
        variance: FloatArray,
        level_totals: list[FloatArray],
        level_variances: list[FloatArray],
        level_lo: list[IntArray],
    ) -> None:
        """Keep, per level, exactly the buckets river holds at the end of the batch."""
        self._run_length[streams] = end
        self._total[streams] = total
        self._variance[streams] = variance
        if streams.size == 0:
            return
        n_levels = len(level_totals)
        formed = blocks_formed(end, self.max_buckets, n_levels)
        slot = np.arange(self.max_buckets)
        for level in range(n_levels):
            count = formed[:, level] - 2 * formed[:, level + 1]
            present = slot < count[:, None]
            if level_totals[level].shape[1] == 0:
                self._row_totals[streams, level] = 0.0
                self._row_variances[streams, level] = 0.0
                continue
            col = 2 * formed[:, level + 1] - level_lo[level]
            idx = np.where(present, col[:, None] + slot, 0)
            r = np.arange(streams.size)[:, None]
            self._row_totals[streams, level] = np.where(present, level_totals[level][r, idx], 0.0)
            self._row_variances[streams, level] = np.where(
                present, level_variances[level][r, idx], 0.0
            )
