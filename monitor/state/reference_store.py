"""A warm-up reference that survives lost state.

A warm-up reference is data, not config: the first ``reference.warmup_events`` events
profiled. If it lived only in the checkpoint, a lost state directory (a pod's
emptyDir on reschedule) would make the daemon learn a new reference from whatever
traffic comes next, drifted or not, and page on nothing. So it is saved on its own,
versioned and checksummed (the checkpoint codec), the moment it completes: beside the
checkpoint (``<checkpoint.directory>/<checkpoint.name>.reference.ckpt``) with the file
store, or on the checkpoint topic (key ``<group>/__driftd_reference__/0``) with the
Kafka store. It is loaded on every start, independently of the checkpoint.

A daemon whose consumer group has committed offsets (it consumed, and so had a
reference, before) but that finds no saved reference refuses to start
(``ReferenceLostError``, exit 3) unless ``driftd run --relearn-reference`` says to learn
a new one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import structlog

from monitor.config import Settings
from monitor.engine.pipeline import Pipeline
from monitor.errors import CheckpointError
from monitor.state import FileCheckpointStore, decode, encode
from monitor.state.fingerprint import fingerprints
from monitor.state.partitioned import kafka_checkpoint_store
from monitor.state.restore import reference_state, restore_reference

log = structlog.get_logger()

VERSION: Final = 1
REFERENCE_PARTITION: Final = ("__driftd_reference__", 0)
"""The pseudo-partition the Kafka checkpoint store keeps the reference under."""


def reference_fingerprint(settings: Settings) -> tuple[str, str]:
    """The fingerprint of the settings that shape a warm-up reference, and the legacy one."""
    return fingerprints(
        settings,
        ("schema", "segments", "reference"),
        {"model": settings.model, "min_samples": settings.windows.min_samples},
    )


class ReferenceStore:
    """Saves and loads the warm-up reference through a pair of blob functions."""

    def __init__(
        self,
        save_blob: Callable[[bytes], None],
        load_blob: Callable[[], bytes | None],
        settings: Settings,
        location: str,
        close: Callable[[], None] | None = None,
    ) -> None:
        self._save_blob = save_blob
        self._load_blob = load_blob
        self._close = close
        self.location = location
        self.fingerprint, legacy = reference_fingerprint(settings)
        self.accepted_fingerprints = (self.fingerprint, legacy)
        self.saved = False

    @classmethod
    def from_settings(cls, settings: Settings) -> ReferenceStore | None:
        """The store for a warm-up reference, or None (a reference file, or no store)."""
        cfg = settings.checkpoint
        if settings.reference.warmup_events is None or cfg.store == "none":
            return None
        if cfg.store == "kafka":
            blobs = kafka_checkpoint_store(settings)
            kafka = settings.kafka
            return cls(
                lambda data: blobs.save({REFERENCE_PARTITION: data}),
                lambda: blobs.load([REFERENCE_PARTITION]).get(REFERENCE_PARTITION),
                settings,
                f"kafka:{cfg.topic}/{kafka.group_id}/{REFERENCE_PARTITION[0]}",
                close=blobs.close,
            )
        files = FileCheckpointStore(cfg.directory, f"{cfg.name}.reference")
        return cls(files.save, files.load, settings, str(files.path))

    def save(self, pipeline: Pipeline) -> bool:
        """Save the pipeline's warm-up reference; False (logged) when it cannot be stored."""
        state = reference_state(pipeline)
        if state is None:
            return False
        try:
            data = encode(state, {}, state_version=VERSION, fingerprint=self.fingerprint)
            self._save_blob(data)
        except CheckpointError as exc:
            log.error("warmup_reference_not_saved", location=self.location, error=str(exc))
            return False
        self.saved = True
        log.info(
            "warmup_reference_saved",
            location=self.location,
            version=state["reference"]["version"],
            bytes=len(data),
            segments=len(state["own_references"]),
        )
        return True

    def load_into(self, pipeline: Pipeline) -> bool:
        """Load the saved reference into ``pipeline``; False when none was saved.

        Raises ``CheckpointError`` when one exists but is corrupt or was made under
        other settings: the daemon must not silently learn a new one.
        """
        data = self._load_blob()
        if data is None:
            return False
        saved = decode(
            data,
            location=self.location,
            expect_state_version=VERSION,
            expect_fingerprint=self.accepted_fingerprints,
        )
        restore_reference(pipeline, saved.state, self.location)
        self.saved = True
        log.info(
            "warmup_reference_loaded",
            location=self.location,
            version=saved.state["reference"]["version"],
            segments=len(saved.state["own_references"]),
        )
        return True

    def close(self) -> None:
        """Release the store's connections."""
        if self._close is not None:
            self._close()
