"""The Kafka source: a consumer-group member with manual commits, lag snapshots and a DLQ.

One ``KafkaSource`` owns one kafka-python ``KafkaConsumer`` (subscribed to
``kafka.topics`` in group ``kafka.group_id``, auto-commit off) and, once something
is refused, one ``KafkaProducer`` for the dead-letter topic.

Offsets. ``commit`` writes exactly the next offsets it is given, synchronously,
and raises ``OffsetCommitError`` when they were not stored. Nothing is ever
committed implicitly: not by a timer, not on rebalance, not on ``close``.

Rebalances and threads. kafka-python 3.x runs its network on its own IO thread,
and rebalance listeners are called on that thread; a blocking consumer call made
there (``commit``, ``position``...) fails, and a slow listener stalls heartbeats.
So ``on_revoke`` and ``on_assign`` run on a short-lived helper thread while the
IO loop keeps heartbeating, and the thread that called ``poll`` stays blocked
inside ``poll`` until they return. The callbacks therefore never run
concurrently with the pipeline, and they may call ``commit``, ``seek`` and
``assignment`` (never ``poll``):

* ``on_revoke(partitions)`` runs before the partitions are given up, while this
  member still owns them: checkpoint, then ``commit``. It also runs when the
  membership was already lost (session expired); then commits fail with
  ``OffsetCommitError(retriable=False)`` and the state should just be dropped.
* ``on_assign(partitions)`` runs before anything is fetched from them:
  restore their checkpoint and ``seek`` to its offsets.
* ``close`` calls neither: the daemon checkpoints and commits before closing.

An exception raised by a callback is raised again from ``poll`` as
``RebalanceCallbackError``; no records are lost by that.

Health. A broker outage does not make kafka-python's ``poll`` raise: it returns
nothing, forever. So an empty poll counts as successful only if the broker
answered in the last ``PROBE_INTERVAL_S`` seconds; otherwise a bounded
ListOffsets request probes it. A failed probe, or an error raised by the client,
counts in ``consecutive_poll_failures`` and backs the next attempt off
exponentially (0.5 s doubling up to ``kafka.retry_backoff_max_ms``, which also
caps the client's reconnect backoff, so consumption resumes within seconds of
the broker's return). Such errors are logged and never raised;
``last_successful_poll`` (monotonic seconds, None before the first) and
``last_poll_error`` expose the state for health reporting, and ``kafka_errors``
counts every failure by kind (``KAFKA_ERROR_KINDS``).

Lag. ``lag()`` is measured from the group's committed offsets, so checkpoints or
commits that fail show as growing lag; ``read_lag()`` from the read position. Both
are refreshed after each poll, mostly without a request of their own, and may be
called from any thread (``monitor.ingest.kafka.lag``).

Dead letters. ``dead_letter`` writes each refused record's original bytes to
``kafka.dead_letter_topic`` with ``driftd-error``, ``driftd-error-detail``,
``driftd-original-topic``, ``driftd-original-partition``,
``driftd-original-offset`` (and ``driftd-original-timestamp``) headers, keyed by
``<topic>/<partition>`` so that one source partition stays in order, and waits
for every acknowledgement (acks=all) before returning. A record too large for
the dead-letter topic is written with a bounded prefix of its value (or none),
its size and its SHA-256 (``monitor.ingest.kafka.dead_letter``), so that one oversized
poison message cannot block the partition forever, nor vanish. If anything is not acknowledged,
``DeadLetterError`` is raised and the caller must not commit past those records.

Secrets. The SASL password goes to the client and nowhere else: it is never
logged and never part of an exception message raised here.
"""

from __future__ import annotations

import math
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from typing import Any, Literal

import structlog

from monitor.config import KafkaConfig
from monitor.errors import (
    ConfigError,
    DeadLetterError,
    OffsetCommitError,
    PartitionNotAssignedError,
    RebalanceCallbackError,
    SourceError,
)
from monitor.ingest.kafka.dead_letter import SHRINK_STEPS, shrink
from monitor.ingest.kafka.lag import END_OFFSETS_INTERVAL_S, LagTracker
from monitor.ingest.source import PartitionsCallback, Record, TopicPartition
from monitor.kafka.api import (
    AsyncConsumerRebalanceListener,
    KafkaConsumer,
    KafkaNetClient,
    KafkaProducer,
    OffsetAndMetadata,
    kafka_errors,
)
from monitor.kafka.api import TopicPartition as KafkaTopicPartition

__all__ = [
    "BACKOFF_INITIAL_S",
    "DETAIL_MAX_BYTES",
    "END_OFFSETS_INTERVAL_S",
    "KAFKA_ERROR_KINDS",
    "PROBE_INTERVAL_S",
    "KafkaSource",
    "consumer_settings",
]

log = structlog.get_logger()

PROBE_INTERVAL_S = 5.0
"""An empty poll proves nothing; the broker is probed when it has not answered for this long."""

PROBE_TIMEOUT_S = 2.0
"""How long a liveness probe (or a lag fallback) may block the polling thread."""

BACKOFF_INITIAL_S = 0.5
"""The first poll retry waits this long; each further failure doubles it, up to
``kafka.retry_backoff_max_ms``."""

KAFKA_ERROR_KINDS = ("poll", "commit", "lag", "rebalance")
"""What ``kafka_errors`` counts. ``poll``: a poll the client failed or whose liveness
probe went unanswered (the broker is away); ``commit``: an offset commit not stored;
``lag``: an end or committed offset lookup that failed; ``rebalance``: partitions lost
with an expired membership, or a rebalance callback that raised."""

DETAIL_MAX_BYTES = 1024
"""The ``driftd-error-detail`` header is cut to this many UTF-8 bytes."""

_DLQ_HEADROOM_BYTES = 64 * 1024
_ONE_MIB = 1024 * 1024
_CALLBACK_POLL_S = 0.005


class _ClientFactory:
    """Builds kafka-python's network client and remembers it.

    A ``KafkaConsumer`` / ``KafkaProducer`` constructor that fails (broker down,
    bootstrap timeout) has already started the client's IO thread and never
    stops it; kafka-python 3.0.12 leaks one thread per failed attempt. Keeping
    the client lets the source close it.
    """

    def __init__(self) -> None:
        self.clients: list[Any] = []

    def __call__(self, **configs: Any) -> Any:
        client = KafkaNetClient(**configs)
        self.clients.append(client)
        return client

    def close_all(self) -> None:
        """Close every client built so far (after a failed constructor)."""
        for client in self.clients:
            with suppress(Exception):
                client.close()
        self.clients.clear()


class _RebalanceBridge(AsyncConsumerRebalanceListener):  # type: ignore[misc]
    """Forwards kafka-python's rebalance notifications to the source, off the IO loop."""

    def __init__(self, source: KafkaSource) -> None:
        self._source = source

    async def on_partitions_revoked(self, revoked: Any) -> None:
        """Partitions are about to be given up (this member still owns them)."""
        await self._source._rebalanced("on_revoke", revoked, lost=False)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        """Partitions were assigned; nothing has been fetched from them yet."""
        await self._source._rebalanced("on_assign", assigned, lost=False)

    async def on_partitions_lost(self, lost: Any) -> None:
        """The membership expired: the partitions are gone, commits for them will fail."""
        await self._source._rebalanced("on_revoke", lost, lost=True)


def _client_settings(kafka: KafkaConfig, connect_timeout_s: float) -> dict[str, Any]:
    """Settings shared by the consumer and the producer (includes the secret: never log)."""
    settings: dict[str, Any] = {
        "bootstrap_servers": list(kafka.bootstrap_servers),
        "client_id": kafka.client_id,
        "security_protocol": kafka.security_protocol,
        "bootstrap_timeout_ms": max(1, int(connect_timeout_s * 1000)),
        "ssl_check_hostname": kafka.ssl_check_hostname,
    }
    if kafka.sasl_mechanism is not None:
        settings["sasl_mechanism"] = kafka.sasl_mechanism
        settings["sasl_plain_username"] = kafka.sasl_plain_username
        if kafka.sasl_plain_password is not None:
            settings["sasl_plain_password"] = kafka.sasl_plain_password.get_secret_value()
    for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        path = getattr(kafka, key)
        if path is not None:
            settings[key] = str(path)
    return settings


def security_settings(kafka: KafkaConfig) -> dict[str, Any]:
    """The client id and TLS / SASL settings, for other clients of the same cluster (the
    Kafka checkpoint store): the secret is inside, so never log it."""
    settings = _client_settings(kafka, connect_timeout_s=10.0)
    for key in ("bootstrap_servers", "bootstrap_timeout_ms"):
        settings.pop(key)
    return settings


def _check_files(kafka: KafkaConfig) -> None:
    """Fail fast, naming the key, when a configured TLS file does not exist."""
    for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        path = getattr(kafka, key)
        if path is not None and not path.is_file():
            raise ConfigError(f"kafka.{key}", f"file not found: {path}")


def _subscribed(kafka: KafkaConfig) -> list[str]:
    """The inference topics, then the label topic (one consumer reads both, so their
    offsets are committed together with the state that holds their events)."""
    topics = list(kafka.topics)
    if kafka.labels_topic is not None and kafka.labels_topic not in topics:
        topics.append(kafka.labels_topic)
    return topics


def _any_bootstrap_reachable(servers: Sequence[str], timeout_s: float) -> bool:
    """Whether some bootstrap server accepts a TCP connection (a cheap pre-check)."""
    for server in servers:
        host, _, port = server.rpartition(":")
        if not host:
            host, port = server, "9092"
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
                return True
        except (OSError, ValueError):
            continue
    return False


def build_client(
    cls: Any, settings: dict[str, Any], probe_timeout_s: float = PROBE_TIMEOUT_S
) -> Any:
    """Construct a kafka-python client (consumer, producer, admin) without leaking threads.

    kafka-python 3.0.12 leaks, per failed constructor, the IO thread it started
    and every socket whose connect was refused. A TCP pre-check skips the
    attempt while no bootstrap server listens (the usual outage), and the
    client of a constructor that fails anyway is closed here.
    """
    servers: list[str] = settings["bootstrap_servers"]
    if not _any_bootstrap_reachable(servers, probe_timeout_s):
        raise ConnectionError("no bootstrap server accepts connections: " + ", ".join(servers))
    factory = _ClientFactory()
    try:
        return cls(**settings, kafka_client=factory)
    except BaseException:
        factory.close_all()
        raise


def consumer_settings(
    kafka: KafkaConfig, connect_timeout_s: float, max_poll_interval_ms: int | None = None
) -> dict[str, Any]:
    """The group consumer's kafka-python settings (includes the secret: never log)."""
    poll_interval_ms = max_poll_interval_ms or kafka.max_poll_interval_ms
    # A shorter max.poll.interval (tests) must not leave a longer session behind it.
    session_ms = min(kafka.session_timeout_ms, poll_interval_ms)
    settings = _client_settings(kafka, connect_timeout_s)
    settings.update(
        group_id=kafka.group_id,
        enable_auto_commit=False,
        auto_offset_reset=kafka.auto_offset_reset,
        max_poll_records=kafka.max_poll_records,
        fetch_max_bytes=kafka.fetch_max_bytes,
        max_partition_fetch_bytes=kafka.max_partition_fetch_bytes,
        # A fetch response frame can hold fetch_max_bytes plus one partition's
        # first batch; kafka-python raises a lower limit to that on its own.
        receive_message_max_bytes=max(
            kafka.receive_message_max_bytes,
            kafka.fetch_max_bytes + kafka.max_partition_fetch_bytes,
        ),
        isolation_level="read_committed",
        max_poll_interval_ms=poll_interval_ms,
        # kafka-python's 45 s default session kept a crashed replica's partitions
        # from its restarted self that long; a clean close leaves the group at once.
        session_timeout_ms=session_ms,
        heartbeat_interval_ms=min(kafka.heartbeat_interval_ms, max(1, session_ms // 3)),
        # Its 30 s reconnect backoff delayed consumption long after a broker returned.
        reconnect_backoff_max_ms=kafka.retry_backoff_max_ms,
    )
    return settings


def _truncate_utf8(text: str, limit: int) -> bytes:
    """``text`` as UTF-8, cut to ``limit`` bytes without splitting a character."""
    raw = text.encode("utf-8", "replace")
    if len(raw) <= limit:
        return raw
    return raw[:limit].decode("utf-8", "ignore").encode("utf-8")


def _names(partitions: Sequence[TopicPartition]) -> list[str]:
    return [f"{topic}[{partition}]" for topic, partition in partitions]


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
        _check_files(kafka)
        self._cfg = kafka
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._commit_timeout_ms = max(1, int(commit_timeout_s * 1000))
        self._dead_letter_timeout_s = dead_letter_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._max_poll_interval_ms = (
            kafka.max_poll_interval_ms
            if max_poll_interval_s is None
            else max(1, int(max_poll_interval_s * 1000))
        )
        self._consumer: Any = None
        self._producer: Any = None
        self._io_sleep: Callable[[float], Any] | None = None
        self._closed = False
        self._closing = False
        self._callback_error: RebalanceCallbackError | None = None
        self._confirmed_at = -math.inf
        self._retry_at = -math.inf
        self._failing_since: float | None = None

        self.consecutive_poll_failures = 0
        """Polls in a row that failed (client error or unanswered probe); 0 when healthy."""
        self.last_successful_poll: float | None = None
        """``time.monotonic()`` of the last poll that returned records or had the broker answer."""
        self.last_poll_error: str | None = None
        """The last poll failure, as ``ErrorType: message`` (kept after recovery)."""
        self.kafka_errors: Counter[str] = Counter(dict.fromkeys(KAFKA_ERROR_KINDS, 0))
        """Failures by kind (``KAFKA_ERROR_KINDS``), counted since start; every kind present."""
        self._lag = LagTracker(self.kafka_errors)
        self.dead_letter_counts: Counter[str] = Counter()
        """Records handed to ``dead_letter``, by reason."""
        self.dead_letter_written = 0
        """Records acknowledged by the dead-letter topic."""
        self.dead_letter_discarded = 0
        """Records only counted because no dead-letter topic is configured."""
        self.dead_letter_truncated = 0
        """Records written with a prefix of their value, or none: too large for the topic."""

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
        now = time.monotonic()
        if now < self._retry_at:
            time.sleep(min(self._retry_at - now, timeout_s))
            return []
        try:
            consumer = self._ensure_consumer()
            batches = consumer.poll(
                timeout_ms=int(timeout_s * 1000), max_records=self._cfg.max_poll_records
            )
        except kafka_errors.KafkaConfigurationError as exc:
            raise SourceError("kafka", f"client settings refused: {exc}") from exc
        except (kafka_errors.KafkaError, OSError) as exc:
            error = self._callback_error
            if error is not None:
                self._callback_error = None
                raise error from exc
            self._poll_failed(exc)
            return []
        records = self._flatten(batches)
        self._lag.note_records(records)
        if self._lag.refresh(consumer):
            self._confirmed_at = time.monotonic()
        if records:
            self._poll_succeeded()
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
        consumer.subscribe(topics=_subscribed(cfg), listener=_RebalanceBridge(self))
        net = getattr(consumer, "_net", None)
        self._io_sleep = getattr(net, "sleep", None)
        self._consumer = consumer
        log.info(
            "kafka_consumer_started",
            bootstrap_servers=list(cfg.bootstrap_servers),
            topics=_subscribed(cfg),
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
        settings = _client_settings(cfg, self._connect_timeout_s)
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
        now = time.monotonic()
        self.consecutive_poll_failures += 1
        self.kafka_errors["poll"] += 1
        self.last_poll_error = f"{type(exc).__name__}: {exc}"
        if self._failing_since is None:
            self._failing_since = now
        exponent = min(self.consecutive_poll_failures - 1, 30)  # no float overflow in outages
        delay = min(self._cfg.retry_backoff_max_ms / 1000, BACKOFF_INITIAL_S * 2**exponent)
        self._retry_at = now + delay
        log.warning(
            "kafka_poll_failed",
            error=self.last_poll_error,
            retriable=isinstance(exc, kafka_errors.RetriableError | OSError),
            failures=self.consecutive_poll_failures,
            retry_in_s=round(delay, 3),
        )

    def _poll_succeeded(self, *, confirmed: bool = True) -> None:
        """Record a good poll; ``confirmed`` when the broker itself answered just now."""
        now = time.monotonic()
        if self.consecutive_poll_failures:
            since = self._failing_since if self._failing_since is not None else now
            log.info(
                "kafka_poll_recovered",
                failures=self.consecutive_poll_failures,
                down_s=round(now - since, 3),
            )
        self.consecutive_poll_failures = 0
        self._failing_since = None
        self._retry_at = -math.inf
        if confirmed:
            self._confirmed_at = now
        self.last_successful_poll = now

    def _confirm_idle(self, consumer: Any) -> None:
        """After an empty poll: success if the broker answered lately, else probe it."""
        if time.monotonic() - self._confirmed_at < PROBE_INTERVAL_S:
            self._poll_succeeded(confirmed=False)
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
        self._poll_succeeded()

    # ------------------------------------------------------------------- lag

    def lag(self) -> dict[TopicPartition, int]:
        """Messages past the group's committed offset, per owned partition (see module doc)."""
        return self._lag.committed_lag()

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
        wanted = {(str(t), int(p)): int(o) for (t, p), o in offsets.items()}
        negative = [tp for tp, offset in wanted.items() if offset < 0]
        if negative:
            raise ValueError(f"negative offsets for {_names(sorted(negative))}")
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
        if not records:
            return
        reasons = Counter(reason for _, reason, _ in records)
        self.dead_letter_counts.update(reasons)
        topic = self._cfg.dead_letter_topic
        if topic is None:
            self.dead_letter_discarded += len(records)
            log.warning("dead_letter_discarded", count=len(records), reasons=dict(reasons))
            return
        try:
            producer = self._ensure_producer()
        except (kafka_errors.KafkaError, OSError) as exc:
            log.error("dead_letter_failed", topic=topic, count=len(records), error=str(exc))
            raise DeadLetterError(topic, len(records), f"no producer: {exc}") from exc

        # Per record in flight: its reason, headers, send future, and which of
        # SHRINK_STEPS that send used (0: the whole value).
        attempts: list[tuple[Record, str, list[tuple[str, bytes]], Any, int]] = []
        failed: list[tuple[Record, str]] = []
        for index, (record, reason, detail) in enumerate(records):
            headers = self._headers(record, reason, detail)
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
                producer.flush(timeout=self._dead_letter_timeout_s)
            except kafka_errors.KafkaError as exc:
                log.error("dead_letter_flush_failed", topic=topic, error=str(exc))
            shrunk: list[tuple[Record, str, list[tuple[str, bytes]], Any, int]] = []
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
                    self.dead_letter_written += 1
                    self.dead_letter_truncated += step > 0
                    self._log_one(record, reason)
            attempts = shrunk
        if failed:
            first = failed[0][1]
            log.error("dead_letter_failed", topic=topic, count=len(failed), error=first)
            self._discard_producer()
            raise DeadLetterError(topic, len(failed), first)
        log.warning("dead_lettered", topic=topic, count=len(records), reasons=dict(reasons))

    @staticmethod
    def _headers(record: Record, reason: str, detail: str) -> list[tuple[str, bytes]]:
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

    @staticmethod
    def _key(record: Record) -> bytes:
        return f"{record.topic}/{record.partition}".encode()

    def _send(
        self,
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
                future = producer.send(
                    topic, value=value, key=self._key(record), headers=[*headers, *cut]
                )
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

    @staticmethod
    def _log_one(record: Record, reason: str) -> None:
        log.debug(
            "dead_letter_written",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            reason=reason,
        )

    def _discard_producer(self) -> None:
        """Drop the producer after a failure; the next dead_letter builds a fresh one."""
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=0)
            except Exception as exc:
                log.debug("dead_letter_producer_close_failed", error=str(exc))

    def _ensure_producer(self) -> Any:
        if self._producer is not None:
            return self._producer
        if self._closed:
            raise SourceError("kafka", "dead_letter() after close()")
        cfg = self._cfg
        settings = _client_settings(cfg, self._connect_timeout_s)
        request_timeout_ms = max(1000, int(self._dead_letter_timeout_s * 500))
        settings.update(
            acks="all",
            linger_ms=5,
            # Not idempotent: with idempotence one refused batch (a record too
            # large for the topic) is fatal to the whole producer, and a
            # duplicate dead letter is harmless. One request in flight keeps
            # retried records in order.
            enable_idempotence=False,
            max_in_flight_requests_per_connection=1,
            max_block_ms=int(self._connect_timeout_s * 1000),
            request_timeout_ms=request_timeout_ms,
            delivery_timeout_ms=max(
                request_timeout_ms + 5, int(self._dead_letter_timeout_s * 1000)
            ),
            max_request_size=max(_ONE_MIB, cfg.max_partition_fetch_bytes) + _DLQ_HEADROOM_BYTES,
        )
        producer = build_client(KafkaProducer, settings)
        self._producer = producer
        log.info("dead_letter_producer_started", topic=cfg.dead_letter_topic)
        return producer

    # ------------------------------------------------------- seek, rebalance

    def seek(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Position owned partitions at these next offsets (call it from ``on_assign``).

        Raises ``PartitionNotAssignedError`` (and seeks nothing) if any is not owned.
        """
        wanted = {(str(t), int(p)): int(o) for (t, p), o in offsets.items()}
        negative = [tp for tp, offset in wanted.items() if offset < 0]
        if negative:
            raise ValueError(f"negative offsets for {_names(sorted(negative))}")
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

    async def _rebalanced(
        self, which: Literal["on_assign", "on_revoke"], tps: Any, *, lost: bool
    ) -> None:
        """Run on kafka-python's IO loop: log, then run the callback on a helper thread."""
        partitions: list[TopicPartition] = sorted((tp.topic, tp.partition) for tp in tps)
        if not partitions:
            return
        if which == "on_assign":
            log.info("partitions_assigned", partitions=_names(partitions))
        elif lost:
            self.kafka_errors["rebalance"] += 1
            log.warning("partitions_lost", partitions=_names(partitions))
        else:
            log.info("partitions_revoked", partitions=_names(partitions))
        if which == "on_revoke":
            self._lag.forget(partitions)
        callback = self._on_assign if which == "on_assign" else self._on_revoke
        if callback is None or self._closing:
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

        sleep = self._io_sleep
        if sleep is None:
            run()
        else:
            threading.Thread(target=run, name=f"driftd-{which}", daemon=True).start()
            while not done.is_set():
                await sleep(_CALLBACK_POLL_S)
        if errors:
            exc = errors[0]
            self.kafka_errors["rebalance"] += 1
            log.error(
                "rebalance_callback_failed",
                callback=which,
                partitions=_names(partitions),
                error=f"{type(exc).__name__}: {exc}",
            )
            error = RebalanceCallbackError(which, partitions, f"{type(exc).__name__}: {exc}")
            self._callback_error = error
            raise error from exc

    # ----------------------------------------------------------------- close

    def close(self) -> None:
        """Leave the group and close the clients; commits nothing and calls no callback."""
        if self._closed:
            return
        self._closing = True
        self._closed = True
        producer, self._producer = self._producer, None
        consumer, self._consumer = self._consumer, None
        if producer is not None:
            try:
                producer.close(timeout=self._dead_letter_timeout_s)
            except Exception as exc:
                log.warning("dead_letter_producer_close_failed", error=str(exc))
        if consumer is not None:
            try:
                consumer.close(autocommit=False, timeout_ms=self._commit_timeout_ms)
            except Exception as exc:
                log.warning("kafka_consumer_close_failed", error=str(exc))
        self._lag.clear()
        log.info("kafka_source_closed")

    def __enter__(self) -> KafkaSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def exhausted(self) -> bool:
        """Never: a topic has no end."""
        return False
