"""Rebalance notifications: the source's ``on_assign`` / ``on_revoke`` run off the IO loop.

kafka-python 3.x calls rebalance listeners on its own IO thread, where a blocking
consumer call (``commit``, ``position``...) fails and a slow listener stalls heartbeats.
:class:`RebalanceRelay` is the listener the source subscribes with: it logs the change,
then runs the callback on a short-lived helper thread while the IO loop keeps
heartbeating (the thread that called ``poll`` stays blocked inside ``poll`` until it
returns). An exception from a callback is kept for the source to raise again from
``poll`` as ``RebalanceCallbackError``.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Literal

import structlog

from monitor.errors import RebalanceCallbackError
from monitor.ingest.kafka.lag import LagTracker
from monitor.ingest.source import PartitionsCallback, TopicPartition
from monitor.kafka.api import AsyncConsumerRebalanceListener

__all__ = ["RebalanceRelay", "partition_names"]

log = structlog.get_logger()

_CALLBACK_POLL_S = 0.005

IoSleep = Callable[[float], Any]
"""kafka-python's IO-loop sleep (a coroutine function): awaited while a callback runs."""


def partition_names(partitions: Sequence[TopicPartition]) -> list[str]:
    """``topic[partition]`` for each, as logs show them."""
    return [f"{topic}[{partition}]" for topic, partition in partitions]


class RebalanceRelay(AsyncConsumerRebalanceListener):  # type: ignore[misc]
    """Forwards kafka-python's rebalance notifications to the callbacks, off the IO loop.

    ``io_sleep`` is set once the consumer exists (without it a callback runs inline);
    ``closing`` stops callbacks from running while the source closes. Failures count in
    ``kafka_errors["rebalance"]``; revoked partitions are forgotten by ``lag``.
    """

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
        self.io_sleep: IoSleep | None = None
        self.closing = False

    def listen(self, on_assign: PartitionsCallback, on_revoke: PartitionsCallback) -> None:
        """Relay to these callbacks from now on (the daemon's, set once it is built)."""
        self._callbacks = {"on_assign": on_assign, "on_revoke": on_revoke}

    def take_failure(self) -> RebalanceCallbackError | None:
        """The error of a callback that raised since the last call, once."""
        failure, self._failure = self._failure, None
        return failure

    async def on_partitions_revoked(self, revoked: Any) -> None:
        """Partitions are about to be given up (this member still owns them)."""
        await self._relay("on_revoke", revoked, lost=False)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        """Partitions were assigned; nothing has been fetched from them yet."""
        await self._relay("on_assign", assigned, lost=False)

    async def on_partitions_lost(self, lost: Any) -> None:
        """The membership expired: the partitions are gone, commits for them will fail."""
        await self._relay("on_revoke", lost, lost=True)

    async def _relay(
        self, which: Literal["on_assign", "on_revoke"], tps: Any, *, lost: bool
    ) -> None:
        """Run on kafka-python's IO loop: log, then run the callback on a helper thread."""
        partitions: list[TopicPartition] = sorted((tp.topic, tp.partition) for tp in tps)
        if not partitions:
            return
        if which == "on_assign":
            log.info("partitions_assigned", partitions=partition_names(partitions))
        elif lost:
            self._kafka_errors["rebalance"] += 1
            log.warning("partitions_lost", partitions=partition_names(partitions))
        else:
            log.info("partitions_revoked", partitions=partition_names(partitions))
        if which == "on_revoke":
            self._lag.forget(partitions)
        callback = self._callbacks[which]
        if callback is None or self.closing:
            return
        errors: list[BaseException] = []
        done = threading.Event()

        def run() -> None:
            try:
                callback(list(partitions))
            except BaseException as exc:
                errors.append(exc)
            finally:
                done.set()

        sleep = self.io_sleep
        if sleep is None:
            run()
        else:
            threading.Thread(target=run, name=f"driftd-{which}", daemon=True).start()
            while not done.is_set():
                await sleep(_CALLBACK_POLL_S)
        if errors:
            exc = errors[0]
            self._kafka_errors["rebalance"] += 1
            log.error(
                "rebalance_callback_failed",
                callback=which,
                partitions=partition_names(partitions),
                error=f"{type(exc).__name__}: {exc}",
            )
            error = RebalanceCallbackError(which, partitions, f"{type(exc).__name__}: {exc}")
            self._failure = error
            raise error from exc
