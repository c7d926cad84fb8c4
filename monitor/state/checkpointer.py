"""The daemon's checkpoints: when to save, what goes in, how a restart restores.

A checkpoint is the pipeline's state tree (``monitor.state.restore``) plus the alert routing
state, encoded with the next offset of every partition whose events it includes
(``monitor.state.codec``), and written atomically by a store. The daemon calls
:meth:`StateCheckpointer.save` after state updates, at most every ``interval_s``
seconds or ``interval_batches`` batches (and always on revoke and at shutdown), and
commits offsets to Kafka only after a save succeeded.

The fingerprint names the configuration that shapes the state (schema, segments,
windows, reference, labels). A checkpoint made under another fingerprint, another
state version, or that fails its checksum is refused with a clear error; the daemon
then stops, and ``driftd run --start-fresh`` moves it aside and starts empty.
Nothing is ever reset silently.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol

import numpy as np
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from monitor.config import Settings
from monitor.engine.pipeline import Pipeline
from monitor.errors import CheckpointError
from monitor.ingest.source import TopicPartition
from monitor.state import FileCheckpointStore, decode, encode
from monitor.state.fingerprint import fingerprints
from monitor.state.handover import drop_partition, merge_slice, partition_slice
from monitor.state.restore import STATE_VERSION, pipeline_state, restore_pipeline

if TYPE_CHECKING:
    from monitor.state.kafka_store import KafkaCheckpointStore

log = structlog.get_logger()

SAVE_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def state_fingerprint(settings: Settings) -> str:
    """A short hash of the settings that shape the saved state (not thresholds)."""
    return state_fingerprints(settings)[0]


def state_fingerprints(settings: Settings) -> tuple[str, str]:
    """The fingerprint new checkpoints carry, and the legacy one still accepted."""
    return fingerprints(
        settings,
        ("schema", "segments", "windows", "reference", "labels"),
        {"model": settings.model, "labels_topic": settings.kafka.labels_topic},
    )


def kafka_checkpoint_store(settings: Settings) -> KafkaCheckpointStore:
    """The compacted checkpoint topic's store, with the source's TLS and SASL settings."""
    from monitor.ingest.kafka.source import security_settings  # noqa: PLC0415
    from monitor.state.kafka_store import KafkaCheckpointStore  # noqa: PLC0415

    kafka = settings.kafka
    return KafkaCheckpointStore(
        list(kafka.bootstrap_servers),
        settings.checkpoint.topic,
        kafka.group_id,
        client_kwargs=security_settings(kafka),
    )


class BlobStore(Protocol):
    """Where checkpoint bytes live (a local file by default)."""

    def save(self, data: bytes) -> None:
        """Store ``data`` atomically; ``CheckpointError`` on failure."""
        ...

    def load(self) -> bytes | None:
        """The stored bytes, or None when there is no checkpoint."""
        ...

    def remove(self) -> None:
        """Drop the checkpoint (start fresh)."""
        ...


class CheckpointMetrics:
    """``driftd_checkpoint_*``: outcome counts, duration, size, last success time."""

    def __init__(self, registry: CollectorRegistry, model: str) -> None:
        self.total = Counter(
            "driftd_checkpoint",
            "Checkpoint saves by outcome (ok, failed).",
            ["outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "driftd_checkpoint_duration_seconds",
            "Seconds to encode and store one checkpoint.",
            buckets=SAVE_BUCKETS,
            registry=registry,
        )
        self.size = Gauge(
            "driftd_checkpoint_size_bytes",
            "Size of the last checkpoint saved.",
            ["model"],
            registry=registry,
        ).labels(model=model)
        self.last_success = Gauge(
            "driftd_checkpoint_last_success_timestamp_seconds",
            "Unix time of the last successful checkpoint (0: none yet).",
            ["model"],
            registry=registry,
        ).labels(model=model)
        for outcome in ("ok", "failed"):
            self.total.labels(outcome)


class StateCheckpointer:
    """Saves and restores the daemon's state through a blob store, on a cadence."""

    def __init__(
        self,
        store: BlobStore,
        settings: Settings,
        registry: CollectorRegistry,
        *,
        location: str,
        extra_state: Callable[[], dict[str, Any]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.settings = settings
        self.location = location
        self.fingerprint, legacy = state_fingerprints(settings)
        self.accepted_fingerprints = (self.fingerprint, legacy)
        self.metrics = CheckpointMetrics(registry, settings.model)
        self.extra_state = extra_state
        self._clock = clock
        self._saved_at = clock()
        self._batches = 0

    @classmethod
    def from_settings(
        cls, settings: Settings, registry: CollectorRegistry
    ) -> StateCheckpointer | None:
        """The configured checkpointer, or None for ``checkpoint.store: none``."""
        cfg = settings.checkpoint
        if cfg.store == "none":
            return None
        if cfg.store == "kafka":
            return PartitionCheckpointer(
                kafka_checkpoint_store(settings), settings, registry, location=f"kafka:{cfg.topic}"
            )
        store = FileCheckpointStore(cfg.directory, cfg.name)
        return cls(store, settings, registry, location=str(store.path))

    # -- restore -------------------------------------------------------------------

    def restore(self, pipeline: Pipeline) -> tuple[dict[TopicPartition, int], dict[str, Any]]:
        """Load the checkpoint into ``pipeline``: its offsets and extra state ({} if none).

        Raises ``CheckpointError`` (corrupt, incompatible, unreadable): the caller must
        refuse to start rather than silently lose or double count.
        """
        data = self.store.load()
        if data is None:
            log.info("checkpoint_absent_starting_fresh", location=self.location)
            return {}, {}
        checkpoint = decode(
            data,
            location=self.location,
            expect_state_version=STATE_VERSION,
            expect_fingerprint=self.accepted_fingerprints,
        )
        restore_pipeline(pipeline, checkpoint.state["pipeline"], self.location)
        offsets = {(str(t), int(p)): int(o) for (t, p), o in checkpoint.offsets.items()}
        log.info(
            "checkpoint_restored",
            location=self.location,
            partitions=len(offsets),
            age_s=round(time.time() - checkpoint.created_at, 3),
        )
        extra = checkpoint.state.get("extra") or {}
        return offsets, dict(extra)

    def probe(self) -> None:
        """Check, at start, that the store can be used; ``CheckpointError`` if it cannot.

        Stores without a ``probe`` (the file store: its directory is checked by
        ``monitor.state.storage_checks``) pass.
        """
        probe = getattr(self.store, "probe", None)
        if probe is not None:
            probe()

    def close(self) -> None:
        """Release the store's connections (the Kafka store's producer)."""
        close = getattr(self.store, "close", None)
        if close is not None:
            close()

    def start_fresh(self) -> None:
        """Set the checkpoint aside (never deleted: it may be needed for forensics)."""
        data = self.store.load()
        if data is None:
            return
        path = getattr(self.store, "path", None)
        if path is not None:
            aside = path.with_name(f"{path.name}.refused-{int(time.time())}")
            path.rename(aside)
            log.warning("checkpoint_set_aside", location=self.location, moved_to=str(aside))
        else:
            self.store.remove()
            log.warning("checkpoint_removed", location=self.location)

    # -- save ----------------------------------------------------------------------

    def due(self, batches: int = 1) -> bool:
        """Whether the cadence calls for a save, ``batches`` more having been processed."""
        self._batches += batches
        cfg = self.settings.checkpoint
        if cfg.interval_batches is not None and self._batches >= cfg.interval_batches:
            return True
        return self._clock() - self._saved_at >= cfg.interval_s

    def save(self, pipeline: Pipeline, offsets: Mapping[TopicPartition, int]) -> bool:
        """Save state with ``offsets``; True when they are durably stored together."""
        started = time.perf_counter()
        state = pipeline_state(pipeline)
        if state is None:
            return False  # warm-up: nothing saved, so nothing may be committed
        tree: dict[str, Any] = {"pipeline": state}
        if self.extra_state is not None:
            tree["extra"] = self.extra_state()
        try:
            data = encode(
                tree, dict(offsets), state_version=STATE_VERSION, fingerprint=self.fingerprint
            )
            self.store.save(data)
        except CheckpointError as exc:
            self.metrics.total.labels("failed").inc()
            log.error("checkpoint_failed", location=self.location, error=str(exc))
            return False
        self._saved(len(data), time.perf_counter() - started)
        return True

    def _saved(self, size: int, elapsed: float) -> None:
        self.metrics.total.labels("ok").inc()
        self.metrics.duration.observe(elapsed)
        self.metrics.size.set(size)
        self.metrics.last_success.set(time.time())
        self._saved_at = self._clock()
        self._batches = 0
        log.debug("checkpoint_saved", bytes=size, seconds=round(elapsed, 4))


class PartitionStore(Protocol):
    """Per-partition blobs (``KafkaCheckpointStore``)."""

    def save(self, blobs: Mapping[TopicPartition, bytes]) -> None:
        """Store one blob per partition; ``CheckpointError`` on failure."""
        ...

    def load(self, partitions: list[TopicPartition]) -> dict[TopicPartition, bytes]:
        """The latest blob of each partition that has one."""
        ...


class PartitionCheckpointer(StateCheckpointer):
    """Checkpoints per partition, so another replica can take a partition over.

    Each owned partition's slice (``monitor.state.handover``) is saved with its own next
    offset under ``<group>/<topic>/<partition>``. A replica restores a partition's
    slice when it is assigned and seeks to its offset; before a partition is revoked
    its slice is saved, its offset committed, and its segments forgotten locally.
    """

    def __init__(
        self,
        store: PartitionStore,
        settings: Settings,
        registry: CollectorRegistry,
        *,
        location: str,
    ) -> None:
        super().__init__(_NoBlob(), settings, registry, location=location)
        self.partitions = store

    def restore(self, pipeline: Pipeline) -> tuple[dict[TopicPartition, int], dict[str, Any]]:
        """Nothing global: partitions are restored as they are assigned."""
        return {}, {}

    def probe(self) -> None:
        """Check, at start, that the partition store can be used (see ``StateCheckpointer``)."""
        probe = getattr(self.partitions, "probe", None)
        if probe is not None:
            probe()

    def close(self) -> None:
        """Close the partition store (its producer would otherwise outlive the daemon)."""
        close = getattr(self.partitions, "close", None)
        if close is not None:
            close()

    def assign(
        self, pipeline: Pipeline, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """Merge the slices of newly assigned partitions; the offsets to seek them to."""
        offsets: dict[TopicPartition, int] = {}
        for tp, blob in sorted(self.partitions.load(list(partitions)).items()):
            where = f"{self.location}/{tp[0]}/{tp[1]}"
            checkpoint = decode(
                blob,
                location=where,
                expect_state_version=STATE_VERSION,
                expect_fingerprint=self.accepted_fingerprints,
            )
            names = merge_slice(pipeline, tp, checkpoint.state["slice"], where)
            offsets.update({(str(t), int(p)): int(o) for (t, p), o in checkpoint.offsets.items()})
            log.info(
                "partition_state_restored",
                topic=tp[0],
                partition=tp[1],
                segments=names,
                offsets=checkpoint.offsets,
                open_rows=int(np.asarray(checkpoint.state["slice"]["windows"]["pane_rows"]).sum()),
            )
        return offsets

    def release(self, pipeline: Pipeline, partitions: list[TopicPartition]) -> None:
        """Forget revoked partitions' segments: their new owner has their slices."""
        for tp in partitions:
            names = drop_partition(pipeline, tp)
            log.info("partition_state_released", topic=tp[0], partition=tp[1], segments=names)

    def save(self, pipeline: Pipeline, offsets: Mapping[TopicPartition, int]) -> bool:
        """Save every owned partition's slice with its offset; True when all are stored."""
        started = time.perf_counter()
        blobs: dict[TopicPartition, bytes] = {}
        for tp, offset in offsets.items():
            state = partition_slice(pipeline, tp)
            if state is None:
                return False  # warm-up: nothing saved, so nothing may be committed
            blobs[tp] = encode(
                {"slice": state},
                {tp: offset},
                state_version=STATE_VERSION,
                fingerprint=self.fingerprint,
            )
        if not blobs:
            return True
        try:
            self.partitions.save(blobs)
        except CheckpointError as exc:
            self.metrics.total.labels("failed").inc()
            log.error("checkpoint_failed", location=self.location, error=str(exc))
            return False
        self._saved(sum(map(len, blobs.values())), time.perf_counter() - started)
        return True


class _NoBlob:
    """The whole-state store a partition checkpointer does not use."""

    def save(self, data: bytes) -> None:
        """Unused."""

    def load(self) -> bytes | None:
        """Nothing."""
        return None

    def remove(self) -> None:
        """Nothing to remove."""
