"""Segment-mix drift metrics, read at scrape time from the pipeline's segment-mix status.

One series each per model (no ``segment`` label) but ``driftd_segment_new``, whose
``segment`` values are at most ``segment_mix.max_new_segments`` names of the latest
window, escaped as the segment table escapes them and no longer than its label limit.
"""

from __future__ import annotations

import math

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from monitor.engine.segment_mix import MixStatus

__all__ = ["segment_mix_families"]


def segment_mix_families(model: str, status: MixStatus) -> list[Metric]:
    """Segment-mix drift of the latest closed window (``monitor.engine.segment_mix``).

    ``driftd_segment_mix_score``, ``_threshold``, ``_p_value`` and ``_new_share``
    ``{model}``; ``driftd_segment_new{model,segment}`` = 1 for each new segment named
    (at most ``segment_mix.max_new_segments``; names escaped as the segment table's),
    ``driftd_segments_new{model}`` all of them; ``driftd_segment_mix_invalid_total``;
    ``driftd_segment_mix_unavailable{model,reason}`` = 1 while it cannot be monitored.
    Nothing before a first window closes (NaN scores are left out).
    """

    def gauge(name: str, doc: str, value: float | None = None) -> GaugeMetricFamily:
        family = GaugeMetricFamily(name, doc, labels=["model"])
        if value is not None and not math.isnan(value):
            family.add_metric([model], value)
        return family

    latest = status.latest
    score, threshold, p_value, new_share, new_count = (
        (None,) * 5
        if latest is None
        else (
            latest.score,
            latest.threshold,
            latest.p_value,
            latest.new_share,
            float(latest.new_count),
        )
    )
    new = GaugeMetricFamily(
        "driftd_segment_new",
        "1 for each segment of the latest segment-mix window that the reference never saw.",
        labels=["model", "segment"],
    )
    for segment in latest.new_segments if latest is not None else ():
        new.add_metric([model, segment], 1.0)
    invalid = CounterMetricFamily(
        "driftd_segment_mix_invalid",
        "Segment keys that were no segment name, left out of the segment mix.",
        labels=["model"],
    )
    invalid.add_metric([model], status.invalid_total)
    unavailable = GaugeMetricFamily(
        "driftd_segment_mix_unavailable",
        "1 while segment-mix drift is enabled but cannot be monitored, by reason.",
        labels=["model", "reason"],
    )
    if status.unavailable is not None:
        unavailable.add_metric([model, status.unavailable], 1.0)
    return [
        gauge(
            "driftd_segment_mix_score",
            "Cohen's w of the latest segment-mix window against the reference's mix.",
            score,
        ),
        gauge(
            "driftd_segment_mix_threshold",
            "The Cohen's w at which the latest segment-mix window breaches.",
            threshold,
        ),
        gauge(
            "driftd_segment_mix_p_value",
            "Chi-square p-value of the latest segment-mix window.",
            p_value,
        ),
        gauge(
            "driftd_segment_mix_new_share",
            "Share of the latest segment-mix window's events in segments the reference lacks.",
            new_share,
        ),
        new,
        gauge(
            "driftd_segments_new",
            "Segments of the latest segment-mix window that the reference never saw.",
            new_count,
        ),
        invalid,
        unavailable,
    ]
