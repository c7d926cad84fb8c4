"""What every source hands the pipeline, and what the pipeline asks of a source."""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import compress, repeat
from typing import Any, NamedTuple, Protocol, TypeVar, overload

TopicPartition = tuple[str, int]
_T = TypeVar("_T")


class Record(NamedTuple):
    """One raw message and where it came from.

    A named tuple, not a dataclass: a source makes one per message, and a tuple can be
    made in C from columns (``make_records``), about a microsecond cheaper per message.
    """

    value: bytes
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None


_new_tuple = tuple.__new__
_VALUE_OF = operator.attrgetter("value")
_PARTITION_OF = operator.attrgetter("topic", "partition")
_OFFSET_OF = operator.attrgetter("offset")


def make_records(
    values: Iterable[bytes],
    topics: Iterable[str],
    partitions: Iterable[int],
    offsets: Iterable[int],
    timestamps_ms: Iterable[int | None],
) -> list[Record]:
    """Records from columns, one per position, without a Python call per message."""
    rows = zip(values, topics, partitions, offsets, timestamps_ms, strict=True)
    return list(map(_new_tuple, repeat(Record), rows))


class RecordBatch(Sequence[Record]):
    """One poll's records held as columns, a record made only when one is asked for.

    What the librdkafka source returns: it reads every field of a batch column by column,
    and the pipeline wants columns again (the values to decode, the last offset of each
    partition), so making a tuple per message and taking it apart again is work thrown
    away. Iterating or indexing gives ordinary ``Record`` tuples.

    ``offsets`` and ``timestamps_ms`` may be given as functions that make the column:
    they are called when it is first read (a record, a dead letter, Kafka event times),
    which most batches never need. With them comes ``next_offsets``, the offsets to
    commit, which the source knows from the first and last message of each partition.
    """

    __slots__ = ("_next_offsets", "_offsets", "_timestamps_ms", "partitions", "topics", "values")

    def __init__(
        self,
        values: list[bytes],
        topics: list[str],
        partitions: list[int],
        offsets: list[int] | Callable[[], list[int]],
        timestamps_ms: list[int | None] | Callable[[], list[int | None]],
        *,
        next_offsets: Mapping[TopicPartition, int] | None = None,
    ) -> None:
        given = [c for c in (offsets, timestamps_ms) if isinstance(c, list)]
        if not all(len(column) == len(values) for column in (topics, partitions, *given)):
            raise ValueError("every column of a record batch has one value per record")
        if next_offsets is None and not isinstance(offsets, list):
            raise ValueError("a batch whose offsets are read later needs its next offsets")
        self.values = values
        self.topics = topics
        self.partitions = partitions
        self._offsets = offsets
        self._timestamps_ms = timestamps_ms
        self._next_offsets = None if next_offsets is None else dict(next_offsets)

    @property
    def offsets(self) -> list[int]:
        """Each record's offset (made now if the source left it for later)."""
        if not isinstance(self._offsets, list):
            self._offsets = self._checked(self._offsets())
        return self._offsets

    @property
    def timestamps_ms(self) -> list[int | None]:
        """Each record's Kafka time in ms, None where it has none (made now if left for later)."""
        if not isinstance(self._timestamps_ms, list):
            self._timestamps_ms = self._checked(self._timestamps_ms())
        return self._timestamps_ms

    def _checked(self, column: list[_T]) -> list[_T]:
        if len(column) != len(self.values):
            raise ValueError("every column of a record batch has one value per record")
        return column

    def __len__(self) -> int:
        return len(self.values)

    @overload
    def __getitem__(self, index: int) -> Record: ...

    @overload
    def __getitem__(self, index: slice) -> list[Record]: ...

    def __getitem__(self, index: int | slice) -> Record | list[Record]:
        if isinstance(index, slice):
            return make_records(
                self.values[index],
                self.topics[index],
                self.partitions[index],
                self.offsets[index],
                self.timestamps_ms[index],
            )
        return Record(
            self.values[index],
            self.topics[index],
            self.partitions[index],
            self.offsets[index],
            self.timestamps_ms[index],
        )

    def __iter__(self) -> Iterator[Record]:
        rows = zip(
            self.values, self.topics, self.partitions, self.offsets, self.timestamps_ms, strict=True
        )
        return map(_new_tuple, repeat(Record), rows)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and all(map(operator.eq, self, other))

    __hash__ = None  # type: ignore[assignment]  # compared by content, as a list

    def __repr__(self) -> str:
        return f"RecordBatch({list(self)!r})"

    def __reduce__(self) -> tuple[type[RecordBatch], tuple[Any, ...]]:
        columns = (self.values, self.topics, self.partitions, self.offsets, self.timestamps_ms)
        return RecordBatch, columns

    def next_offsets(self) -> dict[TopicPartition, int]:
        """The offset after the last record of each partition (offsets ascend in one)."""
        if self._next_offsets is not None:
            return dict(self._next_offsets)
        keys = zip(self.topics, self.partitions, strict=True)
        last = dict(zip(keys, self.offsets, strict=True))
        return {key: offset + 1 for key, offset in last.items()}

    def split_topic(self, topic: str | None) -> tuple[RecordBatch, RecordBatch]:
        """The records of ``topic`` and the others, each a batch in this one's order."""
        if topic not in self.topics:
            return RecordBatch([], [], [], [], []), self
        if self.topics.count(topic) == len(self.topics):
            return self, RecordBatch([], [], [], [], [])
        ours = list(map(operator.eq, self.topics, repeat(topic)))
        others = list(map(operator.not_, ours))
        return self._where(ours), self._where(others)

    def _where(self, chosen: list[bool]) -> RecordBatch:
        return RecordBatch(
            list(compress(self.values, chosen)),
            list(compress(self.topics, chosen)),
            list(compress(self.partitions, chosen)),
            list(compress(self.offsets, chosen)),
            list(compress(self.timestamps_ms, chosen)),
        )


def record_values(records: Sequence[Record]) -> list[bytes]:
    """The messages of ``records``, taken from a batch's column where it has one."""
    if isinstance(records, RecordBatch):
        return records.values
    return list(map(_VALUE_OF, records))


def next_offsets(records: Sequence[Record]) -> dict[TopicPartition, int]:
    """The offset after the last record of each partition (offsets ascend in one), from a
    batch's columns where it has them."""
    if isinstance(records, RecordBatch):
        return records.next_offsets()
    # C-level getters: this runs for every record of the sources that make lists.
    last = dict(zip(map(_PARTITION_OF, records), map(_OFFSET_OF, records), strict=True))
    return {key: offset + 1 for key, offset in last.items()}


def split_topic(
    records: Sequence[Record], topic: str | None
) -> tuple[Sequence[Record], Sequence[Record]]:
    """The records of ``topic`` and the others, each in arrival order."""
    if isinstance(records, RecordBatch):
        return records.split_topic(topic)
    ours = [r for r in records if r.topic == topic]
    return ours, ([r for r in records if r.topic != topic] if ours else records)


class RebalanceListener(Protocol):
    """Told when a consumer group moves partitions (the daemon, via ``Source.listen``)."""

    def on_partitions_revoked(self, partitions: list[TopicPartition]) -> None:
        """Before ``partitions`` are given up: save and commit what they hold."""
        ...

    def on_partitions_assigned(self, partitions: list[TopicPartition]) -> None:
        """Before anything is read from ``partitions``: restore them, seek if need be."""
        ...


class Source(Protocol):
    """A pull source. Offsets given to ``commit`` are the *next* offsets to read.

    Sources without partitions or a group (demo, file) implement the trivial version
    of the group methods: ``listen`` keeps nothing, ``seek`` accepts nothing,
    ``committed_before`` says False.
    """

    name: str

    @property
    def last_successful_poll(self) -> float | None:
        """``time.monotonic()`` of the last poll that reached the data (None before one)."""
        ...

    def listen(self, listener: RebalanceListener) -> None:
        """Tell ``listener`` of every partition revoked or assigned from now on."""
        ...

    def seek(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Resume owned partitions at these next offsets (from a rebalance callback)."""
        ...

    def committed_before(self) -> bool | None:
        """Whether the consumer group committed offsets before (None: cannot tell)."""
        ...

    def poll(self, timeout_s: float) -> Sequence[Record]:
        """Up to one batch of records (a list, or a ``RecordBatch``); empty when nothing
        arrived in time."""
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

    def dead_letters_written_to(self) -> str | None:
        """Where this run's refused records were written, if to a local file a person
        should be told of (None: nothing written, or to a topic)."""
        ...

    @property
    def exhausted(self) -> bool:
        """True when a finite source (file, bounded demo) has nothing more to give."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...


PartitionsCallback = Callable[[list[TopicPartition]], None]


class UngroupedSource:
    """The group methods of a source that has no consumer group (demo, file, stdin):
    no partition ever moves, nothing is seeked, nothing was committed before."""

    last_successful_poll: float | None = None
    """``time.monotonic()`` at the end of the last poll (set by the subclass's ``poll``)."""

    def listen(self, listener: RebalanceListener) -> None:
        """No partition is ever revoked or assigned: nothing to tell."""

    def seek(self, offsets: Mapping[TopicPartition, int]) -> None:
        """One pass over its input: nothing to seek (never asked, having no partitions)."""

    def committed_before(self) -> bool | None:
        """No consumer group: nothing was ever committed."""
        return False

    def dead_letters_written_to(self) -> str | None:
        """No local dead-letter file unless the subclass writes one."""
        return None
