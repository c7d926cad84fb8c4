"""confluent-kafka (librdkafka) clients built from the same ``kafka.*`` settings.

``kafka.client: confluent`` (the ``fast`` extra) swaps kafka-python for librdkafka in the
source: its group consumer and its dead-letter producer. This module maps the validated
settings onto librdkafka's property names (:func:`connection_config`,
:func:`consumer_config`, :func:`dead_letter_producer_config`), with the same meaning as
``monitor.kafka.clients`` gives them for kafka-python:

* TLS and SASL: ``security_protocol`` -> ``security.protocol``, ``sasl_mechanism`` ->
  ``sasl.mechanism``, ``sasl_plain_username`` / ``sasl_plain_password`` ->
  ``sasl.username`` / ``sasl.password``, ``ssl_cafile`` / ``ssl_certfile`` /
  ``ssl_keyfile`` -> ``ssl.ca.location`` / ``ssl.certificate.location`` /
  ``ssl.key.location``, ``ssl_check_hostname`` ->
  ``ssl.endpoint.identification.algorithm`` (``https`` or ``none``); without
  ``ssl_cafile``, ``ssl.ca.location`` is ``probe`` (the system's CAs);
* the consumer never commits on its own: ``enable.auto.commit`` and
  ``enable.auto.offset.store`` are off, and only explicit offsets are committed.

librdkafka logs to stderr unless told otherwise; every client built here hands its log
lines and its client-level errors to structlog instead (:class:`StructlogBridge`),
served on the thread that polls the client.

``confluent_kafka`` is imported on first use only, so that kafka-python users never load
it and a missing package is reported by ``monitor.config`` (``kafka.client``), not here.

Secrets. The SASL password is in the returned configs: never log them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import structlog

from monitor.config import KafkaConfig

if TYPE_CHECKING:
    from confluent_kafka import KafkaError

__all__ = [
    "StructlogBridge",
    "connection_config",
    "consumer_config",
    "dead_letter_producer_config",
]

log = structlog.get_logger()

_ONE_MIB = 1024 * 1024
_DEAD_LETTER_HEADROOM_BYTES = 64 * 1024


def _method(level: int) -> str:
    """structlog's method for a ``logging`` level (confluent-kafka maps librdkafka's
    syslog levels onto those before calling the logger)."""
    if level >= logging.ERROR:
        return "error"
    if level >= logging.WARNING:
        return "warning"
    return "info" if level >= logging.INFO else "debug"


class StructlogBridge:
    """librdkafka's ``logger`` and ``error_cb``: its lines become structlog events.

    Log lines become ``librdkafka_log`` (warning and worse at warning, notices at info,
    debug at debug); client-level errors (all brokers down, authentication failed...)
    become ``kafka_client_error`` and are kept in ``last_error`` for health reporting.
    """

    def __init__(self, client: str) -> None:
        self._client = client
        self.last_error: str | None = None
        """The last client-level error, as ``NAME: text`` (kept after recovery)."""

    def log(self, level: int, fmt: str, *args: Any) -> None:
        """A librdkafka log line (called as ``logging.Logger.log`` would be)."""
        method = _method(level)
        text = fmt % args if args else fmt
        getattr(log, method)("librdkafka_log", client=self._client, line=text)

    def error(self, error: KafkaError) -> None:
        """A client-level error: logged; librdkafka retries on its own unless fatal."""
        self.last_error = f"{error.name()}: {error.str()}"
        method = "error" if error.fatal() else "warning"
        getattr(log, method)(
            "kafka_client_error",
            client=self._client,
            error=self.last_error,
            retriable=bool(error.retriable()),
        )

    def config(self) -> dict[str, Any]:
        """The properties that route this client's logs and errors here."""
        # A logging.Logger in name only: confluent-kafka calls ``logger.log(level, ...)``.
        logger: logging.Logger = self  # type: ignore[assignment]
        return {"logger": logger, "error_cb": self.error}


def connection_config(kafka: KafkaConfig, connect_timeout_s: float) -> dict[str, Any]:
    """How any librdkafka client reaches the brokers: servers, client id, TLS and SASL
    (includes the secret: never log)."""
    timeout_ms = max(1, int(connect_timeout_s * 1000))
    config: dict[str, Any] = {
        "bootstrap.servers": ",".join(kafka.bootstrap_servers),
        "client.id": kafka.client_id,
        "security.protocol": kafka.security_protocol.lower(),
        "socket.connection.setup.timeout.ms": max(1000, timeout_ms),
        "reconnect.backoff.max.ms": kafka.retry_backoff_max_ms,
        "reconnect.backoff.ms": min(100, kafka.retry_backoff_max_ms),
    }
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        config["ssl.endpoint.identification.algorithm"] = (
            "https" if kafka.ssl_check_hostname else "none"
        )
        # Without a CA file, the system's CAs (as kafka-python's default context): the
        # OpenSSL inside the wheel does not know where this system keeps them.
        config["ssl.ca.location"] = "probe"
    if kafka.sasl_mechanism is not None:
        config["sasl.mechanism"] = kafka.sasl_mechanism
        config["sasl.username"] = kafka.sasl_plain_username
        if kafka.sasl_plain_password is not None:
            config["sasl.password"] = kafka.sasl_plain_password.get_secret_value()
    for key, name in (
        ("ssl_cafile", "ssl.ca.location"),
        ("ssl_certfile", "ssl.certificate.location"),
        ("ssl_keyfile", "ssl.key.location"),
    ):
        path = getattr(kafka, key)
        if path is not None:
            config[name] = str(path)
    return config


def consumer_config(
    kafka: KafkaConfig, connect_timeout_s: float, max_poll_interval_ms: int | None = None
) -> dict[str, Any]:
    """The group consumer's librdkafka properties (includes the secret: never log).

    Offsets are stored and committed only by the source, explicitly; a read-committed
    consumer, as the kafka-python one is.
    """
    poll_interval_ms = max_poll_interval_ms or kafka.max_poll_interval_ms
    session_ms = min(kafka.session_timeout_ms, poll_interval_ms)
    config = connection_config(kafka, connect_timeout_s)
    config.update(
        {
            "group.id": kafka.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": kafka.auto_offset_reset,
            "isolation.level": "read_committed",
            "fetch.max.bytes": kafka.fetch_max_bytes,
            "max.partition.fetch.bytes": kafka.max_partition_fetch_bytes,
            # As kafka-python does: a response may hold fetch.max.bytes plus one batch.
            "receive.message.max.bytes": max(
                kafka.receive_message_max_bytes,
                kafka.fetch_max_bytes + kafka.max_partition_fetch_bytes + 512,
            ),
            "max.poll.interval.ms": poll_interval_ms,
            "session.timeout.ms": session_ms,
            "heartbeat.interval.ms": min(kafka.heartbeat_interval_ms, max(1, session_ms // 3)),
            # The eager protocol, as kafka-python's: every partition is revoked (and so
            # saved) before any is reassigned.
            "partition.assignment.strategy": "range,roundrobin",
            # Subscribed topics appear when created, as with kafka-python.
            "topic.metadata.refresh.interval.ms": 5_000,
        }
    )
    return config


def dead_letter_producer_config(
    kafka: KafkaConfig, connect_timeout_s: float, ack_timeout_s: float
) -> dict[str, Any]:
    """The dead-letter producer's properties: acks from all replicas within
    ``ack_timeout_s``, one request in flight (includes the secret: never log)."""
    request_timeout_ms = max(1000, int(ack_timeout_s * 500))
    config = connection_config(kafka, connect_timeout_s)
    config.update(
        {
            "acks": "all",
            "linger.ms": 5,
            # Not idempotent, as with kafka-python: one refused record must not make the
            # producer fatal, and a duplicate dead letter is harmless.
            "enable.idempotence": False,
            "max.in.flight.requests.per.connection": 1,
            "request.timeout.ms": request_timeout_ms,
            "message.timeout.ms": max(request_timeout_ms + 5, int(ack_timeout_s * 1000)),
            "message.max.bytes": max(_ONE_MIB, kafka.max_partition_fetch_bytes)
            + _DEAD_LETTER_HEADROOM_BYTES,
        }
    )
    return config
