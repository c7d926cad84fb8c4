"""What a backtest keeps of each batch: the daemon's ``on_batch`` callback, plus the
pipeline's ``on_window_bins`` hook for the bins of the worst windows.

It turns every ``BatchOutcome`` into rows of the result (``monitor.backtest.result``):
each closed window with its scores, thresholds and verdicts, the label side's windows
and performance, the transitions, the alert spans they make (with the peak score while
firing), the data-quality counts, and for each column the reference and current bins
of the window where it drifted most (score over threshold, distribution methods only).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from detectors.feature_profiles import FeatureProfile, NumericProfile
from monitor.backtest.result import (
    VERDICT_NAMES,
    AlertSpan,
    Distribution,
    PerformancePoint,
    TransitionRow,
    Verdict,
    WindowPart,
    WindowRow,
)
from monitor.engine.decision import DecisionBook, Transition
from monitor.engine.explain import WindowBins
from monitor.engine.labels.monitor import LABEL_COLUMN, LabelMonitor
from monitor.engine.outcome import BatchOutcome
from monitor.engine.results import WindowResults

DISTRIBUTION_METHODS = ("psi", "ks", "chi2", "js")
"""Methods whose worst window is shown as reference-against-current bins."""
FAIRNESS_PREFIX = "fairness_gap:"
"""Performance points of fairness gaps are named ``fairness_gap:<metric>``."""


@dataclass
class _Worst:
    """The worst window of one column so far, with its bins."""

    ratio: float
    segment: str
    method: str
    window_end_ts: float
    labels: tuple[str, ...]
    reference: np.ndarray[Any, Any]
    current: np.ndarray[Any, Any]


class BacktestCollector:
    """The daemon's ``on_batch``: accumulates everything a backtest reports."""

    def __init__(self, decisions: DecisionBook, labels: LabelMonitor | None) -> None:
        self.decisions = decisions
        self.labels = labels
        self.events_accepted = 0
        self.rejected: Counter[str] = Counter()
        self.late = 0
        self.labels_joined = 0
        self.windows: list[WindowRow] = []
        self.performance: list[PerformancePoint] = []
        self.transitions: list[TransitionRow] = []
        self.missing: dict[str, Counter[str]] = {}
        self.unseen: dict[str, Counter[str]] = {}
        self._open: dict[str, Transition] = {}
        self._closed: list[tuple[Transition, float]] = []
        self._index: Counter[tuple[str, str]] = Counter()
        self._bins: WindowBins | None = None
        self._worst: dict[str, _Worst] = {}
        self._performance_seen: dict[str, float] = {}

    # ------------------------------------------------------------------ hooks

    def window_bins(self, bins: WindowBins) -> None:
        """The pipeline's ``on_window_bins``: the bins of the windows this batch closed."""
        self._bins = bins

    def __call__(self, outcome: BatchOutcome) -> None:
        """Keep what one batch did."""
        self.events_accepted += outcome.accepted
        self.late += outcome.late
        self.rejected.update(reason for _, reason, _ in outcome.rejected)
        if outcome.results is not None:
            self._feature_windows(outcome.results, self._bins)
        self._bins = None
        for results in outcome.extra:  # multivariate, embedding, estimated performance, mix
            for row in range(len(results)):
                self.windows.append(self._row(results, row, "window", "beside"))
        if outcome.labels is not None:
            self.labels_joined += outcome.labels.matched
            for results in outcome.labels.results:
                self._label_windows(results)
            self._performance_points()
        for t in outcome.transitions:
            self._transition(t)

    # ----------------------------------------------------------------- windows

    def _row(
        self,
        results: WindowResults,
        row: int,
        kind: Literal["window", "label_window"],
        part: WindowPart = "features",
    ) -> WindowRow:
        segment = results.segments[row]
        scores: dict[str, dict[str, float]] = {}
        thresholds: dict[str, dict[str, float]] = {}
        verdicts: dict[str, dict[str, Verdict]] = {}
        for method, values in results.scores.items():
            own = results.thresholds.get(method)
            codes = results.verdicts.get(method)
            for j, column in enumerate(results.columns):
                score = float(values[row, j])
                if math.isnan(score):
                    continue
                scores.setdefault(method, {})[column] = score
                threshold = float(own[row, j]) if own is not None else self._fixed(column, method)
                thresholds.setdefault(method, {})[column] = threshold
                if codes is not None:
                    verdicts.setdefault(method, {})[column] = VERDICT_NAMES[int(codes[row, j])]
        missing = {
            c: float(results.missing_rate[row, j])
            for j, c in enumerate(results.columns)
            if not math.isnan(float(results.missing_rate[row, j]))
        }
        # Windows beside the features are counted per method, as the table names them.
        key = (f"{part}:{','.join(sorted(results.scores))}" if part == "beside" else part, segment)
        index = self._index[key]
        self._index[key] += 1
        return WindowRow(
            kind,
            segment,
            index,
            float(results.window_end_ts[row]),
            int(results.rows[row]),
            scores,
            thresholds,
            verdicts,
            missing if kind == "window" else {},
            part,
        )

    def _fixed(self, column: str, method: str) -> float:
        """The configured threshold of a method the engine does not calibrate."""
        cfg = self.decisions.method_config(column, method)
        return float(cfg.threshold) if cfg is not None else math.nan

    def _feature_windows(self, results: WindowResults, bins: WindowBins | None) -> None:
        for row in range(len(results)):
            window = self._row(results, row, "window")
            self.windows.append(window)
            self._quality(results, row, window)
            if bins is not None:
                self._track_worst(window, bins, row)

    def _quality(self, results: WindowResults, row: int, window: WindowRow) -> None:
        missing = self.missing.setdefault(window.segment, Counter())
        for column, rate in window.missing_rate.items():
            count = round(rate * window.rows)
            if count:
                missing[column] += count
        unseen = results.scores.get("unseen")
        if unseen is None:
            return
        counts = self.unseen.setdefault(window.segment, Counter())
        for j, column in enumerate(results.columns):
            share = float(unseen[row, j])
            if not math.isnan(share) and share > 0:
                counts[column] += round(share * int(results.n[row, j]))

    def _track_worst(self, window: WindowRow, bins: WindowBins, row: int) -> None:
        """Keep the bins of each column's worst window so far (score over threshold)."""
        for f, column in enumerate(bins.columns):
            best: tuple[float, str] | None = None
            for method in DISTRIBUTION_METHODS:
                score = window.scores.get(method, {}).get(column)
                threshold = window.thresholds.get(method, {}).get(column)
                if score is None or not threshold or not math.isfinite(threshold):
                    continue
                if window.verdicts.get(method, {}).get(column) == "skip":
                    continue  # too few values to judge
                ratio = score / threshold
                if best is None or ratio > best[0]:
                    best = (ratio, method)
            if best is None:
                continue
            worst = self._worst.get(column)
            if worst is not None and worst.ratio >= best[0]:
                continue
            labels = tuple(bins.labels[column])
            nb = len(labels)
            self._worst[column] = _Worst(
                best[0],
                window.segment,
                best[1],
                window.window_end_ts,
                labels,
                bins.reference[row, f, :nb].copy(),
                bins.current[row, f, :nb].copy(),
            )

    def _label_windows(self, results: WindowResults) -> None:
        part = _label_part(results)
        for row in range(len(results)):
            self.windows.append(self._row(results, row, "label_window", part))
            fairness = results.scores.get("fairness")
            if fairness is None:
                continue
            for j, column in enumerate(results.columns):
                value = float(fairness[row, j])
                if not math.isnan(value):
                    self.performance.append(
                        PerformancePoint(
                            results.segments[row],
                            float(results.window_end_ts[row]),
                            FAIRNESS_PREFIX + column,
                            value,
                        )
                    )

    def _performance_points(self) -> None:
        """The performance metrics of the windows that closed since the last batch (the
        label monitor keeps each segment's latest)."""
        if self.labels is None:
            return
        for latest in self.labels.latest():
            if self._performance_seen.get(latest.segment) == latest.window_end_ts:
                continue
            self._performance_seen[latest.segment] = latest.window_end_ts
            for metric, value in latest.metrics.items():
                self.performance.append(
                    PerformancePoint(latest.segment, latest.window_end_ts, metric, value)
                )

    # ------------------------------------------------------------- alerts

    def _transition(self, t: Transition) -> None:
        self.transitions.append(
            TransitionRow(
                t.dedup_key,
                t.segment,
                t.column,
                t.method,
                t.current,
                t.window_end_ts,
                t.score,
                t.threshold,
            )
        )
        if t.current == "firing":
            self._open[t.dedup_key] = t
            return
        opened = self._open.pop(t.dedup_key, None)
        if opened is not None:
            self._closed.append((opened, t.window_end_ts))

    # ------------------------------------------------------------- the end

    def alert_spans(self) -> list[AlertSpan]:
        """Every page, resolved or still firing at the end, in firing order, with its
        peak score over the windows from its firing to its resolve."""
        scores: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
        for w in self.windows:
            for method, by_column in w.scores.items():
                for column, score in by_column.items():
                    key = (w.segment, column, method)
                    scores.setdefault(key, []).append((w.window_end_ts, score))
        spans = []
        ends = [*self._closed, *((t, None) for t in self._open.values())]
        for t, resolved_at in ends:
            last = math.inf if resolved_at is None else resolved_at
            during = [
                score
                for ts, score in scores.get((t.segment, t.column, t.method), [])
                if t.window_end_ts <= ts <= last and math.isfinite(score)
            ]
            peak = max([*during, t.score] if math.isfinite(t.score) else during, default=t.score)
            spans.append(
                AlertSpan(
                    t.dedup_key, t.segment, t.column, t.method, t.window_end_ts, resolved_at, peak
                )
            )
        return sorted(spans, key=lambda a: (a.fired_at_ts, a.dedup_key))

    def distributions(self, top: int, profiles: Mapping[str, FeatureProfile]) -> list[Distribution]:
        """Reference against current shares of the ``top`` most drifting columns, each at
        its worst window (``profiles``: the reference's, by column)."""
        ranked = sorted(self._worst.items(), key=lambda kv: -kv[1].ratio)[:top]
        out = []
        for column, worst in ranked:
            profile = profiles.get(column)
            numeric = isinstance(profile, NumericProfile)
            edges = (
                tuple(float(e) for e in profile.coarse_edges.tolist())
                if isinstance(profile, NumericProfile)
                else ()
            )
            out.append(
                Distribution(
                    worst.segment,
                    column,
                    worst.method,
                    worst.window_end_ts,
                    "numeric" if numeric else "categorical",
                    worst.labels,
                    edges,
                    _shares(worst.reference),
                    _shares(worst.current),
                )
            )
        return out


def _label_part(results: WindowResults) -> WindowPart:
    """Which label-side rows ``results`` holds (``LabelMonitor`` makes three kinds)."""
    if LABEL_COLUMN in results.columns:
        return "label_drift"
    if "fairness" in results.scores or len(results.columns) > 1:
        return "performance"
    return "concept"


def _shares(counts: np.ndarray[Any, Any]) -> tuple[float, ...]:
    total = float(counts.sum())
    if total <= 0:
        return tuple(0.0 for _ in counts.tolist())
    return tuple(round(float(c) / total, 6) for c in counts.tolist())
