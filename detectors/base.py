"""Shared result type and detector protocol.

Every detector is a small class shaped like river's: arguments are validated in
``__init__``, state is plain numpy arrays, ``update(segments, values)`` takes a whole
batch of rows and returns a frozen result, and the state can be exported to a dict
of plain values and arrays (for checkpoints) and restored from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

State = dict[str, Any]


@dataclass(frozen=True)
class DriftResult:
    """The outcome of one ``update``, in the way scipy returns ``KstestResult``.

    Arrays are indexed ``[segment]`` or ``[segment, feature]``. ``p_value`` is NaN where
    the method has none (PSI, Jensen-Shannon, ADWIN); ``n`` is the number of samples
    behind each statistic.
    """

    statistic: FloatArray
    p_value: FloatArray
    drift: BoolArray
    n: IntArray


@runtime_checkable
class Detector(Protocol):
    """What the shared contract suite checks on every detector."""

    def update(self, segments: npt.ArrayLike, values: npt.ArrayLike) -> object:
        """Consume a batch of rows (segment id per row, value or feature row); its result
        (a frozen dataclass: ``DriftResult``, or the engine's ``WindowScores``)."""
        ...

    def reset(self) -> None:
        """Forget everything seen since construction."""
        ...

    def state_dict(self) -> State:
        """Export the full state as plain values and numpy arrays."""
        ...

    def load_state_dict(self, state: State) -> None:
        """Restore a state exported by ``state_dict``."""
        ...


def as_segments(segments: npt.ArrayLike, n_segments: int) -> IntArray:
    """Validate a vector of dense segment ids and return it as int64."""
    seg = np.asarray(segments)
    if seg.ndim != 1:
        raise ValueError(f"segments must be one-dimensional, got shape {seg.shape}")
    if seg.size and not np.issubdtype(seg.dtype, np.integer):
        raise TypeError(f"segments must be integers, got dtype {seg.dtype}")
    seg = seg.astype(np.int64, copy=False)
    if seg.size and (int(seg.min()) < 0 or int(seg.max()) >= n_segments):
        raise ValueError(
            f"segment ids must lie in [0, {n_segments}), got [{seg.min()}, {seg.max()}]"
        )
    return seg
