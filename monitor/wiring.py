"""Assembling a daemon: the one place that turns settings into working parts.

:func:`build_daemon` builds, in this order: the pipeline (with the reference file, if
any), the source, the metrics registry (with the Kafka client's collectors), the alert
service, the checkpointer (which saves the alert service's state beside the
pipeline's), the warm-up reference store, the HTTP server of ``/metrics``, ``/healthz``,
``/readyz`` (on the daemon's loop health) and ``/api/v1/state`` (a snapshot refreshed
after each batch), and the daemon, which the source then tells
of every rebalance (``Source.listen``). The CLI, the tests and the benchmarks all call
it; a test injects what it needs to watch (a registry, a source, alert sinks, a batch
callback) and gets the same wiring as ``driftd run``.

Only a Kafka source is checkpointed: the demo and file sources cannot seek, so a
restored state would count their events twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal

import structlog
from prometheus_client import CollectorRegistry

from monitor.app import Daemon, loop_health, make_results
from monitor.config import Settings
from monitor.emit.alerts.service import AlertService
from monitor.emit.http import MetricsServer
from monitor.emit.journal import Journal
from monitor.emit.label_metrics import PerformanceCollector
from monitor.emit.relabel import RelabelQueue
from monitor.emit.state_api import LiveState
from monitor.engine.outcome import BatchOutcome
from monitor.engine.pipeline import Pipeline
from monitor.engine.reference.profile_file import load_reference
from monitor.errors import CheckpointError, StorageUnusableError
from monitor.ingest.demo_source import DemoSource
from monitor.ingest.file_source import FileSource
from monitor.ingest.kafka.choice import kafka_source
from monitor.ingest.kafka.metrics import kafka_collectors
from monitor.ingest.source import Source
from monitor.kafka.keyed_topic import KeyedTopic
from monitor.state.checkpointer import (
    NoCheckpoint,
    StateCheckpointer,
    StatefulPart,
    file_checkpointer,
)
from monitor.state.partitioned import PartitionCheckpointer, partition_checkpointer
from monitor.state.reference_store import ReferenceStore

log = structlog.get_logger()
SourceKind = Literal["kafka", "file", "stdin", "demo"]
AnyCheckpointer = NoCheckpoint | StateCheckpointer | PartitionCheckpointer


def build_daemon(
    settings: Settings,
    *,
    source_kind: SourceKind | None = None,
    source: Source | None = None,
    registry: CollectorRegistry | None = None,
    alerts: AlertService | None = None,
    on_batch: Callable[[BatchOutcome], None] | None = None,
    serve_metrics: bool = True,
    start_fresh: bool = False,
    relearn_reference: bool = False,
    demo_events: int | None = None,
    demo_rate: int | None = None,
) -> Daemon:
    """The daemon ``settings`` describe, ready to ``run``.

    ``source_kind`` overrides ``source.type`` (``driftd demo``); ``source`` replaces the
    source that kind would build (tests), and is checkpointed only when the kind is
    ``kafka``. ``on_batch`` sees every batch, after the journal (``journal.path``) if one
    is configured. Raises ``StorageUnusableError`` (a checkpoint topic or journal that cannot be
    used), ``CheckpointError`` (``start_fresh`` could not set a checkpoint aside),
    ``ReferenceProfileError`` and ``SourceError`` (a file that vanished since checked).
    """
    kind: SourceKind = source_kind or settings.source.type
    reference = load_reference(settings.reference.path) if settings.reference.path else None
    pipeline = Pipeline(settings, reference, make_results(settings))
    registry = registry if registry is not None else CollectorRegistry()
    if source is None:
        source = _source(settings, kind, registry, demo_events, demo_rate)
    alerts = alerts if alerts is not None else AlertService(settings.alerts, registry)
    checkpointed = kind == "kafka"
    checkpointer: AnyCheckpointer = (
        checkpointer_from_settings(settings, registry, {"alerts": alerts})
        if checkpointed
        else NoCheckpoint()
    )
    _probe(settings, checkpointer)
    if start_fresh:
        checkpointer.start_fresh()
    reference_store = ReferenceStore.from_settings(settings) if checkpointed else None
    journal = _journal(settings, checkpointer, reference_store)
    if journal is not None:
        on_batch = journal if on_batch is None else _both(journal, on_batch)
    relabel = _relabel_queue(settings, pipeline, registry, checkpointer, reference_store)
    if relabel is not None:
        on_batch = relabel if on_batch is None else _both(relabel, on_batch)
    registry.register(
        PerformanceCollector(
            settings.model,
            lambda: pipeline.performance_estimate,
            lambda: pipeline.labels.quality if pipeline.labels is not None else None,
            lambda: pipeline.performance_unavailable,
        )
    )
    health = loop_health(settings)
    server = None
    if serve_metrics:
        # Refreshed on the consumer thread after each batch, read by /api/v1/state.
        live_state = LiveState(
            pipeline.results,
            pipeline.decisions,
            lag=source.lag,
            reference_version=lambda: pipeline.reference.version if pipeline.reference else None,
        )
        on_batch = live_state if on_batch is None else _both(live_state, on_batch)
        server = MetricsServer(
            registry,
            settings.metrics.host,
            settings.metrics.port,
            liveness=health.alive,
            readiness=health.readiness,
            state=live_state.json_bytes,
            cache_seconds=settings.metrics.cache_seconds,
        )
    daemon = Daemon(
        settings,
        source,
        pipeline,
        registry=registry,
        checkpointer=checkpointer,
        on_batch=on_batch,
        server=server,
        health=health,
        alerts=alerts,
        reference_store=reference_store,
        relearn_reference=relearn_reference,
    )
    if relabel is not None:
        daemon.closers.append(relabel.close)
    if server is not None:
        _refresh_metrics_after_batches(daemon, server, live_state)
    source.listen(daemon)
    return daemon


def _refresh_metrics_after_batches(daemon: Daemon, server: MetricsServer, rows: LiveState) -> None:
    """After each batch (and the state API's refresh): digest the segments it touched for
    ``metrics.detail: summary``, and let the next scrape render again."""
    collector = daemon.collector
    collector.segment_rows = rows.segment_rows

    def refresh(outcome: BatchOutcome) -> None:
        collector.refresh_summary()
        server.invalidate()

    def rebuild() -> None:
        rows.refresh()  # every segment: a hand-over moved some without a batch
        collector.refresh_summary()
        server.invalidate()

    daemon.on_batch = refresh if daemon.on_batch is None else _both(daemon.on_batch, refresh)
    daemon.on_rebalanced = rebuild


def checkpointer_from_settings(
    settings: Settings,
    registry: CollectorRegistry,
    parts: Mapping[str, StatefulPart] | None = None,
) -> AnyCheckpointer:
    """The checkpointer ``checkpoint.store`` names, saving ``parts`` beside the pipeline."""
    store = settings.checkpoint.store
    if store == "none":
        return NoCheckpoint()
    if store == "kafka":
        return partition_checkpointer(settings, registry, parts or {})
    return file_checkpointer(settings, registry, parts)


def _both(
    first: Callable[[BatchOutcome], None], then: Callable[[BatchOutcome], None]
) -> Callable[[BatchOutcome], None]:
    def both(outcome: BatchOutcome) -> None:
        first(outcome)
        then(outcome)

    return both


def _source(
    settings: Settings,
    kind: SourceKind,
    registry: CollectorRegistry,
    demo_events: int | None,
    demo_rate: int | None,
) -> Source:
    """The source of ``kind``; a Kafka source's client metrics join ``registry``."""
    if kind == "demo":
        return DemoSource(
            settings.source.batch_size,
            total_events=demo_events,
            rate=demo_rate or None,
            labels=settings.labels.enabled,
        )
    if kind in ("file", "stdin"):
        path = settings.source.path if kind == "file" else None
        return FileSource(path, settings.source.batch_size)
    kafka = kafka_source(settings.kafka)  # on the client `kafka.client` names
    for collector in kafka_collectors(kafka, settings.model):
        registry.register(collector)
    return kafka


def _probe(settings: Settings, checkpointer: AnyCheckpointer) -> None:
    """Refuse a checkpoint topic the broker will not create or let us read, before start."""
    try:
        checkpointer.probe()
    except CheckpointError as exc:
        checkpointer.close()
        if settings.checkpoint.store != "kafka":
            raise
        raise StorageUnusableError(
            "checkpoint.topic", settings.checkpoint.topic, exc.message
        ) from exc


def _relabel_queue(
    settings: Settings,
    pipeline: Pipeline,
    registry: CollectorRegistry,
    checkpointer: AnyCheckpointer,
    reference_store: ReferenceStore | None,
) -> RelabelQueue | None:
    """The relabel queue ``labels.relabel`` asks for (a file or a topic), where the
    label-noise signal runs, with the store of the features its tasks carry."""
    cfg = settings.labels.relabel
    if not cfg.enabled or (cfg.path is None and cfg.topic is None):
        return None
    quality = pipeline.labels.quality if pipeline.labels is not None else None
    if quality is None or quality.noise is None:
        log.warning(
            "relabel_queue_unavailable",
            model=settings.model,
            reason="the label-noise signal does not run: labels.enabled, labels.noise.enabled "
            "and a reference with a score calibration are needed",
        )
        return None
    if cfg.topic is not None:
        topic = KeyedTopic(settings.kafka, cfg.topic, timeout_s=cfg.timeout_s, keep=cfg.dedup_ids)
        return RelabelQueue(
            None, settings.model, cfg, registry, sink=topic, features=quality.features
        )
    try:
        return RelabelQueue(cfg.path, settings.model, cfg, registry, features=quality.features)
    except OSError as exc:
        checkpointer.close()
        if reference_store is not None:
            reference_store.close()
        raise StorageUnusableError(
            "labels.relabel.path", str(cfg.path), f"cannot open: {exc.strerror or exc}"
        ) from exc


def _journal(
    settings: Settings, checkpointer: AnyCheckpointer, reference_store: ReferenceStore | None
) -> Journal | None:
    path = settings.journal.path
    if path is None:
        return None
    try:
        return Journal(path, settings.model)
    except OSError as exc:  # checked at start already; this is a race with the disk
        checkpointer.close()
        if reference_store is not None:
            reference_store.close()
        raise StorageUnusableError(
            "journal.path", str(path), f"cannot open: {exc.strerror or exc}"
        ) from exc
