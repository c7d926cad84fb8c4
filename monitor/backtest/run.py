"""A backtest: recorded events (and labels) through the daemon's own engine, as a dry run.

``run_backtest`` builds the daemon with ``monitor.wiring.build_daemon``, exactly as
``driftd run`` does, with these differences, all of them because a backtest replays
history and must touch nothing:

- the source is the files, merged by event time (``monitor.ingest.replay_source``);
- the wall-clock limits of ``schema.max_past_seconds`` and ``schema.max_future_seconds``
  are off (the events' own clock, the watermark, still applies);
- no checkpoint, no journal, no metrics server, and an alert service without sinks:
  transitions are recorded, never delivered;
- with ``--labels`` the label side is on (``labels.enabled``), on the labels topic.

What the daemon did is collected by ``BacktestCollector`` into a ``BacktestResult``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from detectors.feature_profiles import FeatureProfile
from detectors.profile import CategoricalProfile
from monitor.backtest.collector import BacktestCollector
from monitor.backtest.inputs import events_input, labels_input
from monitor.backtest.result import BacktestResult, Counts, Quality
from monitor.config import SchemaConfig, Settings
from monitor.emit.alerts.model import AlertAction
from monitor.emit.alerts.service import AlertService
from monitor.engine.outcome import BatchOutcome
from monitor.engine.reference.profile_file import load_reference
from monitor.ingest.replay_source import ReplaySource
from monitor.wiring import build_daemon

DEFAULT_LABELS_TOPIC = "labels"
"""The labels topic of a backtest whose config names none (``kafka.labels_topic``)."""
TOP_DISTRIBUTIONS = 6
"""Columns whose worst window's bins the result keeps, by default."""
WALL_CLOCK_KEYS = frozenset({"max_past_seconds", "max_future_seconds"})

Progress = Callable[[int, int | None], None]
"""Told after each batch: events read so far, and the total (None: unknown)."""


class DiscardingSink:
    """A configured sink's stand-in: counts what the daemon would have sent, sends nothing."""

    def __init__(self, name: str) -> None:
        self._name = name
        self.actions = 0
        """Notifications the real sink would have been handed."""

    @property
    def name(self) -> str:
        """The configured sink's name."""
        return self._name

    def send(self, action: AlertAction) -> None:
        """Count ``action``; deliver nothing (a backtest is a dry run)."""
        self.actions += 1


@dataclass
class Backtest:
    """A backtest's outcome: the result, the daemon's exit code, and notes for the user
    (settings the backtest changed, things it could not do)."""

    result: BacktestResult
    code: int
    notes: list[str] = field(default_factory=list)


def backtest_settings(settings: Settings, *, labels: bool) -> tuple[Settings, list[str]]:
    """``settings`` as a backtest runs them (see the module doc), and notes on changes."""
    notes: list[str] = []
    schema = settings.schema_
    # Unset, the limits do not apply to a replay (monitor.engine.pipeline): unset them.
    kept = schema.model_fields_set - WALL_CLOCK_KEYS
    if schema.model_fields_set & WALL_CLOCK_KEYS:
        notes.append(
            "schema.max_past_seconds and schema.max_future_seconds are not checked against "
            "the wall clock in a backtest (it replays history)"
        )
    replay_schema = SchemaConfig.model_construct(_fields_set=set(kept), **dict(schema))
    label_cfg = settings.labels
    if labels and not label_cfg.enabled:
        label_cfg = label_cfg.model_copy(update={"enabled": True})
        notes.append("labels.enabled is false in the config: turned on for --labels")
    elif not labels and label_cfg.enabled:
        notes.append(
            "labels.enabled is true but no --labels file was given: no label is joined, "
            "so there is no performance, label drift or concept drift"
        )
    if label_cfg.relabel.enabled:  # a replay must not feed the labelling team's queue
        label_cfg = label_cfg.model_copy(
            update={"relabel": label_cfg.relabel.model_copy(update={"enabled": False})}
        )
        notes.append("labels.relabel is not written in a backtest (the queue is production's)")
    kafka = settings.kafka
    if labels and kafka.labels_topic is None:
        kafka = kafka.model_copy(update={"labels_topic": DEFAULT_LABELS_TOPIC})
    update: dict[str, Any] = {
        "schema_": replay_schema,
        "source": settings.source.model_copy(update={"type": "file"}),
        "journal": settings.journal.model_copy(update={"path": None}),
        "labels": label_cfg,
        "kafka": kafka,
    }
    return settings.model_copy(update=update), notes


def run_backtest(
    settings: Settings,
    events: Path,
    labels: Path | None = None,
    *,
    progress: Progress | None = None,
    top_distributions: int = TOP_DISTRIBUTIONS,
) -> Backtest:
    """Replay ``events`` (and ``labels``) through the daemon's engine; what it found.

    Raises ``SourceError`` for an input that cannot be read (its path is the error's
    ``source``), and what ``build_daemon`` raises (``ReferenceProfileError``, ...).
    """
    run_settings, notes = backtest_settings(settings, labels=labels is not None)
    reference = load_reference(settings.reference.path) if settings.reference.path else None
    categorical = (
        [p.name for p in reference.features if isinstance(p, CategoricalProfile)]
        if reference is not None
        else []
    )
    schema = run_settings.schema_
    events_in = events_input(events, schema, categorical=categorical, with_times=labels is not None)
    labels_in = labels_input(labels, run_settings.labels, schema) if labels is not None else None
    labels_topic = run_settings.kafka.labels_topic
    events_topic = f"backtest-events:{events.name}"
    source = ReplaySource(
        events_in.items,
        run_settings.source.batch_size,
        events_topic=events_topic,
        labels=labels_in.items if labels_in is not None else None,
        labels_topic=labels_topic if labels_in is not None else None,
    )
    registry = CollectorRegistry()
    sinks = [DiscardingSink(sink.name) for sink in run_settings.alerts.sinks]
    collector: BacktestCollector | None = None

    def on_batch(outcome: BatchOutcome) -> None:
        assert collector is not None
        collector(outcome)
        if progress is not None:
            progress(source.events_read, events_in.total)

    daemon = build_daemon(
        run_settings,
        source_kind="file",
        source=source,
        registry=registry,
        alerts=AlertService(run_settings.alerts, registry, sinks=sinks),
        on_batch=on_batch,
        serve_metrics=False,
    )
    pipeline = daemon.pipeline
    collector = BacktestCollector(pipeline.decisions, pipeline.labels)
    pipeline.on_window_bins = collector.window_bins
    code = daemon.run()
    if progress is not None:
        progress(source.events_read, events_in.total)
    profiles: dict[str, FeatureProfile] = {}
    if pipeline.reference is not None:
        profiles = {p.name: p for p in pipeline.reference.features}
        if pipeline.reference.prediction is not None:
            profiles[pipeline.reference.prediction.name] = pipeline.reference.prediction
    elif settings.reference.warmup_events:
        notes.append(
            f"the warm-up reference was never complete (reference.warmup_events "
            f"{settings.reference.warmup_events:,}): no window was compared"
        )
    result = BacktestResult(
        model=settings.model,
        reference_version=pipeline.reference.version if pipeline.reference else None,
        config=_config_summary(run_settings),
        counts=Counts(
            events_read=source.events_read,
            events_accepted=collector.events_accepted,
            rejected=dict(collector.rejected.most_common()),
            labels_read=source.labels_read,
            labels_joined=collector.labels_joined,
            windows=sum(w.part == "features" for w in collector.windows),
            label_windows=sum(w.kind == "label_window" for w in collector.windows),
            late=collector.late,
        ),
        windows=tuple(collector.windows),
        performance=tuple(collector.performance),
        transitions=tuple(collector.transitions),
        alerts=tuple(collector.alert_spans()),
        quality=Quality(
            missing={s: dict(c) for s, c in collector.missing.items() if c},
            invalid=_invalid(pipeline.invalid_values),
            unseen={s: dict(c) for s, c in collector.unseen.items() if c},
            rejected=dict(collector.rejected.most_common()),
            rejected_examples=dict(source.dead_letter_examples),
        ),
        distributions=tuple(collector.distributions(top_distributions, profiles)),
        inputs={"events": str(events), "labels": str(labels) if labels is not None else None},
        notifications={sink.name: sink.actions for sink in sinks},
    )
    return Backtest(result, code, notes)


ALL_SEGMENTS = "__all__"
"""The segment key of counts the engine keeps for the whole stream only (invalid values)."""


def _invalid(values: dict[tuple[str, str], int]) -> dict[str, dict[str, int]]:
    """Invalid values by column (over every reason), under ``__all__``: the decoder counts
    them per feature, not per segment."""
    by_column: dict[str, int] = {}
    for (column, _reason), count in values.items():
        by_column[column] = by_column.get(column, 0) + count
    return {ALL_SEGMENTS: by_column} if by_column else {}


def _config_summary(settings: Settings) -> dict[str, Any]:
    """The settings a reader of the result needs to interpret it."""
    windows, labels, reference = settings.windows, settings.labels, settings.reference
    return {
        "window_size_events": windows.size_events,
        "window_duration_seconds": windows.duration_seconds,
        "window_mode": windows.mode,
        "min_samples": windows.min_samples,
        "segment_by": list(settings.schema_.segment_by),
        "reference_path": str(reference.path) if reference.path else None,
        "warmup_events": reference.warmup_events,
        "labels_enabled": labels.enabled,
        "label_window_pairs": labels.window_pairs if labels.enabled else None,
        "label_task": labels.task if labels.enabled else None,
        "batch_size": settings.source.batch_size,
    }
