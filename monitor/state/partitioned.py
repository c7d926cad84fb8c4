"""Checkpoints per source partition (``checkpoint.store: kafka``), for hand-over.

Each owned partition's slice (``monitor.state.handover``) is saved with its own next
offset under ``<group>/<topic>/<partition>`` on a compacted topic. A replica restores
a partition's slice when it is assigned and seeks to its offset; before a partition
is revoked its slice is saved, its offset committed, and its segments forgotten
locally.

The daemon's other stateful parts (the alert service: queued actions, open groups,
Alertmanager's firing set) belong to no partition. They are saved with every
checkpoint under one key of the group, ``<group>/__driftd_parts__/0``, and loaded once,
with the first partitions assigned (before any event is read, so before any alert
is routed). With several replicas in one group that key holds the state of the
replica that saved last.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final, Protocol

import numpy as np
import structlog
from prometheus_client import CollectorRegistry

from monitor.config import Settings
from monitor.engine.pipeline import Pipeline
from monitor.errors import CheckpointError
from monitor.ingest.source import TopicPartition
from monitor.state import decode, encode
from monitor.state.checkpointer import (
    StatefulPart,
    load_parts,
    parts_state,
    state_fingerprints,
)
from monitor.state.handover import drop_partition, merge_slice, partition_slice
from monitor.state.policy import CheckpointMetrics, SaveCadence
from monitor.state.restore import STATE_VERSION

if TYPE_CHECKING:
    from monitor.state.kafka_store import KafkaCheckpointStore

log = structlog.get_logger()

PARTS_KEY: Final[TopicPartition] = ("__driftd_parts__", 0)
"""Where the parts' state is kept: a name no inference topic has (``__`` is Kafka's)."""


def kafka_checkpoint_store(settings: Settings) -> KafkaCheckpointStore:
    """The compacted checkpoint topic's store, with the source's TLS and SASL settings."""
    from monitor.kafka.clients import security_settings  # noqa: PLC0415
    from monitor.state.kafka_store import KafkaCheckpointStore  # noqa: PLC0415

    kafka = settings.kafka
    return KafkaCheckpointStore(
        list(kafka.bootstrap_servers),
        settings.checkpoint.topic,
        kafka.group_id,
        client_kwargs=security_settings(kafka),
    )


class PartitionStore(Protocol):
    """Per-partition blobs (``KafkaCheckpointStore``)."""

    def save(self, blobs: Mapping[TopicPartition, bytes]) -> None:
        """Store one blob per partition; ``CheckpointError`` on failure."""
        ...

    def load(self, partitions: list[TopicPartition]) -> dict[TopicPartition, bytes]:
        """The latest blob of each partition that has one."""
        ...

    def probe(self) -> bool:
        """``CheckpointError`` if the store cannot be used; False when it could not tell."""
        ...

    def close(self) -> None:
        """Release the store's producer."""
        ...


class PartitionCheckpointer:
    """Checkpoints per partition, so another replica can take a partition over."""

    def __init__(
        self,
        store: PartitionStore,
        settings: Settings,
        registry: CollectorRegistry,
        *,
        location: str,
        parts: Mapping[str, StatefulPart] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.partitions = store
        self.location = location
        self.fingerprint, legacy = state_fingerprints(settings)
        self.accepted_fingerprints = (self.fingerprint, legacy)
        self.parts = dict(parts or {})
        self.cadence = SaveCadence(
            settings.checkpoint,
            CheckpointMetrics(registry, settings.model),
            location=location,
            clock=clock,
        )
        # Saving the parts before they were loaded would overwrite their saved state.
        self._parts_loaded = not self.parts

    @property
    def metrics(self) -> CheckpointMetrics:
        """``driftd_checkpoint_*`` (shared with the cadence that counts the saves)."""
        return self.cadence.metrics

    def restore(self, pipeline: Pipeline) -> dict[TopicPartition, int]:
        """Nothing at start: partitions (and the parts) are restored as they are assigned,
        so a broker that is down at start is waited out like any other outage."""
        return {}

    def probe(self) -> None:
        """Check, at start, that the partition store can be used (``CheckpointError``)."""
        self.partitions.probe()

    def close(self) -> None:
        """Close the partition store (its producer would otherwise outlive the daemon)."""
        self.partitions.close()

    def start_fresh(self) -> None:
        """Nothing global to set aside: each partition's slice is checked as it is assigned."""

    def due(self, batches: int = 1) -> bool:
        """Whether the cadence calls for a save, ``batches`` more having been processed."""
        return self.cadence.due(batches)

    def assign(
        self, pipeline: Pipeline, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """Merge the slices of newly assigned partitions; the offsets to seek them to."""
        wanted = list(partitions) if self._parts_loaded else [*partitions, PARTS_KEY]
        blobs = self.partitions.load(wanted)
        if not self._parts_loaded:
            self._load_parts(blobs.pop(PARTS_KEY, None))
        offsets: dict[TopicPartition, int] = {}
        for tp, blob in sorted(blobs.items()):
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

    def _load_parts(self, blob: bytes | None) -> None:
        if blob is not None:
            where = f"{self.location}/{PARTS_KEY[0]}"
            checkpoint = decode(
                blob,
                location=where,
                expect_state_version=STATE_VERSION,
                expect_fingerprint=self.accepted_fingerprints,
            )
            load_parts(self.parts, checkpoint.state.get("extra") or {})
            log.info("checkpoint_parts_restored", location=where, parts=sorted(self.parts))
        self._parts_loaded = True

    def release(self, pipeline: Pipeline, partitions: list[TopicPartition]) -> None:
        """Forget revoked partitions' segments: their new owner has their slices."""
        for tp in partitions:
            names = drop_partition(pipeline, tp)
            log.info("partition_state_released", topic=tp[0], partition=tp[1], segments=names)

    def save(self, pipeline: Pipeline, offsets: Mapping[TopicPartition, int]) -> bool:
        """Save every owned partition's slice with its offset, and the parts; True when
        all are stored."""
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
        if self.parts and self._parts_loaded:
            blobs[PARTS_KEY] = encode(
                {"extra": parts_state(self.parts)},
                {},
                state_version=STATE_VERSION,
                fingerprint=self.fingerprint,
            )
        try:
            self.partitions.save(blobs)
        except CheckpointError as exc:
            self.cadence.failed(str(exc))
            return False
        self.cadence.succeeded(sum(map(len, blobs.values())), time.perf_counter() - started)
        return True


def partition_checkpointer(
    settings: Settings, registry: CollectorRegistry, parts: Mapping[str, StatefulPart]
) -> PartitionCheckpointer:
    """The checkpointer of ``checkpoint.store: kafka``, on the configured topic."""
    return PartitionCheckpointer(
        kafka_checkpoint_store(settings),
        settings,
        registry,
        location=f"kafka:{settings.checkpoint.topic}",
        parts=parts,
    )
