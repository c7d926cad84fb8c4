"""Vectorized binning of a float feature matrix on the bins of a set of feature profiles.

Layout shared with the sketch: feature ``f`` owns the ``stride = width + 1`` slots
``f*stride .. f*stride + width``; slot ``k < n_bins[f]`` is bin ``k`` and slot ``width`` counts
missing values (NaN, +inf, -inf). Slots between ``n_bins[f]`` and ``width`` stay empty.

Speed. ``np.searchsorted`` costs about 55 ns per value on a 100-edge grid with random
keys, which alone misses the sketch's throughput target. Each feature therefore gets
a uniform lookup grid over its edge range: a value's grid cell gives the number of
edges in earlier cells, and at most ``steps`` exact comparisons against the true edges
finish the job. The result is exact, not approximate: the cell index is a monotone
function of the value computed with the same float operations for values and edges,
so an edge in an earlier cell is strictly below the value and an edge in a later cell
strictly above it; only edges sharing the value's cell need comparing. Features whose
edges crowd too many into one cell even on the finest grid (extreme tails) keep
``np.searchsorted``. All features go through each pass together, in feature-major
chunks, so the Python overhead per batch does not grow with the number of features.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from detectors.base import BoolArray, FloatArray, IntArray
from detectors.feature_profiles import FeatureProfile, NumericProfile

# Values per chunk: bounds the temporaries (a few arrays of this many elements) so they
# stay in cache. 32k-128k measured best on the target machine, within noise.
CHUNK_VALUES = 1 << 16
_MIN_CELLS = 64
_MAX_CELLS = 16_384  # 128 KiB of int64 per feature; finer grids fall out of cache
_MAX_STEPS = 4  # beyond this many comparisons searchsorted is as fast


def _cells(
    values: FloatArray,
    lo: FloatArray | np.float64,
    scale: FloatArray | np.float64,
    last: FloatArray | np.float64,
) -> IntArray:
    """Grid cell of each value; ``lo``, ``scale``, ``last`` broadcast against ``values``.

    The one place cells are computed, for edges and values alike: exactness depends on
    both going through the same float operations.
    """
    with np.errstate(all="ignore"):
        t = (values - lo) * scale
    np.fmax(t, 0.0, out=t)  # NaN -> 0; non-finite values are overwritten as missing later
    np.fmin(t, last, out=t)
    return t.astype(np.intp)


def _grid(edges: FloatArray) -> tuple[float, float, IntArray, int] | None:
    """The coarsest grid with at most one edge per cell, else the finest one allowed.

    Returns ``lo``, ``scale``, the number of edges before each cell, and the most edges
    in one cell; None when even the finest grid crowds more than ``_MAX_STEPS`` edges
    into one cell.
    """
    lo, hi = (float(edges[0]), float(edges[-1])) if edges.size else (0.0, 0.0)
    n_cells = _MIN_CELLS
    while True:
        scale = n_cells / (hi - lo) if hi > lo else 0.0
        cells = _cells(edges, np.float64(lo), np.float64(scale), np.float64(n_cells - 1))
        per_cell = np.bincount(cells, minlength=n_cells)
        steps = int(per_cell.max(initial=0))
        if steps <= 1 or n_cells >= _MAX_CELLS:
            break
        n_cells *= 2
    if steps > _MAX_STEPS:
        return None
    before = np.concatenate([[0], np.cumsum(per_cell)[:-1]]).astype(np.intp)
    return lo, scale, before, steps


class Binner:
    """Bins rows of a float64 matrix ``X[row, feature]`` on the profiles' bins.

    Numeric columns hold the raw value; categorical columns hold the code from
    ``CategoricalProfile.codes`` (bin ``k`` is code ``k``, so categorical bins are found
    with edges at ``0.5, 1.5, ...``; a code beyond the categories falls in ``__other__``).
    NaN and infinities are missing and never reach a bin; finite values outside the
    reference range fall in the open end bins.
    """

    def __init__(self, profiles: Sequence[FeatureProfile]) -> None:
        self.profiles: tuple[FeatureProfile, ...] = tuple(profiles)
        if not self.profiles:
            raise ValueError("at least one feature profile is required")
        self.n_features = len(self.profiles)
        self.n_bins: IntArray = np.array([p.n_bins for p in self.profiles], dtype=np.int64)
        self.width = int(self.n_bins.max())
        self.stride = self.width + 1
        self.n_coarse: IntArray = np.array([p.n_coarse for p in self.profiles], dtype=np.int64)
        self.coarse_width = int(self.n_coarse.max())

        self._edges = [self._search_edges(p) for p in self.profiles]
        # All features' edges in one array at their slot offsets, each followed by +inf
        # so that the correction steps stop at the end of a feature's edges.
        self._all_edges = np.full(self.n_features * self.stride, np.inf)
        for f, e in enumerate(self._edges):
            self._all_edges[f * self.stride : f * self.stride + e.size] = e
        self._plan_search()

        groups = [p.coarse_starts + f * self.stride for f, p in enumerate(self.profiles)]
        ends = [f * self.stride + p.n_bins for f, p in enumerate(self.profiles)]
        # reduceat over the flat (feature, slot) axis: each feature contributes its coarse
        # groups plus one group of padding and missing slots, which is dropped afterwards.
        self._reduce_at = np.concatenate(
            [np.append(g, e) for g, e in zip(groups, ends, strict=True)]
        )
        keep = np.ones(self._reduce_at.size, dtype=np.bool_)
        keep[np.cumsum([g.size + 1 for g in groups]) - 1] = False
        self._coarse_pos = np.flatnonzero(keep)
        self._coarse_feature = np.repeat(np.arange(self.n_features), self.n_coarse)
        self._coarse_bin = np.concatenate([np.arange(n) for n in self.n_coarse])

        digest = hashlib.sha256()
        for p, e in zip(self.profiles, self._edges, strict=True):
            digest.update(f"{p.kind}:{p.n_bins}:{p.n_coarse}:".encode())
            digest.update(e.tobytes())
            digest.update(p.coarse_starts.tobytes())
        self.fingerprint = digest.hexdigest()[:16]

    @staticmethod
    def _search_edges(profile: FeatureProfile) -> FloatArray:
        if isinstance(profile, NumericProfile):
            return np.asarray(profile.edges, dtype=np.float64)
        return np.arange(profile.n_bins - 1, dtype=np.float64) + 0.5

    def check(self, X: npt.ArrayLike) -> FloatArray:
        """``X`` as a float64 matrix with one column per feature."""
        arr = np.asarray(X, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != self.n_features:
            raise ValueError(f"X must have shape (n, {self.n_features}), got {arr.shape}")
        return arr

    def _plan_search(self) -> None:
        """Per-feature grid parameters as ``(F, 1)`` columns, and one table of all grids."""
        n = self.n_features
        self._lo = np.zeros((n, 1))
        self._scale = np.zeros((n, 1))
        self._last = np.zeros((n, 1))
        self._table_at = np.zeros((n, 1), dtype=np.intp)
        self._missing_slot = (np.arange(n, dtype=np.int64) * self.stride + self.width)[:, None]
        self.searchsorted_features: list[int] = []
        tables, size, self.steps = [], 0, 0
        for f, edges in enumerate(self._edges):
            grid = _grid(edges)
            if grid is None:
                # One cell whose answer is overwritten by searchsorted.
                self.searchsorted_features.append(f)
                grid = (0.0, 0.0, np.zeros(1, dtype=np.intp), 0)
            lo, scale, before, steps = grid
            self._lo[f], self._scale[f], self._last[f] = lo, scale, before.size - 1
            self._table_at[f] = size
            tables.append(before + f * self.stride)
            size += before.size
            self.steps = max(self.steps, steps)
        self._table = np.concatenate(tables)

    def flat_slots(self, X: npt.ArrayLike, row_offset: IntArray | None = None) -> IntArray:
        """Feature-major ``(F, n)`` slot indices ``f*stride + slot``, plus ``row_offset[row]``."""
        X = self.check(X)
        n = X.shape[0]
        out = np.empty((self.n_features, n), dtype=np.int64)
        rows = max(1, CHUNK_VALUES // self.n_features)
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            # Feature-major: every pass below runs over all features at once.
            cols = np.ascontiguousarray(X[start:stop].T)
            cells = _cells(cols, self._lo, self._scale, self._last)
            cells += self._table_at
            slots = np.take(self._table, cells)
            # Each step moves past one more edge of the value's own cell; a feature
            # needing fewer steps stops at an edge above the value (or the +inf pad).
            for _ in range(self.steps):
                slots += np.take(self._all_edges, slots) < cols
            for f in self.searchsorted_features:
                np.add(np.searchsorted(self._edges[f], cols[f]), f * self.stride, out=slots[f])
            np.copyto(slots, self._missing_slot, where=~np.isfinite(cols))
            if row_offset is None:
                out[:, start:stop] = slots
            else:
                np.add(slots, row_offset[start:stop], out=out[:, start:stop])
        return out

    def bin(self, X: npt.ArrayLike) -> tuple[IntArray, BoolArray]:
        """Bin codes ``(n, F)`` and the missing mask; codes of missing values are -1."""
        slots = self.flat_slots(X).T - np.arange(self.n_features) * self.stride
        missing = slots == self.width
        slots[missing] = -1
        return slots, missing

    def coarsen(self, fine: npt.NDArray[np.int64]) -> IntArray:
        """Coarse counts ``(..., F, coarse_width)`` from slot counts ``(..., F, stride)``."""
        lead = fine.shape[:-2]
        flat = fine.reshape(*lead, self.n_features * self.stride)
        groups = np.add.reduceat(flat, self._reduce_at, axis=-1)
        out = np.zeros((*lead, self.n_features, self.coarse_width), dtype=np.int64)
        out[..., self._coarse_feature, self._coarse_bin] = groups[..., self._coarse_pos]
        return out

    def reference_slots(self) -> IntArray:
        """The profiles' reference counts in slot layout ``(F, stride)``, missing included."""
        ref = np.zeros((self.n_features, self.stride), dtype=np.int64)
        for f, p in enumerate(self.profiles):
            ref[f, : p.n_bins] = p.counts
            ref[f, self.width] = p.n_missing
        return ref
