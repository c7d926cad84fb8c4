"""What every source hands the pipeline, and what the pipeline asks of a source."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

TopicPartition = tuple[str, int]


@dataclass(frozen=True)
class Record:
    """One raw message and where it came from."""

    value: bytes
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None


class Source(Protocol):
    """A pull source. Offsets given to ``commit`` are the *next* offsets to read."""

    name: str

    def poll(self, timeout_s: float) -> list[Record]:
        """Up to one batch of records; an empty list when nothing arrived in time."""
        ...

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit the next offsets, after the state holding their events is safe."""
        ...

    def dead_letter(self, records: Sequence[tuple[Record, str, str]]) -> None:
        """Write refused records (with reason and detail) to the dead-letter sink."""
        ...

    def lag(self) -> dict[TopicPartition, int]:
        """Latest known lag per owned partition (computed on the polling thread)."""
        ...

    @property
    def exhausted(self) -> bool:
        """True when a finite source (file, bounded demo) has nothing more to give."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...


PartitionsCallback = Callable[[list[TopicPartition]], None]
