"""Recorded events and their labels, replayed in one stream merged by event time.

A backtest (``driftd backtest``) feeds the daemon's own engine from files: the events on
one topic and, optionally, the label events on the labels topic, exactly as a consumer
of both topics would see them. Each input is an iterator of :class:`ReplayItem` (the
message bytes, its event time in epoch seconds, its offset) in the order it was
recorded; the two are interleaved by time, each keeping its own order, an event first
when the times tie. An item whose time could not be read (NaN) keeps its place behind
the previous item of its input; the decoder refuses it as it would live.

``poll`` hands out up to ``batch_size`` events and the labels that fall between them,
so the events are cut into the same batches as ``source.batch_size`` cuts them live.
Nothing is committed, lag is ``{}``, and refused records are only counted by reason (a
backtest is a dry run: it writes nothing beside its inputs); the first refusal of each
reason is kept as an example.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import NamedTuple

from monitor.ingest.source import Record, TopicPartition, UngroupedSource

__all__ = ["ReplayItem", "ReplaySource"]


class ReplayItem(NamedTuple):
    """One recorded message: its bytes, its event time (NaN: unreadable), its offset."""

    value: bytes
    ts: float
    offset: int


class _Lane:
    """One input: its iterator, the item at its head, and the time it is ordered by."""

    def __init__(self, items: Iterable[ReplayItem], topic: str) -> None:
        self.items: Iterator[ReplayItem] = iter(items)
        self.topic = topic
        self.head: ReplayItem | None = None
        self.order_ts = -math.inf
        self.read = 0
        self._advance()

    def _advance(self) -> None:
        self.head = next(self.items, None)
        if self.head is not None and not math.isnan(self.head.ts):
            # An unreadable time keeps its place behind the item before it.
            self.order_ts = self.head.ts

    def close(self) -> None:
        """Stop reading (a generator's ``close`` closes the file it reads)."""
        close = getattr(self.items, "close", None)
        if close is not None:
            close()
        self.head = None

    def take(self) -> Record:
        item = self.head
        assert item is not None
        self.read += 1
        record = Record(item.value, self.topic, 0, item.offset)
        self._advance()
        return record


class ReplaySource(UngroupedSource):
    """Events and labels from recorded inputs, merged by event time (see module doc)."""

    def __init__(
        self,
        events: Iterable[ReplayItem],
        batch_size: int,
        *,
        events_topic: str,
        labels: Iterable[ReplayItem] | None = None,
        labels_topic: str | None = None,
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if labels is not None and labels_topic is None:
            raise ValueError("labels need a labels_topic")
        if labels_topic is not None and labels_topic == events_topic:
            raise ValueError(f"the labels topic must differ from the events topic {events_topic!r}")
        self.name = f"replay:{events_topic}"
        self.batch_size = batch_size
        self._events = _Lane(events, events_topic)
        self._labels = _Lane(labels, labels_topic) if labels is not None and labels_topic else None
        self.dead_letter_counts: Counter[str] = Counter()
        """Records handed to ``dead_letter``, by reason."""
        self.dead_letter_examples: dict[str, str] = {}
        """The detail of the first record refused for each reason."""

    @property
    def events_read(self) -> int:
        """Event records handed out so far."""
        return self._events.read

    @property
    def labels_read(self) -> int:
        """Label records handed out so far."""
        return self._labels.read if self._labels is not None else 0

    def poll(self, timeout_s: float) -> list[Record]:
        """Up to ``batch_size`` events and the labels between them; [] once exhausted."""
        records: list[Record] = []
        events, labels = self._events, self._labels
        taken = 0
        while taken < self.batch_size and events.head is not None:
            while (
                labels is not None and labels.head is not None and labels.order_ts < events.order_ts
            ):
                records.append(labels.take())
            records.append(events.take())
            taken += 1
        if labels is not None:
            # The labels due before the next event belong to this batch, as live; at the
            # end of the events, all that are left.
            while labels.head is not None and (
                events.head is None or labels.order_ts < events.order_ts
            ):
                records.append(labels.take())
                if events.head is None and len(records) >= self.batch_size:
                    break
        self.last_successful_poll = time.monotonic()
        return records

    @property
    def exhausted(self) -> bool:
        """True once every event and label has been handed out."""
        labels_left = self._labels is not None and self._labels.head is not None
        return self._events.head is None and not labels_left

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Nothing to commit: a replay always starts at the beginning of its inputs."""

    def lag(self) -> dict[TopicPartition, int]:
        """No lag: the inputs are files."""
        return {}

    def dead_letter(self, records: Sequence[tuple[Record, str, str]]) -> None:
        """Count refused records by reason (keeping one example each); nothing is written."""
        for _, reason, detail in records:
            self.dead_letter_counts[reason] += 1
            self.dead_letter_examples.setdefault(reason, detail)

    def close(self) -> None:
        """Close the inputs (their readers' files), even when stopped half-way."""
        self._events.close()
        if self._labels is not None:
            self._labels.close()
