"""Generate driftd's Grafana dashboards from code: the single source of truth.

    python grafana/build.py           # rewrite grafana/dashboards/*.json
    python grafana/build.py --check   # exit 1 if a committed JSON file is out of date

The dashboards are built with grafana-foundation-sdk (pinned exactly in pyproject's
``test`` extra) and written as plain dashboard JSON for Grafana's file provisioning
(``grafana/provisioning/``). They use a ``datasource`` variable, never the ``${DS_...}``
import placeholders, so they load as provisioned files. ``tests/deploy/`` lints them
and runs every query against a real Prometheus scraping a real daemon.

Metric names and labels are driftd's metric contract (monitor/emit/metrics.py,
monitor/emit/drift_collector.py and the README); ``model_segment*:...`` series come from
the recording rules in deploy/prometheus/rules/driftd.rules.yml.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import (
    bargauge,
    stat,
    statetimeline,
    table,
    timeseries,
)
from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm

OUT_DIR = Path(__file__).resolve().parent / "dashboards"
OVERVIEW_UID = "driftd-overview"
SEGMENT_UID = "driftd-segment"
DS = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
"""Every panel and query reads the data source chosen in the ``datasource`` variable."""

# Label matchers shared by the queries (Grafana substitutes the variables).
M = 'model="$model"'
MS = 'model="$model", segment=~"$segment"'  # overview: segment is multi-value
S1 = 'model="$model", segment="$segment"'  # drill-down: one segment
# The metrics without a model label (lag, poll age, batch time, sinks) belong to the
# process whose events counter carries the chosen model.
OF_MODEL = f"and on (job, instance) driftd_events_consumed_total{{{M}}}"

Panel = cogbuilder.Builder[dm.Panel]


class _Ids:
    """Stable panel ids, in the order panels are declared."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> int:
        self.n += 1
        return self.n


def query(
    expr: str, legend: str = "", *, ref: str = "A", instant: bool = False, table_fmt: bool = False
) -> prom.Dataquery:
    """A Prometheus query against the dashboard's data source."""
    q = prom.Dataquery().expr(expr).ref_id(ref).datasource(DS)
    q = q.legend_format(legend or "__auto")
    q = q.instant() if instant else q.range()
    if table_fmt:
        q = q.format(pm.PromQueryFormat.TABLE)
    return q


def thresholds(*steps: tuple[float | None, str]) -> dash.ThresholdsConfig:
    """Absolute thresholds from ``(value, color)`` pairs; the first value is None (base)."""
    return (
        dash.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=v, color=c) for v, c in steps])
    )


# Score as a share of its threshold: green below the clear level, red at the threshold.
RATIO_STEPS = thresholds((None, "green"), (0.4, "yellow"), (1.0, "red"))
# A threshold drawn next to its score: dashed red, not filled.
THRESHOLD_STYLE = [
    dm.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "red"}),
    dm.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}),
    dm.DynamicConfigValue(id_val="custom.fillOpacity", value=0),
]


def ts_panel(
    ids: _Ids,
    title: str,
    description: str,
    unit: str,
    targets: Sequence[prom.Dataquery],
    *,
    w: int = 8,
    h: int = 8,
    log_scale: bool = False,
    threshold_series: Sequence[str] = (),
    threshold_queries: Sequence[str] = (),
    min_val: float | None = None,
) -> timeseries.Panel:
    """A time series panel; series named in ``threshold_series``, and every series of the
    queries whose ref ids are in ``threshold_queries`` (one threshold per feature, say),
    are drawn dashed red."""
    p = (
        timeseries.Panel()
        .id(ids())
        .title(title)
        .description(description)
        .datasource(DS)
        .unit(unit)
        .span(w)
        .height(h)
        .line_width(1)
        .fill_opacity(8)
        .show_points(common.VisibilityMode.NEVER)
        .legend(
            common_b.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["lastNotNull", "max"])
        )
        .tooltip(
            common_b.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
    )
    for t in targets:
        p = p.with_target(t)
    if log_scale:
        p = p.scale_distribution(
            common_b.ScaleDistributionConfig().type(common.ScaleDistribution.LOG).log(10)
        )
    if min_val is not None:
        p = p.min(min_val)
    for name in threshold_series:
        p = p.override_by_name(name, THRESHOLD_STYLE)
    for ref in threshold_queries:
        p = p.override_by_query(ref, THRESHOLD_STYLE)
    return p


def stat_panel(
    ids: _Ids,
    title: str,
    description: str,
    unit: str,
    target: prom.Dataquery,
    steps: dash.ThresholdsConfig,
    *,
    w: int = 4,
    h: int = 4,
) -> stat.Panel:
    """A single big number coloured by ``steps``."""
    return (
        stat.Panel()
        .id(ids())
        .title(title)
        .description(description)
        .datasource(DS)
        .unit(unit)
        .span(w)
        .height(h)
        .with_target(target)
        .thresholds(steps)
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.AREA)
        .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]))
    )


def variables(d: dash.Dashboard, *, multi_segment: bool, with_feature: bool) -> dash.Dashboard:
    """``datasource``, then ``model``, ``segment`` (and ``feature``) chained by label_values."""
    d = d.with_variable(
        dash.DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
        .description("The Prometheus that scrapes driftd.")
    )
    d = d.with_variable(
        dash.QueryVariable("model")
        .label("Model")
        .description("Models monitored by driftd.")
        .datasource(DS)
        .query("label_values(driftd_window_size, model)")
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
    )
    segment = (
        dash.QueryVariable("segment")
        .label("Segment")
        .description("Segments of the chosen model (capped segment table).")
        .datasource(DS)
        .query(f"label_values(driftd_window_size{{{M}}}, segment)")
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
    )
    if multi_segment:
        segment = segment.multi(True).include_all(True).all_value(".*")
    d = d.with_variable(segment)
    if with_feature:
        d = d.with_variable(
            dash.QueryVariable("feature")
            .label("Feature")
            .description("Columns of the chosen segment (features, prediction, label).")
            .datasource(DS)
            .query(f"label_values(driftd_drift_score{{{S1}}}, feature)")
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dm.VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
        )
    return d


def base(uid: str, title: str, description: str, tags: list[str]) -> dash.Dashboard:
    """A dashboard shell: time range, refresh, tooltip and the link to its sibling."""
    return (
        dash.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["driftd", *tags])
        .editable()
        .time("now-1h", "now")
        .refresh("30s")
        .timezone("browser")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .link(
            dash.DashboardLink("driftd")
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags(["driftd"])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )


def drill_link(segment_value: str) -> dash.DashboardLink:
    """A data link to the segment drill-down, keeping the model and the time range."""
    return dash.DashboardLink(f"Open segment {segment_value}").url(
        f"/d/{SEGMENT_UID}?var-datasource=${{datasource}}&var-model=${{model}}"
        f"&var-segment={segment_value}&${{__url_time_range}}"
    )


def overview() -> dash.Dashboard:
    """Every segment of a model at a glance: where it drifts, and whether driftd keeps up."""
    ids = _Ids()
    d = base(
        OVERVIEW_UID,
        "driftd / Overview",
        "Drift across segments and features, active alerts, throughput, lag, windows, "
        "label joins, per-segment performance and fairness.",
        ["overview"],
    )
    d = variables(d, multi_segment=True, with_feature=False)

    d = d.with_row(dash.Row("Drift"))
    d = d.with_panel(
        table.Panel()
        .id(ids())
        .title("Drift heatmap (segment x feature)")
        .description(
            "Worst score of each column over all its methods, as a share of that method's "
            "alert threshold (100% = at the threshold). With metrics.detail: summary, the "
            "columns firing, pending or in each segment's top-K only. Click a segment to "
            "drill down."
        )
        .datasource(DS)
        .unit("percentunit")
        .decimals(0)
        .span(14)
        .height(10)
        .with_target(
            query(
                "max by (segment, feature) ("
                f"model_segment_feature_method:driftd_drift_score_over_threshold:ratio{{{MS}}})",
                instant=True,
                table_fmt=True,
            )
        )
        .with_transformation(
            dm.DataTransformerConfig(
                id_val="groupingToMatrix",
                options={
                    "columnField": "feature",
                    "rowField": "segment",
                    "valueField": "Value",
                    "emptyValue": "null",
                },
            )
        )
        .thresholds(RATIO_STEPS)
        .color_scheme(dash.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
        .cell_options(
            common.TableColoredBackgroundCellOptions(
                mode=common.TableCellBackgroundDisplayMode.BASIC
            )
        )
        .override_by_name(
            "segment\\feature",
            [
                dm.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "auto"}),
                dm.DynamicConfigValue(id_val="links", value=[drill_link("${__value.raw}").build()]),
            ],
        )
    )
    d = d.with_panel(
        bargauge.Panel()
        .id(ids())
        .title("Top drifting segments")
        .description("The ten segments whose worst column is closest to (or past) its threshold.")
        .datasource(DS)
        .unit("percentunit")
        .span(5)
        .height(10)
        .min(0)
        .with_target(
            query(
                f"topk(10, model_segment:driftd_drift_score_over_threshold:max{{{MS}}})",
                "{{segment}}",
                instant=True,
            )
        )
        .thresholds(RATIO_STEPS)
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .orientation(common.VizOrientation.HORIZONTAL)
        .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]))
        .data_links([drill_link("${__field.labels.segment}")])
    )
    d = d.with_panel(
        stat_panel(
            ids,
            "Active drift alerts",
            "(feature, method) decisions firing now in the chosen segments.",
            "none",
            query(f"sum(model_segment:driftd_drift_active:sum{{{MS}}})", "firing"),
            thresholds((None, "green"), (1, "red")),
            w=5,
            h=4,
        )
    )
    d = d.with_panel(
        table.Panel()
        .id(ids())
        .title("Active alerts")
        .description("Every (segment, feature, method) whose drift alert is firing.")
        .datasource(DS)
        .unit("none")
        .span(5)
        .height(6)
        .with_target(
            query(
                f"max by (segment, feature, method) (driftd_drift_active{{{MS}}}) == 1",
                instant=True,
                table_fmt=True,
            )
        )
        .with_transformation(
            dm.DataTransformerConfig(
                id_val="organize",
                options={"excludeByName": {"Time": True, "Value": True}},
            )
        )
    )

    d = d.with_panel(
        bargauge.Panel()
        .id(ids())
        .title("Drift across segments")
        .description(
            "The ten (feature, method) pairs firing or pending in the most segments: one "
            "feature drifting everywhere is a change upstream, in one segment a local one."
        )
        .datasource(DS)
        .unit("none")
        .span(19)
        .height(6)
        .min(0)
        .with_target(
            query(
                f"topk(10, max by (feature, method) (driftd_feature_segments_drifting{{{M}}}) "
                "or count by (feature, method) (max by (segment, feature, method) "
                f"(driftd_drift_breach_streak{{{MS}}} > 0 or driftd_drift_active{{{MS}}} == 1)))",
                "{{feature}} {{method}}",
                instant=True,
            )
        )
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .orientation(common.VizOrientation.HORIZONTAL)
        .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]))
    )

    d = d.with_row(dash.Row("Throughput and lag"))
    d = d.with_panel(
        ts_panel(
            ids,
            "Events/s",
            "Events decoded and counted into windows, per second.",
            "cps",
            [
                query(
                    f"sum by (model) (rate(driftd_events_consumed_total{{{M}}}[$__rate_interval]))",
                    "{{model}}",
                )
            ],
        )
    )
    d = d.with_panel(
        ts_panel(
            ids,
            "Rejected/s and dead letters/s",
            "Messages refused by decode or validation, by reason, and those written to "
            "the dead-letter topic.",
            "cps",
            [
                query(
                    "sum by (reason) ("
                    f"rate(driftd_events_rejected_total{{{M}}}[$__rate_interval]))",
                    "rejected {{reason}}",
                ),
                query(
                    f"sum by (reason) (rate(driftd_dead_letter_total{{{M}}}[$__rate_interval]))",
                    "dead-letter {{reason}}",
                    ref="B",
                ),
            ],
        )
    )
    d = d.with_panel(
        ts_panel(
            ids,
            "Consumer lag",
            "Messages past the group's committed offset, per partition: grows while "
            "checkpoints or commits fail.",
            "short",
            [
                query(
                    f"sum by (topic, partition) (driftd_consumer_lag {OF_MODEL})",
                    "{{topic}}/{{partition}}",
                )
            ],
            min_val=0,
        )
    )
    d = d.with_panel(
        ts_panel(
            ids,
            "Batch processing time",
            "Wall time per poll batch, decode to decisions (p50 and p99).",
            "s",
            [
                query(
                    "histogram_quantile(0.5, sum by (le) ("
                    f"rate(driftd_batch_processing_seconds_bucket[$__rate_interval]) {OF_MODEL}))",
                    "p50",
                ),
                query(
                    "histogram_quantile(0.99, sum by (le) ("
                    f"rate(driftd_batch_processing_seconds_bucket[$__rate_interval]) {OF_MODEL}))",
                    "p99",
                    ref="B",
                ),
            ],
        )
    )
    d = d.with_panel(
        ts_panel(
            ids,
            "Seconds since last poll",
            "Age of the last successful poll; a steady climb means the broker is away "
            "or the loop is stuck.",
            "s",
            [
                query(
                    f"max by (instance) (driftd_seconds_since_last_poll {OF_MODEL})",
                    "{{instance}}",
                )
            ],
            min_val=0,
        )
    )
    d = d.with_panel(
        ts_panel(
            ids,
            "Kafka partitions owned",
            "Partitions each consumer group's replicas own (Kafka only). 0 for a group means "
            "its members are outside the group and nothing is monitored.",
            "short",
            [
                query(
                    "sum by (group) (driftd_kafka_assigned_partitions)",
                    "{{group}}",
                )
            ],
            min_val=0,
        )
    )
    d = d.with_panel(
        ts_panel(
            ids,
            "Checkpoint age",
            "Time since the last successful checkpoint (offsets commit only after one).",
            "s",
            [
                query(
                    "time() - max by (model) ("
                    f"driftd_checkpoint_last_success_timestamp_seconds{{{M}}})",
                    "{{model}}",
                )
            ],
            min_val=0,
        )
    )

    d = d.with_row(dash.Row("Windows"))
    d = d.with_panel(
        ts_panel(
            ids,
            "Window sizes",
            "Rows in each segment's latest closed window.",
            "short",
            [query(f"max by (segment) (driftd_window_size{{{MS}}})", "{{segment}}")],
            min_val=0,
        )
    )
    d = d.with_panel(
        ts_panel(
            ids,
            "Windows closed/s",
            "Segment windows closed and evaluated, per second.",
            "cps",
            [
                query(
                    "sum by (segment) ("
                    f"rate(driftd_windows_closed_total{{{MS}}}[$__rate_interval]))",
                    "{{segment}}",
                )
            ],
        )
    )
    d = d.with_panel(
        ts_panel(
            ids,
            "Missing values",
            "Share of missing, null, NaN or inf values per feature in the latest window. "
            "With metrics.detail: summary, of the features firing or pending only.",
            "percentunit",
            [
                query(
                    f"max by (segment, feature) (driftd_feature_missing_rate{{{MS}}})",
                    "{{segment}} {{feature}}",
                )
            ],
            min_val=0,
        )
    )

    d = d.with_row(dash.Row("Segment mix"))
    d = d.with_panel(
        ts_panel(
            ids,
            "Segment mix drift",
            "How the model's traffic splits across segments against the reference's split: "
            "Cohen's w of the latest segment-mix window (it pages at the dashed threshold), "
            "and the share of its events in segments the reference never saw.",
            "none",
            [
                query(f"max(driftd_segment_mix_score{{{M}}})", "Cohen's w"),
                query(f"max(driftd_segment_mix_threshold{{{M}}})", "threshold", ref="B"),
                query(f"max(driftd_segment_mix_new_share{{{M}}})", "new segments' share", ref="C"),
            ],
            w=16,
            threshold_series=["threshold"],
            min_val=0,
        )
    )
    d = d.with_panel(
        table.Panel()
        .id(ids())
        .title("New segments")
        .description(
            "Segments of the latest segment-mix window that the reference never saw (the "
            "first segment_mix.max_new_segments). Rebuild the reference once they are expected."
        )
        .datasource(DS)
        .unit("none")
        .span(8)
        .height(8)
        .with_target(
            query(f"max by (segment) (driftd_segment_new{{{M}}})", instant=True, table_fmt=True)
        )
        .with_transformation(
            dm.DataTransformerConfig(
                id_val="organize",
                options={"excludeByName": {"Time": True, "Value": True}},
            )
        )
    )

    d = d.with_row(dash.Row("Labels, performance and fairness"))
    d = d.with_panel(
        ts_panel(
            ids,
            "Label join rate",
            "Labels consumed, predictions joined to their label, and entries expired "
            "unjoined (by side), per second.",
            "cps",
            [
                query(
                    f"sum(rate(driftd_labels_consumed_total{{{M}}}[$__rate_interval]))",
                    "labels",
                ),
                query(
                    f"sum(rate(driftd_label_join_matched_total{{{M}}}[$__rate_interval]))",
                    "matched",
                    ref="B",
                ),
                query(
                    "sum by (side) ("
                    f"rate(driftd_label_join_expired_total{{{M}}}[$__rate_interval]))",
                    "expired {{side}}",
                    ref="C",
                ),
            ],
        )
    )
    d = d.with_panel(
        ts_panel(
            ids,
            "Label delay",
            "Event time from a prediction to its label (p50 and p95).",
            "s",
            [
                query(
                    "histogram_quantile(0.5, sum by (le) ("
                    f"rate(driftd_label_delay_seconds_bucket{{{M}}}[$__rate_interval])))",
                    "p50",
                ),
                query(
                    "histogram_quantile(0.95, sum by (le) ("
                    f"rate(driftd_label_delay_seconds_bucket{{{M}}}[$__rate_interval])))",
                    "p95",
                    ref="B",
                ),
            ],
        )
    )
    d = d.with_panel(
        ts_panel(
            ids,
            "Joins pending",
            "Predictions waiting for their label, and early labels waiting for their prediction.",
            "short",
            [query(f"sum by (side) (driftd_label_join_pending{{{M}}})", "{{side}}")],
            min_val=0,
        )
    )
    d = d.with_panel(
        ts_panel(
            ids,
            "Performance by segment",
            "Accuracy, precision and recall of the latest performance window.",
            "percentunit",
            [
                query(
                    f'driftd_performance{{{MS}, metric=~"accuracy|precision|recall"}}',
                    "{{segment}} {{metric}}",
                )
            ],
            w=8,
        )
    )
    d = d.with_panel(
        ts_panel(
            ids,
            "Errors by segment",
            "Log loss, Brier score (binary) or MAE / RMSE (regression) of the latest "
            "performance window.",
            "short",
            [
                query(
                    f'driftd_performance{{{MS}, metric=~"log_loss|brier|mae|rmse"}}',
                    "{{segment}} {{metric}}",
                )
            ],
            w=8,
        )
    )
    d = d.with_panel(
        ts_panel(
            ids,
            "Fairness gaps by segment",
            "Largest gap between groups: demographic parity difference, TPR gap, FPR gap.",
            "percentunit",
            [query(f"driftd_fairness_gap{{{MS}}}", "{{segment}} {{metric}}")],
            w=8,
        )
    )
    d = d.with_panel(
        ts_panel(
            ids,
            "Estimated performance by segment",
            "Accuracy, precision and recall of each segment's latest event window, estimated "
            "from its scores alone (CBPE): no label needed. Needs a reference with a score "
            "calibration.",
            "percentunit",
            [
                query(
                    f'driftd_estimated_performance{{{MS}, metric=~"accuracy|precision|recall"}}',
                    "{{segment}} {{metric}}",
                )
            ],
            w=8,
        )
    )
    d = d.with_panel(
        ts_panel(
            ids,
            "Relabel tasks/s",
            "Label Studio tasks written to the relabel queue (labels.relabel), and the "
            "candidates dropped, by reason: duplicate (queued already), queue_full "
            "(labels.relabel.max_tasks), invalid, delivery_failed (topic); tasks written "
            "without the event's features, by reason (store_full, restart, not_captured).",
            "cps",
            [
                query(
                    f"sum(rate(driftd_relabel_tasks_total{{{M}}}[$__rate_interval]))",
                    "written",
                ),
                query(
                    "sum by (reason) ("
                    f"rate(driftd_relabel_tasks_dropped_total{{{M}}}[$__rate_interval]))",
                    "dropped {{reason}}",
                    ref="B",
                ),
                query(
                    "sum by (reason) (rate("
                    f"driftd_relabel_tasks_without_features_total{{{M}}}[$__rate_interval]))",
                    "no features {{reason}}",
                    ref="C",
                ),
            ],
            w=8,
            min_val=0,
        )
    )
    d = d.with_panel(
        ts_panel(
            ids,
            "Relabel queue",
            "Tasks in the relabel queue file (or produced to its topic); past "
            "labels.relabel.max_tasks new ones are dropped until the file is moved. Feature "
            "store: pending events whose features wait for their label, and those pushed "
            "out of the full store (raise labels.relabel.feature_events when it climbs).",
            "short",
            [
                query(f"max(driftd_relabel_queue_tasks{{{M}}})", "tasks"),
                query(f"max(driftd_relabel_feature_events{{{M}}})", "feature store", ref="B"),
                query(
                    f"max(driftd_relabel_feature_events_evicted_total{{{M}}})",
                    "features evicted",
                    ref="C",
                ),
            ],
            w=8,
            min_val=0,
        )
    )

    d = d.with_row(dash.Row("Alert delivery and build"))
    d = d.with_panel(
        ts_panel(
            ids,
            "Alert deliveries/s",
            "Alert actions by sink and outcome (delivered, retry, throttled, rejected, abandoned).",
            "cps",
            [
                query(
                    "sum by (sink, outcome) ("
                    f"rate(driftd_alerts_total[$__rate_interval]) {OF_MODEL})",
                    "{{sink}} {{outcome}}",
                )
            ],
        )
    )
    d = d.with_panel(
        ts_panel(
            ids,
            "Alert outbox depth",
            "Actions waiting in each sink's outbox.",
            "short",
            [query(f"max by (sink) (driftd_alert_outbox_depth {OF_MODEL})", "{{sink}}")],
            min_val=0,
        )
    )
    d = d.with_panel(
        table.Panel()
        .id(ids())
        .title("Build and reference")
        .description("driftd version per instance, and the reference profile version in use.")
        .datasource(DS)
        .unit("none")
        .span(8)
        .height(8)
        .with_target(
            query(
                f"max by (instance, version, python) (driftd_build_info {OF_MODEL})",
                instant=True,
                table_fmt=True,
            )
        )
        .with_target(
            query(
                f"max by (instance, model, version) (driftd_reference_info{{{M}}})",
                instant=True,
                table_fmt=True,
                ref="B",
            )
        )
        .with_transformation(dm.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            dm.DataTransformerConfig(
                id_val="organize",
                options={"excludeByName": {"Time": True, "Value #A": True, "Value #B": True}},
            )
        )
    )
    d = d.with_panel(
        statetimeline.Panel()
        .id(ids())
        .title("Methods not monitored")
        .description(
            "1 (red) while a method is enabled but cannot run, so it can never alert: "
            "estimated performance and label noise without a score calibration in the "
            "reference (or with another decision threshold than labels.decision_threshold), "
            "multivariate drift without a PCA, a vector feature without an embedding model. "
            "The start-up log says why (performance_unmonitored, multivariate_unmonitored, "
            "embedding_unmonitored)."
        )
        .datasource(DS)
        .unit("none")
        .span(24)
        .height(5)
        .with_target(
            query(f"max(driftd_performance_unmonitored{{{M}}})", "estimated performance, noise")
        )
        .with_target(query(f"max(driftd_multivariate_unmonitored{{{M}}})", "multivariate", ref="B"))
        .with_target(
            query(
                f"max by (feature) (driftd_embedding_unmonitored{{{M}}})",
                "embedding {{feature}}",
                ref="C",
            )
        )
        .thresholds(thresholds((None, "green"), (1, "red")))
        .color_scheme(dash.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
        .show_value(common.VisibilityMode.NEVER)
    )
    return d


def segment() -> dash.Dashboard:
    """One segment in depth: each column's scores against thresholds, p-values, ADWIN."""
    ids = _Ids()
    d = base(
        SEGMENT_UID,
        "driftd / Segment drill-down",
        "Per-feature PSI and KS against their thresholds, p-values, categorical tests, "
        "alert states, ADWIN on the error stream and performance of one segment.",
        ["segment"],
    )
    d = variables(d, multi_segment=False, with_feature=True)
    col = f'{S1}, feature=~"$feature"'

    d = d.with_row(dash.Row("State"))
    d = d.with_panel(
        stat_panel(
            ids,
            "Alerts firing",
            "(feature, method) decisions firing now in this segment.",
            "none",
            query(f"sum(driftd_drift_active{{{S1}}})", "firing"),
            thresholds((None, "green"), (1, "red")),
            w=4,
        )
    )
    d = d.with_panel(
        stat_panel(
            ids,
            "Window size",
            "Rows in the latest closed window.",
            "short",
            query(f"max(driftd_window_size{{{S1}}})", "rows"),
            thresholds((None, "blue")),
            w=4,
        )
    )
    d = d.with_panel(
        stat_panel(
            ids,
            "Latest window end",
            "How long ago (wall clock) the latest closed window ended in event time.",
            "s",
            query(f"time() - max(driftd_window_end_timestamp_seconds{{{S1}}})", "age"),
            thresholds((None, "green"), (3600, "yellow"), (86400, "red")),
            w=4,
        )
    )
    d = d.with_panel(
        statetimeline.Panel()
        .id(ids())
        .title("Alert state")
        .description("Firing (1) or not (0), per feature and method.")
        .datasource(DS)
        .unit("none")
        .span(12)
        .height(4)
        .with_target(
            query(
                f"max by (feature, method) (driftd_drift_active{{{col}}})", "{{feature}} {{method}}"
            )
        )
        .thresholds(thresholds((None, "green"), (1, "red")))
        .color_scheme(dash.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
        .show_value(common.VisibilityMode.NEVER)
    )

    d = d.with_row(dash.Row("Scores against thresholds"))
    for method, title, unit in (
        ("psi", "PSI by feature", "none"),
        ("ks", "KS distance by feature", "percentunit"),
    ):
        d = d.with_panel(
            ts_panel(
                ids,
                title,
                f"Latest {method.upper()} score of each column, with the alert threshold and "
                "the lower clear threshold (hysteresis). With metrics.detail: summary, the "
                "columns firing, pending or in the segment's top-K only.",
                unit,
                [
                    query(
                        f'max by (feature) (driftd_drift_score{{{col}, method="{method}"}})',
                        "{{feature}}",
                    ),
                    query(
                        f'max(driftd_drift_threshold{{{S1}, method="{method}"}})',
                        "threshold",
                        ref="B",
                    ),
                    query(
                        f'max(driftd_drift_clear_threshold{{{S1}, method="{method}"}})',
                        "clear",
                        ref="C",
                    ),
                ],
                w=12,
                h=9,
                threshold_series=("threshold", "clear"),
                min_val=0,
            )
        )
    d = d.with_panel(
        ts_panel(
            ids,
            "p-values",
            "p-values of the tests that have one (KS, chi-square), log scale; small means "
            "the window is unlikely under the reference. With metrics.detail: summary, "
            "of the firing and pending rows only.",
            "none",
            [
                query(
                    f"max by (feature, method) (driftd_drift_p_value{{{col}}})",
                    "{{feature}} {{method}}",
                )
            ],
            w=12,
            h=9,
            log_scale=True,
        )
    )
    d = d.with_panel(
        ts_panel(
            ids,
            "Categorical tests (chi-square, Jensen-Shannon)",
            "Cramer-style chi-square effect and Jensen-Shannon distance of the categorical "
            "columns, with their thresholds. With metrics.detail: summary, the columns "
            "firing, pending or in the segment's top-K only.",
            "none",
            [
                query(
                    f'max by (feature, method) (driftd_drift_score{{{col}, method=~"chi2|js"}})',
                    "{{feature}} {{method}}",
                ),
                query(
                    f'max by (method) (driftd_drift_threshold{{{S1}, method=~"chi2|js"}})',
                    "threshold {{method}}",
                    ref="B",
                ),
            ],
            w=12,
            h=9,
            min_val=0,
        )
    )
    d = d.with_panel(
        ts_panel(
            ids,
            "Features drifting",
            "Features of the segment with a firing or pending decision (pending: breaching "
            "windows counted towards firing). Each row's breach streak is in driftd's state "
            "API (/api/v1/state, driftd status); with metrics.detail: full, in "
            "driftd_drift_breach_streak too.",
            "short",
            [
                query(
                    f"max(driftd_segment_features_drifting{{{S1}}}) or count(count by (feature) "
                    f"(driftd_drift_breach_streak{{{S1}}} > 0 "
                    f"or driftd_drift_active{{{S1}}} == 1))",
                    "features drifting",
                )
            ],
            w=12,
            min_val=0,
        )
    )
    d = d.with_panel(
        ts_panel(
            ids,
            "Missing values",
            "Share of missing, null, NaN or inf values per feature in the latest window. "
            "With metrics.detail: summary, of the features firing or pending only.",
            "percentunit",
            [
                query(
                    f"max by (feature) (driftd_feature_missing_rate{{{col}}})",
                    "{{feature}}",
                )
            ],
            w=12,
            min_val=0,
        )
    )

    d = d.with_row(dash.Row("Concept drift and performance"))
    d = d.with_panel(
        ts_panel(
            ids,
            "ADWIN window width",
            "Errors in ADWIN's adaptive window: it shrinks when the error rate changes.",
            "short",
            [query(f"max(driftd_adwin_width{{{S1}}})", "width")],
            min_val=0,
        )
    )
    d = d.with_panel(
        ts_panel(
            ids,
            "ADWIN mean error",
            "Mean of the error stream over ADWIN's window (error rate for classifiers).",
            "short",
            [query(f"max(driftd_adwin_mean{{{S1}}})", "mean error")],
            min_val=0,
        )
    )
    d = d.with_panel(
        ts_panel(
            ids,
            "Performance",
            "Metrics of the latest performance window of this segment.",
            "short",
            [query(f"max by (metric) (driftd_performance{{{S1}}})", "{{metric}}")],
        )
    )
    d = d.with_panel(
        ts_panel(
            ids,
            "Fairness gaps",
            "Largest gap between groups in this segment.",
            "percentunit",
            [query(f"max by (metric) (driftd_fairness_gap{{{S1}}})", "{{metric}}")],
            w=12,
        )
    )
    d = d.with_panel(
        ts_panel(
            ids,
            "Label drift",
            "Drift score of the label's class priors (column __label__).",
            "none",
            [
                query(
                    f'max by (method) (driftd_drift_score{{{S1}, feature="__label__"}})',
                    "{{method}}",
                )
            ],
            w=12,
            min_val=0,
        )
    )
    d = d.with_panel(
        ts_panel(
            ids,
            "Estimated vs realized performance",
            "Accuracy estimated from the scores alone (CBPE) on every event window, and on "
            "the joined pairs next to their realized accuracy: the gap is the estimate's "
            "error. Needs a reference with a score calibration.",
            "percentunit",
            [
                query(
                    f'max(driftd_estimated_performance{{{S1}, metric="accuracy"}})',
                    "estimated (events)",
                ),
                query(
                    f'max(driftd_estimated_performance_on_pairs{{{S1}, metric="accuracy"}})',
                    "estimated (joined pairs)",
                ),
                query(
                    f'max(driftd_realized_performance_on_pairs{{{S1}, metric="accuracy"}})',
                    "realized (joined pairs)",
                ),
            ],
            w=12,
        )
    )
    d = d.with_panel(
        ts_panel(
            ids,
            "Label-noise share",
            "Share of the latest window's joined pairs whose label the model confidently "
            "disputes, and the share at which it pages (label_noise).",
            "percentunit",
            [
                query(f"max(driftd_label_noise_share{{{S1}}})", "share"),
                query(f"max(driftd_label_noise_threshold{{{S1}}})", "threshold"),
            ],
            w=12,
            min_val=0,
        )
    )
    d = d.with_panel(
        ts_panel(
            ids,
            "Multivariate drift",
            "Mean reconstruction error of the reference PCA over the segment's latest window: "
            "it leaves the band between the dashed bounds when features stop moving together "
            "as in the reference, even if no single feature drifts (multivariate).",
            "none",
            [
                query(f"max(driftd_multivariate_reconstruction_error{{{S1}}})", "error"),
                query(
                    f"max(driftd_multivariate_reconstruction_error_threshold{{{S1}}})",
                    "upper bound",
                    ref="B",
                ),
                query(
                    f"max(driftd_multivariate_reconstruction_error_lower{{{S1}}})",
                    "lower bound",
                    ref="C",
                ),
            ],
            w=12,
            threshold_series=["upper bound", "lower bound"],
            min_val=0,
        )
    )
    d = d.with_panel(
        ts_panel(
            ids,
            "Embedding drift",
            "Distance of the mean of the window's vectors from the reference mean, after the "
            "fixed projection whitened on the reference (in reference standard deviations), "
            "per vector feature (schema.vector_features), with the distance at which it "
            "pages (dashed: Hotelling's T-squared for the window's size).",
            "none",
            [
                query(
                    f"max by (feature) (driftd_embedding_drift_distance{{{S1}}})",
                    "{{feature}}",
                ),
                query(
                    f"max by (feature) (driftd_embedding_drift_threshold{{{S1}}})",
                    "threshold {{feature}}",
                    ref="B",
                ),
            ],
            w=12,
            threshold_queries=["B"],
            min_val=0,
        )
    )
    d = d.with_panel(
        ts_panel(
            ids,
            "Estimated performance drop",
            "How far the alerting metric's estimate (detectors.performance_estimation.metric, "
            "from the scores alone) fell below the reference's in the latest event window "
            "(negative: above it), and the drop at which it pages (perf_drop).",
            "percentunit",
            [
                query(f"max(driftd_performance_drop{{{S1}}})", "drop"),
                query(f"max(driftd_performance_drop_threshold{{{S1}}})", "threshold", ref="B"),
            ],
            w=12,
            threshold_series=["threshold"],
        )
    )
    return d


DASHBOARDS = {f"{OVERVIEW_UID}.json": overview, f"{SEGMENT_UID}.json": segment}


def render(factory: Any) -> str:
    """One dashboard as stable, indented JSON text."""
    built = factory().build()
    return json.dumps(built, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write the dashboards, or with ``--check`` report the stale ones and exit 1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="fail if outputs are out of date")
    args = parser.parse_args(argv)
    stale = []
    for name, factory in DASHBOARDS.items():
        path = OUT_DIR / name
        text = render(factory)
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(str(path))
        else:
            OUT_DIR.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print("out of date (run: python grafana/build.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
