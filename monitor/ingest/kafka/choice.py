"""Which Kafka client the source runs on: ``kafka.client``, decided here and nowhere else.

``kafka-python`` (the default and the reference) gives a
:class:`~monitor.ingest.kafka.source.KafkaSource`; ``confluent`` gives a
:class:`~monitor.ingest.kafka.confluent_source.ConfluentSource` on librdkafka (the
``fast`` extra; ``monitor.config`` refuses the key when the package is missing). Both
have the same methods, metrics and guarantees.
"""

from __future__ import annotations

from monitor.config import KafkaConfig
from monitor.ingest.kafka.confluent_source import ConfluentSource
from monitor.ingest.kafka.source import KafkaSource
from monitor.ingest.source import PartitionsCallback

__all__ = ["AnyKafkaSource", "kafka_source"]

AnyKafkaSource = KafkaSource | ConfluentSource
"""A Kafka source on either client."""


def kafka_source(
    kafka: KafkaConfig,
    on_assign: PartitionsCallback | None = None,
    on_revoke: PartitionsCallback | None = None,
    *,
    commit_timeout_s: float = 10.0,
    dead_letter_timeout_s: float = 30.0,
    connect_timeout_s: float = 10.0,
    max_poll_interval_s: float | None = None,
) -> AnyKafkaSource:
    """The source on the client ``kafka.client`` names (nothing connects before a poll)."""
    kind = ConfluentSource if kafka.client == "confluent" else KafkaSource
    return kind(
        kafka,
        on_assign,
        on_revoke,
        commit_timeout_s=commit_timeout_s,
        dead_letter_timeout_s=dead_letter_timeout_s,
        connect_timeout_s=connect_timeout_s,
        max_poll_interval_s=max_poll_interval_s,
    )
