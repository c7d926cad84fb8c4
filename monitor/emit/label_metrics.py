"""Prometheus metrics of the label side, read at scrape time from the label monitor.

Counters are the join store's own cumulative counts, so they survive a restore from a
checkpoint with the store; only the delay histogram is observed as pairs are joined.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Final, Protocol

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from detectors.base import FloatArray
from monitor.engine.labels.monitor import LabelMonitor

DELAY_BUCKETS: Final = (1, 10, 60, 300, 900, 3_600, 4 * 3_600, 86_400, 3 * 86_400, 7 * 86_400)
"""``driftd_label_delay_seconds`` buckets: a second to a week."""


class LabelDelay(Collector):
    """The label delay histogram (label time minus prediction time of each joined pair).

    Counted with one ``searchsorted`` per batch rather than one ``observe`` per pair,
    and exported as a histogram family at scrape time.
    """

    def __init__(self, registry: CollectorRegistry, model: str) -> None:
        self.model = model
        self._bounds = np.asarray(DELAY_BUCKETS, dtype=np.float64)
        self._counts = np.zeros(self._bounds.size + 1, dtype=np.int64)
        self._sum = 0.0
        self._lock = threading.Lock()
        registry.register(self)

    def observe(self, delays: FloatArray) -> None:
        """Count the delays of one batch's joined pairs (negative ones as 0)."""
        if not delays.size:
            return
        clipped = np.maximum(np.asarray(delays, dtype=np.float64), 0.0)
        slots = np.searchsorted(self._bounds, clipped, side="left")
        counts = np.bincount(slots, minlength=self._counts.size)
        with self._lock:
            self._counts += counts
            self._sum += float(clipped.sum())

    def describe(self) -> Iterable[Metric]:
        """The family, without samples."""
        return [self._family()]

    def _family(self) -> HistogramMetricFamily:
        return HistogramMetricFamily(
            "driftd_label_delay_seconds",
            "Seconds from a prediction to its label, per joined pair (event time).",
            labels=["model"],
        )

    def collect(self) -> Iterable[Metric]:
        """Cumulative buckets as Prometheus wants them."""
        with self._lock:
            cumulative = np.cumsum(self._counts).tolist()
            total = self._sum
        family = self._family()
        bounds = [repr(float(b)) for b in DELAY_BUCKETS] + ["+Inf"]  # as the client writes le
        family.add_metric([self.model], list(zip(bounds, cumulative, strict=True)), total)
        return [family]


class LabelCollector(Collector):
    """Join counters, pending sizes, performance, fairness gaps and ADWIN state."""

    def __init__(self, monitor: LabelMonitor, segment_names: Callable[[], tuple[str, ...]]):
        self.monitor = monitor
        self.segment_names = segment_names

    def describe(self) -> Iterable[Metric]:
        """No samples: lets the registry refuse duplicate names at registration."""
        return list(self._families().values())

    def _families(self) -> dict[str, CounterMetricFamily | GaugeMetricFamily]:
        model = ["model"]
        side = ["model", "side"]
        seg = ["model", "segment"]
        families: list[CounterMetricFamily | GaugeMetricFamily] = [
            CounterMetricFamily(
                "driftd_labels_consumed", "Label events decoded and joined.", labels=model
            ),
            CounterMetricFamily(
                "driftd_label_join_matched", "Predictions joined to their label.", labels=model
            ),
            CounterMetricFamily(
                "driftd_label_join_expired",
                "Entries that waited past the TTL unmatched (side: prediction or label).",
                labels=side,
            ),
            CounterMetricFamily(
                "driftd_label_join_evicted",
                "Entries evicted unmatched because the join store was full.",
                labels=side,
            ),
            CounterMetricFamily(
                "driftd_label_join_duplicates",
                "Predictions or labels dropped because their id was already waiting.",
                labels=side,
            ),
            GaugeMetricFamily(
                "driftd_label_join_pending", "Entries waiting in the join store.", labels=side
            ),
            GaugeMetricFamily(
                "driftd_performance",
                "Latest performance window per segment (metric: accuracy, precision, recall, "
                "log_loss, brier, mae, rmse).",
                labels=[*seg, "metric"],
            ),
            GaugeMetricFamily(
                "driftd_performance_window_size",
                "Joined pairs in the segment's latest performance window.",
                labels=seg,
            ),
            GaugeMetricFamily(
                "driftd_fairness_gap",
                "Largest gap between groups in the latest performance window (metric: "
                "demographic_parity_difference, tpr_gap, fpr_gap).",
                labels=[*seg, "metric"],
            ),
            GaugeMetricFamily(
                "driftd_adwin_width", "Values in the segment's ADWIN error window.", labels=seg
            ),
            GaugeMetricFamily(
                "driftd_adwin_mean", "Mean error in the segment's ADWIN window.", labels=seg
            ),
        ]
        return {f.name.removeprefix("driftd_"): f for f in families}

    def collect(self) -> Iterable[Metric]:
        """Read the monitor now."""
        m = self.monitor
        model = m.model
        f = self._families()
        counts = m.join.counts()
        f["labels_consumed"].add_metric([model], m.labels_seen)
        f["label_join_matched"].add_metric([model], counts["matched"])
        for side in ("prediction", "label"):
            f["label_join_expired"].add_metric([model, side], counts[f"expired_{side}s"])
            f["label_join_evicted"].add_metric([model, side], counts[f"evicted_{side}s"])
            f["label_join_duplicates"].add_metric([model, side], counts[f"duplicate_{side}s"])
        f["label_join_pending"].add_metric([model, "prediction"], m.join.pending_predictions)
        f["label_join_pending"].add_metric([model, "label"], m.join.pending_labels)
        for latest in m.latest():
            f["performance_window_size"].add_metric([model, latest.segment], latest.n)
            for name, value in sorted(latest.metrics.items()):
                f["performance"].add_metric([model, latest.segment, name], value)
            for name, value in sorted(latest.fairness.items()):
                f["fairness_gap"].add_metric([model, latest.segment, name], value)
        for segment, width, mean in m.adwin_state(self.segment_names()):
            f["adwin_width"].add_metric([model, segment], width)
            f["adwin_mean"].add_metric([model, segment], mean)
        return list(f.values())


class _WindowEstimate(Protocol):
    @property
    def segment(self) -> str: ...
    @property
    def metrics(self) -> dict[str, float]: ...
    @property
    def drop(self) -> float: ...
    @property
    def threshold(self) -> float: ...


class _PairWindow(Protocol):
    @property
    def segment(self) -> str: ...
    @property
    def realized(self) -> dict[str, float]: ...
    @property
    def estimated(self) -> dict[str, float]: ...
    @property
    def noise_share(self) -> float: ...
    @property
    def noise_threshold(self) -> float: ...


class EstimateSource(Protocol):
    """What the collector reads of ``engine.performance_estimate.EstimatedPerformance``."""

    @property
    def invalid_scores(self) -> int:
        """Scores that could not be used, since start."""
        ...

    def latest(self) -> Sequence[_WindowEstimate]:
        """The latest window of every segment."""
        ...


class PairSource(Protocol):
    """What the collector reads of ``engine.labels.pair_quality.PairQuality``."""

    @property
    def noise(self) -> object | None:
        """The label-noise test, or None when it does not run."""
        ...

    def latest(self) -> Sequence[_PairWindow]:
        """The latest pair window of every segment."""
        ...


class PerformanceCollector(Collector):
    """Estimated performance (CBPE) of the event windows, realized against estimated on the
    joined pairs, and the label-noise share, read at scrape time.

    ``estimate``, ``quality`` and ``unavailable`` are read at each scrape, since a
    reloaded reference replaces the objects behind them.
    """

    def __init__(
        self,
        model: str,
        estimate: Callable[[], EstimateSource | None],
        quality: Callable[[], PairSource | None],
        unavailable: Callable[[], str | None],
    ) -> None:
        self.model = model
        self.estimate = estimate
        self.quality = quality
        self.unavailable = unavailable

    def describe(self) -> Iterable[Metric]:
        """No samples: lets the registry refuse duplicate names at registration."""
        return list(self._families().values())

    def _families(self) -> dict[str, CounterMetricFamily | GaugeMetricFamily]:
        seg = ["model", "segment"]
        metric = [*seg, "metric"]
        families: list[CounterMetricFamily | GaugeMetricFamily] = [
            GaugeMetricFamily(
                "driftd_estimated_performance",
                "Estimated performance (CBPE) of the segment's latest event window, from its "
                "scores alone (metric: accuracy, precision, recall, f1, roc_auc).",
                labels=metric,
            ),
            GaugeMetricFamily(
                "driftd_performance_drop",
                "Drop of the alerting metric's estimate from the reference's, latest window.",
                labels=seg,
            ),
            GaugeMetricFamily(
                "driftd_performance_drop_threshold",
                "The drop at which the latest window breaches (perf_drop).",
                labels=seg,
            ),
            CounterMetricFamily(
                "driftd_invalid_scores",
                "Scores CBPE could not use (missing, not a number, outside [0, 1]).",
                labels=["model"],
            ),
            GaugeMetricFamily(
                "driftd_performance_unmonitored",
                "1 while estimated performance and label noise are enabled but cannot run "
                "(the reference has no score calibration, or the task is not binary).",
                labels=["model"],
            ),
            GaugeMetricFamily(
                "driftd_realized_performance_on_pairs",
                "Realized performance of the segment's latest window of joined pairs.",
                labels=metric,
            ),
            GaugeMetricFamily(
                "driftd_estimated_performance_on_pairs",
                "Estimated performance of the same joined pairs from their scores alone: "
                "against driftd_realized_performance_on_pairs, how good the estimate is.",
                labels=metric,
            ),
            GaugeMetricFamily(
                "driftd_label_noise_share",
                "Share of the latest window's joined pairs whose label the model confidently "
                "disputes.",
                labels=seg,
            ),
            GaugeMetricFamily(
                "driftd_label_noise_threshold",
                "The share at which the latest window breaches (label_noise).",
                labels=seg,
            ),
        ]
        return {f.name.removeprefix("driftd_"): f for f in families}

    def collect(self) -> Iterable[Metric]:
        """Read the estimator and the pair windows now."""
        model = self.model
        f = self._families()
        f["performance_unmonitored"].add_metric([model], float(self.unavailable() is not None))
        estimate = self.estimate()
        invalid = 0
        if estimate is not None:
            invalid = estimate.invalid_scores
            for latest in estimate.latest():
                labels = [model, latest.segment]
                for name, value in sorted(latest.metrics.items()):
                    f["estimated_performance"].add_metric([*labels, name], value)
                f["performance_drop"].add_metric(labels, latest.drop)
                f["performance_drop_threshold"].add_metric(labels, latest.threshold)
        f["invalid_scores"].add_metric([model], invalid)
        quality = self.quality()
        if quality is not None:
            for pairs in quality.latest():
                labels = [model, pairs.segment]
                for name, value in sorted(pairs.realized.items()):
                    f["realized_performance_on_pairs"].add_metric([*labels, name], value)
                for name, value in sorted(pairs.estimated.items()):
                    f["estimated_performance_on_pairs"].add_metric([*labels, name], value)
                if quality.noise is not None:
                    f["label_noise_share"].add_metric(labels, pairs.noise_share)
                    f["label_noise_threshold"].add_metric(labels, pairs.noise_threshold)
        return list(f.values())
