"""Segment keys to dense ids, with a cardinality cap.

Metric labels only ever carry values from this table, never raw user input; past
the cap, new keys share the ``__other__`` segment and the overflow is counted.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

OTHER = "__other__"
MAX_LABEL_LENGTH = 120


class SegmentTable:
    """Maps segment key strings to dense ids ``0..n-1``; id 0 is always ``__other__``."""

    def __init__(self, max_segments: int) -> None:
        if max_segments < 1:
            raise ValueError(f"max_segments must be >= 1, got {max_segments}")
        self.max_segments = max_segments
        self._ids: dict[str, int] = {OTHER: 0}
        self._names: list[str] = [OTHER]
        self.overflow = 0

    def __len__(self) -> int:
        return len(self._names)

    @property
    def names(self) -> Sequence[str]:
        """Segment names by id."""
        return tuple(self._names)

    def ids(self, keys: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Dense ids for a batch of keys; only the distinct keys are looked up."""
        arr = np.asarray(keys, dtype=object)
        if arr.size == 0:
            return np.zeros(0, dtype=np.int64)
        uniques, inverse = np.unique(arr.astype(str), return_inverse=True)
        counts = np.bincount(inverse, minlength=uniques.size).tolist()
        mapped = np.empty(uniques.size, dtype=np.int64)
        for i, key in enumerate(uniques.tolist()):
            mapped[i] = self._lookup(key, counts[i])
        return mapped[inverse]

    def _lookup(self, key: str, count: int) -> int:
        found = self._ids.get(key)
        if found is not None:
            return found
        if len(self._names) > self.max_segments or len(key) > MAX_LABEL_LENGTH:
            self.overflow += count
            return 0
        self._ids[key] = len(self._names)
        self._names.append(key)
        return self._ids[key]

    def state_dict(self) -> dict[str, object]:
        """Names in id order, and the overflow count."""
        return {"names": list(self._names), "overflow": self.overflow}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore ``state_dict`` output."""
        names = list(state["names"])  # type: ignore[call-overload]
        self._names = [str(n) for n in names]
        self._ids = {n: i for i, n in enumerate(self._names)}
        self.overflow = int(state["overflow"])  # type: ignore[call-overload]
