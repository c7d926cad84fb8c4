"""The publisher's background thread: connect, pack events into messages, send, count.

Every ``linger_s`` (sooner when enough events wait, or a flush is asked for) the thread
takes the whole buffer, groups it by topic and key in arrival order, and packs each group
into messages of at most ``max_events_per_message`` events and ``max_message_bytes``
bytes: a JSON array of events (the contract allows one message to hold several), or the
bare event when a message holds one. Packing is what lets one Python thread reach tens
of thousands of events per second through kafka-python, whose cost is per record.

While no producer is connected (the broker is down at start, or a producer failed), the
events stay buffered and new ones are dropped once ``max_buffer`` are pending; the
connection is retried with exponential backoff. The thread never raises: what fails is
counted and logged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import structlog

from monitor.kafka.api import kafka_errors
from monitor.kafka.clients import close_quietly
from monitor.publish.buffer import EventBuffer, Item
from monitor.publish.stats import DropLog

log = structlog.get_logger()

_IDLE_PASS_S = 1.0
"""The longest the thread sleeps between passes (each pass also updates the drop log)."""

ProducerFactory = Callable[[], Any]
"""Builds a connected kafka-python ``KafkaProducer`` or raises."""


@dataclass(frozen=True, slots=True)
class SenderSettings:
    """How the sender packs, paces and retries."""

    topic: str
    labels_topic: str | None
    linger_s: float
    max_events_per_message: int
    max_message_bytes: int
    connect_backoff_s: float
    connect_backoff_max_s: float
    log_interval_s: float


class Sender:
    """Runs the thread that moves buffered events into a Kafka producer."""

    def __init__(
        self,
        buffer: EventBuffer,
        settings: SenderSettings,
        connect: ProducerFactory,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._buffer = buffer
        self._settings = settings
        self._connect = connect
        self._clock = clock
        self._producer: Any = None
        self._next_connect = clock()
        self._backoff_s = settings.connect_backoff_s
        self._flush_until = 0.0
        self._stopping = False
        self._stop_deadline = 0.0
        self._failed_connects = 0
        self._last_connect_log = -float("inf")
        self._drop_log = DropLog(settings.topic, settings.log_interval_s, clock)
        self._thread = threading.Thread(target=self._run, name="driftd-publisher", daemon=True)

    @property
    def connected(self) -> bool:
        """Whether a producer is connected (events flow to the broker)."""
        return self._producer is not None

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def request_flush(self, timeout_s: float) -> None:
        """Send what is buffered now, and have the producer send without lingering."""
        self._flush_until = max(self._flush_until, self._clock() + timeout_s)
        self._buffer.wake()

    def stop(self, timeout_s: float) -> None:
        """Stop the thread: one last pass, then it closes the producer, waiting at most
        ``timeout_s`` in all for what the producer still holds."""
        self._stop_deadline = self._clock() + max(0.0, timeout_s)
        self._stopping = True
        self._buffer.wake()
        self._thread.join(max(0.0, timeout_s))

    def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            producer.close(timeout=max(0.0, self._stop_deadline - self._clock()))
        except Exception as exc:  # closing is best effort: what it held is counted anyway
            log.debug("publisher_close_failed", error=str(exc))

    def _run(self) -> None:
        """The loop: sleep until an event arrives, linger, then send what is buffered."""
        while True:
            stopping = self._stopping
            if not stopping:
                # Idle costs nothing: the first event wakes the thread, which then gathers
                # for at most linger_s (less once enough events wait, or on a flush).
                if self._producer is None:
                    # Nothing is taken while disconnected, so the events already waiting
                    # must not keep the thread awake: sleep until the next attempt.
                    self._buffer.arrived.clear()
                if not self._stopping:  # a stop between the clear and here is not missed
                    self._buffer.arrived.wait(self._idle_wait_s())
                if self._producer is not None:
                    self._buffer.ready.wait(self._settings.linger_s)
            try:
                self._pass()
            except Exception as exc:  # never let the thread die: the buffer would fill for good
                log.error("publisher_pass_failed", error=repr(exc))
            self._drop_log.observe(self._buffer.counts.snapshot(), self._first_errors())
            if stopping:
                # Closed here, by the thread that made it: a connect still under way when
                # ``stop`` gave up waiting cannot leave a producer behind.
                self._close_producer()
                return

    def _idle_wait_s(self) -> float:
        """How long to sleep with nothing to do: until the next connection attempt, or a
        second (the drop log's pass) when connected."""
        if self._producer is None:
            return max(0.0, min(_IDLE_PASS_S, self._next_connect - self._clock()))
        return _IDLE_PASS_S

    def _first_errors(self) -> dict[str, str]:
        with self._buffer.lock:
            return dict(self._buffer.counts.first_error)

    def _pass(self) -> None:
        """Connect if need be, then pack and send everything buffered."""
        if self._producer is None and not self._try_connect():
            return
        items = self._buffer.take()
        if items:
            self._send(items)
        if self._producer is not None and self._clock() < self._flush_until:
            self._flush_producer()

    def _try_connect(self) -> bool:
        now = self._clock()
        if now < self._next_connect:
            return False
        try:
            self._producer = self._connect()
        except Exception as exc:
            self._next_connect = now + self._backoff_s
            self._failed_connects += 1
            if now - self._last_connect_log >= self._settings.log_interval_s:
                log.warning(
                    "publisher_connect_failed",
                    topic=self._settings.topic,
                    error=str(exc),
                    attempts=self._failed_connects,
                    retry_in_s=round(self._backoff_s, 3),
                )
                self._last_connect_log = now
            self._backoff_s = min(self._backoff_s * 2, self._settings.connect_backoff_max_s)
            return False
        self._backoff_s = self._settings.connect_backoff_s
        log.info("publisher_connected", topic=self._settings.topic, after=self._failed_connects)
        self._failed_connects = 0
        self._last_connect_log = -float("inf")
        return True

    def _flush_producer(self) -> None:
        # On a timeout the records stay in the producer; their callbacks settle them later.
        with suppress(kafka_errors.KafkaTimeoutError):
            self._producer.flush(timeout=max(0.001, min(1.0, self._flush_until - self._clock())))

    def _send(self, items: list[Item]) -> None:
        """Group by (topic, key) in order, pack into messages and hand them to the producer."""
        groups: dict[tuple[bool, bytes | None], list[bytes]] = {}
        for item in items:
            groups.setdefault((item.is_label, item.key), []).append(item.payload)
        for (is_label, key), payloads in groups.items():
            topic = self._settings.labels_topic if is_label else self._settings.topic
            for value, events in self._pack(payloads):
                self._send_one(topic, key, value, events)

    def _pack(self, payloads: list[bytes]) -> list[tuple[bytes, int]]:
        """Split serialised events into messages: (value, number of events)."""
        max_events = self._settings.max_events_per_message
        budget = self._settings.max_message_bytes - 2  # the brackets of the array
        messages: list[tuple[bytes, int]] = []
        start = 0
        while start < len(payloads):
            end = min(len(payloads), start + max_events)
            size = sum(len(p) + 1 for p in payloads[start:end])
            while size > budget and end - start > 1:
                end -= 1
                size -= len(payloads[end]) + 1
            chunk = payloads[start:end]
            value = chunk[0] if len(chunk) == 1 else b"[" + b",".join(chunk) + b"]"
            messages.append((value, len(chunk)))
            start = end
        return messages

    def _send_one(self, topic: Any, key: bytes | None, value: bytes, events: int) -> None:
        producer = self._producer
        if producer is None:
            self._buffer.settle(events, delivered=False, detail="no producer connected")
            return
        try:
            future = producer.send(topic, value=value, key=key)
        except Exception as exc:
            self._buffer.settle(events, delivered=False, detail=f"send: {exc!r}")
            if not isinstance(exc, kafka_errors.KafkaTimeoutError):
                # Anything but a full producer buffer means this producer is unusable.
                close_quietly(producer, "publisher_close_failed")
                self._producer = None
                self._next_connect = self._clock() + self._backoff_s
            return
        future.add_callback(self._delivered, events)
        future.add_errback(self._failed, events)

    def _delivered(self, events: int, _metadata: Any) -> None:
        self._buffer.settle(events, delivered=True)

    def _failed(self, events: int, exc: BaseException) -> None:
        self._buffer.settle(events, delivered=False, detail=repr(exc))
