"""What the joined pairs say about the estimate and the labels: realized against estimated
performance, the label-noise signal and the relabel candidates.

Per segment, the pairs are cut into the same tumbling windows as
:class:`~monitor.engine.labels.performance.PerformanceWindows`: window ``w`` of a
segment holds its pairs number ``w * size .. (w + 1) * size - 1`` (the pair ordinals
:class:`~monitor.engine.labels.monitor.LabelMonitor` hands in), so a window and its row
do not depend on the batch cut. A window keeps, per segment:

- with the reference's score calibration, the negatives and positives per score bin
  plus the invalid pairs (``PerformanceEstimator.accumulate_outcomes``): on close, the
  realized performance and the estimate from the same pairs' scores, side by side;
- with the reference's confident-learning thresholds, the valid, suspicious and invalid
  pairs (``LabelNoiseTest.accumulate``): on close, the suspicious share and its verdict,
  one row of :class:`~monitor.engine.results.WindowResults` (column ``__label__``,
  method ``label_noise``) for the decision book;
- the ``top_n`` most suspicious pairs of the open window (largest margin first, ties by
  arrival), each with its event's features where they were kept: on close they are the
  window's relabel candidates.

Everything is additive counts plus a bounded candidate list, so memory is
``O(segments x (bins + top_n))`` whatever the traffic; besides, with the relabel queue
on, the features of the pending events that could become candidates wait in a store of
their own, bounded too (:mod:`monitor.engine.labels.relabel_features`). The held
candidates' features are checkpointed (``top_n`` per segment at most), that store is not.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import orjson

from detectors.base import IntArray, State
from detectors.label_noise import STATS_WIDTH, LabelNoiseTest
from detectors.perf_metrics import PERFORMANCE_METRICS
from detectors.performance import PerformanceEstimator
from detectors.profile import performance_from_dict
from monitor.config import Settings
from monitor.engine.labels.calibration_fit import threshold_mismatch
from monitor.engine.labels.join import JoinedPairs
from monitor.engine.labels.relabel_features import EventFeatures, RelabelFeatures, TakenFeatures
from monitor.engine.results import WindowResults

LABEL_COLUMN: Final = "__label__"
NOISE_METHOD: Final = "label_noise"


@dataclass(frozen=True)
class RelabelCandidate:
    """One joined pair whose label the model disputes at high confidence."""

    segment: str
    event_id: str
    prediction: float
    label: int
    margin: float
    features: Mapping[str, object] | None = None
    """The event's scalar features (None where they were not kept)."""
    missing: str = ""
    """Why ``features`` is None (``relabel_features.MISSING_REASONS``); empty if it is not."""


Held = tuple[float, str, float, int, dict[str, object] | None, str]
"""A candidate of an open window: margin, id, prediction, label, features, missing reason."""


@dataclass(frozen=True)
class PairQualityLatest:
    """The latest closed window of one segment: realized and estimated metrics on the same
    pairs, and the label-noise share with its threshold (NaN where not computed)."""

    segment: str
    n: int
    window_end_ts: float
    realized: dict[str, float]
    estimated: dict[str, float]
    noise_share: float
    noise_threshold: float


@dataclass
class PairQualityOutcome:
    """What one batch's pairs closed: decision rows and relabel candidates."""

    results: list[WindowResults]
    candidates: list[RelabelCandidate]


class PairQuality:
    """Per-segment windows of joined pairs (see the module docstring)."""

    def __init__(
        self,
        model: str,
        size_pairs: int,
        estimator: PerformanceEstimator | None,
        noise: LabelNoiseTest | None,
        top_n: int = 0,
        features: RelabelFeatures | None = None,
    ) -> None:
        if estimator is None and noise is None:
            raise ValueError("pair quality needs an estimator, a label-noise test or both")
        self.model = model
        self.size = int(size_pairs)
        self.estimator = estimator
        self.noise = noise
        self.top_n = int(top_n) if noise is not None else 0
        self.n_segments = 0
        width = 2 * estimator.n_bins + 1 if estimator is not None else 0
        self._outcomes = np.zeros((0, width), np.int64)
        self._noise = np.zeros((0, STATS_WIDTH), np.int64)
        self._candidates: dict[int, list[Held]] = {}
        self.features = features if self.top_n else None
        """The features of pending events that could become candidates (None: not kept)."""
        self._lock = threading.Lock()
        self._latest: dict[str, PairQualityLatest] = {}

    @classmethod
    def from_settings(
        cls, settings: Settings, performance: Mapping[str, Any] | None
    ) -> PairQuality | None:
        """The pair windows the settings and the reference's ``performance`` field allow,
        or None (no binary task, nothing in the reference, or both switched off)."""
        if performance is None or settings.labels.task != "binary":
            return None
        estimator, noise = performance_from_dict(performance)
        # A calibration fitted for another threshold estimates another confusion matrix:
        # no estimate then (start_performance_estimate logs it once for both).
        use_estimator = (
            settings.detectors.performance_estimation.enabled
            and threshold_mismatch(performance, settings.labels.decision_threshold) is None
        )
        noise_cfg = settings.labels.noise
        if noise_cfg.enabled:
            noise = LabelNoiseTest(
                noise.thresholds,
                alpha=noise_cfg.alpha,
                min_samples=noise_cfg.min_samples,
                clear_ratio=noise.clear_ratio,
            )
        relabel = settings.labels.relabel
        if not use_estimator and not noise_cfg.enabled:
            return None
        features = None
        if relabel.enabled and noise_cfg.enabled and relabel.feature_events:
            features = RelabelFeatures(
                noise.thresholds, relabel.feature_events, relabel.max_features, settings.model
            )
        return cls(
            settings.model,
            settings.labels.window_pairs,
            estimator if use_estimator else None,
            noise if noise_cfg.enabled else None,
            relabel.top_n if relabel.enabled else 0,
            features,
        )

    def ensure_segments(self, n_segments: int) -> None:
        """Grow to ``n_segments``; new segments start with an empty window."""
        extra = n_segments - self.n_segments
        if extra <= 0:
            return
        self._outcomes = np.concatenate(
            [self._outcomes, np.zeros((extra, self._outcomes.shape[1]), np.int64)]
        )
        self._noise = np.concatenate([self._noise, np.zeros((extra, STATS_WIDTH), np.int64)])
        self.n_segments = n_segments

    # -- the features of pending events ---------------------------------------------

    def keep_features(
        self,
        ids: Sequence[str],
        prediction: npt.ArrayLike,
        ts: npt.ArrayLike,
        features: EventFeatures | None,
    ) -> None:
        """Before the join: keep the features of the predictions that could become
        candidates."""
        if self.features is not None and features is not None and len(ids):
            self.features.keep(ids, prediction, ts, features)

    def take_features(self, ids: Sequence[str]) -> TakenFeatures | None:
        """After the join: the joined events' features, out of the store."""
        return self.features.take(ids) if self.features is not None else None

    def expire_features(self, cutoff: float) -> None:
        """With the join's expiry: drop the features of predictions older than ``cutoff``."""
        if self.features is not None:
            self.features.expire(cutoff)

    # -- per batch -----------------------------------------------------------------

    def add(
        self,
        pairs: JoinedPairs,
        ordinal: IntArray,
        names: tuple[str, ...],
        taken: TakenFeatures | None = None,
    ) -> PairQualityOutcome:
        """Count a batch of pairs (``ordinal``: each pair's number within its segment;
        ``taken``: their kept features); the rows and candidates of the windows it closed."""
        out = PairQualityOutcome([], [])
        if not len(pairs):
            return out
        self.ensure_segments(int(pairs.segment.max()) + 1)
        seg = pairs.segment
        window = ordinal // self.size
        # One group per (segment, window) in the batch; a segment's first group continues
        # its open window, since ordinals run on from the pairs already counted.
        keys = seg * (int(window.max()) + 1) + window
        uniq, group = np.unique(keys, return_inverse=True)
        n_groups = int(uniq.size)
        last = np.full(n_groups, -1, np.int64)
        np.maximum.at(last, group, np.arange(seg.size))
        first = np.full(n_groups, seg.size, np.int64)
        np.minimum.at(first, group, np.arange(seg.size))
        g_seg = seg[last]
        closes = ordinal[last] % self.size == self.size - 1
        continues = ordinal[first] % self.size != 0
        outcomes = noise = None
        if self.estimator is not None:
            outcomes = self.estimator.accumulate_outcomes(
                group, pairs.prediction, pairs.label, n_groups
            )
            outcomes[continues] += self._outcomes[g_seg[continues]]
        if self.noise is not None:
            noise = self.noise.accumulate(group, pairs.prediction, pairs.label, n_groups)
            noise[continues] += self._noise[g_seg[continues]]
        candidates = self._group_candidates(pairs, group, g_seg, continues, n_groups, taken)
        # The open windows are the groups that did not close.
        still_open = np.flatnonzero(~closes)
        reset = np.unique(g_seg[closes])
        if outcomes is not None:
            self._outcomes[reset] = 0
            self._outcomes[g_seg[still_open]] = outcomes[still_open]
        if noise is not None:
            self._noise[reset] = 0
            self._noise[g_seg[still_open]] = noise[still_open]
        for s in reset.tolist():
            self._candidates.pop(s, None)
        for g in still_open.tolist():
            if candidates[g]:
                self._candidates[int(g_seg[g])] = candidates[g]
        done = np.flatnonzero(closes)
        if not done.size:
            return out
        done = done[np.argsort(last[done], kind="stable")]  # in the order they closed
        end_ts = pairs.label_ts[last[done]].astype(np.float64)
        out.results.extend(
            self._close(
                g_seg[done],
                end_ts,
                None if outcomes is None else outcomes[done],
                None if noise is None else noise[done],
                names,
            )
        )
        for g in done.tolist():
            name = names[int(g_seg[g])]
            out.candidates.extend(
                RelabelCandidate(name, event_id, prediction, label, margin, features, missing)
                for margin, event_id, prediction, label, features, missing in candidates[g]
            )
        return out

    def _group_candidates(
        self,
        pairs: JoinedPairs,
        group: IntArray,
        g_seg: IntArray,
        continues: IntArray,
        n_groups: int,
        taken: TakenFeatures | None,
    ) -> list[list[Held]]:
        """Each group's ``top_n`` most suspicious pairs (with its open window's, if it
        continues one), largest margin first."""
        found: list[list[Held]] = [[] for _ in range(n_groups)]
        if self.noise is None or self.top_n == 0 or len(pairs.ids) != len(pairs):
            return found
        rows = self.noise.most_suspicious(group, pairs.prediction, pairs.label, self.top_n)
        if rows.size:
            margins = self.noise.thresholds.margins(
                pairs.prediction[rows], pairs.label[rows]
            ).margin
            for row, margin in zip(rows.tolist(), margins.tolist(), strict=True):
                event_id = pairs.ids[row]
                features = taken.row(event_id) if taken is not None else None
                missing = "" if features is not None else self._missing(pairs, row)
                found[int(group[row])].append(
                    (
                        float(margin),
                        event_id,
                        float(pairs.prediction[row]),
                        int(pairs.label[row]),
                        features,
                        missing,
                    )
                )
        for g in np.flatnonzero(continues).tolist():
            held = self._candidates.get(int(g_seg[g]))
            if held:
                merged = held + found[g]  # held ones arrived first: they win ties
                merged.sort(key=lambda c: -c[0])  # stable: arrival order within a margin
                found[g] = merged[: self.top_n]
        return found

    def _missing(self, pairs: JoinedPairs, row: int) -> str:
        """Why the features of pair ``row`` were not kept."""
        if self.features is None:
            return "not_captured"
        return self.features.missing_reason(float(pairs.prediction_ts[row]))

    def _close(
        self,
        segments: IntArray,
        end_ts: Any,
        outcomes: IntArray | None,
        noise: IntArray | None,
        names: tuple[str, ...],
    ) -> list[WindowResults]:
        k = int(segments.size)
        nan = np.full(k, np.nan)
        realized: dict[str, Any] = {}
        estimated: dict[str, Any] = {}
        n = np.zeros(k, np.int64)
        if outcomes is not None and self.estimator is not None:
            pair_perf = self.estimator.realized(outcomes)
            realized = {m: pair_perf.realized.metric(m) for m in PERFORMANCE_METRICS}
            estimated = {m: pair_perf.estimated.metric(m) for m in PERFORMANCE_METRICS}
            n = pair_perf.n
        share, threshold = nan, nan
        results: list[WindowResults] = []
        seg_names = tuple(names[s] for s in segments.tolist())
        if noise is not None and self.noise is not None:
            verdict = self.noise.evaluate(noise)
            share, threshold, n = verdict.statistic, verdict.threshold, verdict.n
            total = np.maximum(verdict.n + verdict.invalid, 1).astype(np.float64)

            def column(values: Any) -> Any:
                return np.asarray(values, dtype=np.float64).reshape(k, 1)

            results.append(
                WindowResults(
                    model=self.model,
                    segments=seg_names,
                    columns=(LABEL_COLUMN,),
                    window_end_ts=np.asarray(end_ts, dtype=np.float64),
                    rows=np.asarray(verdict.n + verdict.invalid, dtype=np.int64),
                    n=np.asarray(verdict.n, dtype=np.int64).reshape(k, 1),
                    missing_rate=column(verdict.invalid / total),
                    scores={NOISE_METHOD: column(verdict.statistic)},
                    p_values={NOISE_METHOD: column(verdict.p_value)},
                    thresholds={NOISE_METHOD: column(verdict.threshold)},
                    clears={NOISE_METHOD: column(verdict.clear)},
                    verdicts={NOISE_METHOD: verdict.verdict.reshape(k, 1)},
                )
            )
        with self._lock:
            for row, name in enumerate(seg_names):
                self._latest[name] = PairQualityLatest(
                    segment=name,
                    n=int(n[row]),
                    window_end_ts=float(end_ts[row]),
                    realized={m: float(v[row]) for m, v in realized.items()},
                    estimated={m: float(v[row]) for m, v in estimated.items()},
                    noise_share=float(share[row]),
                    noise_threshold=float(threshold[row]),
                )
        return results

    # -- reading (scrape time) -----------------------------------------------------

    def latest(self) -> list[PairQualityLatest]:
        """The latest closed window of every segment."""
        with self._lock:
            return list(self._latest.values())

    # -- eviction and checkpoints ----------------------------------------------------

    def forget_segments(self, segments: IntArray, names: Collection[str]) -> None:
        """Reset the open windows of evicted ``segments``."""
        seg = np.asarray(segments, dtype=np.int64)
        seg = seg[seg < self.n_segments]
        self._outcomes[seg] = 0
        self._noise[seg] = 0
        for s in seg.tolist():
            self._candidates.pop(s, None)
        with self._lock:
            for name in names:
                self._latest.pop(name, None)

    def state_dict(self) -> State:
        """Open windows' counts and candidates, as arrays and lists."""
        held = sorted(self._candidates.items())
        return {
            "outcomes": self._outcomes.copy(),
            "noise": self._noise.copy(),
            "candidate_segment": np.asarray([s for s, cs in held for _ in cs], dtype=np.int64),
            "candidate_margin": np.asarray([c[0] for _, cs in held for c in cs], np.float64),
            "candidate_id": [c[1] for _, cs in held for c in cs],
            "candidate_prediction": np.asarray([c[2] for _, cs in held for c in cs], np.float64),
            "candidate_label": np.asarray([c[3] for _, cs in held for c in cs], np.int64),
            # JSON text per candidate ("" where none were kept): bounded by top_n a segment.
            "candidate_features": [
                "" if c[4] is None else orjson.dumps(c[4]).decode() for _, cs in held for c in cs
            ],
            "candidate_missing": [c[5] for _, cs in held for c in cs],
        }

    def load_state_dict(self, state: State) -> None:
        """Restore :meth:`state_dict` output of pair windows built the same way."""
        outcomes = np.asarray(state["outcomes"], np.int64)
        noise = np.asarray(state["noise"], np.int64)
        if outcomes.shape[1:] != self._outcomes.shape[1:] or noise.shape[0] != outcomes.shape[0]:
            raise ValueError(
                f"pair-quality state of shape {outcomes.shape} does not fit "
                f"{self._outcomes.shape[1:]}"
            )
        self._outcomes, self._noise = outcomes.copy(), noise.copy()
        self.n_segments = int(outcomes.shape[0])
        self._candidates = {}
        n = len(state["candidate_id"])
        # Older state has no features: its candidates lost them in the restart.
        texts = [str(t) for t in state.get("candidate_features", [""] * n)]
        missing = [str(m) for m in state.get("candidate_missing", ["restart"] * n)]
        for s, margin, event_id, prediction, label, text, reason in zip(
            np.asarray(state["candidate_segment"], np.int64).tolist(),
            np.asarray(state["candidate_margin"], np.float64).tolist(),
            [str(i) for i in state["candidate_id"]],
            np.asarray(state["candidate_prediction"], np.float64).tolist(),
            np.asarray(state["candidate_label"], np.int64).tolist(),
            texts,
            missing,
            strict=True,
        ):
            features = orjson.loads(text) if text else None
            self._candidates.setdefault(s, []).append(
                (margin, event_id, prediction, label, features, reason)
            )
        if self.features is not None:
            self.features.forget()  # not checkpointed: what it held is lost
