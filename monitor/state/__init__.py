"""State: checkpoints, restore and hand-over; the state tree and its offsets, saved together.

``checkpointer`` decides when to save and which offsets go with the state;
``restore`` and ``handover`` put a saved tree back. ``reference_store`` keeps the
built reference, ``storage_checks`` refuses unusable stores at start-up.

``codec`` turns a state tree into one checksummed, versioned blob and back (no
pickle: a checkpoint never executes code). ``FileCheckpointStore`` keeps one
blob in a local directory; ``KafkaCheckpointStore`` (import it from
``monitor.state.kafka_store``; it is not re-exported here so that the file
store does not load kafka-python) keeps one blob per source partition on a
compacted topic, so that another replica can take over.
"""

from __future__ import annotations

from monitor.state.codec import (
    FORMAT_VERSION,
    MAGIC,
    Checkpoint,
    CheckpointInfo,
    decode,
    encode,
    peek,
)
from monitor.state.file_store import FileCheckpointStore

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "Checkpoint",
    "CheckpointInfo",
    "FileCheckpointStore",
    "decode",
    "encode",
    "peek",
]
