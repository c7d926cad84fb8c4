"""Keyed records to a topic, acknowledged within a time bound, and their latest keys read back.

The relabel queue's topic (``labels.relabel.topic``, :mod:`monitor.emit.relabel`) is
written through :class:`KeyedTopic`: each task one record, its key the event id (UTF-8),
its value the task's JSON, produced on the brokers and with the connection, TLS and SASL
settings of ``kafka`` (the dead-letter producer's settings: every record acknowledged by
all in-sync replicas).

**Bounded in time.** ``write`` waits for the acknowledgements, at most ``timeout_s`` (the
producer is built on first use, and rebuilt after a failure), and returns the keys of
the records that were not acknowledged in time, so the caller counts them; it never
raises for the broker. After a failure it does not try again for ``retry_after_s``
(the records of those writes are refused at once), so an outage costs the caller's loop
one wait, not one per write. The producer is closed by ``close``, or at exit.

**The latest keys.** ``read_back`` reads the keys of the topic's last ``keep`` records
(split evenly over its partitions, the most recent last), within ``timeout_s``; a broker
that does not answer in time gives no keys (logged as ``keyed_topic_read_back_failed``),
never an error.
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any, Final

import structlog

from monitor.config import KafkaConfig
from monitor.kafka.api import KafkaConsumer, KafkaProducer, TopicPartition, kafka_errors
from monitor.kafka.clients import (
    build_client,
    close_quietly,
    connection_settings,
    dead_letter_producer_settings,
)

__all__ = ["KeyedTopic"]

_log = structlog.get_logger()

RETRY_AFTER_S: Final = 30.0
"""How long a failed write keeps the next ones from trying the broker again."""


class KeyedTopic:
    """Produces keyed records to ``topic``; reads the keys of the latest ones back.

    ``make_producer`` and ``make_consumer`` build kafka-python-like clients (tests); by
    default kafka-python's, from ``kafka``.
    """

    def __init__(
        self,
        kafka: KafkaConfig,
        topic: str,
        *,
        timeout_s: float,
        keep: int,
        retry_after_s: float = RETRY_AFTER_S,
        make_producer: Callable[[], Any] | None = None,
        make_consumer: Callable[[], Any] | None = None,
    ) -> None:
        self.kafka = kafka
        self.topic = topic
        self.timeout_s = float(timeout_s)
        self.keep = int(keep)
        self._make_producer = make_producer or self._default_producer
        self._make_consumer = make_consumer or self._default_consumer
        self.retry_after_s = float(retry_after_s)
        self._retry_at = -math.inf  # monotonic time before which writes are refused
        self._producer: Any = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    @property
    def where(self) -> str:
        """The topic."""
        return self.topic

    # -- at start ----------------------------------------------------------------------

    def read_back(self) -> tuple[int, list[str]]:
        """(0, the keys of the topic's last ``keep`` records, the most recent last); (0, [])
        if the broker does not answer in time. The count of records held is 0: retention,
        not this process, bounds what a topic holds."""
        try:
            return 0, self._read_ids()
        except (kafka_errors.KafkaError, OSError, TimeoutError, ValueError) as exc:
            _log.warning(
                "keyed_topic_read_back_failed",
                topic=self.topic,
                error=f"{type(exc).__name__}: {exc}",
                hint="the keys already written are not known: a replay may repeat records",
            )
            return 0, []

    def _read_ids(self) -> list[str]:
        deadline = time.monotonic() + self.timeout_s
        consumer = self._make_consumer()
        try:
            partitions = consumer.partitions_for_topic(self.topic)
            if not partitions:
                return []  # no topic yet: nothing was queued
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            ms = _ms_left(deadline)
            end = {tp: int(o) for tp, o in consumer.end_offsets(tps, timeout_ms=ms).items()}
            begin = consumer.beginning_offsets(tps, timeout_ms=_ms_left(deadline))
            share = max(1, self.keep // len(tps))
            for tp in tps:
                consumer.seek(tp, max(int(begin[tp]), end[tp] - share))
            keys: list[tuple[int, int, str]] = []
            pending = {tp for tp in tps if consumer.position(tp) < end[tp]}
            while pending:
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"{self.topic!r} not read to its end in time")
                batches = consumer.poll(timeout_ms=min(500, _ms_left(deadline)))
                for tp, records in batches.items():
                    keys += [
                        (r.timestamp or 0, r.offset, r.key.decode("utf-8", "replace"))
                        for r in records
                        if r.key is not None and r.offset < end[tp]
                    ]
                pending = {tp for tp in pending if consumer.position(tp) < end[tp]}
        finally:
            with suppress(Exception):
                consumer.close()
        keys.sort()  # the most recent last, across partitions
        return [key for _, _, key in keys]

    # -- per batch ---------------------------------------------------------------------

    def write(self, records: Sequence[tuple[str, bytes]]) -> list[str]:
        """Produce (key, value) records and wait for their acknowledgement (``timeout_s`` at
        most); the keys of those not acknowledged."""
        if not records:
            return []
        if time.monotonic() < self._retry_at:
            return [key for key, _ in records]
        try:
            producer = self._ensure_producer()
        except (kafka_errors.KafkaError, OSError) as exc:
            self._failed(len(records), exc)
            return [key for key, _ in records]
        sent: list[tuple[str, Any]] = []
        refused: list[str] = []
        error: BaseException | None = None
        for index, (key, value) in enumerate(records):
            try:
                sent.append((key, producer.send(self.topic, key=key.encode(), value=value)))
            except kafka_errors.KafkaTimeoutError as exc:
                # No metadata within max_block_ms: each further send would wait as long.
                refused += [k for k, _ in records[index:]]
                error = exc
                break
            except kafka_errors.KafkaError as exc:  # too large, ...
                refused.append(key)
                error = exc
        with suppress(kafka_errors.KafkaError):
            producer.flush(timeout=self.timeout_s)
        for key, future in sent:
            if not future.is_done or future.exception is not None:
                refused.append(key)
                error = future.exception or error
        if refused:
            self._failed(len(refused), error)
        return refused

    def _failed(self, count: int, error: BaseException | None) -> None:
        """Drop the producer and hold the next writes back for ``retry_after_s``."""
        self._discard_producer()
        self._retry_at = time.monotonic() + self.retry_after_s
        _log.error(
            "keyed_topic_write_failed",
            topic=self.topic,
            count=count,
            retry_in_s=self.retry_after_s,
            error="not acknowledged in time"
            if error is None
            else f"{type(error).__name__}: {error}",
        )

    def _ensure_producer(self) -> Any:
        if self._producer is None:
            self._producer = self._make_producer()
            # Closed by close(), or at exit: a batch callback has no shutdown hook.
            self._finalizer = weakref.finalize(self, _close, self._producer, self.timeout_s)
        return self._producer

    def _discard_producer(self) -> None:
        producer, self._producer = self._producer, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        close_quietly(producer, "keyed_topic_producer_close_failed")

    def close(self) -> None:
        """Flush and close the producer (waiting up to ``timeout_s``)."""
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None
        self._producer = None

    def _default_producer(self) -> Any:
        settings = dead_letter_producer_settings(self.kafka, self.timeout_s, self.timeout_s)
        return build_client(KafkaProducer, settings)

    def _default_consumer(self) -> Any:
        settings = connection_settings(self.kafka, self.timeout_s)
        settings.update(group_id=None, enable_auto_commit=False)
        return build_client(KafkaConsumer, settings)


def _close(producer: Any, timeout_s: float) -> None:
    with suppress(Exception):
        producer.close(timeout=timeout_s)


def _ms_left(deadline: float) -> int:
    return max(1, int((deadline - time.monotonic()) * 1000))
