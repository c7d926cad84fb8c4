"""The daemon's lifecycle, shaped like uvicorn's: ``run`` = startup, main loop, shutdown.

The first SIGTERM or SIGINT asks for a graceful stop: the batch in hand is finished,
its state checkpointed and its offsets committed, then the daemon exits 0. A second
signal sets ``force_exit``: the loop leaves after the batch in hand (within one poll),
and the shutdown skips the checkpoint, the commit and the wait for alert delivery
(those events are re-read later); ``run`` returns 1. As uvicorn does, the signal
handlers are installed for ``run`` only and the previous ones restored after it.

Per batch the order is fixed (docs/reliability.md, "The contract"): update state,
dead-letter the refused messages, checkpoint state with the next offsets, and only
then commit those offsets. A failed checkpoint means no commit. Which offsets a
checkpoint covers is the ledger's business (``monitor.state.ledger``); when a save is
due and what goes in, the checkpointer's (``monitor.state.checkpointer``). The daemon
is assembled by ``monitor.wiring.build_daemon``.
"""

from __future__ import annotations

import gc
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Protocol

import structlog
from prometheus_client import CollectorRegistry

from monitor.config import Settings
from monitor.emit.alerts.service import AlertService
from monitor.emit.drift_collector import DriftCollector, data_quality_families
from monitor.emit.http import Heartbeat, LoopHealth, MetricsServer
from monitor.emit.label_metrics import LabelCollector, LabelDelay
from monitor.emit.metrics import DaemonMetrics
from monitor.emit.multivariate_metrics import embedding_families, multivariate_families
from monitor.emit.segment_mix_metrics import segment_mix_families
from monitor.engine.outcome import BatchOutcome
from monitor.engine.pipeline import Pipeline
from monitor.engine.results import LatestResults
from monitor.errors import DeadLetterError, DriftdError, ReferenceLostError
from monitor.ingest.source import Record, Source, TopicPartition
from monitor.state.checkpointer import NoCheckpoint
from monitor.state.ledger import OffsetLedger
from monitor.state.reference_store import ReferenceStore

log = structlog.get_logger()
EXIT_FORCED = 1
HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Hold CPython's cyclic garbage collector for the ``with`` block (one batch).

    Why: a batch allocates tens of thousands of short-lived containers. With the default
    threshold the collector ran every 700 of them, and every few batches a full
    collection walked every object the process holds, imported modules included: about
    a fifth of the cost per event at 100,000 events/s. Reference counting frees the
    batch's objects as usual; reference cycles are collected between batches. A
    collector already off (a library user's choice) stays off.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class Checkpointer(Protocol):
    """Saves the pipeline state (and the alert state) with the next offsets, atomically:
    ``NoCheckpoint``, ``StateCheckpointer`` (one file) or ``PartitionCheckpointer`` (one
    slice per partition on a topic, for hand-over between replicas)."""

    def restore(self, pipeline: Pipeline) -> dict[TopicPartition, int]:
        """Load the last checkpoint into ``pipeline``; the offsets it covers."""
        ...

    def due(self, batches: int = 1) -> bool:
        """Whether a save is due, ``batches`` more batches having been processed."""
        ...

    def save(self, pipeline: Pipeline, offsets: Mapping[TopicPartition, int]) -> bool:
        """True when state and offsets are durably stored together."""
        ...

    def assign(
        self, pipeline: Pipeline, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """Take in the saved state of newly owned partitions; the offsets to resume at."""
        ...

    def release(self, pipeline: Pipeline, partitions: list[TopicPartition]) -> None:
        """Forget the state of revoked partitions (saved already: the next owner has it)."""
        ...

    def close(self) -> None:
        """Release the store."""
        ...


@dataclass
class LoopStats:
    """Counters of the main loop, for the terminal view and tests."""

    batches: int = 0
    records: int = 0
    accepted: int = 0
    rejected: int = 0
    commits: int = 0
    windows: int = 0
    labels: int = 0
    matched: int = 0
    transitions: list[str] = field(default_factory=list)


class Daemon:
    """Owns the source, the pipeline, the metrics server and the signal handling."""

    def __init__(
        self,
        settings: Settings,
        source: Source,
        pipeline: Pipeline,
        registry: CollectorRegistry | None = None,
        checkpointer: Checkpointer | None = None,
        on_batch: Callable[[BatchOutcome], None] | None = None,
        server: MetricsServer | None = None,
        health: LoopHealth | None = None,
        alerts: AlertService | None = None,
        reference_store: ReferenceStore | None = None,
        relearn_reference: bool = False,
    ) -> None:
        self.settings = settings
        self.source = source
        self.pipeline = pipeline
        self.registry = registry if registry is not None else CollectorRegistry()
        self.checkpointer: Checkpointer = checkpointer or NoCheckpoint()
        self.on_batch = on_batch
        self.reference_store = reference_store
        self.relearn_reference = relearn_reference
        self.metrics = DaemonMetrics(self.registry, settings.model)
        self.alerts = alerts if alerts is not None else AlertService(settings.alerts, self.registry)
        self.health = health if health is not None else loop_health(settings)
        self.collector = DriftCollector(
            pipeline.results,
            pipeline.decisions,
            lag=source.lag,
            seconds_since_poll=self.seconds_since_poll,
            monitored_columns=lambda: pipeline.columns,
            unmonitorable=pipeline.unmonitorable,
            extra=[
                lambda: data_quality_families(
                    settings.model,
                    pipeline.invalid_values,
                    pipeline.unexpected_features,
                    pipeline.feature_names_refused,
                ),
                lambda: segment_mix_families(settings.model, pipeline.segment_mix_status()),
                lambda: multivariate_families(
                    settings.model, pipeline.multivariate, pipeline.multivariate_unavailable
                ),
                lambda: embedding_families(
                    settings.model, pipeline.embeddings, pipeline.embedding_unavailable
                ),
            ],
            detail=settings.metrics.detail,
            top_k=settings.metrics.top_k,
        )
        self.registry.register(self.collector)
        self.label_delay: LabelDelay | None = None
        if pipeline.labels is not None:
            self.registry.register(
                LabelCollector(pipeline.labels, lambda: tuple(pipeline.segments.names))
            )
            self.label_delay = LabelDelay(self.registry, settings.model)
        self.server = server
        self.should_exit = self.health.stop_requested
        self.force_exit = False
        self.serve_after_end = False
        """Keep serving the HTTP endpoints after a finite source ends, until a signal
        (``driftd demo --serve``); the shutdown then runs as usual."""
        self.on_end: Callable[[], None] | None = None
        """Called once a finite source is exhausted, before serving on or shutting down."""
        self.closers: list[Callable[[], None]] = []
        """Outputs beside the pipeline to close at shutdown (the relabel queue's producer)."""
        self.on_rebalanced: Callable[[], None] | None = None
        """Called after a rebalance handed segments over or took them in (the state API
        and the metrics summary rebuild their rows: no batch touches those segments)."""
        self.stats = LoopStats()
        self._created_at = time.monotonic()
        self._reference_version = ""
        self._publish_reference()
        self.ledger = OffsetLedger()
        self._committed_at = -math.inf

    # ------------------------------------------------------------ health

    def seconds_since_poll(self) -> float:
        """Seconds since the last successful poll (a failed poll returns too, so the
        source tells), counting from the daemon's start until the first success: a
        broker down from the start shows."""
        last = self.source.last_successful_poll
        return time.monotonic() - (self._created_at if last is None else last)

    @property
    def started(self) -> bool:
        """Whether startup finished (restore, alert workers, metrics server)."""
        return self.health.started

    @started.setter
    def started(self, value: bool) -> None:
        self.health.started = value

    def readiness(self) -> tuple[bool, str]:
        """What ``/readyz`` says (see :class:`LoopHealth`)."""
        return self.health.readiness()

    # ---------------------------------------------------------- lifecycle

    def run(self) -> int:
        """Start, loop until asked to stop (or a finite source ends), shut down; 0, or
        ``EXIT_FORCED`` after a second signal."""
        with self.captured_signals():
            self.startup()
            try:
                self.main_loop()
                if not self.should_exit.is_set():  # the source ended, no signal came
                    if self.on_end is not None:
                        self.on_end()
                    if self.serve_after_end and self.server is not None:
                        self.serve_until_signalled()
            finally:
                self.shutdown()
        return EXIT_FORCED if self.force_exit else 0

    def serve_until_signalled(self) -> None:
        """Leave the HTTP server up, the state as the stream left it, until a stop is asked."""
        log.info("source_ended_serving", url=self.server.url if self.server else None)
        while not self.should_exit.wait(0.2):  # short waits: the handler runs in between
            pass

    def startup(self) -> None:
        """Restore the checkpoint, start the alert workers, serve metrics, announce."""
        self.ledger.restored(self.checkpointer.restore(self.pipeline))
        self._restore_reference()
        self._publish_reference()
        self.alerts.start()
        if self.server is not None:
            self.server.start()
        self.started = True
        log.info(
            "daemon_started",
            model=self.settings.model,
            source=self.source.name,
            metrics_port=self.server.port if self.server is not None else None,
        )

    def _restore_reference(self) -> None:
        """Reload a saved warm-up reference, or refuse to learn a new one after a loss."""
        store = self.reference_store
        if store is None:
            return
        self.pipeline.on_reference_built = self._save_reference
        if self.pipeline.ready:  # the checkpoint held it; make sure it is saved on its own
            self._save_reference()
            return
        if store.load_into(self.pipeline):
            return
        consumed_before = self.source.committed_before()
        if consumed_before and not self.relearn_reference:
            raise ReferenceLostError(
                store.location,
                f"consumer group {self.settings.kafka.group_id!r} has consumed these topics "
                "before, but its warm-up reference is gone (a lost state directory?); "
                "learning a new one from current traffic would compare drifted data with "
                "itself. Restore the state directory, set reference.path to a built profile, "
                "or run with --relearn-reference to learn a new reference on purpose",
            )
        if consumed_before:
            log.warning("warmup_reference_relearned", location=store.location)

    def _save_reference(self) -> None:
        if self.reference_store is not None and not self.reference_store.saved:
            self.reference_store.save(self.pipeline)

    def main_loop(self) -> None:
        """Poll, process, checkpoint, commit; until a stop is requested."""
        timeout = self.settings.kafka.poll_timeout_ms / 1000.0
        while not self.should_exit.is_set():
            if not self.step(timeout) and self.source.exhausted:
                break

    def step(self, timeout_s: float) -> int:
        """One turn of the loop: poll, then handle the batch (or idle); the records handled.

        The collector is held from the poll on: a client makes an object per message
        (librdkafka's ``Message`` is one the collector tracks), and with the collector
        on they set off collections and are promoted while the batch is in hand. The
        batch is let go before the collector comes back.
        """
        with collector_paused():
            records = self.source.poll(timeout_s)
            self.health.heartbeat.beat()
            took = len(records)
            if took:
                self.handle(records)
            elif not self.source.exhausted:
                self.idle()
            del records  # before the collector is back, which would walk the batch's messages
        return took

    def idle(self) -> None:
        """Nothing arrived: save and commit what the last batches left unsaved, on cadence.

        Without this the tail of a stream that went quiet would stay uncommitted (and
        be re-read after a restart) until the next event arrives.
        """
        if not self.ledger.unsaved():
            return
        if self.checkpointer.due(batches=0):
            self.checkpoint()
        if time.monotonic() - self._committed_at >= self.settings.kafka.commit_interval_ms / 1e3:
            self.commit_pending()

    def handle(self, records: Sequence[Record]) -> BatchOutcome:
        """One batch in the fixed order: state, dead letters, checkpoint, commit."""
        with collector_paused():
            return self._handle(records)

    def _handle(self, records: Sequence[Record]) -> BatchOutcome:
        started = time.perf_counter()
        segments_before = self.pipeline.segments.counts()
        outcome = self.pipeline.process(records)
        self.metrics.observe_batch(outcome, time.perf_counter() - started)
        # After the batch's transitions are counted: an evicted segment's resolve too.
        self.metrics.forget_segments(outcome.evicted)
        if self.label_delay is not None and outcome.labels is not None:
            self.label_delay.observe(outcome.labels.delays)
        segments = self.pipeline.segments
        self.metrics.record_segments(segments_before, segments.counts(), segments.tracked)
        if self.pipeline.ready:
            self._save_reference()  # a no-op once saved; a failed save is retried here
        self._publish_reference()
        if outcome.transitions:
            # Enqueueing never blocks on a sink: a dead PagerDuty cannot stall the loop.
            self.alerts.submit(outcome.transitions, outcome.details)
        if self.on_batch is not None:
            # Before the checkpoint: a crash after it must not skip what this batch closed.
            self.on_batch(outcome)
        try:
            if outcome.rejected:
                self.source.dead_letter(outcome.rejected)
                for _, reason, _ in outcome.rejected:
                    self.metrics.dead_lettered(reason)
        except DeadLetterError as exc:
            # Committing now would lose the refused messages: leave the offsets alone so
            # they are read (and dead-lettered) again.
            self.metrics.commit("skipped")
            log.error("dead_letter_failed_commit_skipped", error=str(exc))
        else:
            self._checkpoint_and_commit(outcome)
        self._count(outcome)
        return outcome

    def _publish_reference(self) -> None:
        reference = self.pipeline.reference
        if reference is not None and reference.version != self._reference_version:
            self._reference_version = reference.version
            self.metrics.set_reference(reference.version)
            self.alerts.reference_in_use(reference.version)

    def _checkpoint_and_commit(self, outcome: BatchOutcome) -> None:
        self.ledger.processed(outcome.next_offsets)
        if self.checkpointer.due(batches=1):
            self.checkpoint()
        interval = self.settings.kafka.commit_interval_ms / 1000.0
        if time.monotonic() - self._committed_at >= interval:
            self.commit_pending()

    def checkpoint(self) -> bool:
        """Save the state with every processed offset; only then may those be committed."""
        offsets = self.ledger.to_save()
        if not self.checkpointer.save(self.pipeline, offsets):
            if offsets:
                self.metrics.commit("skipped")
            return False
        self.ledger.saved(offsets)
        return True

    def commit_pending(self, partitions: Sequence[TopicPartition] | None = None) -> None:
        """Commit the offsets whose state is already safe (all, or those of ``partitions``).

        Commits are batched by ``kafka.commit_interval_ms``: the state is updated first
        either way, so a later commit only widens what a crash would re-read.
        """
        chosen = self.ledger.committable(partitions)
        if not chosen:
            return
        try:
            self.source.commit(chosen)
        except DriftdError as exc:
            self.metrics.commit("failed")
            log.warning("commit_failed", error=str(exc))
            return
        self.ledger.committed(chosen)
        self._committed_at = time.monotonic()
        self.metrics.commit("ok")
        self.stats.commits += 1

    def on_partitions_revoked(self, partitions: list[TopicPartition]) -> None:
        """Before a rebalance takes partitions away: checkpoint, then commit them."""
        self.checkpoint()
        self.commit_pending(partitions)
        # Their next owner decides from here on; a stale offset must not come back.
        self.ledger.revoked(partitions)
        self.checkpointer.release(self.pipeline, partitions)
        if self.on_rebalanced is not None:
            self.on_rebalanced()

    def on_partitions_assigned(self, partitions: list[TopicPartition]) -> None:
        """Newly owned partitions start at the checkpoint's offsets, not the group's."""
        restored = self.checkpointer.assign(self.pipeline, partitions)
        self._publish_reference()
        resume = self.ledger.assigned(partitions, restored)
        if resume:
            self.source.seek(resume)
        if self.on_rebalanced is not None:
            self.on_rebalanced()

    def _count(self, outcome: BatchOutcome) -> None:
        s = self.stats
        s.batches += 1
        s.records += outcome.records
        s.accepted += outcome.accepted
        s.rejected += len(outcome.rejected)
        s.windows += len(outcome.results) if outcome.results is not None else 0
        if outcome.labels is not None:
            s.labels += outcome.labels.labels
            s.matched += outcome.labels.matched
        s.transitions.extend(t.dedup_key + ":" + t.current for t in outcome.transitions)

    def shutdown(self) -> None:
        """Commit, close the source, flush the alert outbox, stop the metrics server.

        After a forced exit nothing more is saved or committed, and alert delivery is
        not waited for: a restart re-reads those events.
        """
        self.should_exit.set()
        try:
            if not self.force_exit:
                if self.started:
                    self.checkpoint()
                self.commit_pending()
            self.source.close()
        finally:
            self.checkpointer.close()
            if self.reference_store is not None:
                self.reference_store.close()
            for close in self.closers:
                try:
                    close()
                except Exception as exc:  # one output's failure must not stop the shutdown
                    log.warning("output_close_failed", error=str(exc))
            self.alerts.close(
                self.settings.alerts.shutdown_flush_s, give_up=lambda: self.force_exit
            )
            if self.server is not None:
                self.server.stop()
        log.info(
            "daemon_stopped",
            model=self.settings.model,
            batches=self.stats.batches,
            forced=self.force_exit,
        )

    # ------------------------------------------------------------ signals

    @contextmanager
    def captured_signals(self) -> Iterator[None]:
        """Handle SIGTERM and SIGINT while inside, then restore the previous handlers
        (signals can only be handled on the main thread: elsewhere this does nothing)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """First signal: finish the batch and stop. Second: stop without saving."""
        if self.should_exit.is_set():
            self.force_exit = True
            log.warning("forced_exit", signal=signal.Signals(sig).name)
            return
        log.info("shutdown_requested", signal=signal.Signals(sig).name)
        self.should_exit.set()


def loop_health(settings: Settings) -> LoopHealth:
    """The health a daemon reports: a loop stuck inside one batch for minutes is dead to
    the orchestrator; a broker outage is not (poll keeps returning), so the heartbeat
    watches only the loop itself."""
    return LoopHealth(Heartbeat(max_age=max(300.0, 20 * settings.kafka.poll_timeout_ms / 1000)))


def make_results(settings: Settings) -> LatestResults:
    """The latest-value store shared by the pipeline and the collector."""
    return LatestResults(settings.model)
