"""The Kafka source's own health at scrape time: failures by kind and the read-position lag.

``driftd_consumer_lag`` (from committed offsets) and ``driftd_seconds_since_last_poll``
are exported by ``DriftCollector`` for every source; what only a Kafka consumer has
lives here, so that a broker outage shows in metrics and not only in logs.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.ingest.kafka.choice import AnyKafkaSource
from monitor.ingest.kafka.dead_letter import TruncatedDeadLetters
from monitor.ingest.kafka.member import KAFKA_ERROR_KINDS


class KafkaHealthCollector(Collector):
    """``driftd_kafka_errors_total{kind}``, ``driftd_consumer_read_lag{topic,partition}``
    and the group membership: ``driftd_kafka_group_stable``,
    ``driftd_kafka_assigned_partitions`` and ``driftd_kafka_rebalances_total`` (by ``group``).

    Every kind of ``KAFKA_ERROR_KINDS`` is exported from the start, at 0, so that
    ``rate()`` and ``increase()`` see the first failure instead of a new series.
    """

    def __init__(self, source: AnyKafkaSource) -> None:
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
        stable = GaugeMetricFamily(
            "driftd_kafka_group_stable",
            "1 while this member has joined its consumer group and holds an assignment, "
            "0 while it is unjoined or rebalancing (it then monitors nothing).",
            labels=["group"],
        )
        assigned = GaugeMetricFamily(
            "driftd_kafka_assigned_partitions",
            "Partitions this member owns now (0 while not in the group); the sum over "
            "the replicas of a group is what is monitored.",
            labels=["group"],
        )
        rebalances = CounterMetricFamily(
            "driftd_kafka_rebalances",
            "Consumer-group generations this member has joined since start (each rebalance "
            "adds one).",
            labels=["group"],
        )
        if with_samples:
            membership = self.source.membership
            group = [membership.group_id]
            stable.add_metric(group, 1.0 if membership.stable else 0.0)
            assigned.add_metric(group, membership.partitions)
            rebalances.add_metric(group, membership.generations_joined)
            counts = self.source.kafka_errors
            for kind in KAFKA_ERROR_KINDS:
                errors.add_metric([kind], counts[kind])
            for (topic, partition), value in sorted(self.source.read_lag().items()):
                read_lag.add_metric([topic, str(partition)], value)
        return [errors, read_lag, stable, assigned, rebalances]


def kafka_collectors(source: AnyKafkaSource, model: str) -> list[Collector]:
    """Every collector of a Kafka source's own health, to register beside the daemon's."""
    return [
        KafkaHealthCollector(source),
        TruncatedDeadLetters(lambda: source.dead_letter_truncated, model),
    ]
