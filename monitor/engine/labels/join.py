"""The bounded join of predictions to their late ground-truth labels, by id.

Predictions come with the inference events, labels on their own topic minutes to
weeks later (sometimes before their prediction, sometimes never), and ids can
repeat. :class:`JoinStore` keeps what is still waiting on each side and pairs the
two as they meet. The rules, applied to the items of a batch in order, so that a
batch gives exactly what feeding its items one at a time would:

- A prediction whose id has a pending label matches it at once: both leave the
  store and the pair is emitted. Otherwise it waits. A label likewise matches a
  pending prediction or waits (an early label). An id is therefore never pending
  on both sides at once.
- A prediction whose id is already pending as a prediction is a duplicate: it is
  counted and dropped, and the first one keeps waiting. Labels alike. Once an id
  has matched (or expired, or been evicted) it may come again as a new item.
- Each side holds at most its capacity. Adding to a full side first evicts that
  side's oldest pending entry (smallest event time; the earliest arrival on a tie),
  so the newcomer always gets in.
- ``expire(watermark)`` drops the entries of either side whose event time is
  older than ``watermark - ttl_s``. The caller supplies the watermark (the daemon
  passes the lower of the two sides' event times, so the side read ahead cannot
  expire what the other has yet to deliver), so a replay after a crash expires
  exactly what the first run did. Nothing expires on its own, and an entry
  already past the TTL when it arrives still waits until the next ``expire``.
- Pairs come out in match order: the order of the items that completed them.

Values are not checked: a NaN prediction or label is joined like any other, and
it is the caller's job to drop such pairs before scoring them. Event times must
be finite, as the eviction order depends on them.

Pending entries live in numpy slot arrays with a dict from id to slot (see
:mod:`monitor.engine.labels.pending`); a batch is matched with one C-level pass over its
ids (``dict.pop``), and what is left is inserted in a few more.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.base import FloatArray, IntArray
from monitor.engine.labels.pending import PendingSide

__all__ = ["COUNTERS", "JoinStore", "JoinedPairs"]

COUNTERS = (
    "matched",
    "expired_predictions",
    "expired_labels",
    "evicted_predictions",
    "evicted_labels",
    "duplicate_predictions",
    "duplicate_labels",
)
"""The cumulative counters of a :class:`JoinStore`, as ``counts()`` names them."""

_PREDICTION_COLUMNS: dict[str, type[np.generic]] = {
    "segment": np.int64,
    "prediction": np.float64,
    "group": np.int64,
}
_LABEL_COLUMNS: dict[str, type[np.generic]] = {"label": np.float64}


@dataclass(frozen=True)
class JoinedPairs:
    """Matched (prediction, label) pairs, one row per pair, in match order."""

    segment: IntArray
    prediction: FloatArray
    label: FloatArray
    prediction_ts: FloatArray
    label_ts: FloatArray
    group: IntArray
    ids: list[str] = field(default_factory=list)
    """The pairs' ids (empty where the producer did not keep them)."""

    def __len__(self) -> int:
        return int(self.segment.size)

    @property
    def delay(self) -> FloatArray:
        """Seconds from prediction to label (event time; negative for an early label)."""
        return np.asarray(self.label_ts - self.prediction_ts, dtype=np.float64)

    @staticmethod
    def empty() -> JoinedPairs:
        """No pairs."""
        return JoinedPairs(
            np.zeros(0, np.int64),
            np.zeros(0),
            np.zeros(0),
            np.zeros(0),
            np.zeros(0),
            np.zeros(0, np.int64),
        )

    @staticmethod
    def concat(parts: Sequence[JoinedPairs]) -> JoinedPairs:
        """The rows of ``parts``, one after the other."""
        if not parts:
            return JoinedPairs.empty()
        return JoinedPairs(
            np.concatenate([p.segment for p in parts]),
            np.concatenate([p.prediction for p in parts]),
            np.concatenate([p.label for p in parts]),
            np.concatenate([p.prediction_ts for p in parts]),
            np.concatenate([p.label_ts for p in parts]),
            np.concatenate([p.group for p in parts]),
            [i for p in parts for i in p.ids] if all(len(p.ids) == len(p) for p in parts) else [],
        )


def _array(values: npt.ArrayLike, dtype: type[np.generic], name: str, n: int) -> npt.NDArray[Any]:
    out = np.asarray(values, dtype=dtype)
    if out.shape != (n,):
        raise ValueError(f"{name} has shape {out.shape} but ids has {n} values")
    return out


class JoinStore:
    """Pending predictions and labels, joined by id (see the module docstring)."""

    def __init__(self, capacity: int, ttl_s: float, label_capacity: int | None = None) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int | np.integer):
            raise TypeError(f"capacity must be an int, got {type(capacity).__name__}")
        if capacity <= 0:
            raise ValueError("capacity must be > 0")
        if not ttl_s > 0:
            raise ValueError("ttl_s must be > 0")
        if label_capacity is None:
            label_capacity = capacity
        if isinstance(label_capacity, bool) or not isinstance(label_capacity, int | np.integer):
            raise TypeError(f"label_capacity must be an int, got {type(label_capacity).__name__}")
        if label_capacity <= 0:
            raise ValueError("label_capacity must be > 0")
        self.capacity = int(capacity)
        self.label_capacity = int(label_capacity)
        self.ttl_s = float(ttl_s)
        self._init_state()

    def _init_state(self) -> None:
        self._predictions = PendingSide(self.capacity, _PREDICTION_COLUMNS)
        self._labels = PendingSide(self.label_capacity, _LABEL_COLUMNS)
        self._seq = 0
        self._counts = dict.fromkeys(COUNTERS, 0)

    # -- reading -------------------------------------------------------------------

    @property
    def pending_predictions(self) -> int:
        """Predictions waiting for their label."""
        return len(self._predictions)

    @property
    def pending_labels(self) -> int:
        """Labels waiting for their prediction."""
        return len(self._labels)

    def __len__(self) -> int:
        return len(self._predictions) + len(self._labels)

    def counts(self) -> dict[str, int]:
        """The cumulative counters (``COUNTERS``), as a fresh dict."""
        return dict(self._counts)

    @property
    def matched(self) -> int:
        """Pairs joined so far."""
        return self._counts["matched"]

    @property
    def expired_predictions(self) -> int:
        """Predictions dropped by ``expire`` unmatched."""
        return self._counts["expired_predictions"]

    @property
    def expired_labels(self) -> int:
        """Labels dropped by ``expire`` unmatched."""
        return self._counts["expired_labels"]

    @property
    def evicted_predictions(self) -> int:
        """Predictions evicted unmatched because their side was full."""
        return self._counts["evicted_predictions"]

    @property
    def evicted_labels(self) -> int:
        """Labels evicted unmatched because their side was full."""
        return self._counts["evicted_labels"]

    @property
    def duplicate_predictions(self) -> int:
        """Predictions dropped because their id was already pending as a prediction."""
        return self._counts["duplicate_predictions"]

    @property
    def duplicate_labels(self) -> int:
        """Labels dropped because their id was already pending as a label."""
        return self._counts["duplicate_labels"]

    # -- writing -------------------------------------------------------------------

    def add_predictions(
        self,
        ids: Sequence[str],
        segment: npt.ArrayLike,
        prediction: npt.ArrayLike,
        ts: npt.ArrayLike,
        group: npt.ArrayLike | None = None,
    ) -> JoinedPairs:
        """Add a batch of predictions in arrival order; return the pairs they completed."""
        ids = ids if isinstance(ids, list) else list(ids)
        n = len(ids)
        seg = _array(segment, np.int64, "segment", n)
        pred = _array(prediction, np.float64, "prediction", n)
        t = self._times(ts, n)
        grp = np.full(n, -1, np.int64) if group is None else _array(group, np.int64, "group", n)
        pos, slots = self._add(
            self._predictions,
            self._labels,
            ids,
            t,
            {"segment": seg, "prediction": pred, "group": grp},
            "predictions",
        )
        labels = self._labels
        pairs = JoinedPairs(
            seg[pos],
            pred[pos],
            labels.cols["label"][slots],
            t[pos],
            labels.ts[slots],
            grp[pos],
            [ids[i] for i in pos.tolist()],
        )
        labels.release(slots)
        return pairs

    def add_labels(
        self, ids: Sequence[str], label: npt.ArrayLike, ts: npt.ArrayLike
    ) -> JoinedPairs:
        """Add a batch of labels in arrival order; return the pairs they completed."""
        ids = ids if isinstance(ids, list) else list(ids)
        n = len(ids)
        lab = _array(label, np.float64, "label", n)
        t = self._times(ts, n)
        pos, slots = self._add(self._labels, self._predictions, ids, t, {"label": lab}, "labels")
        p = self._predictions
        pairs = JoinedPairs(
            p.cols["segment"][slots],
            p.cols["prediction"][slots],
            lab[pos],
            p.ts[slots],
            t[pos],
            p.cols["group"][slots],
            [ids[i] for i in pos.tolist()],
        )
        p.release(slots)
        return pairs

    def expire(self, watermark: float) -> tuple[int, int]:
        """Drop entries older than ``watermark - ttl_s``; (predictions, labels) dropped now."""
        if math.isnan(watermark):
            raise ValueError("watermark must not be NaN")
        cutoff = watermark - self.ttl_s
        expired = self._predictions.expire(cutoff), self._labels.expire(cutoff)
        self._counts["expired_predictions"] += expired[0]
        self._counts["expired_labels"] += expired[1]
        return expired

    @staticmethod
    def _times(ts: npt.ArrayLike, n: int) -> FloatArray:
        t = _array(ts, np.float64, "ts", n)
        if not np.isfinite(t).all():
            raise ValueError("ts must be finite")
        return t

    def _add(
        self,
        own: PendingSide,
        other: PendingSide,
        ids: list[str],
        ts: FloatArray,
        cols: dict[str, npt.NDArray[Any]],
        side: str,
    ) -> tuple[IntArray, IntArray]:
        """Match, then store what is left; (batch positions matched, ``other`` slots).

        The matched slots of ``other`` are out of its index but not yet released, so
        that the caller can read them.
        """
        n = len(ids)
        seq = np.arange(self._seq, self._seq + n, dtype=np.int64)
        self._seq += n
        if n == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        # pop() both finds and removes: a later item with the same id finds nothing,
        # just as it would had the items come one at a time.
        if len(other):
            hit = np.fromiter(map(other.index.pop, ids, repeat(-1, n)), np.int64, n)
            matched = np.flatnonzero(hit >= 0)
        else:
            hit = np.full(n, -1, np.int64)
            matched = np.zeros(0, np.int64)
        self._counts["matched"] += int(matched.size)
        if matched.size == n:
            return matched, hit
        if matched.size:
            rest = np.flatnonzero(hit < 0)
            ids = [ids[i] for i in rest.tolist()]
            ts, seq = ts[rest], seq[rest]
            cols = {name: values[rest] for name, values in cols.items()}
        dropped, evicted = own.insert(ids, ts, seq, cols)
        self._counts[f"duplicate_{side}"] += dropped
        self._counts[f"evicted_{side}"] += evicted
        return matched, hit[matched]

    # -- state ---------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Pending entries (in arrival order) and counters, as lists and arrays."""
        return {
            "capacity": self.capacity,
            "label_capacity": self.label_capacity,
            "ttl_s": self.ttl_s,
            "seq": self._seq,
            "counts": dict(self._counts),
            "predictions": self._predictions.state(),
            "labels": self._labels.state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore ``state_dict`` output; this store's capacities and TTL stay.

        Should the state hold more entries on a side than this store's capacity
        (the limit was lowered between runs), the oldest ones are evicted, counted.
        """
        counts = {name: int(state["counts"][name]) for name in COUNTERS}
        sides = []
        for name, limit, columns in (
            ("predictions", self.capacity, _PREDICTION_COLUMNS),
            ("labels", self.label_capacity, _LABEL_COLUMNS),
        ):
            entries = state[name]
            excess = len(entries["ids"]) - limit
            if excess > 0:
                entries = _trimmed(entries, excess)
                counts[f"evicted_{name}"] += excess
            side = PendingSide(limit, columns)
            side.load(entries)
            sides.append(side)
        if any(map(sides[0].index.__contains__, sides[1].index)):
            raise ValueError("join state: an id is pending as both a prediction and a label")
        # Only a state that loaded whole replaces this store's.
        self._predictions, self._labels = sides
        self._counts = counts
        self._seq = int(state["seq"])

    def __getstate__(self) -> dict[str, Any]:
        return self.state_dict()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["capacity"], state["ttl_s"], state["label_capacity"]
        )
        self.load_state_dict(state)


def _trimmed(side: Mapping[str, Any], excess: int) -> dict[str, Any]:
    """``side`` without its ``excess`` oldest entries by (time, arrival)."""
    ts = np.asarray(side["ts"], dtype=np.float64)
    seq = np.asarray(side["seq"], dtype=np.int64)
    keep = np.sort(np.lexsort((seq, ts))[excess:])
    out: dict[str, Any] = {}
    for name, values in side.items():
        out[name] = (
            [values[i] for i in keep.tolist()] if name == "ids" else np.asarray(values)[keep]
        )
    return out
