"""Checkpoints: the state tree plus the next offsets, saved together and atomically.

``codec`` turns a state tree into one checksummed, versioned blob and back (no
pickle: a checkpoint never executes code). ``FileCheckpointStore`` keeps one
blob in a local directory; ``KafkaCheckpointStore`` (import it from
``monitor.checkpoint.kafka_store``; it is not re-exported here so that the file
store does not load kafka-python) keeps one blob per source partition on a
compacted topic, so that another replica can take over.
"""

from __future__ import annotations

from monitor.checkpoint.codec import (
    FORMAT_VERSION,
    MAGIC,
    Checkpoint,
    CheckpointInfo,
    decode,
    encode,
    peek,
)
from monitor.checkpoint.file_store import FileCheckpointStore

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
