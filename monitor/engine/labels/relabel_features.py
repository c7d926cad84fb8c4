"""The features of the events that could become relabel tasks, kept until their label comes.

A relabel task shows the event's features (``labels.relabel``), but the join keeps only
a pending event's prediction. Keeping every pending event's features would cost as much
as the join itself, so :class:`RelabelFeatures` keeps those of the events that *can*
become suspicious: with the reference's confident-learning thresholds that is known from
the prediction alone (:func:`detectors.perf_relabel.could_be_suspicious`), before the
label arrives. What is kept, per event, is the decoded values of its scalar features,
straight from the batch's columns (no JSON is parsed again): the numeric features as
floats (missing ones NaN, written as null) and the categorical ones as strings or None,
the first ``labels.relabel.max_features`` of them in the decoder's order (numeric first).
Vector features are left out: the event id finds them in the event store.

**Bounded.** At most ``labels.relabel.feature_events`` events, in slot arrays (one
column per feature, as the join's pending side: :class:`PendingSide`). An entry leaves
when its pair is joined (:meth:`RelabelFeatures.take`), when the pending prediction
expires (the join's cutoff, :meth:`RelabelFeatures.expire`), or, when the store is full,
oldest first (event time, then arrival) to make room for a newer one. So memory is
``O(feature_events x max_features)`` whatever the stream.

**Not checkpointed.** The store can hold tens of megabytes, so it is not part of the
checkpoint: after a restart it starts empty, and the pairs of predictions read before it
become tasks without features. A task without features is still written, and counted by
the reason its features are missing (:data:`MISSING_REASONS`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import structlog

from detectors.base import FloatArray, IntArray
from detectors.label_noise import ConfidentThresholds
from detectors.perf_relabel import RESERVED_KEYS, could_be_suspicious
from monitor.engine.labels.pending import PendingSide

__all__ = [
    "MISSING_REASONS",
    "RESERVED_NAMES",
    "EventFeatures",
    "RelabelFeatures",
    "TakenFeatures",
]

MISSING_REASONS: Final = ("store_full", "restart", "not_captured")
"""Why a task has no features: pushed out of a full store (``store_full``); the prediction
came before this process started or restored its state (``restart``); or it was never
kept (``not_captured``: the caller handed no features, or an earlier event with the same
id took its place)."""
RESERVED_NAMES: Final = RESERVED_KEYS | {"segment"}
"""Task ``data`` keys driftd sets itself; a feature of that name is kept as ``feature.<name>``."""

_log = structlog.get_logger()


@dataclass(frozen=True)
class EventFeatures:
    """A batch's decoded scalar features, as columns: ``numeric`` is ``(n, len(numeric_names))``,
    each ``categorical`` value a list of ``n`` strings or None."""

    numeric_names: tuple[str, ...]
    numeric: FloatArray
    categorical: Mapping[str, Sequence[str | None]]
    rows: IntArray | None = None
    """The batch rows of the events, where they are a selection of the columns' rows."""

    def take(self, rows: npt.ArrayLike) -> EventFeatures:
        """The events ``rows`` (of this selection), in that order; no column is copied."""
        index = np.asarray(rows, dtype=np.int64)
        chosen = index if self.rows is None else self.rows[index]
        return EventFeatures(self.numeric_names, self.numeric, self.categorical, chosen)


class TakenFeatures:
    """The features of joined events, taken out of the store: ``row(event_id)``."""

    def __init__(
        self, index: dict[str, int], names: tuple[str, ...], columns: list[npt.NDArray[Any]]
    ) -> None:
        self._index = index
        self._names = names
        self._columns = columns

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._index

    def __len__(self) -> int:
        return len(self._index)

    def row(self, event_id: str) -> dict[str, object] | None:
        """The event's features by name (NaN as None), or None if they were not kept."""
        at = self._index.get(event_id)
        if at is None:
            return None
        out: dict[str, object] = {}
        for name, column in zip(self._names, self._columns, strict=True):
            value = column[at]
            if isinstance(value, np.floating | float):
                value = float(value)
                out[name] = value if math.isfinite(value) else None
            else:
                out[name] = value
        return out


_NOTHING_TAKEN = TakenFeatures({}, (), [])


class RelabelFeatures:
    """The features of events that may become relabel tasks (see the module docstring)."""

    def __init__(
        self, thresholds: ConfidentThresholds, capacity: int, max_features: int, model: str = ""
    ) -> None:
        if capacity <= 0 or max_features <= 0:
            raise ValueError("capacity and max_features must be > 0")
        self.thresholds = thresholds
        self.capacity = int(capacity)
        self.max_features = int(max_features)
        self.model = model
        self._layout: tuple[tuple[str, ...], tuple[str, ...]] | None = None
        self._names: tuple[str, ...] = ()
        self._side = PendingSide(self.capacity, {})
        self._seq = 0
        self.kept = 0
        """Events whose features were stored, since start."""
        self.evicted = 0
        """Entries pushed out of the full store before their label came."""
        self.expired = 0
        """Entries dropped with their expired pending prediction."""
        self._evicted_ts = -math.inf  # the newest event time pushed out of a full store
        self._first_ts = math.inf  # the oldest event time stored since start (or restore)
        self.restored = False
        """Whether the label side was restored from a checkpoint (its store then was lost)."""

    def __len__(self) -> int:
        return len(self._side)

    # -- at event time ---------------------------------------------------------------

    def keep(
        self,
        ids: Sequence[str],
        prediction: npt.ArrayLike,
        ts: npt.ArrayLike,
        features: EventFeatures,
    ) -> int:
        """Store the features of the events that could become suspicious; how many."""
        scores = np.asarray(prediction, dtype=np.float64)
        chosen = np.flatnonzero(could_be_suspicious(self.thresholds, scores))
        if not chosen.size:
            return 0
        columns = self._columns(
            features, chosen if features.rows is None else features.rows[chosen]
        )
        id_list = list(ids)
        chosen_ids = [id_list[i] for i in chosen.tolist()]
        times = np.asarray(ts, dtype=np.float64)[chosen]
        seq = np.arange(self._seq, self._seq + chosen.size, dtype=np.int64)
        self._seq += int(chosen.size)
        side = self._side
        _, evicted = side.insert(chosen_ids, times, seq, columns)
        if evicted:
            self.evicted += evicted
            # Oldest first: whatever was pushed out is no newer than what is left.
            live = side.ts[: side.hwm]
            self._evicted_ts = max(self._evicted_ts, float(live[live < math.inf].min()))
        self.kept += int(chosen.size)
        self._first_ts = min(self._first_ts, float(times.min()))
        return int(chosen.size)

    def _columns(self, features: EventFeatures, rows: IntArray) -> dict[str, npt.NDArray[Any]]:
        """The store's columns of ``rows``; a new layout (the decoder changed) starts over."""
        layout = (features.numeric_names, tuple(features.categorical))
        if layout != self._layout:
            self._start(layout)
        numeric, categorical = layout
        out: dict[str, npt.NDArray[Any]] = {}
        for j, name in enumerate(numeric[: self.max_features]):
            out[name] = features.numeric[rows, j]
        pick = itemgetter(*rows.tolist())  # C-level gathering of the chosen rows
        for name in categorical[: max(0, self.max_features - len(numeric))]:
            column = np.empty(rows.size, dtype=object)
            column[:] = (
                pick(features.categorical[name])
                if rows.size > 1
                else [features.categorical[name][int(rows[0])]]
            )
            out[name] = column
        return out

    def _start(self, layout: tuple[tuple[str, ...], tuple[str, ...]]) -> None:
        numeric, categorical = layout
        kept_numeric = numeric[: self.max_features]
        kept_categorical = categorical[: max(0, self.max_features - len(numeric))]
        dtypes: dict[str, type[np.generic]] = dict.fromkeys(kept_numeric, np.float64)
        dtypes.update(dict.fromkeys(kept_categorical, np.object_))
        if len(self._side):
            _log.info(  # the decoder changed (the end of a warm-up): the old columns go
                "relabel_features_dropped", model=self.model, events=len(self._side)
            )
        self._layout = layout
        self._names = tuple(
            f"feature.{name}" if name in RESERVED_NAMES else name for name in dtypes
        )
        self._side = PendingSide(self.capacity, dtypes)
        left_out = len(numeric) + len(categorical) - len(dtypes)
        if left_out:
            _log.warning(
                "relabel_features_cut",
                model=self.model,
                kept=len(dtypes),
                left_out=left_out,
                hint="labels.relabel.max_features bounds the features copied into a task",
            )

    # -- at join time ----------------------------------------------------------------

    def take(self, ids: Sequence[str]) -> TakenFeatures:
        """Remove the joined ``ids``; the features of those that were kept."""
        side = self._side
        if not ids or not len(side):
            return _NOTHING_TAKEN
        # pop(): a repeated id finds its entry once, as the join pairs it once.
        slots = np.fromiter(map(side.index.pop, ids, repeat(-1)), np.int64, len(ids))
        found = np.flatnonzero(slots >= 0)
        if not found.size:
            return _NOTHING_TAKEN
        hit = slots[found]
        taken = TakenFeatures(
            {ids[i]: k for k, i in enumerate(found.tolist())},
            self._names,
            [side.cols[name][hit].copy() for name in side.cols],
        )
        side.release(hit)
        return taken

    def expire(self, cutoff: float) -> int:
        """Drop the entries of events older than ``cutoff`` (their prediction expired)."""
        dropped = self._side.expire(cutoff)
        self.expired += dropped
        return dropped

    def missing_reason(self, prediction_ts: float) -> str:
        """The likely reason (``MISSING_REASONS``) the features of a pair are not kept."""
        if self.restored and prediction_ts < self._first_ts:
            return "restart"
        if prediction_ts <= self._evicted_ts:
            return "store_full"
        return "not_captured"

    def forget(self) -> None:
        """Empty the store, as a restart does (a restored label side calls it)."""
        dtypes = {name: values.dtype.type for name, values in self._side.cols.items()}
        self._side = PendingSide(self.capacity, dtypes)
        self._first_ts = math.inf
        self._evicted_ts = -math.inf
        self.restored = True
