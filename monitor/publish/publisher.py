"""``EventPublisher``: what a model server calls to send driftd its inference events.

``publish`` builds the event of the contract (docs/events.md), serialises it with orjson
and appends it to a bounded buffer; a background thread (``monitor.publish.sender``)
batches the buffer into a kafka-python producer. Nothing on the request path waits for
the network or raises because of it: an event that cannot be kept (buffer full, value
that cannot be serialised, publisher closed) is dropped and counted by reason.
"""

from __future__ import annotations

import importlib.util
import itertools
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import orjson
import structlog
from prometheus_client.registry import CollectorRegistry
from pydantic import SecretStr, ValidationError

from monitor.config import KafkaConfig
from monitor.errors import ConfigError
from monitor.kafka.api import KafkaProducer
from monitor.kafka.clients import build_client, connection_settings
from monitor.publish.buffer import EventBuffer, Item
from monitor.publish.checks import (
    features_problem,
    id_problem,
    key_problem,
    label_problem,
    ts_problem,
)
from monitor.publish.sender import Sender, SenderSettings
from monitor.publish.stats import PublisherStats, register_collector

log = structlog.get_logger()

EventId = str | int
Timestamp = float | int | str | datetime

RESERVED_FIELDS = frozenset({"id", "ts", "model", "model_version", "features", "prediction"})
"""Top-level fields ``publish`` writes itself; ``extra`` may not set them."""

_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
_COMPRESSION_MODULES = {"gzip": "", "snappy": "snappy", "lz4": "lz4", "zstd": "zstandard"}
"""The Python package kafka-python needs for each codec ("" for none: gzip is built in)."""
_CONNECT_TIMEOUT_S = 10.0


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(key, message)


class EventPublisher:
    """Publishes inference and label events to Kafka without ever blocking the caller.

    >>> publisher = EventPublisher("kafka:9092", "inference", model="fraud")  # doctest: +SKIP
    >>> event_id = publisher.publish({"amount": 12.5, "country": "DE"}, 0.08)  # doctest: +SKIP

    Thread-safe: any number of request threads may call ``publish`` at once. Call
    ``close`` (or use it as a context manager) at shutdown, or buffered events are lost.
    """

    def __init__(
        self,
        bootstrap_servers: str | Sequence[str],
        topic: str,
        *,
        labels_topic: str | None = None,
        model: str | None = None,
        model_version: str | None = None,
        max_buffer: int = 100_000,
        linger_ms: float = 5.0,
        max_events_per_message: int = 100,
        max_message_bytes: int = 512 * 1024,
        acks: Literal[0, 1, "all"] = "all",
        retries: int = 0,
        compression_type: Literal["gzip", "snappy", "lz4", "zstd"] | None = None,
        delivery_timeout_s: float = 30.0,
        client_id: str = "driftd-publisher",
        security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT",
        sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None,
        sasl_plain_username: str | None = None,
        sasl_plain_password: str | None = None,
        ssl_cafile: str | Path | None = None,
        ssl_certfile: str | Path | None = None,
        ssl_keyfile: str | Path | None = None,
        ssl_check_hostname: bool = True,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
        connect_backoff_s: float = 0.1,
        connect_backoff_max_s: float = 5.0,
        log_interval_s: float = 10.0,
    ) -> None:
        servers = (
            [s.strip() for s in bootstrap_servers.split(",") if s.strip()]
            if isinstance(bootstrap_servers, str)
            else list(bootstrap_servers)
        )
        _check(max_buffer >= 1, "max_buffer", f"must be at least 1, got {max_buffer}")
        _check(linger_ms >= 0, "linger_ms", f"must be 0 or more, got {linger_ms}")
        _check(
            max_events_per_message >= 1,
            "max_events_per_message",
            f"must be at least 1, got {max_events_per_message}",
        )
        _check(
            max_message_bytes >= 1024,
            "max_message_bytes",
            f"must be at least 1024, got {max_message_bytes}",
        )
        _check(retries >= 0, "retries", f"must be 0 or more, got {retries}")
        _check(
            delivery_timeout_s > 0,
            "delivery_timeout_s",
            f"must be positive, got {delivery_timeout_s}",
        )
        _check(
            0 < connect_backoff_s <= connect_backoff_max_s,
            "connect_backoff_s",
            "must be positive and at most connect_backoff_max_s, got "
            f"{connect_backoff_s} and {connect_backoff_max_s}",
        )
        _check(log_interval_s >= 0, "log_interval_s", f"must be 0 or more, got {log_interval_s}")
        if compression_type is not None:
            # Found now, not by the background thread's every connection attempt.
            module = _COMPRESSION_MODULES.get(compression_type)
            _check(
                module is not None,
                "compression_type",
                f"must be one of {sorted(_COMPRESSION_MODULES)}, got {compression_type!r}",
            )
            _check(
                module == "" or importlib.util.find_spec(str(module)) is not None,
                "compression_type",
                f"{compression_type} needs the Python package {module!r}, which is not installed",
            )
        kafka = _kafka_config(
            bootstrap_servers=servers,
            topics=[topic],
            labels_topic=labels_topic,
            client_id=client_id,
            security_protocol=security_protocol,
            sasl_mechanism=sasl_mechanism,
            sasl_plain_username=sasl_plain_username,
            sasl_plain_password=(
                None if sasl_plain_password is None else SecretStr(sasl_plain_password)
            ),
            ssl_cafile=ssl_cafile,
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
            ssl_check_hostname=ssl_check_hostname,
        )
        self._topic = topic
        self._labels_topic = labels_topic
        self._model = model
        self._model_version = model_version
        self._max_message_bytes = max_message_bytes
        self._clock = clock
        self._closed = False
        # Unique across processes (a random prefix) and cheap per event (a counter).
        self._id_prefix = uuid.uuid4().hex[:16] + "-"
        self._ids = itertools.count()
        self._buffer = EventBuffer(max_buffer, wake_at=max_events_per_message * 4)
        self._registry = registry
        self.collector = register_collector(registry, self.stats, topic)
        """The Prometheus collector registered on ``registry`` (None without one); ``close``
        unregisters it, so a new publisher can take its place."""
        settings = _producer_settings(
            kafka,
            acks=acks,
            retries=retries,
            linger_ms=linger_ms,
            compression_type=compression_type,
            delivery_timeout_s=delivery_timeout_s,
            max_message_bytes=max_message_bytes,
            reconnect_backoff_max_ms=max(100, int(connect_backoff_max_s * 1000)),
        )

        def connect() -> Any:
            return build_client(KafkaProducer, settings)

        self._sender = Sender(
            self._buffer,
            SenderSettings(
                topic=topic,
                labels_topic=labels_topic,
                linger_s=linger_ms / 1000,
                max_events_per_message=max_events_per_message,
                max_message_bytes=max_message_bytes,
                connect_backoff_s=connect_backoff_s,
                connect_backoff_max_s=connect_backoff_max_s,
                log_interval_s=log_interval_s,
            ),
            connect,
        )
        self._sender.start()

    # ------------------------------------------------------------------ the request path

    def publish(
        self,
        features: Mapping[str, Any],
        prediction: Any = None,
        *,
        id: EventId | None = None,
        ts: Timestamp | None = None,
        model_version: str | None = None,
        key: str | bytes | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        """Queue one inference event; return its id (generated unless given).

        ``ts`` defaults to now (epoch seconds); ``model_version`` to the publisher's;
        ``key`` is the Kafka key (pass the segment value to keep a segment on one
        partition); ``extra`` adds top-level fields (other segment paths). Never raises
        and never waits: an event that cannot be kept is dropped and counted.
        """
        if id is None:
            event_id: EventId = f"{self._id_prefix}{next(self._ids):x}"
        else:
            event_id = id
            if (problem := id_problem(id)) is not None:
                return self._invalid(str(id), problem)
        if ts is None:
            ts = self._clock()
        elif (problem := ts_problem(ts)) is not None:
            return self._invalid(str(event_id), problem)
        if type(features) is not dict:
            if (problem := features_problem(features)) is not None:
                return self._invalid(str(event_id), problem)
            features = dict(features)
        event: dict[str, Any] = {"id": event_id, "ts": ts}
        if self._model is not None:
            event["model"] = self._model
        version = self._model_version if model_version is None else model_version
        if version is not None:
            event["model_version"] = version
        event["features"] = features
        event["prediction"] = prediction
        if key is not None and (problem := key_problem(key)) is not None:
            return self._invalid(str(event_id), problem)
        if extra:
            clash = RESERVED_FIELDS.intersection(extra)
            if clash:
                return self._invalid(str(event_id), f"extra sets the fields {sorted(clash)}")
            event.update(extra)
        self._offer(False, key, event)
        return str(event_id)

    def publish_label(self, id: EventId, label: Any, *, ts: Timestamp | None = None) -> None:
        """Queue the ground truth of the event ``id`` on the labels topic; never raises for
        the broker's sake (a publisher without ``labels_topic`` raises ``ConfigError``)."""
        if self._labels_topic is None:
            raise ConfigError("labels_topic", "publish_label needs a labels_topic")
        if ts is None:
            ts = self._clock()
        problem = id_problem(id) or ts_problem(ts) or label_problem(label)
        if problem is not None:
            self._invalid(str(id), problem)
            return
        self._offer(True, None, {"id": id, "ts": ts, "label": label})

    def _invalid(self, event_id: str, problem: str) -> str:
        """Count an event driftd would refuse (which would take its batch-mates with it)."""
        self._buffer.drop("invalid", problem)
        return event_id

    def _offer(self, is_label: bool, key: str | bytes | None, event: dict[str, Any]) -> None:
        if self._closed:
            self._buffer.drop("closed")
            return
        try:
            payload = orjson.dumps(event, option=_JSON_OPTIONS)
        except (TypeError, orjson.JSONEncodeError) as exc:
            self._buffer.drop("serialise", str(exc))
            return
        if len(payload) > self._max_message_bytes:
            limit = self._max_message_bytes
            self._buffer.drop("too_large", f"{len(payload)} bytes, over max_message_bytes={limit}")
            return
        raw_key = key.encode() if isinstance(key, str) else key
        self._buffer.offer(Item(is_label, raw_key, payload))

    # ------------------------------------------------------------------ lifecycle

    def stats(self) -> PublisherStats:
        """The counts so far: published, delivered, dropped by reason, pending."""
        return self._buffer.counts.snapshot()

    @property
    def connected(self) -> bool:
        """Whether the background thread holds a connected producer."""
        return self._sender.connected

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every pending event is acknowledged or failed, at most ``timeout``
        seconds; return whether nothing is pending any more."""
        self._sender.request_flush(timeout)
        return self._buffer.wait_settled(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Stop taking events, deliver what is pending within ``timeout`` seconds, and
        count what is left as ``unsent_at_close``. Idempotent."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + max(0.0, timeout)
        self.flush(timeout)
        self._sender.stop(max(0.0, deadline - time.monotonic()))
        left = self._buffer.abandon()
        if left:
            log.warning("publisher_closed_with_unsent", topic=self._topic, unsent=left)
        if self._registry is not None and self.collector is not None:
            self._registry.unregister(self.collector)
        stats = self.stats()
        log.info(
            "publisher_closed",
            topic=self._topic,
            published=stats.published,
            delivered=stats.delivered,
            dropped=stats.dropped_total,
        )

    def __enter__(self) -> EventPublisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _kafka_config(**values: Any) -> KafkaConfig:
    """The connection settings, validated by driftd's own Kafka section."""
    try:
        return KafkaConfig(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "kafka"
        key = "topic" if key.startswith("topics") else key
        raise ConfigError(key, first["msg"]) from None


def _producer_settings(
    kafka: KafkaConfig,
    *,
    acks: Literal[0, 1, "all"],
    retries: int,
    linger_ms: float,
    compression_type: str | None,
    delivery_timeout_s: float,
    max_message_bytes: int,
    reconnect_backoff_max_ms: int,
) -> dict[str, Any]:
    """kafka-python producer settings (they include the SASL secret: never log them)."""
    settings = connection_settings(kafka, _CONNECT_TIMEOUT_S)
    delivery_ms = max(1_000, int(delivery_timeout_s * 1000))
    settings.update(
        acks=acks,
        retries=retries,
        # At most once: no retry may write a record twice, so no idempotence bookkeeping
        # (which would also make one refused batch fatal to the whole producer).
        enable_idempotence=False,
        linger_ms=int(linger_ms),
        batch_size=max(16_384, max_message_bytes + 1024),
        max_request_size=max_message_bytes + 64 * 1024,
        compression_type=compression_type,
        # The sender thread must not hang on a full producer buffer: it drops instead.
        max_block_ms=1_000,
        # kafka-python wants linger + request timeout to fit in the delivery timeout.
        request_timeout_ms=max(500, min(30_000, delivery_ms - int(linger_ms) - 1)),
        delivery_timeout_ms=delivery_ms,
        # A broker back from an outage is found within seconds, not kafka-python's 30 s.
        reconnect_backoff_max_ms=reconnect_backoff_max_ms,
        # Its per-record sensor bookkeeping costs throughput and nobody reads it.
        metrics_enabled=False,
    )
    return settings
