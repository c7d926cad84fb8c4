"""Rebalances of the confluent-kafka source: librdkafka's callbacks to the daemon's.

librdkafka calls ``on_assign`` / ``on_revoke`` / ``on_lost`` inside ``consume``, on the
thread that polls, so the daemon's callbacks run there too, between two batches, and may
call the source's ``commit``, ``seek`` and ``assignment``. :class:`ConfluentRebalances`
is what the source subscribes with:

* on an assignment it runs the daemon's ``on_assign`` first (which restores the
  partitions and seeks them: librdkafka cannot seek a partition before it is assigned,
  so those offsets are kept and put into the assignment itself), then assigns;
* on a revocation, while the partitions are still owned, it runs ``on_revoke`` (the
  daemon checkpoints and commits), then unassigns; a lost membership does the same,
  counted in ``kafka_errors["rebalance"]``, and its commits fail.

It keeps the partitions owned (any thread may read them: asking librdkafka from another
thread while the polling one waits in ``consume`` can deadlock on the GIL) and the
group state. An exception from a daemon callback is kept, for the source to raise from
``poll`` as ``RebalanceCallbackError``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING

import structlog

from monitor.errors import RebalanceCallbackError
from monitor.ingest.kafka.confluent_parts import GroupView
from monitor.ingest.kafka.lag import LagTracker
from monitor.ingest.kafka.rebalance import partition_names
from monitor.ingest.source import PartitionsCallback, TopicPartition

if TYPE_CHECKING:
    from confluent_kafka import Consumer
    from confluent_kafka import TopicPartition as Partition

__all__ = ["ConfluentRebalances"]

log = structlog.get_logger()


class ConfluentRebalances:
    """librdkafka's rebalance callbacks, relayed to the daemon's (see module doc)."""

    def __init__(
        self,
        on_assign: PartitionsCallback | None,
        on_revoke: PartitionsCallback | None,
        kafka_errors: Counter[str],
        lag: LagTracker,
    ) -> None:
        self._callbacks = {"on_assign": on_assign, "on_revoke": on_revoke}
        self._kafka_errors = kafka_errors
        self._lag = lag
        self._failure: RebalanceCallbackError | None = None
        self._owned: list[TopicPartition] = []
        self._assigning: list[TopicPartition] | None = None
        self._start_at: dict[TopicPartition, int] = {}
        self.group = GroupView()
        """This member's group state, as the membership tracker reads it."""
        self.closing = False
        """Set while the source closes: librdkafka revokes, the daemon is not told."""

    def listen(self, on_assign: PartitionsCallback, on_revoke: PartitionsCallback) -> None:
        """Relay to these callbacks from now on (the daemon's, set once it is built)."""
        self._callbacks = {"on_assign": on_assign, "on_revoke": on_revoke}

    def owned(self) -> list[TopicPartition]:
        """The partitions owned now, sorted (inside ``on_assign``: those being assigned)."""
        return list(self._owned if self._assigning is None else self._assigning)

    def start_at(self, offsets: Mapping[TopicPartition, int]) -> bool:
        """Inside ``on_assign``: keep where these partitions start, and True; else False
        (the source then seeks the consumer itself)."""
        if self._assigning is None:
            return False
        self._start_at.update(offsets)
        return True

    def take_failure(self) -> RebalanceCallbackError | None:
        """The error of a daemon callback that raised since the last call, once."""
        failure, self._failure = self._failure, None
        return failure

    def forget(self) -> None:
        """The consumer is closed: nothing is owned."""
        self._owned = []
        self.group.lost()

    def on_assign(self, consumer: Consumer, partitions: list[Partition]) -> None:
        """librdkafka's assignment: restore (the callback may seek), then assign."""
        owned = sorted((tp.topic, tp.partition) for tp in partitions)
        self.group.assigned(len(owned))
        if owned:
            log.info("partitions_assigned", partitions=partition_names(owned))
        self._assigning, self._start_at = owned, {}
        try:
            self._run("on_assign", owned)
        finally:
            self._assigning = None
        for tp in partitions:
            offset = self._start_at.get((tp.topic, tp.partition))
            if offset is not None:
                tp.offset = offset
        consumer.assign(partitions)
        self._owned = owned

    def on_revoke(self, consumer: Consumer, partitions: list[Partition]) -> None:
        """librdkafka's revocation, while this member still owns the partitions."""
        self._give_up(consumer, partitions, lost=False)

    def on_lost(self, consumer: Consumer, partitions: list[Partition]) -> None:
        """The membership expired: the partitions are gone, commits for them will fail."""
        self._give_up(consumer, partitions, lost=True)

    def _give_up(self, consumer: Consumer, partitions: list[Partition], *, lost: bool) -> None:
        gone = sorted((tp.topic, tp.partition) for tp in partitions)
        self._owned = []
        if lost:
            self.group.lost()
        else:
            self.group.revoked()
        if gone:
            if lost:
                self._kafka_errors["rebalance"] += 1
                log.warning("partitions_lost", partitions=partition_names(gone))
            else:
                log.info("partitions_revoked", partitions=partition_names(gone))
            self._lag.forget(gone)
            self._run("on_revoke", gone)
        consumer.unassign()

    def _run(self, which: str, partitions: list[TopicPartition]) -> None:
        """Run the daemon's callback; keep its exception for ``poll`` to raise."""
        callback = self._callbacks[which]
        if callback is None or self.closing or not partitions:
            return
        try:
            callback(list(partitions))
        except Exception as exc:
            self._kafka_errors["rebalance"] += 1
            text = f"{type(exc).__name__}: {exc}"
            log.error(
                "rebalance_callback_failed",
                callback=which,
                partitions=partition_names(partitions),
                error=text,
            )
            if self._failure is None:
                failure = RebalanceCallbackError(which, partitions, text)
                failure.__cause__ = exc
                self._failure = failure
