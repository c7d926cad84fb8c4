"""The relabel queue on a real Kafka topic: keyed by event id, read back, deduplicated."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry

from detectors.profile import build_profile
from monitor.config import KafkaConfig, Settings
from monitor.emit.relabel import RelabelQueue
from monitor.engine.labels.monitor import LabelOutcome
from monitor.engine.labels.pair_quality import RelabelCandidate
from monitor.engine.outcome import BatchOutcome
from monitor.engine.reference.profile_file import write_reference
from monitor.kafka.keyed_topic import KeyedTopic
from monitor.wiring import build_daemon
from tests.kafka_broker import consume_all, create_topic, unique_topic
from tests.monitor.labels.test_label_noise_daemon import performance

pytestmark = pytest.mark.integration


def _queue(bootstrap: str, topic: str, registry: CollectorRegistry) -> RelabelQueue:
    cfg = Settings(labels={"relabel": {"enabled": True, "topic": topic}}).labels.relabel  # type: ignore[arg-type]
    sink = KeyedTopic(
        KafkaConfig(bootstrap_servers=[bootstrap]),
        topic,
        timeout_s=cfg.timeout_s,
        keep=cfg.dedup_ids,
    )
    return RelabelQueue(None, "m", cfg, registry, sink=sink)


def test_tasks_go_to_the_topic_once_per_event_across_a_restart(kafka_bootstrap: str) -> None:
    """Tasks keyed by id reach the topic; a restarted queue reads the ids back, skips them."""
    topic = unique_topic("driftd-relabel")
    create_topic(kafka_bootstrap, topic, partitions=2)
    features = {"amount": 12.5, "country": "fr"}
    first = [RelabelCandidate("us", f"e{i}", 0.9, 0, 0.8, features) for i in range(3)]
    registry = CollectorRegistry()
    queue = _queue(kafka_bootstrap, topic, registry)
    assert queue.write(first) == 3
    assert isinstance(queue.sink, KeyedTopic)
    queue.sink.close()
    again = _queue(kafka_bootstrap, topic, CollectorRegistry())
    more = [*first, RelabelCandidate("us", "e3", 0.1, 1, 0.8, None, "restart")]
    assert again.write(more) == 1 and again.dropped["duplicate"] == 3
    assert isinstance(again.sink, KeyedTopic)
    again.sink.close()
    records = consume_all(kafka_bootstrap, topic)
    assert sorted(r.key for r in records if r.key) == [b"e0", b"e1", b"e2", b"e3"]
    for record in records:
        assert record.value is not None
        task = orjson.loads(record.value)
        assert record.key == task["data"]["event_id"].encode()
        if record.key != b"e3":
            assert task["data"] | features == task["data"]  # the features are in the data
    assert again.without_features["restart"] == 1
    assert registry.get_sample_value("driftd_relabel_tasks_total", {"model": "m"}) == 3.0


def test_build_daemon_sends_the_tasks_of_a_batch_to_the_topic(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """With labels.relabel.topic the daemon's batch callback produces the batch's tasks."""
    topic = unique_topic("driftd-relabel")
    create_topic(kafka_bootstrap, topic)
    rng = np.random.default_rng(0)
    profile = build_profile({"x": rng.normal(size=2_000)})
    write_reference(replace(profile, performance=performance(), version=""), tmp_path / "r.json")
    cfg = Settings(
        model="m",
        kafka={"bootstrap_servers": [kafka_bootstrap]},  # type: ignore[arg-type]
        reference={"path": tmp_path / "r.json"},  # type: ignore[arg-type]
        labels={"enabled": True, "relabel": {"enabled": True, "topic": topic}},  # type: ignore[arg-type]
    )
    registry = CollectorRegistry()
    daemon = build_daemon(
        cfg, source_kind="demo", registry=registry, serve_metrics=False, demo_events=10
    )
    assert daemon.on_batch is not None
    candidate = RelabelCandidate("us", "e1", 0.95, 0, 0.9, {"x": 1.5})
    daemon.on_batch(BatchOutcome(1, 1, [], None, [], labels=LabelOutcome(relabel=[candidate])))
    (record,) = consume_all(kafka_bootstrap, topic)
    assert record.key == b"e1" and record.value is not None
    assert orjson.loads(record.value)["data"]["x"] == 1.5
    assert registry.get_sample_value("driftd_relabel_queue_tasks", {"model": "m"}) == 1.0
