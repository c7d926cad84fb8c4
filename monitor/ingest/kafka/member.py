"""What both Kafka sources do alike, whichever client they drive.

``KafkaSource`` (kafka-python, the reference) and ``ConfluentSource`` (librdkafka) differ
in how they poll, commit, seek and follow rebalances; around that they keep the same
parts the same way: poll health, group membership, lag, dead letters, the failure
counts, the logs of commits and seeks. :class:`KafkaMember` holds those parts and the
methods that only read them, so the two sources cannot drift apart there.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, Self

import structlog

from monitor.config import KafkaConfig
from monitor.errors import OffsetCommitError, PartitionNotAssignedError, SourceError
from monitor.ingest.kafka.dead_letter import DeadLetterWriter
from monitor.ingest.kafka.health import PollHealth
from monitor.ingest.kafka.lag import LagTracker
from monitor.ingest.kafka.membership import GroupMembership, MembershipTracker
from monitor.ingest.kafka.rebalance import partition_names
from monitor.ingest.source import RebalanceListener, Record, TopicPartition

__all__ = [
    "KAFKA_ERROR_KINDS",
    "PROBE_TIMEOUT_S",
    "KafkaMember",
    "checked_offsets",
    "subscribed_topics",
]

log = structlog.get_logger()

PROBE_TIMEOUT_S = 2.0
"""How long a liveness probe (or a lag fallback) may block the polling thread."""

KAFKA_ERROR_KINDS = ("poll", "commit", "lag", "rebalance")
"""What ``kafka_errors`` counts. ``poll``: a poll the client failed or whose liveness
probe went unanswered (the broker is away), or a message the client handed over as an
error; ``commit``: an offset commit not stored; ``lag``: an end or committed offset
lookup that failed; ``rebalance``: partitions lost with an expired membership, or a
rebalance callback that raised."""


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


class _Relay(Protocol):
    """The part of a rebalance relay the shared methods use."""

    closing: bool

    def listen(
        self,
        on_assign: Callable[[list[TopicPartition]], None],
        on_revoke: Callable[[list[TopicPartition]], None],
    ) -> None: ...


class KafkaMember:
    """The parts a Kafka source keeps alike on either client; the subclass adds the
    client (poll, commit, seek, assignment, close) and sets ``_lag`` and ``_rebalances``."""

    name = "kafka"
    _lag: LagTracker
    _rebalances: _Relay
    _consumer: Any

    def __init__(
        self,
        kafka: KafkaConfig,
        dead_letters: DeadLetterWriter,
        *,
        connect_timeout_s: float,
    ) -> None:
        self._cfg = kafka
        self._connect_timeout_s = connect_timeout_s
        self._closed = False
        self._health = PollHealth(kafka.retry_backoff_max_ms / 1000)
        self._dead_letters = dead_letters
        self.kafka_errors: Counter[str] = Counter(dict.fromkeys(KAFKA_ERROR_KINDS, 0))
        """Failures by kind (``KAFKA_ERROR_KINDS``), counted since start; every kind present."""
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

    def _check_open(self) -> None:
        if self._closed:
            raise SourceError("kafka", "poll() after close()")

    def _poll_failed(self, exc: BaseException) -> None:
        self.kafka_errors["poll"] += 1
        self._health.failed(exc)

    def _log_started(self, **client: str) -> None:
        cfg = self._cfg
        log.info(
            "kafka_consumer_started",
            **client,
            bootstrap_servers=list(cfg.bootstrap_servers),
            topics=subscribed_topics(cfg),
            group_id=cfg.group_id,
            security_protocol=cfg.security_protocol,
            sasl_mechanism=cfg.sasl_mechanism,
        )

    # ------------------------------------------------------------------- lag

    def lag(self) -> dict[TopicPartition, int]:
        """Messages past the group's committed offset, per owned partition."""
        return self._lag.committed_lag()

    def read_lag(self) -> dict[TopicPartition, int]:
        """Messages past the read position, per owned partition (fetched is not committed)."""
        return self._lag.read_lag()

    def dead_letters_written_to(self) -> str | None:
        """Dead letters go to a topic, named in the configuration: nothing to point at."""
        return None

    # ---------------------------------------------------------------- commit

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit exactly these next offsets, synchronously.

        Raises ``OffsetCommitError`` (nothing committed) on a rebalance, a lost
        membership or an unreachable coordinator.
        """
        if not offsets:
            return
        wanted = checked_offsets(offsets)
        if self._consumer is None or self._closed:
            raise OffsetCommitError(wanted, "the consumer is not running", retriable=True)
        self._store_offsets(wanted)
        self._lag.note_committed(wanted)
        for (topic, partition), offset in sorted(wanted.items()):
            log.debug("committed", topic=topic, partition=partition, offset=offset)

    def _store_offsets(self, wanted: dict[TopicPartition, int]) -> None:
        """Have the client store these offsets; raise ``_commit_refused``'s error if not."""
        raise NotImplementedError

    def _commit_refused(
        self, wanted: dict[TopicPartition, int], reason: str, retriable: bool
    ) -> OffsetCommitError:
        """Count and log a commit the client did not store; the error to raise."""
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
        return OffsetCommitError(wanted, reason, retriable=retriable)

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

    def assignment(self) -> list[TopicPartition]:
        """The partitions this member owns now, sorted; [] before the group is joined."""
        raise NotImplementedError

    def _owned_offsets(self, offsets: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
        """``offsets`` checked, all of owned partitions (else ``PartitionNotAssignedError``)."""
        wanted = checked_offsets(offsets)
        owned = set(self.assignment())
        missing = sorted(tp for tp in wanted if tp not in owned)
        if missing:
            raise PartitionNotAssignedError(missing)
        return wanted

    # ----------------------------------------------------------------- close

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Leave the group and close the clients; commits nothing and calls no callback."""
        if self._closed:
            return
        self._rebalances.closing = True
        consumer, self._consumer = self._consumer, None
        self._dead_letters.close()
        if consumer is not None:
            try:
                self._close_client(consumer)
            except Exception as exc:
                log.warning("kafka_consumer_close_failed", error=str(exc))
        self._closed = True
        self._forget_owned()
        self._lag.clear()
        self._membership.observe(None)
        log.info("kafka_source_closed")

    def _close_client(self, consumer: Any) -> None:
        """Close the consumer without committing (the caller logs a failure)."""
        raise NotImplementedError

    def _forget_owned(self) -> None:
        """Drop what is kept of the partitions owned (nothing unless the subclass keeps it)."""

    @property
    def exhausted(self) -> bool:
        """Never: a topic has no end."""
        return False
