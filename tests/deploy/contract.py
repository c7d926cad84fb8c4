"""driftd's metric contract: the names dashboards and rules may use.

EXPORTED are exported today (monitor/emit/metrics.py, drift_collector.py, alerts/outbox.py,
ingest/kafka/metrics.py); COMING
are promised (labels, concept drift, checkpoints) and listed in the live dashboard test's
NOT_YET_EXPORTED until they land. A dashboard or rule using any other ``driftd_`` name
is a typo. Histograms are listed by base name (``_bucket``, ``_sum`` and ``_count``
follow); counters with their ``_total`` suffix.
"""

from __future__ import annotations

import re

EXPORTED = frozenset(
    {
        "driftd_drift_score",
        "driftd_drift_p_value",
        "driftd_drift_threshold",
        "driftd_drift_clear_threshold",
        "driftd_drift_active",
        "driftd_drift_breach_streak",
        "driftd_segment_drift_worst_ratio",
        "driftd_segment_features_drifting",
        "driftd_feature_drift_worst_ratio",
        "driftd_feature_segments_drifting",
        "driftd_feature_drift_threshold",
        "driftd_feature_drift_clear_threshold",
        "driftd_drift_evaluations_skipped_total",
        "driftd_window_size",
        "driftd_window_end_timestamp_seconds",
        "driftd_feature_missing_rate",
        "driftd_windows_closed_total",
        "driftd_events_consumed_total",
        "driftd_events_rejected_total",
        "driftd_dead_letter_total",
        "driftd_segments_overflow_total",
        "driftd_feature_unmonitored",
        "driftd_segment_mix_score",
        "driftd_segment_mix_threshold",
        "driftd_segment_mix_p_value",
        "driftd_segment_mix_new_share",
        "driftd_segment_new",
        "driftd_segments_new",
        "driftd_segment_mix_invalid_total",
        "driftd_segment_mix_unavailable",
        "driftd_estimated_performance",
        "driftd_performance_drop",
        "driftd_performance_drop_threshold",
        "driftd_invalid_scores_total",
        "driftd_performance_unmonitored",
        "driftd_realized_performance_on_pairs",
        "driftd_estimated_performance_on_pairs",
        "driftd_label_noise_share",
        "driftd_label_noise_threshold",
        "driftd_multivariate_reconstruction_error",
        "driftd_multivariate_reconstruction_error_threshold",
        "driftd_multivariate_reconstruction_error_lower",
        "driftd_multivariate_unmonitored",
        "driftd_embedding_drift_distance",
        "driftd_embedding_drift_threshold",
        "driftd_embedding_unmonitored",
        "driftd_relabel_tasks_total",
        "driftd_relabel_tasks_dropped_total",
        "driftd_relabel_queue_tasks",
        "driftd_relabel_tasks_without_features_total",
        "driftd_relabel_feature_events",
        "driftd_relabel_feature_events_evicted_total",
        "driftd_feature_names_refused_total",
        "driftd_events_late_total",
        "driftd_batch_processing_seconds",
        "driftd_commit_total",
        "driftd_drift_transitions_total",
        "driftd_consumer_lag",
        "driftd_seconds_since_last_poll",
        "driftd_kafka_group_stable",
        "driftd_kafka_assigned_partitions",
        "driftd_kafka_rebalances_total",
        "driftd_build_info",
        "driftd_reference_info",
        "driftd_alerts_total",
        "driftd_alert_outbox_depth",
        "driftd_alert_delivery_seconds",
        "driftd_alerts_dropped_total",
    }
)

COMING = frozenset(
    {
        "driftd_labels_consumed_total",
        "driftd_label_join_matched_total",
        "driftd_label_join_expired_total",
        "driftd_label_join_evicted_total",
        "driftd_label_join_pending",
        "driftd_label_delay_seconds",
        "driftd_performance",
        "driftd_fairness_gap",
        "driftd_adwin_width",
        "driftd_adwin_mean",
        "driftd_checkpoint_last_success_timestamp_seconds",
        "driftd_checkpoint_duration_seconds",
        "driftd_checkpoint_size_bytes",
        "driftd_checkpoint_total",
    }
)

HISTOGRAMS = frozenset(
    {
        "driftd_batch_processing_seconds",
        "driftd_alert_delivery_seconds",
        "driftd_label_delay_seconds",
        "driftd_checkpoint_duration_seconds",
    }
)

_DRIFTD_NAME = re.compile(r"\bdriftd_[a-z0-9_]+\b")
_RECORDED_NAME = re.compile(r"\b[a-z_]+:driftd_[a-z0-9_]+:[a-z0-9_]+\b")


def known(name: str) -> bool:
    """Whether ``name`` is a contract metric, or a series of a contract histogram."""
    if name in EXPORTED or name in COMING:
        return True
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name.removesuffix(suffix) in HISTOGRAMS:
            return True
    return False


def metric_names(expr: str) -> set[str]:
    """The ``driftd_`` metric names an expression selects (recorded series excluded)."""
    without_recorded = _RECORDED_NAME.sub(" ", expr)
    return set(_DRIFTD_NAME.findall(without_recorded))


def recorded_names(expr: str) -> set[str]:
    """The recording-rule series (``level:driftd_metric:operation``) an expression reads."""
    return set(_RECORDED_NAME.findall(expr))
