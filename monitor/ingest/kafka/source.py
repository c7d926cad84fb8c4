"""The Kafka source: a consumer-group member with manual commits, lag snapshots and a DLQ.

One ``KafkaSource`` owns one kafka-python ``KafkaConsumer`` (subscribed to
``kafka.topics`` in group ``kafka.group_id``, auto-commit off) and, once something
is refused, a :class:`~monitor.ingest.kafka.dead_letter.DeadLetterWriter`. Its
clients are built by ``monitor.kafka.clients`` from settings ``monitor.config``
has validated.

Offsets. ``commit`` writes exactly the next offsets it is given, synchronously,
and raises ``OffsetCommitError`` when they were not stored. Nothing is ever
committed implicitly: not by a timer, not on rebalance, not on ``close``.

Rebalances and threads. kafka-python 3.x runs its network on its own IO thread,
and rebalance listeners are called on that thread; a blocking consumer call made
there (``commit``, ``position``...) fails, and a slow listener stalls heartbeats.
So ``on_revoke`` and ``on_assign`` run on a short-lived helper thread while the
IO loop keeps heartbeating, and the thread that called ``poll`` stays blocked
inside ``poll`` until they return (``monitor.ingest.kafka.rebalance``). The
callbacks therefore never run concurrently with the pipeline, and they may call
``commit``, ``seek`` and ``assignment`` (never ``poll``):

* ``on_revoke(partitions)`` runs before the partitions are given up, while this
  member still owns them: checkpoint, then ``commit``. It also runs when the
  membership was already lost (session expired); then commits fail with
  ``OffsetCommitError(retriable=False)`` and the state should just be dropped.
* ``on_assign(partitions)`` runs before anything is fetched from them:
  restore their checkpoint and ``seek`` to its offsets.
* ``close`` calls neither: the daemon checkpoints and commits before closing.

An exception raised by a callback is raised again from ``poll`` as
``RebalanceCallbackError``; no records are lost by that.

Health. Broker errors are logged, counted and retried with backoff, never raised
(``monitor.ingest.kafka.health`` says when an empty poll counts as a success).
``last_successful_poll`` (monotonic seconds, None before the first),
``consecutive_poll_failures`` and ``last_poll_error`` expose the state for health
reporting, and ``kafka_errors`` counts every failure by kind (``KAFKA_ERROR_KINDS``).

Lag. ``lag()`` is measured from the group's committed offsets, so checkpoints or
commits that fail show as growing lag; ``read_lag()`` from the read position. Both
are refreshed after each poll, mostly without a request of their own, and may be
called from any thread (``monitor.ingest.kafka.lag``).

Dead letters. ``dead_letter`` writes refused records to ``kafka.dead_letter_topic``
and waits for every acknowledgement; ``DeadLetterError`` means the caller must not
commit past them (``monitor.ingest.kafka.dead_letter``).

Secrets. The SASL password goes to the client and nowhere else: it is never
logged and never part of an exception message raised here.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from itertools import repeat
from operator import attrgetter
from typing import Any

import structlog

from monitor.config import KafkaConfig
from monitor.errors import (
    SourceError,
)
from monitor.ingest.kafka.dead_letter import DeadLetterWriter
from monitor.ingest.kafka.lag import LagTracker
from monitor.ingest.kafka.member import (
    KAFKA_ERROR_KINDS,
    PROBE_TIMEOUT_S,
    KafkaMember,
    checked_offsets,
    subscribed_topics,
)
from monitor.ingest.kafka.rebalance import RebalanceRelay
from monitor.ingest.source import (
    PartitionsCallback,
    Record,
    RecordBatch,
    TopicPartition,
)
from monitor.kafka.api import (
    KafkaConsumer,
    OffsetAndMetadata,
    kafka_errors,
)
from monitor.kafka.api import TopicPartition as KafkaTopicPartition
from monitor.kafka.clients import build_client, connection_settings, consumer_settings

__all__ = [
    "KAFKA_ERROR_KINDS",
    "PROBE_TIMEOUT_S",
    "KafkaSource",
    "checked_offsets",
    "subscribed_topics",
]

log = structlog.get_logger()

_value = attrgetter("value")
_timestamp = attrgetter("timestamp")
_offset = attrgetter("offset")


class KafkaSource(KafkaMember):
    """A Kafka consumer-group member implementing the ``Source`` protocol (see module doc)."""

    _rebalances: RebalanceRelay

    def __init__(
        self,
        kafka: KafkaConfig,
        on_assign: PartitionsCallback | None = None,
        on_revoke: PartitionsCallback | None = None,
        *,
        commit_timeout_s: float = 10.0,
        dead_letter_timeout_s: float = 30.0,
        connect_timeout_s: float = 10.0,
        max_poll_interval_s: float | None = None,
    ) -> None:
        dead_letters = DeadLetterWriter(
            kafka, connect_timeout_s=connect_timeout_s, ack_timeout_s=dead_letter_timeout_s
        )
        super().__init__(kafka, dead_letters, connect_timeout_s=connect_timeout_s)
        self._commit_timeout_ms = max(1, int(commit_timeout_s * 1000))
        self._max_poll_interval_ms = (
            kafka.max_poll_interval_ms
            if max_poll_interval_s is None
            else max(1, int(max_poll_interval_s * 1000))
        )
        self._consumer: Any = None
        self._lag = LagTracker(self.kafka_errors)
        self._rebalances = RebalanceRelay(on_assign, on_revoke, self.kafka_errors, self._lag)

    # ------------------------------------------------------------------ poll

    def poll(self, timeout_s: float) -> Sequence[Record]:
        """Up to ``kafka.max_poll_records`` records, by partition then offset; [] if none in time.

        Broker errors are logged, counted and retried with backoff, never raised.
        Raises ``RebalanceCallbackError`` when ``on_assign`` / ``on_revoke`` raised,
        and ``SourceError`` when the client settings are refused or after ``close``.
        """
        self._check_open()
        timeout_s = max(0.0, timeout_s)
        backoff_s = self._health.backoff_left()
        if backoff_s > 0:
            time.sleep(min(backoff_s, timeout_s))
            return []
        try:
            consumer = self._ensure_consumer()
            batches = consumer.poll(
                timeout_ms=int(timeout_s * 1000), max_records=self._cfg.max_poll_records
            )
        except kafka_errors.KafkaConfigurationError as exc:
            raise SourceError("kafka", f"client settings refused: {exc}") from exc
        except (kafka_errors.KafkaError, OSError) as exc:
            failure = self._rebalances.take_failure()
            if failure is not None:
                raise failure from exc
            self._poll_failed(exc)
            self._membership.observe(self._consumer)
            return []
        self._membership.observe(consumer)
        records = self._flatten(batches)
        if self._lag.refresh(consumer):
            self._health.broker_answered()
        if records:
            self._health.succeeded()
        else:
            self._confirm_idle(consumer)
        return records

    def _flatten(self, batches: Mapping[Any, Sequence[Any]]) -> Sequence[Record]:
        """The records by partition then offset, as one ``RecordBatch`` made column by
        column (a ``map`` per field); the lag tracker learns where each partition's
        reading started, the batch the offsets to commit (after each partition's last)."""
        values: list[bytes] = []
        topics: list[str] = []
        partitions: list[int] = []
        offsets: list[int] = []
        stamps: list[int | None] = []
        next_offsets: dict[TopicPartition, int] = {}
        for tp in sorted(batches, key=lambda tp: (tp.topic, tp.partition)):
            batch = batches[tp]
            if not batch:
                continue
            n = len(batch)
            start = len(values)
            values.extend(map(_value, batch))
            if None in values[start:]:  # a tombstone: an empty value, refused by the decoder
                values[start:] = [b"" if value is None else value for value in values[start:]]
            times = list(map(_timestamp, batch))
            if None in times or min(times) < 0:
                times = [t if t is not None and t >= 0 else None for t in times]
            stamps.extend(times)
            offsets.extend(map(_offset, batch))
            topics.extend(repeat(tp.topic, n))
            partitions.extend(repeat(tp.partition, n))
            key = (tp.topic, tp.partition)
            self._lag.note_first_offsets({key: offsets[start]})
            next_offsets[key] = offsets[-1] + 1
        if not values:
            return []
        return RecordBatch(values, topics, partitions, offsets, stamps, next_offsets=next_offsets)

    def _ensure_consumer(self) -> Any:
        """The consumer, built and subscribed on first use (raises while the broker is away)."""
        if self._consumer is not None:
            return self._consumer
        cfg = self._cfg
        settings = consumer_settings(cfg, self._connect_timeout_s, self._max_poll_interval_ms)
        consumer = build_client(KafkaConsumer, settings)
        consumer.subscribe(topics=subscribed_topics(cfg), listener=self._rebalances)
        net = getattr(consumer, "_net", None)
        self._rebalances.io_sleep = getattr(net, "sleep", None)
        self._consumer = consumer
        self._log_started()
        return consumer

    def committed_before(self) -> bool | None:
        """Whether the consumer group has committed offsets on the inference topics: it
        has consumed (and so had a reference) before. None when the broker cannot tell.

        Asked with a short-lived client of the same group that joins nothing, so the
        daemon's own consumer and its rebalances are untouched.
        """
        cfg = self._cfg
        settings = connection_settings(cfg, self._connect_timeout_s)
        settings.update(group_id=cfg.group_id, enable_auto_commit=False)
        consumer: Any = None
        try:
            consumer = build_client(KafkaConsumer, settings)
            for topic in cfg.topics:
                for partition in sorted(consumer.partitions_for_topic(topic) or ()):
                    if consumer.committed(KafkaTopicPartition(topic, partition)) is not None:
                        return True
            return False
        except Exception as exc:  # any client failure: unknown, never fatal here
            log.warning("kafka_committed_offsets_unknown", error=f"{type(exc).__name__}: {exc}")
            return None
        finally:
            if consumer is not None:
                with suppress(Exception):
                    consumer.close(autocommit=False)

    def _confirm_idle(self, consumer: Any) -> None:
        """After an empty poll: success if the broker answered lately, else probe it."""
        if not self._health.needs_probe():
            self._health.succeeded(confirmed=False)
            return
        owned = list(consumer.assignment())
        probe = owned or [KafkaTopicPartition(topic, 0) for topic in self._cfg.topics]
        try:
            ends = consumer.end_offsets(probe, timeout_ms=int(PROBE_TIMEOUT_S * 1000))
        except (kafka_errors.KafkaError, OSError) as exc:
            self._poll_failed(exc)
            return
        if owned:
            self._lag.note_end_offsets(ends)
        self._health.succeeded()

    # ---------------------------------------------------------------- commit

    def _store_offsets(self, wanted: dict[TopicPartition, int]) -> None:
        consumer = self._consumer
        payload = {
            KafkaTopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
            for (topic, partition), offset in wanted.items()
        }
        try:
            consumer.commit(payload, timeout_ms=self._commit_timeout_ms)
        except kafka_errors.KafkaError as exc:
            retriable = isinstance(
                exc,
                kafka_errors.RebalanceInProgressError
                | kafka_errors.KafkaTimeoutError
                | kafka_errors.RetriableError,
            ) and not isinstance(exc, kafka_errors.CommitFailedError)
            reason = f"{type(exc).__name__}: {exc}"
            raise self._commit_refused(wanted, reason, retriable) from exc

    # ------------------------------------------------------- seek, rebalance

    def seek(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Position owned partitions at these next offsets (call it from ``on_assign``).

        Raises ``PartitionNotAssignedError`` (and seeks nothing) if any is not owned.
        """
        wanted = self._owned_offsets(offsets)
        for (topic, partition), offset in sorted(wanted.items()):
            self._consumer.seek(KafkaTopicPartition(topic, partition), offset)
            log.info("seeked", topic=topic, partition=partition, offset=offset)

    def assignment(self) -> list[TopicPartition]:
        """The partitions this member owns now, sorted; [] before the group is joined."""
        consumer = self._consumer
        if consumer is None or self._closed:
            return []
        return sorted((tp.topic, tp.partition) for tp in consumer.assignment())

    # ----------------------------------------------------------------- close

    def _close_client(self, consumer: Any) -> None:
        consumer.close(autocommit=False, timeout_ms=self._commit_timeout_ms)
