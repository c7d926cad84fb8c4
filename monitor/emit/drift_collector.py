"""The drift collector: scores, decisions, windows and source health, read at scrape time.

:class:`DriftCollector` reads the latest results, the decision book and a few providers
when Prometheus scrapes, so scores cost nothing between scrapes and a quiet segment's
series stay at their last value (until the segment is evicted: its results and
decisions are dropped, so its series go). With ``detail="summary"`` (the default of
``metrics.detail``) it exports the digest of ``monitor.emit.drift_summary`` instead of
every (segment, feature, method). :func:`data_quality_families` builds the feature
data-quality counters an ``extra`` provider exposes.

Label values come only from code constants, the configured columns and the capped
segment table (through ``WindowResults``), never from raw input.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Literal, TypeVar

import structlog
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.emit.drift_summary import (
    DRIFT_LABELS,
    PAIR_LABELS,
    SEGMENT_LABELS,
    DriftSummary,
    Row,
    SummaryView,
    summary_families,
)
from monitor.emit.state_api import LiveState
from monitor.engine.decision import DecisionBook, DecisionState
from monitor.engine.results import LatestResults

__all__ = [
    "DRIFT_LABELS",
    "DriftCollector",
    "ExtraProvider",
    "LagProvider",
    "PollAgeProvider",
    "data_quality_families",
]

Detail = Literal["summary", "full"]

_log = structlog.get_logger()
_P = TypeVar("_P")


LagProvider = Callable[[], Mapping[tuple[str, int], int]]
"""Consumer lag in messages, by (topic, partition)."""
PollAgeProvider = Callable[[], float | None]
"""Seconds since the source's last successful poll, or None when unknown."""
ExtraProvider = Callable[[], Iterable[Metric]]
"""More metric families to expose at scrape time (sinks, outbox, checkpoints...)."""
RowsProvider = Callable[[], Mapping[str, Sequence[Row]]]
"""The state API's rows by segment (``LiveState.segment_rows``)."""


def data_quality_families(
    model: str,
    invalid: Mapping[tuple[str, str], int],
    unexpected: Mapping[str, int],
    names_refused: Mapping[str, int] | None = None,
) -> list[Metric]:
    """``driftd_feature_invalid_total{model,feature,reason}``: values that became missing
    because they could not be read (wrong type, not a number), per feature;
    ``driftd_feature_not_in_reference_total{model,feature}``: sampled events carrying a
    feature the reference lacks (at most 100 names, cut to ``schema.max_name_length``); and
    ``driftd_feature_names_refused_total{model,reason}``: feature names a warm-up refused
    to learn, by cap (``name_too_long``, ``over_max_features``)."""
    bad = CounterMetricFamily(
        "driftd_feature_invalid",
        "Values that became missing because they could not be read, by feature and reason.",
        labels=["model", "feature", "reason"],
    )
    for (feature, reason), count in sorted(dict(invalid).items()):
        bad.add_metric([model, feature, reason], count)
    extra = CounterMetricFamily(
        "driftd_feature_not_in_reference",
        "Sampled events carrying a feature the reference lacks (not monitored).",
        labels=["model", "feature"],
    )
    for feature, count in sorted(dict(unexpected).items()):
        extra.add_metric([model, feature], count)
    refused = CounterMetricFamily(
        "driftd_feature_names_refused",
        "Feature names a warm-up refused to learn, by the cap they exceeded.",
        labels=["model", "reason"],
    )
    for reason, count in sorted(dict(names_refused or {}).items()):
        refused.add_metric([model, reason], count)
    return [bad, extra, refused]


class DriftCollector(Collector):
    """Reads the latest drift results and decisions at scrape time.

    With ``detail="full"``, gauges labelled ``model, segment, feature, method`` for
    every row:

    - ``driftd_drift_score``: the latest score;
    - ``driftd_drift_p_value``: its p-value, only where the method has one;
    - ``driftd_drift_threshold`` / ``driftd_drift_clear_threshold``: the thresholds the
      latest window was judged against (calibrated, or fixed with overrides applied);
    - ``driftd_drift_active``: 1 while firing, else 0 (pending included);
    - ``driftd_drift_breach_streak``: consecutive breaching windows counted so far,
      so ``active == 0 and streak > 0`` means pending (no state label: bounded);
    - ``driftd_feature_missing_rate{model,segment,feature}``: missing share, 0..1.

    With ``detail="summary"``, the same five (no breach streak: it is in the state API)
    only for the firing and pending rows, score and threshold for the ``top_k`` rows
    nearest to paging per segment, the missing rate of the features with a firing or
    pending row, and the digest (``monitor.emit.drift_summary``):

    - ``driftd_segment_drift_worst_ratio{model,segment}``: the highest score over
      threshold of the segment (1 or more breaches);
    - ``driftd_segment_features_drifting{model,segment}``: features with a firing or
      pending row;
    - ``driftd_feature_drift_worst_ratio{model,feature,method}`` and
      ``driftd_feature_segments_drifting{model,feature,method}``: the same across segments;
    - ``driftd_feature_drift_threshold`` / ``driftd_feature_drift_clear_threshold``
      ``{model,feature,method}``: the thresholds, where every segment shares them.

    In both:

    - ``driftd_window_size{model,segment}``: rows in the latest closed window;
    - ``driftd_window_end_timestamp_seconds{model,segment}``: its end (event time);
    - ``driftd_feature_unmonitored{model,feature}``: 1 while a reference column is absent
      from some segment's windows (its ``schema`` alert fires) or cannot be monitored;
    - ``driftd_consumer_lag{topic,partition}``: messages past the committed offset;
    - ``driftd_seconds_since_last_poll``: age of the last successful source poll.

    And the counter ``driftd_drift_evaluations_skipped_total{model,segment}``: column
    and method evaluations skipped for fewer than ``min_samples`` samples.

    The summary reads ``segment_rows`` (the state API's rows, refreshed after each
    batch: set it, and call :meth:`refresh_summary` after each batch, to keep the scrape
    cheap); without it, the rows are rebuilt from the book at every scrape.

    A provider that raises is logged and its family left out; the scrape goes on.
    """

    def __init__(
        self,
        results: LatestResults,
        decisions: DecisionBook,
        lag: LagProvider | None = None,
        seconds_since_poll: PollAgeProvider | None = None,
        extra: Iterable[ExtraProvider] = (),
        monitored_columns: Callable[[], Iterable[str]] = tuple,
        unmonitorable: Callable[[], Iterable[str]] = tuple,
        *,
        detail: Detail = "summary",
        top_k: int = 1,
        segment_rows: RowsProvider | None = None,
    ) -> None:
        if results.model != decisions.model:
            raise ValueError(f"results of {results.model!r}, decisions of {decisions.model!r}")
        if detail not in ("summary", "full"):
            raise ValueError(f"detail must be summary or full, got {detail!r}")
        self.results = results
        self.decisions = decisions
        self.lag = lag
        self.seconds_since_poll = seconds_since_poll
        self.extra = tuple(extra)
        self.monitored_columns = monitored_columns
        """The reference columns being monitored (all get a ``driftd_feature_unmonitored``)."""
        self.unmonitorable = unmonitorable
        """Columns that cannot be monitored at all (a prediction the reference lacks)."""
        self.detail: Detail = detail
        self.summary = DriftSummary(top_k)
        self.segment_rows = segment_rows
        """Where the summary reads its rows; None: rebuilt from the book at each scrape."""

    def refresh_summary(self) -> None:
        """Bring the summary up to date with ``segment_rows`` (after a batch, on the consumer
        thread: only the segments the batch touched are digested again)."""
        if self.detail == "summary" and self.segment_rows is not None:
            self.summary.refresh(self.segment_rows())

    def describe(self) -> Iterable[Metric]:
        """The families, without samples, so the registry can reject duplicate names."""
        names: list[tuple[str, Sequence[str]]] = [
            ("driftd_drift_score", DRIFT_LABELS),
            ("driftd_drift_p_value", DRIFT_LABELS),
            ("driftd_drift_threshold", DRIFT_LABELS),
            ("driftd_drift_clear_threshold", DRIFT_LABELS),
            ("driftd_drift_active", DRIFT_LABELS),
            ("driftd_window_size", SEGMENT_LABELS),
            ("driftd_window_end_timestamp_seconds", SEGMENT_LABELS),
            ("driftd_feature_missing_rate", ("model", "segment", "feature")),
            ("driftd_feature_unmonitored", ("model", "feature")),
        ]
        if self.detail == "full":
            names.append(("driftd_drift_breach_streak", DRIFT_LABELS))
        else:
            names += [
                ("driftd_segment_drift_worst_ratio", SEGMENT_LABELS),
                ("driftd_segment_features_drifting", SEGMENT_LABELS),
                ("driftd_feature_drift_worst_ratio", PAIR_LABELS),
                ("driftd_feature_segments_drifting", PAIR_LABELS),
                ("driftd_feature_drift_threshold", PAIR_LABELS),
                ("driftd_feature_drift_clear_threshold", PAIR_LABELS),
            ]
        if self.lag is not None:
            names.append(("driftd_consumer_lag", ("topic", "partition")))
        if self.seconds_since_poll is not None:
            names.append(("driftd_seconds_since_last_poll", ()))
        families: list[Metric] = [GaugeMetricFamily(n, n, labels=ls) for n, ls in names]
        families.append(
            CounterMetricFamily("driftd_drift_evaluations_skipped", "", labels=["model", "segment"])
        )
        return families

    def collect(self) -> Iterable[Metric]:
        """Build every family from a consistent copy of the current data."""
        model = self.results.model
        if self.detail == "full":
            yield from self._drift(model)
            yield from self._windows(model)
        else:
            view = self._summary_view()
            yield from self._summary(model, view)
            missing_of = {
                segment: sorted({r["feature"] for r in digest.detail})
                for segment, digest in view.segments.items()
                if digest.detail
            }
            yield from self._windows(model, missing_of)
        skipped = CounterMetricFamily(
            "driftd_drift_evaluations_skipped",
            "Column and method evaluations skipped for too few samples in the window.",
            labels=["model", "segment"],
        )
        for segment, count in sorted(self.decisions.skipped_counts().items()):
            skipped.add_metric([model, segment], count)
        yield skipped
        if self.lag is not None:
            yield from self._guard("driftd_consumer_lag", self._lag, self.lag)
        if self.seconds_since_poll is not None:
            yield from self._guard(
                "driftd_seconds_since_last_poll", self._poll_age, self.seconds_since_poll
            )
        for provider in self.extra:
            yield from self._guard("extra", lambda p: list(p()), provider)

    def _summary_view(self) -> SummaryView:
        if self.segment_rows is not None:
            return self.summary.refresh(self.segment_rows())
        # No state API to share: the rows of every segment, built now (small deployments,
        # a backtest, a test); a daemon serving /metrics always has the state API.
        rows = LiveState(self.results, self.decisions)
        rows.refresh()
        return self.summary.refresh(rows.segment_rows())

    def _summary(self, model: str, view: SummaryView) -> Iterator[Metric]:
        yield from summary_families(model, view)
        schema_firing: set[str] = set()
        for digest in view.segments.values():
            schema_firing |= digest.schema_firing
        yield self._unmonitored_family(model, schema_firing)

    def _drift(self, model: str) -> Iterator[Metric]:
        score = GaugeMetricFamily(
            "driftd_drift_score", "Latest drift score of the window.", labels=DRIFT_LABELS
        )
        p_value = GaugeMetricFamily(
            "driftd_drift_p_value", "p-value of the latest score.", labels=DRIFT_LABELS
        )
        threshold = GaugeMetricFamily(
            "driftd_drift_threshold",
            "Score at or above which a window breaches.",
            labels=DRIFT_LABELS,
        )
        clear = GaugeMetricFamily(
            "driftd_drift_clear_threshold",
            "Score below which a firing alert resolves.",
            labels=DRIFT_LABELS,
        )
        active = GaugeMetricFamily(
            "driftd_drift_active", "1 while the drift alert is firing, else 0.", labels=DRIFT_LABELS
        )
        streak = GaugeMetricFamily(
            "driftd_drift_breach_streak",
            "Consecutive breaching windows counted towards (or during) firing.",
            labels=DRIFT_LABELS,
        )
        states = {(s.segment, s.column, s.method): s for s in self.decisions.states()}
        keys = set(states)
        for latest in self.results.scores():
            key = (latest.segment, latest.column, latest.method)
            keys.add(key)
            labels = [model, *key]
            score.add_metric(labels, latest.score)
            if not math.isnan(latest.p_value):
                p_value.add_metric(labels, latest.p_value)
        for key in sorted(keys):
            labels = [model, *key]
            state = states.get(key)
            if state is not None and math.isfinite(state.threshold):
                # What the last window was judged against: calibrated thresholds follow
                # the reference and the window's size, so they are not config constants.
                threshold.add_metric(labels, state.threshold)
                clear.add_metric(labels, state.clear)
            active.add_metric(labels, 1.0 if state is not None and state.state == "firing" else 0)
            streak.add_metric(labels, state.streak if state is not None else 0)
        yield from (score, p_value, threshold, clear, active, streak)
        yield self._unmonitored(model, states.values())

    def _unmonitored(self, model: str, states: Iterable[DecisionState]) -> Metric:
        """1 for each reference column a segment's windows do not carry (``schema`` firing),
        and for the columns the reference itself cannot monitor; 0 for the others."""
        schema = [s for s in states if s.method == "schema"]
        firing = {s.column for s in schema if s.state == "firing"}
        return self._unmonitored_family(model, firing, {s.column for s in schema})

    def _unmonitored_family(
        self, model: str, schema_firing: Iterable[str], schema_seen: Iterable[str] = ()
    ) -> Metric:
        family = GaugeMetricFamily(
            "driftd_feature_unmonitored",
            "1 while a reference column is absent from the events of some segment "
            "(its schema alert fires), or cannot be monitored at all; else 0.",
            labels=["model", "feature"],
        )
        flags: dict[str, bool] = dict.fromkeys(self.monitored_columns(), False)
        flags.update(dict.fromkeys(schema_seen, False) | flags)
        for name in self.unmonitorable():
            flags[name] = True
        for name in schema_firing:
            flags[name] = True
        for name in sorted(flags):
            family.add_metric([model, name], 1.0 if flags[name] else 0.0)
        return family

    def _windows(
        self, model: str, missing_of: Mapping[str, Sequence[str]] | None = None
    ) -> Iterator[Metric]:
        """Window size and end per segment; the missing rate of every (segment, feature),
        or of the features ``missing_of`` names per segment only."""
        size = GaugeMetricFamily(
            "driftd_window_size",
            "Rows in the segment's latest closed window.",
            labels=["model", "segment"],
        )
        end = GaugeMetricFamily(
            "driftd_window_end_timestamp_seconds",
            "Event-time end of the segment's latest closed window (Unix seconds).",
            labels=["model", "segment"],
        )
        missing = GaugeMetricFamily(
            "driftd_feature_missing_rate",
            "Share (0..1) of missing, null, NaN or inf values in the latest window.",
            labels=["model", "segment", "feature"],
        )
        for w in sorted(self.results.windows(), key=lambda w: w.segment):
            size.add_metric([model, w.segment], w.rows)
            end.add_metric([model, w.segment], w.window_end_ts)
            rates: Iterable[tuple[str, float]]
            if missing_of is None:
                rates = w.missing_rate.items()
            else:  # the few features with a firing or pending row, not all of them
                wanted = missing_of.get(w.segment, ())
                rates = ((f, w.missing_rate[f]) for f in wanted if f in w.missing_rate)
            for feature, rate in rates:
                if not math.isnan(rate):
                    missing.add_metric([model, w.segment, feature], rate)
        yield from (size, end, missing)

    @staticmethod
    def _lag(provider: LagProvider) -> list[Metric]:
        lag = GaugeMetricFamily(
            "driftd_consumer_lag",
            "Messages between the group's committed offset and the log end offset.",
            labels=["topic", "partition"],
        )
        for (topic, partition), value in sorted(provider().items()):
            lag.add_metric([topic, str(partition)], value)
        return [lag]

    @staticmethod
    def _poll_age(provider: PollAgeProvider) -> list[Metric]:
        age = provider()
        if age is None:
            return []
        return [
            GaugeMetricFamily(
                "driftd_seconds_since_last_poll",
                "Seconds since the last successful source poll (a failed poll does not count).",
                value=age,
            )
        ]

    @staticmethod
    def _guard(name: str, build: Callable[[_P], list[Metric]], provider: _P) -> list[Metric]:
        try:
            return build(provider)
        except Exception as exc:
            _log.warning("metrics_provider_failed", family=name, error=repr(exc))
            return []
