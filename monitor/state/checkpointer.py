"""The daemon's checkpoints: what goes in, where it goes, how a restart restores.

A checkpoint is the pipeline's state tree (``monitor.state.restore``) plus the state
of the daemon's other stateful parts (the alert service: queued actions, open
groups, Alertmanager's firing set), encoded with the next offset of every partition
whose events it includes (``monitor.state.codec``), and written atomically by a
store. The daemon asks :meth:`~SaveCadence.due` (``monitor.state.policy``) after
each batch, saves (and always on revoke and at shutdown), and commits offsets to
Kafka only after a save succeeded; ``monitor.state.ledger`` keeps which offsets a
save covered.

Three checkpointers share one interface: :class:`NoCheckpoint` (``checkpoint.store:
none``), :class:`StateCheckpointer` (``store: file``: the whole state in one file) and
``monitor.state.partitioned.PartitionCheckpointer`` (``store: kafka``: one slice per
source partition on a compacted topic, for hand-over between replicas).

The fingerprint names the configuration that shapes the state (schema, segments,
windows, reference, labels). A checkpoint made under another fingerprint, another
state version, or that fails its checksum is refused with a clear error; the daemon
then stops, and ``driftd run --start-fresh`` moves it aside and starts empty.
Nothing is ever reset silently.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import structlog
from prometheus_client import CollectorRegistry

from monitor.config import Settings
from monitor.engine.pipeline import Pipeline
from monitor.errors import CheckpointError
from monitor.ingest.source import TopicPartition
from monitor.state import FileCheckpointStore, decode, encode
from monitor.state.fingerprint import fingerprints
from monitor.state.policy import CheckpointMetrics, SaveCadence
from monitor.state.restore import STATE_VERSION, pipeline_state, restore_pipeline

log = structlog.get_logger()


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


class StatefulPart(Protocol):
    """A part of the daemon saved beside the pipeline (the alert service)."""

    def state_dict(self) -> dict[str, Any]:
        """Its state as a plain tree."""
        ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Take back what :meth:`state_dict` returned (before the part starts working)."""
        ...


def parts_state(parts: Mapping[str, StatefulPart]) -> dict[str, Any]:
    """The state tree of every part, by name (a checkpoint's ``extra``)."""
    return {name: part.state_dict() for name, part in parts.items()}


def load_parts(parts: Mapping[str, StatefulPart], saved: Mapping[str, Any]) -> None:
    """Restore each part that the saved ``extra`` tree has state for."""
    for name, part in parts.items():
        if name in saved:
            part.load_state_dict(saved[name])


class BlobStore(Protocol):
    """Where whole-state checkpoint bytes live (``FileCheckpointStore``)."""

    def save(self, data: bytes) -> None:
        """Store ``data`` atomically; ``CheckpointError`` on failure."""
        ...

    def load(self) -> bytes | None:
        """The stored bytes, or None when there is no checkpoint."""
        ...

    def set_aside(self) -> str:
        """Move the checkpoint out of the way, keeping it; where it went."""
        ...

    def probe(self) -> None:
        """``CheckpointError`` if the store cannot be used."""
        ...

    def close(self) -> None:
        """Release what the store holds open."""
        ...


class NoCheckpoint:
    """No checkpoints (``checkpoint.store: none``; demo and file sources, which cannot
    seek): every processed batch may be committed."""

    def restore(self, pipeline: Pipeline) -> dict[TopicPartition, int]:
        """Nothing to restore."""
        return {}

    def due(self, batches: int = 1) -> bool:
        """Always: the commit cadence alone paces commits."""
        return True

    def save(self, pipeline: Pipeline, offsets: Mapping[TopicPartition, int]) -> bool:
        """Nothing to store; the commit may proceed."""
        return True

    def assign(
        self, pipeline: Pipeline, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """No saved slices: newly owned partitions start where the group left them."""
        return {}

    def release(self, pipeline: Pipeline, partitions: list[TopicPartition]) -> None:
        """Nothing is handed over: the state stays whole."""

    def probe(self) -> None:
        """No store to check."""

    def start_fresh(self) -> None:
        """No checkpoint to set aside."""

    def close(self) -> None:
        """Nothing to release."""


class StateCheckpointer:
    """Saves and restores the whole state through one blob store, on a cadence."""

    def __init__(
        self,
        store: BlobStore,
        settings: Settings,
        registry: CollectorRegistry,
        *,
        location: str,
        parts: Mapping[str, StatefulPart] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
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

    @property
    def metrics(self) -> CheckpointMetrics:
        """``driftd_checkpoint_*`` (shared with the cadence that counts the saves)."""
        return self.cadence.metrics

    # -- restore -------------------------------------------------------------------

    def restore(self, pipeline: Pipeline) -> dict[TopicPartition, int]:
        """Load the checkpoint into ``pipeline`` and the parts; its offsets ({} if none).

        Raises ``CheckpointError`` (corrupt, incompatible, unreadable): the caller must
        refuse to start rather than silently lose or double count.
        """
        data = self.store.load()
        if data is None:
            log.info("checkpoint_absent_starting_fresh", location=self.location)
            return {}
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
        load_parts(self.parts, checkpoint.state.get("extra") or {})
        return offsets

    def assign(
        self, pipeline: Pipeline, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """The whole state was restored at start: nothing more per partition."""
        return {}

    def release(self, pipeline: Pipeline, partitions: list[TopicPartition]) -> None:
        """The whole state stays here: nothing is handed over."""

    def probe(self) -> None:
        """Check, at start, that the store can be used; ``CheckpointError`` if it cannot."""
        self.store.probe()

    def close(self) -> None:
        """Release the store."""
        self.store.close()

    def start_fresh(self) -> None:
        """Set the checkpoint aside (never deleted: it may be needed for forensics)."""
        if self.store.load() is None:
            return
        moved_to = self.store.set_aside()
        log.warning("checkpoint_set_aside", location=self.location, moved_to=moved_to)

    # -- save ----------------------------------------------------------------------

    def due(self, batches: int = 1) -> bool:
        """Whether the cadence calls for a save, ``batches`` more having been processed."""
        return self.cadence.due(batches)

    def save(self, pipeline: Pipeline, offsets: Mapping[TopicPartition, int]) -> bool:
        """Save state with ``offsets``; True when they are durably stored together."""
        started = time.perf_counter()
        state = pipeline_state(pipeline)
        if state is None:
            return False  # warm-up: nothing saved, so nothing may be committed
        tree: dict[str, Any] = {"pipeline": state}
        if self.parts:
            tree["extra"] = parts_state(self.parts)
        try:
            data = encode(
                tree, dict(offsets), state_version=STATE_VERSION, fingerprint=self.fingerprint
            )
            self.store.save(data)
        except CheckpointError as exc:
            self.cadence.failed(str(exc))
            return False
        self.cadence.succeeded(len(data), time.perf_counter() - started)
        return True


def file_checkpointer(
    settings: Settings,
    registry: CollectorRegistry,
    parts: Mapping[str, StatefulPart] | None = None,
) -> StateCheckpointer:
    """The checkpointer of ``checkpoint.store: file``, in ``checkpoint.directory``."""
    store = FileCheckpointStore(settings.checkpoint.directory, settings.checkpoint.name)
    return StateCheckpointer(store, settings, registry, location=str(store.path), parts=parts)
