"""The per-segment digest behind ``metrics.detail: summary``.

At 1,000 segments x 50 features, every (segment, feature, method) with its gauges is
over a million series: too many to scrape. The summary keeps what a person or a rule
acts on (:func:`summary_families` turns it into metric families):

- per segment, the worst score over its threshold and the features drifting;
- per (feature, method), the same across segments, and the threshold when every
  segment judges against the same one (fixed thresholds; calibrated ones follow each
  segment's reference and window size, so they show on the detailed rows instead);
- the detailed rows: every firing or pending (segment, feature, method), and the
  ``top_k`` others nearest to paging in each segment.

It reads the rows of the state API (``monitor.emit.state_api``: one dict per row with
its state, ratio and breach streak), so ``/metrics`` and ``/api/v1/state`` say the same
thing. A segment's digest is rebuilt only when its rows changed (the state API swaps in
a new tuple for the segments a batch touched), so a refresh after a batch costs what
the batch closed, not the number of segments.
"""

from __future__ import annotations

import heapq
import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from monitor.emit.state_api import RowColumns, SegmentRows

__all__ = [
    "COUNTING_METHODS",
    "DRIFT_LABELS",
    "PAIR_LABELS",
    "SEGMENT_LABELS",
    "DriftSummary",
    "FeatureDigest",
    "SegmentDigest",
    "SummaryView",
    "is_drifting",
    "summary_families",
]

DRIFT_LABELS: Final = ("model", "segment", "feature", "method")
SEGMENT_LABELS: Final = ("model", "segment")
PAIR_LABELS: Final = ("model", "feature", "method")

COUNTING_METHODS = frozenset({"samples", "schema", "share"})
"""Rows that count (values in the window, an absent column, the share of columns
drifting) rather than score drift: left out of a segment's worst ratio and top-K, as in
the recording rules; exported in full when firing or pending, like every row."""

Row = Mapping[str, Any]
"""One state API row (``StateRow.as_json``)."""
RowsProvider = Mapping[str, Sequence[Row]]
Pair = tuple[str, str]
"""(feature, method)"""
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def is_drifting(row: Row) -> bool:
    """Firing, or pending: breaching windows counted towards firing (``breach_streak`` > 0)."""
    return row["state"] == "firing" or int(row["breach_streak"]) > 0


def _ratio(row: Row) -> float:
    ratio = row.get("ratio")
    return float(ratio) if ratio is not None else math.nan


def _number(x: Any) -> float:
    return float(x) if x is not None else math.nan


@dataclass(frozen=True)
class SegmentDigest:
    """What the summary exports of one segment, built from its rows."""

    worst_ratio: float
    """The highest score over threshold of the segment's rows (counting rows left out);
    NaN when none is judged."""
    features_drifting: int
    """Distinct features with at least one firing or pending row."""
    detail: tuple[Row, ...]
    """The firing and pending rows, exported in full."""
    top: tuple[Row, ...]
    """The ``top_k`` other rows with the highest ratio (counting rows left out), exported
    with score and threshold."""
    schema_firing: frozenset[str]
    """Features whose ``schema`` alert fires here (the column is absent)."""
    ratios: FloatArray
    """Per pair id (``SummaryView.pairs``, padded with NaN): the row's ratio."""
    thresholds: FloatArray
    clears: FloatArray
    drifting: BoolArray


@dataclass(frozen=True)
class FeatureDigest:
    """Per (feature, method), across segments; arrays aligned with ``pairs``."""

    pairs: tuple[Pair, ...]
    worst_ratio: FloatArray
    """NaN where no segment has a judged row."""
    segments_drifting: FloatArray
    threshold: FloatArray
    """The threshold every segment shares; NaN where segments differ or none is judged."""
    clear: FloatArray


@dataclass(frozen=True)
class SummaryView:
    """An immutable view of the digests at one moment (safe to read without a lock)."""

    segments: Mapping[str, SegmentDigest]
    pairs: tuple[Pair, ...]

    def features(self) -> FeatureDigest:
        """Fold the segments into the per (feature, method) digest."""
        n_pairs = len(self.pairs)
        digests = list(self.segments.values())
        ratios = _stack([d.ratios for d in digests], n_pairs, math.nan)
        thresholds = _stack([d.thresholds for d in digests], n_pairs, math.nan)
        clears = _stack([d.clears for d in digests], n_pairs, math.nan)
        drifting = _stack([d.drifting for d in digests], n_pairs, False)
        judged = ~np.isnan(thresholds)
        any_judged = judged.any(axis=0)
        worst = np.where(np.isnan(ratios), -np.inf, ratios).max(axis=0, initial=-np.inf)
        worst = np.where(np.isfinite(worst), worst, math.nan)
        low = np.where(judged, thresholds, np.inf).min(axis=0, initial=np.inf)
        high = np.where(judged, thresholds, -np.inf).max(axis=0, initial=-np.inf)
        clear_low = np.where(judged, clears, np.inf).min(axis=0, initial=np.inf)
        clear_high = np.where(judged, clears, -np.inf).max(axis=0, initial=-np.inf)
        shared = any_judged & (low == high)
        clear_shared = shared & (clear_low == clear_high)
        return FeatureDigest(
            pairs=self.pairs,
            worst_ratio=worst,
            segments_drifting=drifting.sum(axis=0).astype(float),
            threshold=np.where(shared, low, math.nan),
            clear=np.where(clear_shared, clear_low, math.nan),
        )


def _stack(arrays: list[Any], width: int, fill: Any) -> Any:
    """One row per segment, padded to ``width`` (pairs seen after a digest was built)."""
    dtype = bool if isinstance(fill, bool) else float
    out = np.full((len(arrays), width), fill, dtype=dtype)
    for i, a in enumerate(arrays):
        out[i, : a.size] = a
    return out


class DriftSummary:
    """The digests of every segment, refreshed from the state API's rows.

    :meth:`refresh` may run on the consumer thread after a batch and on the HTTP
    thread before a scrape: a lock keeps them apart, and a segment whose rows are the
    same object as last time keeps its digest.
    """

    def __init__(self, top_k: int) -> None:
        if top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {top_k}")
        self.top_k = top_k
        self._lock = threading.Lock()
        self._pair_ids: dict[Pair, int] = {}
        self._built: dict[str, tuple[Sequence[Row], SegmentDigest]] = {}
        self._view = SummaryView({}, ())

    def refresh(self, rows: RowsProvider) -> SummaryView:
        """Rebuild the digests of the segments whose rows changed; drop those gone."""
        with self._lock:
            built: dict[str, tuple[Sequence[Row], SegmentDigest]] = {}
            changed = len(rows) != len(self._built)
            for segment, segment_rows in rows.items():
                before = self._built.get(segment)
                if before is not None and before[0] is segment_rows:
                    built[segment] = before
                else:
                    built[segment] = (segment_rows, self._digest(segment_rows))
                    changed = True
            if changed:
                self._built = built
                pairs = tuple(sorted(self._pair_ids, key=self._pair_ids.__getitem__))
                self._view = SummaryView(
                    {s: built[s][1] for s in sorted(built)},
                    pairs,
                )
            return self._view

    def view(self) -> SummaryView:
        """The last refreshed view."""
        return self._view

    def _digest(self, segment_rows: Sequence[Row]) -> SegmentDigest:
        if isinstance(segment_rows, SegmentRows):
            # Column by column: a dict per row (~370 per segment, rebuilt after each of
            # its windows) was most of what a refresh allocated, and freed, on the heap.
            cols = segment_rows.columns()
            row_at: Sequence[Row] = segment_rows
        else:
            row_at = list(segment_rows)  # once: a provider may build each row as it is read
            cols = _columns_of(row_at)
        ids = np.array(
            [self._pair_id(f, m) for f, m in zip(cols.features, cols.methods, strict=True)],
            dtype=np.intp,
        )
        row_ratios = cols.ratio.tolist()
        drifting_rows = [
            state == "firing" or streak > 0
            for state, streak in zip(cols.states, cols.breach_streak.tolist(), strict=True)
        ]
        counting = [m in COUNTING_METHODS for m in cols.methods]
        width = len(self._pair_ids)
        ratios = np.full(width, math.nan)
        thresholds = np.full(width, math.nan)
        clears = np.full(width, math.nan)
        drifting = np.zeros(width, dtype=bool)
        ratios[ids] = row_ratios
        thresholds[ids] = cols.threshold
        clears[ids] = cols.clear_threshold
        drifting[ids] = drifting_rows
        detail = tuple(row_at[i] for i, d in enumerate(drifting_rows) if d)
        others = [
            (ratio, i)
            for i, (ratio, d, c) in enumerate(zip(row_ratios, drifting_rows, counting, strict=True))
            if not (d or c or math.isnan(ratio))
        ]
        top = [row_at[i] for _, i in heapq.nlargest(self.top_k, others)] if self.top_k else []
        scored = [x for x, c in zip(row_ratios, counting, strict=True) if not (c or math.isnan(x))]
        return SegmentDigest(
            worst_ratio=max(scored, default=math.nan),
            features_drifting=len({r["feature"] for r in detail}),
            detail=detail,
            top=tuple(top),
            schema_firing=frozenset(
                f
                for f, m, state in zip(cols.features, cols.methods, cols.states, strict=True)
                if m == "schema" and state == "firing"
            ),
            ratios=ratios,
            thresholds=thresholds,
            clears=clears,
            drifting=drifting,
        )

    def _pair_id(self, feature: str, method: str) -> int:
        pair = (feature, method)
        found = self._pair_ids.get(pair)
        if found is None:
            found = self._pair_ids[pair] = len(self._pair_ids)
        return found


def _columns_of(rows: Sequence[Row]) -> RowColumns:
    """Plain rows (one mapping each) column by column, as ``SegmentRows.columns`` gives them."""
    return RowColumns(
        features=tuple(r["feature"] for r in rows),
        methods=tuple(r["method"] for r in rows),
        states=tuple(r["state"] for r in rows),
        breach_streak=np.array([int(r["breach_streak"]) for r in rows], dtype=np.int64),
        ratio=np.array([_ratio(r) for r in rows], dtype=np.float64),
        threshold=np.array([_number(r.get("threshold")) for r in rows], dtype=np.float64),
        clear_threshold=np.array(
            [_number(r.get("clear_threshold")) for r in rows], dtype=np.float64
        ),
    )


def summary_families(model: str, view: SummaryView) -> Iterator[Metric]:
    """The drift families of ``metrics.detail: summary`` (``driftd_feature_unmonitored``
    is the collector's: it also reads the reference's columns)."""
    score = GaugeMetricFamily(
        "driftd_drift_score",
        "Latest drift score of the window (summary: firing, pending and top-K rows).",
        labels=DRIFT_LABELS,
    )
    p_value = GaugeMetricFamily(
        "driftd_drift_p_value",
        "p-value of the latest score (summary: firing and pending rows).",
        labels=DRIFT_LABELS,
    )
    threshold = GaugeMetricFamily(
        "driftd_drift_threshold",
        "Score at or above which a window breaches (summary: firing, pending, top-K rows).",
        labels=DRIFT_LABELS,
    )
    clear = GaugeMetricFamily(
        "driftd_drift_clear_threshold",
        "Score below which a firing alert resolves (summary: firing and pending rows).",
        labels=DRIFT_LABELS,
    )
    active = GaugeMetricFamily(
        "driftd_drift_active",
        "1 while the drift alert is firing, else 0 (summary: firing and pending rows).",
        labels=DRIFT_LABELS,
    )
    worst = GaugeMetricFamily(
        "driftd_segment_drift_worst_ratio",
        "Highest score over its threshold among the segment's rows (1 or more breaches).",
        labels=SEGMENT_LABELS,
    )
    drifting = GaugeMetricFamily(
        "driftd_segment_features_drifting",
        "Features of the segment with a firing or pending (breaching) decision.",
        labels=SEGMENT_LABELS,
    )
    for segment, digest in view.segments.items():
        if not math.isnan(digest.worst_ratio):
            worst.add_metric([model, segment], digest.worst_ratio)
        drifting.add_metric([model, segment], digest.features_drifting)
        for row in digest.detail:
            labels = [model, segment, row["feature"], row["method"]]
            _add(score, labels, row["score"])
            _add(p_value, labels, row["p_value"])
            _add(threshold, labels, row["threshold"])
            _add(clear, labels, row["clear_threshold"])
            active.add_metric(labels, 1.0 if row["state"] == "firing" else 0.0)
        for row in digest.top:
            labels = [model, segment, row["feature"], row["method"]]
            _add(score, labels, row["score"])
            _add(threshold, labels, row["threshold"])
    yield from (score, p_value, threshold, clear, active, worst, drifting)
    yield from _feature_families(model, view)


def _feature_families(model: str, view: SummaryView) -> Iterator[Metric]:
    digest = view.features()
    worst = GaugeMetricFamily(
        "driftd_feature_drift_worst_ratio",
        "Highest score over threshold of the feature and method across segments.",
        labels=PAIR_LABELS,
    )
    drifting = GaugeMetricFamily(
        "driftd_feature_segments_drifting",
        "Segments where the feature and method are firing or pending (breaching).",
        labels=PAIR_LABELS,
    )
    threshold = GaugeMetricFamily(
        "driftd_feature_drift_threshold",
        "Score at or above which a window breaches, where every segment shares it.",
        labels=PAIR_LABELS,
    )
    clear = GaugeMetricFamily(
        "driftd_feature_drift_clear_threshold",
        "Score below which a firing alert resolves, where every segment shares it.",
        labels=PAIR_LABELS,
    )
    for i, (feature, method) in enumerate(digest.pairs):
        labels = [model, feature, method]
        _add(worst, labels, float(digest.worst_ratio[i]))
        drifting.add_metric(labels, float(digest.segments_drifting[i]))
        _add(threshold, labels, float(digest.threshold[i]))
        _add(clear, labels, float(digest.clear[i]))
    yield from (worst, drifting, threshold, clear)


def _add(family: GaugeMetricFamily, labels: list[str], value: Any) -> None:
    """A sample, unless the value is missing (None or NaN: JSON null in the state API)."""
    if value is not None and not math.isnan(value):
        family.add_metric(labels, float(value))
