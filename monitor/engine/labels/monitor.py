"""Ground truth per segment: join, performance, fairness, label drift and concept drift.

One :class:`LabelMonitor` per daemon. Per batch it takes the accepted predictions
(id, segment, score, time, fairness group) and the decoded label events, and:

1. joins them by id in the bounded :class:`~monitor.engine.labels.join.JoinStore`, then
   expires what waited longer than the TTL in event time. The join's watermark is
   the lower of the two inputs' event times (each an
   :class:`~monitor.ingest.watermark.EventClock`, so a few outlier times cannot move it), as
   in Flink's interval join: the side that is read ahead (a backlog of labels read
   faster than its predictions) never expires what the other has yet to deliver, so
   a backlog joins exactly as a live stream does, and until both sides have been
   seen nothing expires (the store's capacity still bounds it). Expiry is counted
   (``driftd_label_join_expired_total``) and logged (``label_join_expired``);
2. feeds each joined pair's error (0/1 misclassification, or absolute / squared
   error) to a :class:`~detectors.adwin.BatchADWIN` stream per segment;
3. counts the pairs into per-segment performance windows of ``labels.window_pairs``
   pairs (accuracy, precision, recall, log loss, Brier; or MAE, RMSE) with fairness
   gaps between groups;
4. counts the labels into windows of the same size and scores them against the
   reference label distribution (label drift), once a reference exists: the
   profile's own, or the first ``labels.window_pairs`` x 5 joined labels.

Every closed performance window becomes one row of a :class:`WindowResults` with the
columns ``__error__`` (method ``adwin``: the number of ADWIN detections among the
pairs of the segment's last ``labels.adwin_hold_windows`` windows) and the fairness
gaps (method ``fairness``), so concept drift and fairness go through the same
decision state machines as feature drift. Label drift rows carry the column
``__label__``. Window membership is a function of each segment's pair count, never
of batch boundaries, so a replay gives the same windows.

Concept drift pages on the detection itself, not at the next window close: in the
batch where a segment's ADWIN first detects within a performance window, a
*detection row* (column ``__error__`` only, method ``adwin``) comes before that
batch's performance rows. Its score is the number of the segment's detections in
this batch and window (>= 1), ``window_end_ts`` the label time of the pair at which
the first of them happened, ``rows`` the segment's joined pairs up to that pair, and
``n`` the same count raised to ``windows.min_samples``: a detection already is
ADWIN's own test at ``labels.adwin_delta``, and ``min_samples``, which guards
small-window estimates, must not hold the page back. With the default
``detectors.adwin`` (threshold 1, consecutive 1) the alert fires on that row.

The detections also count in the performance rows as before, so the alert stays
firing while they keep coming (the book ignores a breach while firing) and resolves
at the first window close after ``labels.adwin_hold_windows`` windows without one:
that is the quiet period. The book must see a segment's rows in pair order, so a
window's detection row comes before that window's closing row, but after the
closing rows of earlier windows (only a batch that spans a window close of the
segment can put a closing row first). The transitions then do not depend on the
batch cut, only a detection row's score (how many detections its batch held) does.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from itertools import repeat
from typing import Any

import numpy as np
import structlog

from detectors.adwin import BatchADWIN
from detectors.base import FloatArray, IntArray
from detectors.binning import Binner
from detectors.feature_profiles import CategoricalProfile, FeatureProfile, feature_from_dict
from detectors.profile import build_profile
from monitor.config import Settings, WindowsConfig
from monitor.engine.evaluate import Evaluator
from monitor.engine.labels.events import LabelBatch
from monitor.engine.labels.join import JoinedPairs, JoinStore
from monitor.engine.labels.pair_quality import PairQuality, RelabelCandidate
from monitor.engine.labels.performance import ClosedPerformance, PerformanceWindows, error_signal
from monitor.engine.labels.relabel_features import EventFeatures
from monitor.engine.results import WindowResults
from monitor.engine.windows import Windows
from monitor.ingest.watermark import EventClock

ERROR_COLUMN = "__error__"
LABEL_COLUMN = "__label__"
FAIRNESS_METRICS = ("demographic_parity_difference", "tpr_gap", "fpr_gap")
OTHER_GROUP = "__other__"
_WARMUP_WINDOWS = 5

log = structlog.get_logger()


@dataclass(frozen=True)
class SegmentPerformance:
    """The latest closed performance window of one segment."""

    segment: str
    n: int
    window_end_ts: float
    metrics: dict[str, float]
    fairness: dict[str, float]


@dataclass
class LabelOutcome:
    """What one batch did on the label side."""

    labels: int = 0
    matched: int = 0
    delays: FloatArray = field(default_factory=lambda: np.empty(0))
    results: list[WindowResults] = field(default_factory=list)
    detected_at: list[tuple[str, int]] = field(default_factory=list)
    """(segment, number of the segment's joined pair, from 0) of each ADWIN detection."""
    relabel: list[RelabelCandidate] = field(default_factory=list)
    """The most suspicious pairs of the performance windows that closed (relabel queue)."""


class GroupCodes:
    """Fairness group values to small ints; past ``max_groups`` values share one code."""

    def __init__(self, max_groups: int) -> None:
        self.max_groups = max_groups
        self.names: list[str] = []
        self._codes: dict[str | None, int] = {}

    def codes(self, values: list[str | None]) -> IntArray:
        """Codes of ``values``; None (missing) is -1, which no group counts."""
        for value in dict.fromkeys(values):  # distinct values only, in first-seen order
            if value is not None and value not in self._codes:
                if len(self.names) < self.max_groups - 1:
                    self._codes[value] = len(self.names)
                    self.names.append(value)
                else:
                    self._codes[value] = self.max_groups - 1  # the shared overflow group
        lookup = self._codes.get
        return np.fromiter(map(lookup, values, repeat(-1)), np.int64, len(values))


class LabelMonitor:
    """The label side of the pipeline (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        label_profile: FeatureProfile | None,
        performance: Mapping[str, Any] | None = None,
    ) -> None:
        cfg = settings.labels
        self.settings = settings
        self.cfg = cfg
        self.model = settings.model
        self.join = JoinStore(cfg.max_pending, cfg.ttl_seconds)
        n_groups = cfg.max_groups if cfg.group_by else 0
        self.groups = GroupCodes(cfg.max_groups)
        self.performance = PerformanceWindows(
            cfg.task,
            cfg.window_pairs,
            cfg.decision_threshold,
            n_groups=n_groups,
            min_group_size=cfg.min_group_size,
        )
        self.adwin = BatchADWIN(
            1,
            delta=cfg.adwin_delta,
            clock=cfg.adwin_clock,
            max_buckets=cfg.adwin_max_buckets,
            min_window_length=cfg.adwin_min_window_length,
            grace_period=cfg.adwin_grace_period,
        )
        rank = settings.windows.watermark_outliers + 1
        self.prediction_clock = EventClock(rank)
        self.label_clock = EventClock(rank)
        self.labels_seen = 0
        self._pairs_seen = np.zeros(0, dtype=np.int64)
        self._detections: dict[tuple[int, int], int] = {}
        self._recent: dict[int, list[int]] = {}
        self._lock = threading.Lock()
        self._latest: dict[str, SegmentPerformance] = {}
        self.label_windows: Windows | None = None
        self.label_evaluator: Evaluator | None = None
        self.quality = PairQuality.from_settings(settings, performance)
        """Realized against estimated performance and label noise (pair_quality.py)."""
        self._label_warmup: list[FloatArray] = []
        if label_profile is not None:
            self._start_label_drift(label_profile)

    # -- label drift ---------------------------------------------------------------

    def _start_label_drift(self, profile: FeatureProfile) -> None:
        profile = replace(profile, name=LABEL_COLUMN)
        binner = Binner([profile])
        size = WindowsConfig(size_events=self.cfg.window_pairs, min_samples=1)
        self.label_windows = Windows(binner, size)
        self.label_evaluator = Evaluator(
            self.model,
            binner,
            self.settings.detectors,
            self.settings.windows.min_samples,
            segment_rows=False,
        )

    def _label_drift(self, pairs: JoinedPairs, names: tuple[str, ...]) -> WindowResults | None:
        if self.label_windows is None:
            self._label_warmup.append(pairs.label.copy())
            held = np.concatenate(self._label_warmup)
            if held.size < self.cfg.window_pairs * _WARMUP_WINDOWS:
                return None
            self._label_warmup = []
            categorical = [LABEL_COLUMN] if self.cfg.task == "binary" else []
            column: Any = held.astype(np.int64).astype(str) if categorical else held
            built = build_profile({LABEL_COLUMN: column}, categorical=categorical)
            self._start_label_drift(built.features[0])
            return None  # the warm-up labels are the reference, not a window
        assert self.label_evaluator is not None
        values = pairs.label
        profile = self.label_windows.binner.profiles[0]
        if isinstance(profile, CategoricalProfile):
            values = profile.encode(values)
        closed = self.label_windows.add(pairs.segment, values[:, None], pairs.label_ts)
        if not len(closed):
            return None
        return self.label_evaluator.evaluate(closed, names)

    # -- per batch -----------------------------------------------------------------

    def process(
        self,
        predictions: tuple[list[str], IntArray, FloatArray, FloatArray, list[str | None] | None],
        labels: LabelBatch | None,
        segment_names: tuple[str, ...],
        features: EventFeatures | None = None,
    ) -> LabelOutcome:
        """Join this batch's predictions and labels, and score what the pairs closed;
        ``features`` are the predictions' (for the relabel queue's tasks)."""
        ids, segments, scores, ts, group_values = predictions
        groups = (
            self.groups.codes(group_values)
            if group_values is not None and self.cfg.group_by
            else np.full(len(ids), -1, dtype=np.int64)
        )
        parts = []
        if ids:
            if self.quality is not None:  # before the join: a waiting label matches at once
                self.quality.keep_features(ids, scores, ts, features)
            parts.append(self.join.add_predictions(ids, segments, scores, ts, groups))
            self.prediction_clock.advance(np.asarray(ts, dtype=np.float64))
        out = LabelOutcome()
        if labels is not None and len(labels):
            parts.append(self.join.add_labels(labels.ids, labels.label, labels.ts))
            self.label_clock.advance(np.asarray(labels.ts, dtype=np.float64))
            out.labels = len(labels)
            self.labels_seen += len(labels)
        pairs = JoinedPairs.concat(parts) if parts else JoinedPairs.empty()
        # Before the expiry: these pairs joined while their prediction was still waiting.
        taken = self.quality.take_features(pairs.ids) if self.quality is not None else None
        self._expire()
        out.matched = len(pairs)
        if not len(pairs):
            return out
        keep = np.isfinite(pairs.prediction) & np.isfinite(pairs.label)
        if not keep.all():
            pairs = _take(pairs, np.flatnonzero(keep))
        out.delays = pairs.delay
        ordinal = self._pair_ordinals(pairs.segment)
        detections = self._concept(pairs, ordinal)
        out.detected_at = [(segment_names[s], at) for s, _, at in detections]
        closed = self.performance.add(pairs)
        out.results.extend(self._in_pair_order(detections, closed, pairs, segment_names))
        if self.quality is not None:
            quality = self.quality.add(pairs, ordinal, segment_names, taken)
            out.results.extend(quality.results)
            out.relabel = quality.candidates
        label_results = self._label_drift(pairs, segment_names)
        if label_results is not None:
            out.results.append(label_results)
        return out

    @property
    def watermark(self) -> float:
        """The join's watermark: the lower of the two sides' event times (-inf until both)."""
        return min(self.prediction_clock.time, self.label_clock.time)

    def _expire(self) -> None:
        """Drop what waited past the TTL behind the watermark; say so when anything goes."""
        watermark = self.watermark
        if not np.isfinite(watermark):
            return
        predictions, labels = self.join.expire(watermark)
        if self.quality is not None:
            self.quality.expire_features(watermark - self.cfg.ttl_seconds)
        if predictions or labels:
            log.info(
                "label_join_expired",
                model=self.model,
                predictions=predictions,
                labels=labels,
                watermark=watermark,
                ttl_seconds=self.cfg.ttl_seconds,
            )

    def _pair_ordinals(self, segment: IntArray) -> IntArray:
        """Each pair's number within its segment's joined pairs, from 0 (batch-independent)."""
        n_seg = int(segment.max()) + 1
        if n_seg > self._pairs_seen.size:
            self._pairs_seen = np.concatenate(
                [self._pairs_seen, np.zeros(n_seg - self._pairs_seen.size, dtype=np.int64)]
            )
        order = np.argsort(segment, kind="stable")
        sorted_seg = segment[order]
        starts = np.flatnonzero(np.r_[True, sorted_seg[1:] != sorted_seg[:-1]])
        rank_sorted = np.arange(segment.size) - np.repeat(
            starts, np.diff(np.r_[starts, segment.size])
        )
        ordinal = np.empty(segment.size, dtype=np.int64)
        ordinal[order] = self._pairs_seen[sorted_seg] + rank_sorted
        np.add.at(self._pairs_seen, segment, 1)
        return ordinal

    def _concept(self, pairs: JoinedPairs, ordinal: IntArray) -> list[tuple[int, int, int]]:
        """(segment, position in the batch, segment's pair number) of each ADWIN detection."""
        self.adwin.ensure_streams(int(pairs.segment.max()) + 1)
        errors = error_signal(
            pairs, self.cfg.task, self.cfg.decision_threshold, self.cfg.regression_error
        )
        result = self.adwin.update(pairs.segment, errors)
        found: list[tuple[int, int, int]] = []
        for pos, stream in zip(
            result.drift_positions.tolist(), result.drift_streams.tolist(), strict=True
        ):
            at = int(ordinal[pos])
            key = (stream, at // self.cfg.window_pairs)
            self._detections[key] = self._detections.get(key, 0) + 1
            found.append((stream, pos, at))
        return found

    def _in_pair_order(
        self,
        detections: list[tuple[int, int, int]],
        closed: ClosedPerformance,
        pairs: JoinedPairs,
        names: tuple[str, ...],
    ) -> list[WindowResults]:
        """Detection rows and performance rows, each segment's in pair order.

        Detections are grouped per (segment, performance window), and a group makes a
        row only if it holds its window's first detection: later ones in the same
        window could not change the state (the first fired or held the alert, which
        cannot resolve before the window closes), and a row each would make the
        breach streak depend on the batch cut. They still count in the window's
        performance row. Segments are independent state machines, so the rows are
        layered: layer k holds the k-th window of each segment that this batch touched,
        its detection rows first, then its closing rows. Usually there is one layer:
        [detections, performance].
        """
        # (segment, window) -> [detections, batch position of the first, its pair number]
        groups: dict[tuple[int, int], list[int]] = {}
        for segment, pos, at in detections:  # in batch order
            group = groups.setdefault((segment, at // self.cfg.window_pairs), [0, pos, at])
            group[0] += 1
        for key, group in list(groups.items()):
            if self._detections.get(key, 0) > group[0]:  # an earlier batch had its first
                del groups[key]
        closing = list(zip(closed.segment.tolist(), closed.window.tolist(), strict=True))
        first: dict[int, int] = {}
        for segment, window in [*groups, *closing]:
            first[segment] = min(first.get(segment, window), window)
        detect_layer = [window - first[segment] for segment, window in groups]
        close_layer = [window - first[segment] for segment, window in closing]
        out: list[WindowResults] = []
        for layer in sorted({*detect_layer, *close_layer}):
            chosen = [g for g, k in zip(groups.values(), detect_layer, strict=True) if k == layer]
            if chosen:
                segments = [s for (s, _), k in zip(groups, detect_layer, strict=True) if k == layer]
                out.append(self._detection_results(segments, chosen, pairs, names))
            rows = [row for row, k in enumerate(close_layer) if k == layer]
            if rows:
                part = closed if len(rows) == len(closing) else _closed_rows(closed, rows)
                out.append(self._performance_results(part, pairs, names))
        return out

    def _detection_results(
        self,
        segments: list[int],
        groups: list[list[int]],
        pairs: JoinedPairs,
        names: tuple[str, ...],
    ) -> WindowResults:
        """One ``__error__``/``adwin`` row per detecting segment (see the module docstring)."""
        k = len(segments)
        count = np.asarray([g[0] for g in groups], dtype=np.float64)
        position = np.asarray([g[1] for g in groups], dtype=np.int64)
        seen = np.asarray([g[2] + 1 for g in groups], dtype=np.int64)
        n = np.maximum(seen, self.settings.windows.min_samples)
        return WindowResults(
            model=self.model,
            segments=tuple(names[s] for s in segments),
            columns=(ERROR_COLUMN,),
            window_end_ts=pairs.label_ts[position].astype(np.float64),
            rows=seen,
            n=n[:, None],
            missing_rate=np.zeros((k, 1)),
            scores={"adwin": count[:, None]},
            p_values={},
        )

    def _performance_results(
        self, closed: ClosedPerformance, pairs: JoinedPairs, names: tuple[str, ...]
    ) -> WindowResults:
        k = len(closed)
        columns = (ERROR_COLUMN, *FAIRNESS_METRICS)
        adwin = np.full((k, len(columns)), np.nan)
        fairness = np.full((k, len(columns)), np.nan)
        for row, (segment, window) in enumerate(
            zip(closed.segment.tolist(), closed.window.tolist(), strict=True)
        ):
            # The score is the detections of the last few windows, so a concept-drift
            # page stays open for ``adwin_hold_windows`` windows instead of flapping.
            recent = self._recent.setdefault(segment, [])
            recent.append(self._detections.pop((segment, window), 0))
            del recent[: -self.cfg.adwin_hold_windows]
            adwin[row, 0] = float(sum(recent))
            for j, metric in enumerate(FAIRNESS_METRICS, start=1):
                values = closed.metrics.get(metric)
                if values is not None:
                    fairness[row, j] = float(values[row])
        n = np.repeat(np.asarray(closed.n, dtype=np.int64)[:, None], len(columns), axis=1)
        results = WindowResults(
            model=self.model,
            segments=tuple(names[s] for s in closed.segment.tolist()),
            columns=columns,
            # A performance window ends with the label that completed its last pair.
            window_end_ts=pairs.label_ts[closed.last_pair].astype(np.float64),
            rows=np.asarray(closed.n, dtype=np.int64),
            n=n,
            missing_rate=np.zeros((k, len(columns))),
            scores={"adwin": adwin, "fairness": fairness},
            p_values={},
        )
        self._remember(closed, results)
        return results

    def _remember(self, closed: ClosedPerformance, results: WindowResults) -> None:
        with self._lock:
            for row, segment in enumerate(results.segments):
                metrics = {
                    name: float(values[row])
                    for name, values in closed.metrics.items()
                    if name not in FAIRNESS_METRICS
                }
                fairness = {
                    name: float(closed.metrics[name][row])
                    for name in FAIRNESS_METRICS
                    if name in closed.metrics
                }
                self._latest[segment] = SegmentPerformance(
                    segment,
                    int(results.rows[row]),
                    float(results.window_end_ts[row]),
                    metrics,
                    fairness,
                )

    # -- checkpoints -----------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything a restart needs: the join store, windows, ADWIN and label drift."""
        detections = sorted(self._detections.items())
        return {
            "join": self.join.state_dict(),
            "performance": self.performance.state_dict(),
            "adwin": self.adwin.state_dict(),
            "groups": list(self.groups.names),
            "group_codes": dict(self.groups._codes),
            "watermark": float(self.watermark),
            "prediction_clock": self.prediction_clock.state(),
            "label_clock": self.label_clock.state(),
            "labels_seen": self.labels_seen,
            "pairs_seen": self._pairs_seen.copy(),
            "detections": np.array([[s, w, c] for (s, w), c in detections], dtype=np.int64).reshape(
                -1, 3
            ),
            "recent": {str(k): list(v) for k, v in self._recent.items()},
            "label_profile": (
                self.label_windows.binner.profiles[0].to_dict()
                if self.label_windows is not None
                else None
            ),
            "label_windows": (
                self.label_windows.state_dict() if self.label_windows is not None else None
            ),
            "label_warmup": (
                np.concatenate(self._label_warmup) if self._label_warmup else np.empty(0)
            ),
            "quality": self.quality.state_dict() if self.quality is not None else None,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output into a monitor built from the same config."""
        self.join.load_state_dict(state["join"])
        self.performance.load_state_dict(state["performance"])
        self.adwin.load_state_dict(state["adwin"])
        self.groups.names = [str(g) for g in state["groups"]]
        self.groups._codes = {str(k): int(v) for k, v in state["group_codes"].items()}
        if "prediction_clock" in state:
            self.prediction_clock.load(state["prediction_clock"])
            self.label_clock.load(state["label_clock"])
        else:  # older state: one watermark over both sides, which then counts for each
            self.prediction_clock.load([float(state["watermark"])])
            self.label_clock.load([float(state["watermark"])])
        self.labels_seen = int(state["labels_seen"])
        self._pairs_seen = np.asarray(state["pairs_seen"], dtype=np.int64).copy()
        rows = np.asarray(state["detections"], dtype=np.int64).reshape(-1, 3).tolist()
        self._detections = {(s, w): c for s, w, c in rows}
        self._recent = {int(k): [int(x) for x in v] for k, v in state["recent"].items()}
        if state["label_profile"] is not None:
            self._start_label_drift(feature_from_dict(state["label_profile"]))
            assert self.label_windows is not None
            self.label_windows.load_state_dict(state["label_windows"])
        warmup = np.asarray(state["label_warmup"], dtype=np.float64)
        self._label_warmup = [warmup.copy()] if warmup.size else []
        if self.quality is not None and state.get("quality") is not None:
            self.quality.load_state_dict(state["quality"])

    # -- eviction ------------------------------------------------------------------

    def forget_segments(self, segments: IntArray, names: Collection[str]) -> None:
        """Reset the label side of evicted ``segments`` (their ids are about to be reused).

        Their open performance windows, ADWIN streams, pair numbers, label-drift panes
        and latest results go; a prediction of theirs still waiting for its label joins
        under ``__other__`` (id 0), so no other segment inherits it.
        """
        seg = np.unique(np.asarray(segments, dtype=np.int64))
        if seg.size == 0:
            return
        join = self.join.state_dict()
        pending = join["predictions"]
        moved = np.isin(pending["segment"], seg)
        if moved.any():
            pending["segment"] = np.where(moved, 0, pending["segment"])
            self.join.load_state_dict(join)
        performance = self.performance.state_dict()
        rows = seg[seg < performance["counts"].shape[0]]
        for key in ("counts", "sums", "groups", "closed"):
            performance[key][rows] = 0
        self.performance.load_state_dict(performance)
        adwin = self.adwin.state_dict()
        n_streams = int(adwin["params"]["n_streams"])
        rows = seg[seg < n_streams]
        for value in adwin.values():
            # Every per-stream array starts at zero (BatchADWIN.ensure_streams).
            if isinstance(value, np.ndarray) and value.shape[:1] == (n_streams,):
                value[rows] = 0
        self.adwin.load_state_dict(adwin)
        self._pairs_seen[seg[seg < self._pairs_seen.size]] = 0
        gone = set(seg.tolist())
        self._detections = {k: v for k, v in self._detections.items() if k[0] not in gone}
        self._recent = {k: v for k, v in self._recent.items() if k not in gone}
        if self.label_windows is not None:
            self.label_windows.forget_segments(seg)
        if self.quality is not None:
            self.quality.forget_segments(seg, names)
        with self._lock:
            for name in names:
                self._latest.pop(name, None)

    # -- reading (scrape time) -----------------------------------------------------

    def latest(self) -> list[SegmentPerformance]:
        """The latest performance window of every segment."""
        with self._lock:
            return list(self._latest.values())

    def adwin_state(self, names: tuple[str, ...]) -> list[tuple[str, int, float]]:
        """(segment, window width, mean error) of every segment's ADWIN stream."""
        width = self.adwin.width
        mean = self.adwin.estimation
        return [
            (names[s], int(width[s]), float(mean[s]))
            for s in range(min(len(names), self.adwin.n_streams))
            if int(width[s]) > 0
        ]


def _closed_rows(closed: ClosedPerformance, rows: list[int]) -> ClosedPerformance:
    """The windows ``rows`` of ``closed``, in that order."""
    index = np.asarray(rows, dtype=np.int64)
    return ClosedPerformance(
        segment=closed.segment[index],
        n=closed.n[index],
        window=closed.window[index],
        last_pair=closed.last_pair[index],
        metrics={name: values[index] for name, values in closed.metrics.items()},
    )


def _take(pairs: JoinedPairs, rows: IntArray) -> JoinedPairs:
    return JoinedPairs(
        segment=pairs.segment[rows],
        prediction=pairs.prediction[rows],
        label=pairs.label[rows],
        prediction_ts=pairs.prediction_ts[rows],
        label_ts=pairs.label_ts[rows],
        group=pairs.group[rows],
        ids=[pairs.ids[i] for i in rows.tolist()] if len(pairs.ids) == len(pairs) else [],
    )
