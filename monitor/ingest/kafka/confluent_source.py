"""The Kafka source on confluent-kafka (librdkafka): ``kafka.client: confluent``.

Same contract as :class:`~monitor.ingest.kafka.source.KafkaSource` (the reference), on
a client that parses records in C:

Offsets. librdkafka never stores nor commits an offset by itself here
(``enable.auto.commit`` and ``enable.auto.offset.store`` are off); ``commit`` writes
exactly the next offsets it is given, synchronously, and raises ``OffsetCommitError``
when they were not stored (``retriable=False`` once this member is out of its
generation, as kafka-python's ``CommitFailedError``). ``close`` commits nothing.

Rebalances. librdkafka runs the rebalance callbacks inside ``consume``, on the thread
that polls, so they never run beside the pipeline and may call ``commit``, ``seek`` and
``assignment``. The eager protocol gives up every partition before any is reassigned:

* ``on_revoke(partitions)`` runs while this member still owns them: the daemon
  checkpoints, then commits. Records of those partitions fetched but not yet returned
  are dropped by librdkafka and read again by their next owner from that commit.
  When the membership was lost instead (session or poll interval expired), the callback
  runs too, its commits fail, and ``kafka_errors["rebalance"]`` counts it.
* ``on_assign(partitions)`` runs before anything is fetched from them; ``seek`` called
  there sets where each partition starts (librdkafka cannot seek a partition before it
  is assigned, so the offsets go into the assignment itself).

An exception raised by a callback is raised from ``poll`` as ``RebalanceCallbackError``;
the records that poll returned are kept for the next one. The relay between librdkafka's
callbacks and the daemon's is ``monitor.ingest.kafka.confluent_rebalance``.

Health, lag, membership and dead letters use the kafka-python source's parts through the
adapters of ``monitor.ingest.kafka.confluent_parts``: an empty poll counts as a success
only if the broker answered lately (else a metadata request probes it), lag comes from the
committed offsets and the cached high watermark, and refused records go to the dead-letter
topic with the same headers, through a librdkafka producer. librdkafka's log lines and
client errors go to structlog (``monitor.kafka.confluent``), never to stderr.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from itertools import compress, repeat
from operator import is_not, itemgetter, ne, or_
from typing import TYPE_CHECKING, cast

import structlog

from monitor.config import KafkaConfig
from monitor.errors import (
    SourceError,
)
from monitor.ingest.kafka.confluent_parts import DeadLetterProducer, LagView, commit_failure
from monitor.ingest.kafka.confluent_rebalance import ConfluentRebalances
from monitor.ingest.kafka.dead_letter import DeadLetterWriter
from monitor.ingest.kafka.lag import LagTracker
from monitor.ingest.kafka.member import (
    PROBE_TIMEOUT_S,
    KafkaMember,
    subscribed_topics,
)
from monitor.ingest.source import (
    PartitionsCallback,
    Record,
    RecordBatch,
    TopicPartition,
)
from monitor.kafka.confluent import (
    StructlogBridge,
    connection_config,
    consumer_config,
    dead_letter_producer_config,
)

if TYPE_CHECKING:
    from confluent_kafka import Consumer, KafkaError, Message

__all__ = ["ConfluentSource"]

log = structlog.get_logger()

_first = itemgetter(0)
_second = itemgetter(1)
"""A record's (topic, partition)."""


class ConfluentSource(KafkaMember):
    """A consumer-group member on librdkafka implementing ``Source`` (see module doc)."""

    _rebalances: ConfluentRebalances

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
        from confluent_kafka import KafkaException, Message  # noqa: PLC0415

        dead_letters = DeadLetterWriter(
            kafka,
            connect_timeout_s=connect_timeout_s,
            ack_timeout_s=dead_letter_timeout_s,
            make_producer=lambda: DeadLetterProducer(
                {
                    **dead_letter_producer_config(kafka, connect_timeout_s, dead_letter_timeout_s),
                    **StructlogBridge("dead_letter_producer").config(),
                }
            ),
        )
        super().__init__(kafka, dead_letters, connect_timeout_s=connect_timeout_s)
        self._message_type = Message
        self._failure_types: tuple[type[BaseException], ...] = (KafkaException, RuntimeError)
        # Accepted as KafkaSource accepts it; librdkafka's commit has no timeout of its
        # own (its request timeout, socket.timeout.ms, bounds it).
        del commit_timeout_s
        self._max_poll_interval_ms = (
            None if max_poll_interval_s is None else max(1, int(max_poll_interval_s * 1000))
        )
        self._consumer: Consumer | None = None
        self._bridge = StructlogBridge("consumer")
        self._lag = LagTracker(self.kafka_errors, (*self._failure_types, OSError))
        self._rebalances = ConfluentRebalances(on_assign, on_revoke, self.kafka_errors, self._lag)
        self._held: Sequence[Record] = []
        self._message_errors_seen: set[str] = set()

    # ------------------------------------------------------------------ poll

    def poll(self, timeout_s: float) -> Sequence[Record]:
        """Up to ``kafka.max_poll_records`` records grouped by partition, each in offset order;
        [] if none in time.

        Broker errors are logged, counted and retried with backoff, never raised.
        Raises ``RebalanceCallbackError`` when ``on_assign`` / ``on_revoke`` raised,
        and ``SourceError`` when the client settings are refused or after ``close``.
        """
        self._check_open()
        if self._held:
            held, self._held = self._held, []
            return held
        timeout_s = max(0.0, timeout_s)
        backoff_s = self._health.backoff_left()
        if backoff_s > 0:
            time.sleep(min(backoff_s, timeout_s))
            return []
        consumer = self._ensure_consumer()
        wanted = self._cfg.max_poll_records
        try:
            # What is fetched already, at once; else wait for a full batch or the timeout.
            messages = consumer.consume(wanted, 0)
            if not messages and timeout_s > 0:
                messages = consumer.consume(wanted, timeout_s)
        except self._failure_types as exc:
            failure = self._rebalances.take_failure()
            if failure is not None:
                raise failure from exc
            self._poll_failed(exc)
            self._membership.observe(self._rebalances.group)
            return []
        records = self._records(messages)
        self._membership.observe(self._rebalances.group)
        if self._lag.refresh(LagView(consumer)):
            self._health.broker_answered()
        failure = self._rebalances.take_failure()
        if failure is not None:
            self._held = records  # returned by the next poll: nothing is skipped
            raise failure
        if records:
            self._health.succeeded()
        else:
            self._confirm_idle(consumer)
        return records

    def _records(self, messages: Sequence[Message]) -> Sequence[Record]:
        """The messages as records, grouped by partition (in order), errors logged and
        counted; the lag tracker learns where each partition's reading started.

        Column by column (one C-level ``map`` per field) into a ``RecordBatch``, as a
        Python statement or a tuple per message would cost more than the parse.
        librdkafka hands each partition's messages as a run, in offset order; while no
        partition comes back in a second run, nothing is reordered and the offsets and
        times are left for the batch to read if it is ever asked: the offsets to commit
        and the first offsets are those of the ends of the runs."""
        message = self._message_type
        errors = list(map(message.error, messages))
        if any(map(is_not, errors, repeat(None))):  # by identity: KafkaError == None raises
            for error in errors:
                if error is not None:
                    self._message_error(error)
            messages = [m for m, error in zip(messages, errors, strict=True) if error is None]
        if not messages:
            return []
        # Only an error message lacks its topic, partition or offset.
        topics = cast("list[str]", list(map(message.topic, messages)))
        partitions = cast("list[int]", list(map(message.partition, messages)))
        values = cast("list[bytes]", list(map(message.value, messages)))
        if None in values:  # a tombstone: an empty value, refused by the decoder
            values = [b"" if value is None else value for value in values]
        n = len(messages)
        starts = _run_starts(topics, partitions)
        keys = [(topics[i], partitions[i]) for i in starts]
        if len(set(keys)) < len(keys):  # a partition in two runs: group them, eagerly
            return self._regrouped(messages, values, topics, partitions)
        offset = message.offset
        self._lag.note_first_offsets(
            {key: cast("int", offset(messages[i])) for key, i in zip(keys, starts, strict=True)}
        )
        ends = [*starts[1:], n]
        return RecordBatch(
            values,
            topics,
            partitions,
            lambda: cast("list[int]", list(map(offset, messages))),
            lambda: _times(message.timestamp, messages),
            next_offsets={
                key: cast("int", offset(messages[i - 1])) + 1
                for key, i in zip(keys, ends, strict=True)
            },
        )

    def _regrouped(
        self,
        messages: Sequence[Message],
        values: list[bytes],
        topics: list[str],
        partitions: list[int],
    ) -> RecordBatch:
        """A batch that interleaves partitions, grouped in the order each first appears
        (a stable sort on that keeps each partition's offsets in order)."""
        offsets = cast("list[int]", list(map(self._message_type.offset, messages)))
        times = _times(self._message_type.timestamp, messages)
        keys = list(zip(topics, partitions, strict=True))
        rank = {key: i for i, key in enumerate(dict.fromkeys(keys))}
        order = sorted(range(len(keys)), key=[rank[key] for key in keys].__getitem__)
        take = itemgetter(*order)
        keys, topics, partitions = list(take(keys)), list(take(topics)), list(take(partitions))
        offsets, values, times = list(take(offsets)), list(take(values)), list(take(times))
        # The first offset of each partition: the last one written wins, so go backwards.
        self._lag.note_first_offsets(dict(zip(reversed(keys), reversed(offsets), strict=True)))
        return RecordBatch(values, topics, partitions, offsets, times)

    def _message_error(self, error: KafkaError) -> None:
        """A partition-level error in place of a message (a subscribed topic that does not
        exist yet...): counted as a ``poll`` error each time, logged once per kind, as
        librdkafka keeps retrying it."""
        self.kafka_errors["poll"] += 1
        text = f"{error.name()}: {error.str()}"
        if text not in self._message_errors_seen:
            self._message_errors_seen.add(text)
            log.warning("kafka_consume_error", error=text)

    def _ensure_consumer(self) -> Consumer:
        """The consumer, built and subscribed on first use (it connects in the background)."""
        if self._consumer is not None:
            return self._consumer
        from confluent_kafka import Consumer, KafkaException  # noqa: PLC0415

        cfg = self._cfg
        config = consumer_config(cfg, self._connect_timeout_s, self._max_poll_interval_ms)
        config.update(self._bridge.config())
        try:
            consumer = Consumer(config)
            consumer.subscribe(
                subscribed_topics(cfg),
                on_assign=self._rebalances.on_assign,
                on_revoke=self._rebalances.on_revoke,
                on_lost=self._rebalances.on_lost,
            )
        except (KafkaException, ValueError, TypeError) as exc:
            raise SourceError("kafka", f"client settings refused: {exc}") from exc
        self._consumer = consumer
        self._log_started(client="confluent")
        return consumer

    def committed_before(self) -> bool | None:
        """Whether the consumer group has committed offsets on the inference topics; None
        when the broker cannot tell. Asked with a short-lived client of the same group that
        joins nothing, so the daemon's own consumer is untouched."""
        from confluent_kafka import Consumer  # noqa: PLC0415
        from confluent_kafka import TopicPartition as Partition  # noqa: PLC0415

        cfg = self._cfg
        config = connection_config(cfg, self._connect_timeout_s)
        config.update({"group.id": cfg.group_id, "enable.auto.commit": False})
        config.update(StructlogBridge("offsets_probe").config())
        consumer: Consumer | None = None
        try:
            consumer = Consumer(config)
            for topic in cfg.topics:
                metadata = consumer.list_topics(topic, timeout=self._connect_timeout_s)
                found = metadata.topics.get(topic)
                if found is None or found.error is not None:
                    continue
                asked = [Partition(topic, p) for p in sorted(found.partitions)]
                committed = consumer.committed(asked, timeout=self._connect_timeout_s)
                if any(tp.offset >= 0 for tp in committed):
                    return True
            return False
        except Exception as exc:  # any client failure: unknown, never fatal here
            log.warning("kafka_committed_offsets_unknown", error=f"{type(exc).__name__}: {exc}")
            return None
        finally:
            if consumer is not None:
                with suppress(Exception):
                    consumer.close()

    def _confirm_idle(self, consumer: Consumer) -> None:
        """After an empty poll: success if the broker answered lately, else probe it."""
        if not self._health.needs_probe():
            self._health.succeeded(confirmed=False)
            return
        try:
            consumer.list_topics(self._cfg.topics[0], timeout=PROBE_TIMEOUT_S)
        except self._failure_types as exc:
            self._poll_failed(exc)
            return
        self._health.succeeded()

    # ---------------------------------------------------------------- commit

    def _store_offsets(self, wanted: dict[TopicPartition, int]) -> None:
        from confluent_kafka import KafkaException  # noqa: PLC0415
        from confluent_kafka import TopicPartition as Partition  # noqa: PLC0415

        consumer = self._consumer
        assert consumer is not None  # checked by ``commit``
        payload = [Partition(t, p, o) for (t, p), o in sorted(wanted.items())]
        error: KafkaError | None = None
        try:
            stored = consumer.commit(offsets=payload, asynchronous=False) or []
        except KafkaException as exc:
            error = exc.args[0]
        else:
            error = next((tp.error for tp in stored if tp.error is not None), None)
        if error is not None:
            raise self._commit_refused(wanted, *commit_failure(error))

    # ------------------------------------------------------- seek, rebalance

    def seek(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Position owned partitions at these next offsets (call it from ``on_assign``).

        Raises ``PartitionNotAssignedError`` (and seeks nothing) if any is not owned.
        """
        from confluent_kafka import TopicPartition as Partition  # noqa: PLC0415

        wanted = self._owned_offsets(offsets)
        deferred = self._rebalances.start_at(wanted)
        for (topic, partition), offset in sorted(wanted.items()):
            if not deferred and self._consumer is not None:
                self._consumer.seek(Partition(topic, partition, offset))
            log.info("seeked", topic=topic, partition=partition, offset=offset)

    def assignment(self) -> list[TopicPartition]:
        """The partitions this member owns now, sorted (inside ``on_assign``: the ones being
        assigned); [] before the group is joined. Any thread may ask (the answer is kept
        from the rebalance callbacks, not asked of librdkafka)."""
        return self._rebalances.owned()

    # ----------------------------------------------------------------- close

    def _close_client(self, consumer: Consumer) -> None:
        consumer.close()

    def _forget_owned(self) -> None:
        self._rebalances.forget()


def _run_starts(topics: list[str], partitions: list[int]) -> list[int]:
    """Where each run of messages of one partition starts (0 first)."""
    if partitions.count(partitions[0]) == len(partitions) and topics.count(topics[0]) == len(
        topics
    ):
        return [0]
    changed = map(or_, map(ne, partitions[1:], partitions), map(ne, topics[1:], topics))
    return [0, *compress(range(1, len(partitions)), changed)]


def _times(
    timestamp: Callable[[Message], tuple[int, int]], messages: Sequence[Message]
) -> list[int | None]:
    """Each message's Kafka time in ms; None where it has none (kind 0, or negative)."""
    stamps = list(map(timestamp, messages))
    if 0 in set(map(_first, stamps)) or min(map(_second, stamps)) < 0:
        return [stamp if kind and stamp >= 0 else None for kind, stamp in stamps]
    return list(map(_second, stamps))
