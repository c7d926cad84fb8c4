"""Consumer lag of a Kafka group member: from the committed offsets, and from the read position.

``committed_lag`` is what ``driftd_consumer_lag`` reports: the last known end offset of
each owned partition minus the group's committed offset, so that checkpoints or commits
that fail show as growing lag (a lag from the read position reads 0 as soon as
everything is fetched, committed or not). ``read_lag`` is the end minus the read
position. A partition the group never committed counts from the first offset read from
it since it was assigned.

Both are refreshed on the polling thread from what the client already knows (the high
watermark of the last fetch response, the offsets this member committed), with no
request in the usual case; end offsets without a fetch response and committed offsets
not known yet (after an assignment) are looked up at most every
``END_OFFSETS_INTERVAL_S``. The snapshots are replaced whole, never mutated, so any
thread may read them.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from monitor.ingest.source import TopicPartition
from monitor.kafka.api import kafka_errors

log = structlog.get_logger()

END_OFFSETS_INTERVAL_S = 5.0
"""The least time between two offset lookups (end or committed) for the same member."""

LOOKUP_TIMEOUT_S = 2.0
"""How long one offset lookup may block the polling thread."""


def _without(
    values: Mapping[TopicPartition, int], gone: set[TopicPartition]
) -> dict[TopicPartition, int]:
    return {tp: n for tp, n in values.items() if tp not in gone}


class LagTracker:
    """Committed-offset and read-position lag of the partitions a consumer owns.

    The consumer it refreshes from has kafka-python's ``assignment``, ``highwater``,
    ``position``, ``end_offsets`` and ``committed``; ``failures`` are the exceptions
    that count as a failed lookup (the confluent-kafka source adds its own).
    """

    def __init__(
        self,
        errors: Counter[str],
        failures: tuple[type[BaseException], ...] = (kafka_errors.KafkaError, OSError),
    ) -> None:
        self._errors = errors
        self._failures = failures
        self._committed_lag: dict[TopicPartition, int] = {}
        self._read_lag: dict[TopicPartition, int] = {}
        self._ends: dict[TopicPartition, int] = {}
        self._looked_up_ends: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._started_from: dict[TopicPartition, int] = {}
        self._looked_up_at = -math.inf

    def committed_lag(self) -> dict[TopicPartition, int]:
        """Messages past the group's committed offset, per owned partition."""
        return dict(self._committed_lag)

    def read_lag(self) -> dict[TopicPartition, int]:
        """Messages past the read position, per owned partition."""
        return dict(self._read_lag)

    def note_first_offsets(self, firsts: Mapping[TopicPartition, int]) -> None:
        """Remember the first offset of each partition in a batch (where reading an
        uncommitted one started); a partition's first batch is the one that counts."""
        for tp, offset in firsts.items():
            self._started_from.setdefault(tp, offset)

    def note_end_offsets(self, ends: Mapping[Any, Any]) -> None:
        """End offsets the source asked for anyway (its liveness probe)."""
        self._looked_up_at = time.monotonic()
        for tp, end in ends.items():
            if end is not None:
                self._looked_up_ends[(tp.topic, tp.partition)] = int(end)

    def note_committed(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Offsets this member just committed."""
        self._committed = {**self._committed, **offsets}
        self._publish_committed_lag()

    def forget(self, partitions: Sequence[TopicPartition]) -> None:
        """Drop what was known of partitions given up (their next owner reports them)."""
        gone = set(partitions)
        self._committed_lag = _without(self._committed_lag, gone)
        self._read_lag = _without(self._read_lag, gone)
        self._ends = _without(self._ends, gone)
        self._looked_up_ends = _without(self._looked_up_ends, gone)
        self._committed = _without(self._committed, gone)
        self._started_from = _without(self._started_from, gone)

    def clear(self) -> None:
        """Report no lag at all (the consumer is closed)."""
        self._committed_lag, self._read_lag = {}, {}

    def refresh(self, consumer: Any) -> bool:
        """Recompute both snapshots from ``consumer`` (a kafka-python ``KafkaConsumer``).

        True when a lookup was answered by the broker just now. A failed lookup or
        refresh is counted in ``errors["lag"]``, logged at debug, and keeps the last
        snapshots.
        """
        answered = False
        try:
            owned = list(consumer.assignment())
            answered = self._look_up(consumer, owned)
            ends: dict[TopicPartition, int] = {}
            read_lag: dict[TopicPartition, int] = {}
            for tp in owned:
                key = (tp.topic, tp.partition)
                end = consumer.highwater(tp)
                if end is None:
                    end = self._looked_up_ends.get(key)
                if end is None:
                    continue
                ends[key] = int(end)
                position = consumer.position(tp, timeout_ms=0)
                if position is not None:
                    read_lag[key] = max(0, int(end) - int(position))
        except self._failures as exc:
            self._errors["lag"] += 1
            log.debug("kafka_lag_refresh_failed", error=f"{type(exc).__name__}: {exc}")
            return answered
        self._ends = ends
        self._read_lag = read_lag
        self._publish_committed_lag()
        return answered

    def _look_up(self, consumer: Any, owned: Sequence[Any]) -> bool:
        """Ask for end offsets without a fetch response and committed offsets not known yet;
        at most every ``END_OFFSETS_INTERVAL_S``. True when the broker answered."""
        missing = [tp for tp in owned if consumer.highwater(tp) is None]
        unknown = [tp for tp in owned if (tp.topic, tp.partition) not in self._committed]
        now = time.monotonic()
        if not (missing or unknown) or now - self._looked_up_at < END_OFFSETS_INTERVAL_S:
            return False
        self._looked_up_at = now
        timeout_ms = int(LOOKUP_TIMEOUT_S * 1000)
        try:
            if missing:
                self.note_end_offsets(consumer.end_offsets(missing, timeout_ms=timeout_ms))
            committed = dict(self._committed)
            for tp in unknown:
                key = (tp.topic, tp.partition)
                offset = consumer.committed(tp, timeout_ms=timeout_ms)
                if offset is None:  # never committed: count from where reading started
                    offset = self._started_from.get(key)
                    if offset is None:
                        offset = consumer.position(tp, timeout_ms=0)
                if offset is not None:
                    committed[key] = int(offset)
            self._committed = committed
        except self._failures as exc:
            self._errors["lag"] += 1
            log.debug("kafka_lag_lookup_failed", error=f"{type(exc).__name__}: {exc}")
            return False
        return True

    def _publish_committed_lag(self) -> None:
        ends, committed = self._ends, self._committed
        self._committed_lag = {
            tp: max(0, end - committed[tp]) for tp, end in ends.items() if tp in committed
        }
