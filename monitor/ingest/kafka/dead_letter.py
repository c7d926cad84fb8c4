"""Dead letters: refused records written, unchanged, to ``kafka.dead_letter_topic``.

:class:`DeadLetterWriter` owns the source's one ``KafkaProducer`` for the dead-letter
topic, built on the first refused record. ``write`` sends each refused record's original
bytes with ``driftd-error``, ``driftd-error-detail``, ``driftd-original-topic``,
``driftd-original-partition``, ``driftd-original-offset`` (and
``driftd-original-timestamp``) headers, keyed by ``<topic>/<partition>`` so that one
source partition stays in order, and waits for every acknowledgement (acks=all) before
returning. If anything is not acknowledged, ``DeadLetterError`` is raised and the caller
must not commit past those records. With no dead-letter topic configured, refused records
are only counted and logged.

Too large for the topic. When the dead-letter topic refuses a record as too large (its
``max.message.bytes``, or the producer's request limit), it is written again with only
the first ``PREFIX_BYTES`` bytes as its value, and if even that is too large, with no
value. Either way three headers say what is missing, so one oversized poison message can
neither block the partition forever nor vanish, and the original can be recognised (and
fetched from the source topic while its retention lasts, by the origin headers):

* ``driftd-value-dropped``: the original's size in bytes (the header older driftd
  versions wrote, with the same meaning: the value is not the whole original);
* ``driftd-value-prefix-bytes``: how many of the original's first bytes the value
  holds (0 when the value is null);
* ``driftd-value-sha256``: the hex SHA-256 of the whole original.

``driftd_dead_letter_truncated_total`` counts them.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

import structlog
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from monitor.config import KafkaConfig
from monitor.errors import DeadLetterError, SourceError
from monitor.ingest.source import Record
from monitor.kafka.api import KafkaProducer, kafka_errors
from monitor.kafka.clients import build_client, close_quietly, dead_letter_producer_settings

__all__ = [
    "DETAIL_MAX_BYTES",
    "PREFIX_BYTES",
    "SHRINK_STEPS",
    "DeadLetterWriter",
    "TruncatedDeadLetters",
    "shrink",
]

log = structlog.get_logger()

DETAIL_MAX_BYTES = 1024
"""The ``driftd-error-detail`` header is cut to this many UTF-8 bytes."""

PREFIX_BYTES: Final = 16 * 1024
"""The bytes of an oversized original kept: enough to see what it was, far under any
topic limit worth the name (Kafka's default is 1 MiB)."""

SHRINK_STEPS: Final[tuple[int | None, ...]] = (None, PREFIX_BYTES, 0)
"""What each attempt keeps of the value: all of it, a prefix, nothing."""

Attempt = tuple[Record, str, list[tuple[str, bytes]], Any, int]
"""A record in flight: the record, its reason, headers, send future, and which of
``SHRINK_STEPS`` that send used (0: the whole value)."""


def shrink(value: bytes, keep: int | None) -> tuple[bytes | None, list[tuple[str, bytes]]]:
    """The value to write keeping ``keep`` bytes of ``value`` (None: all), and the
    headers that describe what was cut (none when nothing was)."""
    if keep is None or len(value) <= keep:
        return value, []
    headers = [
        ("driftd-value-dropped", str(len(value)).encode("ascii")),
        ("driftd-value-prefix-bytes", str(keep).encode("ascii")),
        ("driftd-value-sha256", hashlib.sha256(value).hexdigest().encode("ascii")),
    ]
    return (value[:keep] if keep else None), headers


class TruncatedDeadLetters(Collector):
    """``driftd_dead_letter_truncated_total``, read from the source's own count."""

    def __init__(self, count: Callable[[], int], model: str) -> None:
        self._count = count
        self._model = model

    def collect(self) -> Iterator[CounterMetricFamily]:
        """One sample: the dead letters written without their whole value."""
        family = CounterMetricFamily(
            "driftd_dead_letter_truncated",
            "Dead letters too large for the dead-letter topic, written with a bounded "
            "prefix of their value, its size and SHA-256.",
            labels=["model"],
        )
        family.add_metric([self._model], float(self._count()))
        yield family


def _truncate_utf8(text: str, limit: int) -> bytes:
    """``text`` as UTF-8, cut to ``limit`` bytes without splitting a character."""
    raw = text.encode("utf-8", "replace")
    if len(raw) <= limit:
        return raw
    return raw[:limit].decode("utf-8", "ignore").encode("utf-8")


def dead_letter_headers(record: Record, reason: str, detail: str) -> list[tuple[str, bytes]]:
    """The headers that say why ``record`` was refused and where it came from."""
    headers = [
        ("driftd-error", reason.encode("utf-8", "replace")),
        ("driftd-error-detail", _truncate_utf8(detail, DETAIL_MAX_BYTES)),
        ("driftd-original-topic", record.topic.encode("utf-8")),
        ("driftd-original-partition", str(record.partition).encode("ascii")),
        ("driftd-original-offset", str(record.offset).encode("ascii")),
    ]
    if record.timestamp_ms is not None:
        headers.append(("driftd-original-timestamp", str(record.timestamp_ms).encode("ascii")))
    return headers


class DeadLetterWriter:
    """Writes refused records to ``kafka.dead_letter_topic`` and waits for their acks.

    The producer is built on first use and dropped after a failure (the next ``write``
    builds a fresh one). ``ack_timeout_s`` bounds how long one ``write`` waits.
    ``make_producer`` builds something with kafka-python's ``send`` / ``flush`` / ``close``
    (the confluent-kafka source passes an adapter); by default a kafka-python producer.
    """

    def __init__(
        self,
        kafka: KafkaConfig,
        *,
        connect_timeout_s: float,
        ack_timeout_s: float,
        make_producer: Callable[[], Any] | None = None,
    ) -> None:
        self._cfg = kafka
        self._make_producer = make_producer
        self._connect_timeout_s = connect_timeout_s
        self._ack_timeout_s = ack_timeout_s
        self._producer: Any = None
        self._closed = False
        self.counts: Counter[str] = Counter()
        """Records handed to ``write``, by reason."""
        self.written = 0
        """Records acknowledged by the dead-letter topic."""
        self.discarded = 0
        """Records only counted because no dead-letter topic is configured."""
        self.truncated = 0
        """Records written with a prefix of their value, or none: too large for the topic."""

    def write(self, records: Sequence[tuple[Record, str, str]]) -> None:
        """Write refused records (original bytes, reason, origin headers) and wait for acks.

        Raises ``DeadLetterError`` when any record was not acknowledged.
        """
        if not records:
            return
        reasons = Counter(reason for _, reason, _ in records)
        self.counts.update(reasons)
        topic = self._cfg.dead_letter_topic
        if topic is None:
            self.discarded += len(records)
            log.warning("dead_letter_discarded", count=len(records), reasons=dict(reasons))
            return
        try:
            producer = self._ensure_producer()
        except (kafka_errors.KafkaError, OSError) as exc:
            log.error("dead_letter_failed", topic=topic, count=len(records), error=str(exc))
            raise DeadLetterError(topic, len(records), f"no producer: {exc}") from exc

        attempts: list[Attempt] = []
        failed: list[tuple[Record, str]] = []
        for index, (record, reason, detail) in enumerate(records):
            headers = dead_letter_headers(record, reason, detail)
            sent = self._send(producer, topic, record, headers, failed)
            if sent is not None:
                attempts.append((record, reason, headers, *sent))
            elif failed and failed[-1][1].startswith("KafkaTimeoutError"):
                # No metadata for the topic within max_block_ms: every further
                # send would block as long again, so give up on the rest now.
                failed.extend((rest, failed[-1][1]) for rest, _, _ in records[index + 1 :])
                break
        while attempts:
            try:
                producer.flush(timeout=self._ack_timeout_s)
            except kafka_errors.KafkaError as exc:
                log.error("dead_letter_flush_failed", topic=topic, error=str(exc))
            attempts = self._settle(producer, topic, attempts, failed)
        if failed:
            first = failed[0][1]
            log.error("dead_letter_failed", topic=topic, count=len(failed), error=first)
            self._discard_producer()
            raise DeadLetterError(topic, len(failed), first)
        log.warning("dead_lettered", topic=topic, count=len(records), reasons=dict(reasons))

    def _settle(
        self, producer: Any, topic: str, attempts: list[Attempt], failed: list[tuple[Record, str]]
    ) -> list[Attempt]:
        """Count the acknowledged sends, note the failed ones in ``failed``, and return the
        records sent again with less of their value (too large for the topic)."""
        shrunk: list[Attempt] = []
        for record, reason, headers, future, step in attempts:
            error = self._outcome(future)
            if isinstance(error, kafka_errors.MessageSizeTooLargeError) and step + 1 < len(
                SHRINK_STEPS
            ):
                # Too large for the dead-letter topic: keep less, never block on it.
                resent = self._send(producer, topic, record, headers, failed, step + 1)
                if resent is not None:
                    shrunk.append((record, reason, headers, *resent))
            elif error is not None:
                failed.append((record, f"{type(error).__name__}: {error}"))
            else:
                self.written += 1
                self.truncated += step > 0
                log.debug(
                    "dead_letter_written",
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    reason=reason,
                )
        return shrunk

    @staticmethod
    def _send(
        producer: Any,
        topic: str,
        record: Record,
        headers: list[tuple[str, bytes]],
        failed: list[tuple[Record, str]],
        first_step: int = 0,
    ) -> tuple[Any, int] | None:
        """Send ``record`` keeping what ``SHRINK_STEPS[first_step]`` says of its value.

        A value the producer refuses at once as too large is shrunk further here (a
        value the broker refuses comes back through the future). Returns the future
        and the step used, or None after adding the record to ``failed``.
        """
        error: BaseException | None = None
        key = f"{record.topic}/{record.partition}".encode()
        for step in range(first_step, len(SHRINK_STEPS)):
            value, cut = shrink(record.value, SHRINK_STEPS[step])
            if step and not cut:
                continue  # keeping as much again would fail again
            if cut:
                log.warning(
                    "dead_letter_value_truncated",
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    size=len(record.value),
                    kept=len(value or b""),
                )
            try:
                future = producer.send(topic, value=value, key=key, headers=[*headers, *cut])
            except kafka_errors.MessageSizeTooLargeError as exc:
                error = exc
                continue
            except kafka_errors.KafkaError as exc:
                error = exc
                break
            return future, step
        failed.append((record, f"{type(error).__name__}: {error}"))
        return None

    @staticmethod
    def _outcome(future: Any) -> BaseException | None:
        """The error of a send future, or None once acknowledged (timeout if still pending)."""
        if not future.is_done:
            timeout: BaseException = kafka_errors.KafkaTimeoutError("not acknowledged in time")
            return timeout
        exc: BaseException | None = future.exception
        return exc

    def _discard_producer(self) -> None:
        """Drop the producer after a failure; the next ``write`` builds a fresh one."""
        producer, self._producer = self._producer, None
        close_quietly(producer, "dead_letter_producer_close_failed")

    def _ensure_producer(self) -> Any:
        if self._producer is not None:
            return self._producer
        if self._closed:
            raise SourceError("kafka", "dead_letter() after close()")
        if self._make_producer is not None:
            producer = self._make_producer()
        else:
            settings = dead_letter_producer_settings(
                self._cfg, self._connect_timeout_s, self._ack_timeout_s
            )
            producer = build_client(KafkaProducer, settings)
        self._producer = producer
        log.info("dead_letter_producer_started", topic=self._cfg.dead_letter_topic)
        return producer

    def close(self) -> None:
        """Flush and close the producer (waiting up to ``ack_timeout_s``); safe to call twice."""
        self._closed = True
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=self._ack_timeout_s)
            except Exception as exc:
                log.warning("dead_letter_producer_close_failed", error=str(exc))
