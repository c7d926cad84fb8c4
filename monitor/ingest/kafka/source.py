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
from collections import Counter
from collections.abc import Mapping, Sequence
from contextlib import suppress
from typing import Any

import structlog

from monitor.config import KafkaConfig
from monitor.errors import (
    OffsetCommitError,
    PartitionNotAssignedError,
    SourceError,
)
from monitor.ingest.kafka.dead_letter import DeadLetterWriter
from monitor.ingest.kafka.health import PollHealth
from monitor.ingest.kafka.lag import LagTracker
from monitor.ingest.kafka.membership import GroupMembership, MembershipTracker
from monitor.ingest.kafka.rebalance import RebalanceRelay, partition_names
from monitor.ingest.source import (
    PartitionsCallback,
    RebalanceListener,
    Record,
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

PROBE_TIMEOUT_S = 2.0
"""How long a liveness probe (or a lag fallback) may block the polling thread."""

KAFKA_ERROR_KINDS = ("poll", "commit", "lag", "rebalance")
"""What ``kafka_errors`` counts. ``poll``: a poll the client failed or whose liveness
probe went unanswered (the broker is away); ``commit``: an offset commit not stored;
``lag``: an end or committed offset lookup that failed; ``rebalance``: partitions lost
with an expired membership, or a rebalance callback that raised."""


def subscribed_topics(kafka: KafkaConfig) -> list[str]:
    """The inference topics, then the label topic (one consumer reads both, so their
    offsets are committed together with the state that holds their events)."""
    topics = list(kafka.topics)
    if kafka.labels_topic is not None and kafka.labels_topic not in topics:
        topics.append(kafka.labels_topic)
    return topics


def checked_offsets(offsets: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
    """``offsets`` with plain types; ``ValueError`` naming the partitions of negative ones."""
    wanted = {(str(t), int(p)): int(o) for (t, p), o in offsets.items()}
    negative = [tp for tp, offset in wanted.items() if offset < 0]
    if negative:
        raise ValueError(f"negative offsets for {partition_names(sorted(negative))}")
    return wanted


class KafkaSource:
    """A Kafka consumer-group member implementing the ``Source`` protocol (see module doc)."""

    name = "kafka"

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
        self._cfg = kafka
        self._commit_timeout_ms = max(1, int(commit_timeout_s * 1000))
        self._connect_timeout_s = connect_timeout_s
        self._max_poll_interval_ms = (
            kafka.max_poll_interval_ms
            if max_poll_interval_s is None
            else max(1, int(max_poll_interval_s * 1000))
        )
        self._consumer: Any = None
        self._closed = False
        self._health = PollHealth(kafka.retry_backoff_max_ms / 1000)
        self._dead_letters = DeadLetterWriter(
            kafka, connect_timeout_s=connect_timeout_s, ack_timeout_s=dead_letter_timeout_s
        )
        self.kafka_errors: Counter[str] = Counter(dict.fromkeys(KAFKA_ERROR_KINDS, 0))
        """Failures by kind (``KAFKA_ERROR_KINDS``), counted since start; every kind present."""
        self._lag = LagTracker(self.kafka_errors)
        self._rebalances = RebalanceRelay(on_assign, on_revoke, self.kafka_errors, self._lag)
        self._membership = MembershipTracker(kafka.group_id)

    # ---------------------------------------------------------------- health

    @property
    def consecutive_poll_failures(self) -> int:
        """Polls in a row that failed (client error or unanswered probe); 0 when healthy."""
        return self._health.consecutive_failures

    @property
    def last_successful_poll(self) -> float | None:
        """``time.monotonic()`` of the last poll that returned records or had the broker answer."""
        return self._health.last_success

    @property
    def membership(self) -> GroupMembership:
        """This member's place in its group after the last poll (any thread may read it)."""
        return self._membership.snapshot

    @property
    def last_poll_error(self) -> str | None:
        """The last poll failure, as ``ErrorType: message`` (kept after recovery)."""
        return self._health.last_error

    # ------------------------------------------------------------------ poll

    def poll(self, timeout_s: float) -> list[Record]:
        """Up to ``kafka.max_poll_records`` records, by partition then offset; [] if none in time.

        Broker errors are logged, counted and retried with backoff, never raised.
        Raises ``RebalanceCallbackError`` when ``on_assign`` / ``on_revoke`` raised,
        and ``SourceError`` when the client settings are refused or after ``close``.
        """
        if self._closed:
            raise SourceError("kafka", "poll() after close()")
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
        self._lag.note_records(records)
        if self._lag.refresh(consumer):
            self._health.broker_answered()
        if records:
            self._health.succeeded()
        else:
            self._confirm_idle(consumer)
        return records

    @staticmethod
    def _flatten(batches: Mapping[Any, Sequence[Any]]) -> list[Record]:
        records: list[Record] = []
        append = records.append
        for tp in sorted(batches, key=lambda tp: (tp.topic, tp.partition)):
            topic, partition = tp.topic, tp.partition
            for rec in batches[tp]:
                value = rec.value
                timestamp = rec.timestamp
                append(
                    Record(
                        b"" if value is None else value,
                        topic,
                        partition,
                        rec.offset,
                        timestamp if timestamp is not None and timestamp >= 0 else None,
                    )
                )
        return records

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
        log.info(
            "kafka_consumer_started",
            bootstrap_servers=list(cfg.bootstrap_servers),
            topics=subscribed_topics(cfg),
            group_id=cfg.group_id,
            security_protocol=cfg.security_protocol,
            sasl_mechanism=cfg.sasl_mechanism,
        )
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

    def _poll_failed(self, exc: BaseException) -> None:
        self.kafka_errors["poll"] += 1
        self._health.failed(exc)

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

    # ------------------------------------------------------------------- lag

    def lag(self) -> dict[TopicPartition, int]:
        """Messages past the group's committed offset, per owned partition (see module doc)."""
        return self._lag.committed_lag()

    def dead_letters_written_to(self) -> str | None:
        """Dead letters go to a topic, named in the configuration: nothing to point at."""
        return None

    def read_lag(self) -> dict[TopicPartition, int]:
        """Messages past the read position, per owned partition (fetched is not committed)."""
        return self._lag.read_lag()

    # ---------------------------------------------------------------- commit

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit exactly these next offsets, synchronously.

        Raises ``OffsetCommitError`` (nothing committed) on a rebalance, a lost
        membership or an unreachable coordinator.
        """
        if not offsets:
            return
        wanted = checked_offsets(offsets)
        consumer = self._consumer
        if consumer is None or self._closed:
            raise OffsetCommitError(wanted, "the consumer is not running", retriable=True)
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
            self.kafka_errors["commit"] += 1
            for (topic, partition), offset in sorted(wanted.items()):
                log.warning(
                    "commit_failed",
                    topic=topic,
                    partition=partition,
                    offset=offset,
                    error=reason,
                    retriable=retriable,
                )
            raise OffsetCommitError(wanted, reason, retriable=retriable) from exc
        self._lag.note_committed(wanted)
        for (topic, partition), offset in sorted(wanted.items()):
            log.debug("committed", topic=topic, partition=partition, offset=offset)

    # ----------------------------------------------------------- dead letter

    def dead_letter(self, records: Sequence[tuple[Record, str, str]]) -> None:
        """Write refused records (original bytes, reason, origin headers) and wait for acks.

        Raises ``DeadLetterError`` when any record was not acknowledged.
        """
        self._dead_letters.write(records)

    @property
    def dead_letter_counts(self) -> Counter[str]:
        """Records handed to ``dead_letter``, by reason."""
        return self._dead_letters.counts

    @property
    def dead_letter_written(self) -> int:
        """Records acknowledged by the dead-letter topic."""
        return self._dead_letters.written

    @property
    def dead_letter_discarded(self) -> int:
        """Records only counted because no dead-letter topic is configured."""
        return self._dead_letters.discarded

    @property
    def dead_letter_truncated(self) -> int:
        """Records written with a prefix of their value, or none: too large for the topic."""
        return self._dead_letters.truncated

    # ------------------------------------------------------- seek, rebalance

    def listen(self, listener: RebalanceListener) -> None:
        """Tell ``listener`` of every partition revoked or assigned from now on (it
        replaces ``on_assign`` / ``on_revoke`` given to the constructor)."""
        self._rebalances.listen(listener.on_partitions_assigned, listener.on_partitions_revoked)

    def seek(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Position owned partitions at these next offsets (call it from ``on_assign``).

        Raises ``PartitionNotAssignedError`` (and seeks nothing) if any is not owned.
        """
        wanted = checked_offsets(offsets)
        owned = set(self.assignment())
        missing = sorted(tp for tp in wanted if tp not in owned)
        if missing:
            raise PartitionNotAssignedError(missing)
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

    def close(self) -> None:
        """Leave the group and close the clients; commits nothing and calls no callback."""
        if self._closed:
            return
        self._rebalances.closing = True
        self._closed = True
        consumer, self._consumer = self._consumer, None
        self._dead_letters.close()
        if consumer is not None:
            try:
                consumer.close(autocommit=False, timeout_ms=self._commit_timeout_ms)
            except Exception as exc:
                log.warning("kafka_consumer_close_failed", error=str(exc))
        self._lag.clear()
        self._membership.observe(None)
        log.info("kafka_source_closed")

    def __enter__(self) -> KafkaSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def exhausted(self) -> bool:
        """Never: a topic has no end."""
        return False
