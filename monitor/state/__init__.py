"""State: checkpoints, restore and hand-over; the state tree and its offsets, saved together.

``policy`` decides when to save (and counts the saves); ``ledger`` keeps which
offsets go with the saved state (never backwards); ``checkpointer`` (whole state in
one file) and ``partitioned`` (one slice per source partition on a topic) save and
restore; ``restore`` and ``handover`` build and put back the state tree and the
per-partition slices from the components' own ``state_dict`` / ``slice`` / ``merge``.
``reference_store`` keeps the built reference, ``storage_checks`` refuses unusable
stores at start-up.

``codec`` turns a state tree into one checksummed, versioned blob and back (no
pickle: a checkpoint never executes code). ``FileCheckpointStore`` keeps one
blob in a local directory; ``KafkaCheckpointStore`` (import it from
``monitor.state.kafka_store``; it is not re-exported here so that the file
store does not load kafka-python) keeps one blob per source partition on a
compacted topic, so that another replica can take over.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Loaded on first use: `check-config` imports `storage_checks` from this package and
# must not pay for numpy and the codec to do so (docs: startup under 0.5 s).
_HOMES = {name: "monitor.state.codec" for name in __all__} | {
    "FileCheckpointStore": "monitor.state.file_store"
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
