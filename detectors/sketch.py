"""Count sketches per segment and feature.

A sketch is a tensor of integer counts. Counts add, so sketches of disjoint event
sets merge by addition: across Kafka partitions, across batches and across panes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from detectors.base import IntArray, State, as_segments
from detectors.binning import Binner
from detectors.feature_profiles import FeatureProfile
from detectors.values import check_int


def _binner(profiles: Binner | Sequence[FeatureProfile]) -> Binner:
    return profiles if isinstance(profiles, Binner) else Binner(profiles)


def _readonly(arr: npt.NDArray[np.int64]) -> IntArray:
    view = arr.view()
    view.flags.writeable = False
    return view


class Sketch:
    """``counts[segment, feature, bin]``, ``missing[segment, feature]`` and ``rows[segment]``.

    Internally one int64 tensor ``(segment, feature, stride)`` in the binner's slot
    layout: the missing count of a feature is its last slot, so one ``np.bincount`` per
    batch fills bins and missing counts together. ``rows`` is derived from it (every row
    is either binned or missing in each feature), so it cannot drift out of step.
    """

    def __init__(self, profiles: Binner | Sequence[FeatureProfile], n_segments: int = 1) -> None:
        self.binner = _binner(profiles)
        n_segments = check_int("n_segments", n_segments, 1)
        self._data = np.zeros((n_segments, self.binner.n_features, self.binner.stride), np.int64)

    @classmethod
    def from_reference(cls, profiles: Binner | Sequence[FeatureProfile]) -> Sketch:
        """A one-segment sketch holding the profiles' reference counts."""
        sketch = cls(profiles, 1)
        sketch._data[0] = sketch.binner.reference_slots()
        return sketch

    @property
    def n_segments(self) -> int:
        """Number of segments currently held."""
        return int(self._data.shape[0])

    @property
    def counts(self) -> IntArray:
        """Read-only view ``[segment, feature, bin]``; bins past a feature's ``n_bins`` are 0."""
        return _readonly(self._data[:, :, : self.binner.width])

    @property
    def missing(self) -> IntArray:
        """Read-only view ``[segment, feature]`` of missing, null, NaN and infinite values."""
        return _readonly(self._data[:, :, self.binner.width])

    @property
    def rows(self) -> IntArray:
        """Rows seen per segment."""
        return np.asarray(self._data[:, 0, :].sum(axis=1), dtype=np.int64)

    @property
    def n(self) -> IntArray:
        """Non-missing values per ``[segment, feature]``."""
        return np.asarray(self._data[:, :, : self.binner.width].sum(axis=2), dtype=np.int64)

    def update(self, segments: npt.ArrayLike, X: npt.ArrayLike) -> None:
        """Count a batch: ``segments[row]`` dense segment ids, ``X[row, feature]`` float values.

        One binning pass and one ``np.bincount``; transient memory is 8 bytes per value.
        """
        seg = as_segments(segments, self.n_segments)
        values = self.binner.check(X)
        if values.shape[0] != seg.size:
            raise ValueError(f"got {seg.size} segment ids for {values.shape[0]} rows")
        if seg.size == 0:
            return
        # Count only over the span of segments present: a batch touching a few of many
        # segments then costs nothing for the others.
        first, last = int(seg.min()), int(seg.max()) + 1
        block = self._data[first:last]
        slots = self.binner.flat_slots(values, (seg - first) * block[0].size)
        block += np.bincount(slots.ravel(), minlength=block.size).reshape(block.shape)

    def ensure_segments(self, n_segments: int) -> None:
        """Grow to at least ``n_segments`` segments; new segments start empty."""
        n_segments = check_int("n_segments", n_segments, 1)
        if n_segments > self.n_segments:
            grown = np.zeros((n_segments, *self._data.shape[1:]), dtype=np.int64)
            grown[: self.n_segments] = self._data
            self._data = grown

    def merge(self, other: Sketch) -> Sketch:
        """A new sketch holding the sum of both; neither operand changes.

        The result has as many segments as the larger operand.
        """
        if other.binner.fingerprint != self.binner.fingerprint:
            raise ValueError("cannot merge sketches built on different profiles")
        big, small = (self, other) if self.n_segments >= other.n_segments else (other, self)
        out = big.copy()
        out._data[: small.n_segments] += small._data
        return out

    def copy(self) -> Sketch:
        """An independent copy sharing the (immutable) binner."""
        out = Sketch(self.binner, self.n_segments)
        out._data[...] = self._data
        return out

    def reset(self) -> None:
        """Zero every count, keeping the segments."""
        self._data[...] = 0

    def coarse_counts(self) -> IntArray:
        """Counts on the coarse (PSI) bins, ``[segment, feature, coarse_bin]``, zero-padded."""
        return self.binner.coarsen(self._data)

    def state_dict(self) -> State:
        """Counts plus the profile fingerprint they were made against."""
        return {"fingerprint": self.binner.fingerprint, "counts": self._data.copy()}

    def load_state_dict(self, state: State) -> None:
        """Restore ``state_dict`` output; refuses state made against other profiles."""
        if state.get("fingerprint") != self.binner.fingerprint:
            raise ValueError(
                f"sketch state was made against profiles {state.get('fingerprint')!r}, "
                f"these are {self.binner.fingerprint!r}"
            )
        data = np.asarray(state["counts"])
        expected = (self.binner.n_features, self.binner.stride)
        if data.ndim != 3 or data.shape[1:] != expected or data.shape[0] < 1:
            raise ValueError(
                f"sketch state counts must have shape (S, *{expected}), got {data.shape}"
            )
        self._data = data.astype(np.int64, copy=True)
