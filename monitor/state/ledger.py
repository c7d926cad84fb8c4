"""Which offsets go with which state: the daemon's offset ledger.

Every offset here is a *next* offset (the first one not yet read). Per partition the
ledger keeps three marks, in order ``committed <= saved <= processed``:

- processed: the pipeline's state includes every event before it;
- saved: a checkpoint holds that state (only these may be committed);
- pending: saved but not yet committed to the consumer group.

A mark never moves backwards while a partition is owned: a stale offset (an older
checkpoint's, a re-delivered batch's) cannot undo progress, which would re-count events.
A revoked partition is forgotten, so that its next owner decides where it resumes.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import structlog

from monitor.ingest.source import TopicPartition

log = structlog.get_logger()

Offsets = dict[TopicPartition, int]


class OffsetLedger:
    """Processed, saved and pending (saved, uncommitted) next offsets per partition."""

    def __init__(self) -> None:
        self._processed: Offsets = {}
        self._saved: Offsets = {}
        self._pending: Offsets = {}
        self._restored: Offsets = {}

    def restored(self, offsets: Mapping[TopicPartition, int]) -> None:
        """A checkpoint was loaded: its offsets are processed and saved already."""
        self._restored.update(offsets)
        self._advance(self._processed, offsets)
        self._advance(self._saved, offsets)

    def processed(self, offsets: Mapping[TopicPartition, int]) -> None:
        """The pipeline's state now includes the events before ``offsets``."""
        self._advance(self._processed, offsets)

    def unsaved(self) -> bool:
        """Whether some processed offset is not in a checkpoint yet."""
        return not self._processed.items() <= self._saved.items()

    def to_save(self) -> Offsets:
        """The offsets a checkpoint taken now goes with: every processed one."""
        return dict(self._processed)

    def saved(self, offsets: Mapping[TopicPartition, int]) -> None:
        """A checkpoint holding the state up to ``offsets`` is durable: they may be committed."""
        self._saved = dict(offsets)
        self._advance(self._pending, offsets)

    def committable(self, partitions: Collection[TopicPartition] | None = None) -> Offsets:
        """The saved, uncommitted offsets (of ``partitions`` only, when given)."""
        if partitions is None:
            return dict(self._pending)
        wanted = set(partitions)
        return {tp: o for tp, o in self._pending.items() if tp in wanted}

    def committed(self, offsets: Mapping[TopicPartition, int]) -> None:
        """These offsets reached the consumer group."""
        for tp in offsets:
            self._pending.pop(tp, None)

    def revoked(self, partitions: Collection[TopicPartition]) -> None:
        """Forget partitions given up: their next owner decides from here on."""
        for tp in partitions:
            self._processed.pop(tp, None)
            self._restored.pop(tp, None)

    def assigned(
        self, partitions: Collection[TopicPartition], restored: Mapping[TopicPartition, int]
    ) -> Offsets:
        """Newly owned ``partitions``, some with checkpointed offsets ``restored``: the
        offsets to resume them at (the checkpoint's, not the group's)."""
        self._restored.update(restored)
        wanted = {tp: self._restored[tp] for tp in partitions if tp in self._restored}
        return self._advance(self._processed, wanted)

    @staticmethod
    def _advance(marks: Offsets, offsets: Mapping[TopicPartition, int]) -> Offsets:
        """Move ``marks`` forward to ``offsets``; the ones that moved (or stayed)."""
        moved: Offsets = {}
        for tp, offset in offsets.items():
            known = marks.get(tp)
            if known is not None and offset < known:
                log.warning(
                    "offset_not_moved_back", topic=tp[0], partition=tp[1], at=known, asked=offset
                )
                continue
            marks[tp] = moved[tp] = offset
        return moved
