"""The Kafka source's own health at scrape time: failures by kind and the read-position lag.

``driftd_consumer_lag`` (from committed offsets) and ``driftd_seconds_since_last_poll``
are exported by ``DriftCollector`` for every source; what only a Kafka consumer has
lives here, so that a broker outage shows in metrics and not only in logs.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.ingest.kafka.dead_letter import TruncatedDeadLetters
from monitor.ingest.kafka.source import KAFKA_ERROR_KINDS, KafkaSource


class KafkaHealthCollector(Collector):
    """``driftd_kafka_errors_total{kind}`` and ``driftd_consumer_read_lag{topic,partition}``.

    Every kind of ``KAFKA_ERROR_KINDS`` is exported from the start, at 0, so that
    ``rate()`` and ``increase()`` see the first failure instead of a new series.
    """

    def __init__(self, source: KafkaSource) -> None:
        self.source = source

    def describe(self) -> Iterable[Metric]:
        """The families, without samples (lets the registry check for name clashes)."""
        return self._families(with_samples=False)

    def collect(self) -> Iterable[Metric]:
        """The families with the source's current counts and lag."""
        return self._families(with_samples=True)

    def _families(self, *, with_samples: bool) -> list[Metric]:
        errors = CounterMetricFamily(
            "driftd_kafka_errors",
            "Kafka failures by kind: poll (broker unreachable), commit, lag (offset "
            "lookups), rebalance (lost partitions, failed callbacks).",
            labels=["kind"],
        )
        read_lag = GaugeMetricFamily(
            "driftd_consumer_read_lag",
            "Messages between this consumer's read position and the log end offset.",
            labels=["topic", "partition"],
        )
        if with_samples:
            counts = self.source.kafka_errors
            for kind in KAFKA_ERROR_KINDS:
                errors.add_metric([kind], counts[kind])
            for (topic, partition), value in sorted(self.source.read_lag().items()):
                read_lag.add_metric([topic, str(partition)], value)
        return [errors, read_lag]


def kafka_collectors(source: KafkaSource, model: str) -> list[Collector]:
    """Every collector of a Kafka source's own health, to register beside the daemon's."""
    return [
        KafkaHealthCollector(source),
        TruncatedDeadLetters(lambda: source.dead_letter_truncated, model),
    ]
