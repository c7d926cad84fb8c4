"""What the confluent-kafka source shares with the kafka-python one, behind adapters.

The dead-letter writer, the lag tracker and the membership tracker were written against
kafka-python's client objects. Rather than a second copy of each, the confluent-kafka
source hands them these adapters, which answer kafka-python's calls from a librdkafka
``Consumer`` / ``Producer``:

* :class:`DeadLetterProducer`: ``send`` / ``flush`` / ``close`` over a ``Producer``, with
  delivery reports as futures and librdkafka's errors as kafka-python's (so a record too
  large for the topic is shrunk the same way);
* :class:`LagView`: ``assignment`` / ``highwater`` / ``position`` / ``end_offsets`` /
  ``committed`` over a ``Consumer`` (the high watermark of the last fetch is cached by
  librdkafka, so the usual refresh makes no request);
* :func:`commit_failure`: a failed commit named as kafka-python names it;
* :class:`GroupView`: ``group_metadata`` / ``assignment`` from the rebalance callbacks
  (librdkafka does not expose its join state): unjoined before the first assignment and
  after the membership is lost, rebalancing between a revocation and the next
  assignment, stable after it; each assignment is one generation.

``confluent_kafka`` is imported when an adapter is built, never at module import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from monitor.kafka.api import MemberState, kafka_errors

if TYPE_CHECKING:
    from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

__all__ = [
    "DeadLetterProducer",
    "Delivery",
    "GroupView",
    "LagView",
    "commit_failure",
    "kafka_python_error",
]


# Commit errors that mean this member is out of its generation: the partitions are (or
# will be) someone else's, so retrying the same commit cannot succeed.
_FENCED = frozenset({"ILLEGAL_GENERATION", "UNKNOWN_MEMBER_ID", "FENCED_INSTANCE_ID", "_STATE"})
_RETRIABLE = frozenset(
    {
        "REBALANCE_IN_PROGRESS",
        "_TIMED_OUT",
        "_TRANSPORT",
        "COORDINATOR_NOT_AVAILABLE",
        "NOT_COORDINATOR",
        "COORDINATOR_LOAD_IN_PROGRESS",
        "_WAIT_COORD",
    }
)


def commit_failure(error: KafkaError) -> tuple[str, bool]:
    """Why a commit failed, named as kafka-python would (``CommitFailedError`` once this
    member is out of its generation), and whether a retry may succeed."""
    name = error.name()
    if name in _FENCED:
        return f"CommitFailedError: {name}: {error.str()}", False
    retriable = name in _RETRIABLE or bool(error.retriable())
    return f"KafkaError: {name}: {error.str()}", retriable


def kafka_python_error(error: KafkaError) -> kafka_errors.KafkaError:
    """librdkafka's error as the kafka-python error the shared code handles."""
    name = error.name()
    text = f"{name}: {error.str()}"
    if name == "MSG_SIZE_TOO_LARGE":
        return kafka_errors.MessageSizeTooLargeError(text)
    if name in ("_MSG_TIMED_OUT", "_TIMED_OUT"):
        return kafka_errors.KafkaTimeoutError(text)
    return kafka_errors.KafkaError(text)


class Delivery:
    """One record's delivery report, read as kafka-python's send future."""

    def __init__(self) -> None:
        self.is_done = False
        self.exception: BaseException | None = None

    def done(self, error: KafkaError | None, _message: Message) -> None:
        """librdkafka's ``on_delivery`` (served by ``flush``)."""
        self.exception = None if error is None else kafka_python_error(error)
        self.is_done = True


class DeadLetterProducer:
    """A confluent-kafka ``Producer`` answering the dead-letter writer's kafka-python calls."""

    def __init__(self, config: dict[str, Any]) -> None:
        from confluent_kafka import KafkaException, Producer  # noqa: PLC0415

        self._failure = KafkaException
        try:
            self._producer = Producer(config)
        except KafkaException as exc:
            raise kafka_python_error(exc.args[0]) from exc

    def send(
        self,
        topic: str,
        *,
        value: bytes | None,
        key: bytes,
        headers: list[tuple[str, str | bytes | None]],
    ) -> Delivery:
        """Queue one record; its future settles in ``flush``."""
        delivery = Delivery()
        try:
            self._producer.produce(
                topic, value=value, key=key, headers=headers, on_delivery=delivery.done
            )
        except self._failure as exc:
            raise kafka_python_error(exc.args[0]) from exc
        except BufferError as exc:  # the local queue is full: as a send that timed out
            raise kafka_errors.KafkaTimeoutError(str(exc)) from exc
        return delivery

    def flush(self, timeout: float | None = None) -> None:
        """Wait up to ``timeout`` seconds for every queued record's report."""
        self._producer.flush(-1 if timeout is None else timeout)

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is queued (up to ``timeout`` seconds); librdkafka frees the rest."""
        self._producer.flush(0 if timeout is None else timeout)


def _offset(value: int) -> int | None:
    """librdkafka's offset, None for its 'invalid' / 'none' markers (negative)."""
    return value if value >= 0 else None


class LagView:
    """A ``Consumer`` answering the lag tracker's kafka-python calls."""

    def __init__(self, consumer: Consumer) -> None:
        self._consumer = consumer

    def assignment(self) -> list[TopicPartition]:
        """The partitions owned now."""
        return list(self._consumer.assignment())

    def highwater(self, tp: TopicPartition) -> int | None:
        """The end offset seen in the last fetch response (no request)."""
        _, high = self._consumer.get_watermark_offsets(tp, cached=True)
        return _offset(high)

    def position(self, tp: TopicPartition, timeout_ms: int = 0) -> int | None:
        """The next offset to read (no request)."""
        from confluent_kafka import TopicPartition as Partition  # noqa: PLC0415

        (got,) = self._consumer.position([Partition(tp.topic, tp.partition)])
        return _offset(got.offset)

    def end_offsets(self, tps: list[TopicPartition], timeout_ms: int) -> dict[Any, int | None]:
        """The end offsets, asked of the broker."""
        timeout_s = timeout_ms / 1000
        return {
            tp: _offset(self._consumer.get_watermark_offsets(tp, timeout=timeout_s)[1])
            for tp in tps
        }

    def committed(self, tp: TopicPartition, timeout_ms: int) -> int | None:
        """The group's committed offset, asked of the broker."""
        from confluent_kafka import TopicPartition as Partition  # noqa: PLC0415

        (got,) = self._consumer.committed(
            [Partition(tp.topic, tp.partition)], timeout=timeout_ms / 1000
        )
        return _offset(got.offset)


class GroupView:
    """This member's place in its group, kept from the rebalance callbacks (see module doc).

    It is its own ``group_metadata()`` (``state``, ``generation_id``), as the membership
    tracker reads kafka-python's.
    """

    def __init__(self) -> None:
        self.state: str = MemberState.UNJOINED
        self.generation_id = -1
        self._partitions = 0

    def group_metadata(self) -> GroupView:
        """The current state and generation."""
        return self

    def assignment(self) -> range:
        """As many items as partitions owned (the tracker counts them)."""
        return range(self._partitions)

    def assigned(self, partitions: int) -> None:
        """A new assignment took effect: a generation joined."""
        self.state = MemberState.STABLE
        self.generation_id += 1
        self._partitions = partitions

    def revoked(self) -> None:
        """The group is rebalancing: every partition is given up until the next assignment."""
        self.state = MemberState.REBALANCING
        self._partitions = 0

    def lost(self) -> None:
        """The membership expired (session or poll interval): out of the group."""
        self.state = MemberState.UNJOINED
        self._partitions = 0
