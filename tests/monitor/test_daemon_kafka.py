"""The daemon end to end against a real Apache Kafka broker."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import orjson
import pytest
from kafka import KafkaAdminClient
from prometheus_client import CollectorRegistry

from monitor.app import Daemon
from monitor.config import Settings
from monitor.ingest.demo_stream import DemoStream
from monitor.wiring import build_daemon
from tests.kafka_broker import (
    consume_all,
    create_topic,
    produce,
    unique_topic,
)

pytestmark = pytest.mark.integration

POISON = [b"{not json", b"", b'{"id": "x", "ts": "yesterday", "features": {}}', b"[1, 2]"]


@dataclass
class Run:
    """What one daemon run over a topic left behind."""

    daemon: Daemon
    registry: CollectorRegistry
    topic: str
    dead_letter_topic: str
    group: str
    produced: int


def _run_daemon(bootstrap: str, events: int, feature_shift_at: int, poison: bool) -> Run:
    topic, dlq = unique_topic("driftd-in"), unique_topic("driftd-dlq")
    create_topic(bootstrap, topic, partitions=2)
    create_topic(bootstrap, dlq, partitions=1)
    stream = DemoStream(feature_shift_at=feature_shift_at, prediction_shift_at=10**9)
    now = time.time()
    stream.start_ts = now - events / stream.rate
    messages = [orjson.dumps(e) for e in stream.next_batch(events).events()]
    if poison:
        for i, bad in enumerate(POISON):
            messages.insert(1_000 + i * 7_000, bad)
    half = len(messages) // 2
    produce(bootstrap, topic, messages[:half], partition=0)
    produce(bootstrap, topic, messages[half:], partition=1)

    group = unique_topic("driftd-group")
    settings = Settings(
        model="credit-risk",
        kafka={  # type: ignore[arg-type]
            "bootstrap_servers": [bootstrap],
            "topics": [topic],
            "group_id": group,
            "dead_letter_topic": dlq,
            "max_poll_records": 2_000,
            "poll_timeout_ms": 200,
        },
        schema={"segment_by": ["features.region"]},  # type: ignore[arg-type]
        reference={"warmup_events": 6_000},  # type: ignore[arg-type]
        windows={"size_events": 2_000, "min_samples": 500},  # type: ignore[arg-type]
        metrics={"port": 0},  # type: ignore[arg-type]
        checkpoint={"store": "none"},  # type: ignore[arg-type]
    )
    registry = CollectorRegistry()
    daemon = build_daemon(settings, registry=registry)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while daemon.stats.records < len(messages) and time.monotonic() < deadline:
        time.sleep(0.2)
    daemon.should_exit.set()
    thread.join(timeout=60)
    assert not thread.is_alive()
    return Run(daemon, registry, topic, dlq, group, len(messages))


def _committed(bootstrap: str, group: str) -> dict[int, int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets({group: None})
    finally:
        admin.close()
    per_group = offsets.get(group, offsets) if isinstance(offsets, dict) else offsets
    return {tp.partition: meta.offset for tp, meta in per_group.items()}


def test_injected_shift_fires_for_the_drifting_segment_only(kafka_bootstrap: str) -> None:
    """A feature shift in 'west' fires west alerts; poison goes to the DLQ; offsets commit."""
    run = _run_daemon(kafka_bootstrap, events=40_000, feature_shift_at=20_000, poison=True)
    stats = run.daemon.stats
    assert stats.records == run.produced
    assert stats.rejected == len(POISON)
    firing = [t for t in stats.transitions if t.endswith(":firing")]
    assert firing and all("/west/" in t for t in firing)
    assert any("/west/income/" in t for t in firing)

    dead = consume_all(kafka_bootstrap, run.dead_letter_topic)
    assert sorted(r.value or b"" for r in dead) == sorted(POISON)
    headers = dict(dead[0].headers)
    assert {"driftd-error", "driftd-original-topic", "driftd-original-offset"} <= set(headers)
    assert headers["driftd-original-topic"] == run.topic.encode()

    half = run.produced // 2
    assert _committed(kafka_bootstrap, run.group) == {0: half, 1: run.produced - half}
    consumed = run.registry.get_sample_value(
        "driftd_events_consumed_total", {"model": "credit-risk"}
    )
    assert consumed == run.produced - len(POISON)
    score = run.registry.get_sample_value(
        "driftd_drift_score",
        {"model": "credit-risk", "segment": "west", "feature": "income", "method": "psi"},
    )
    assert score is not None and score > 0.25


def test_clean_stream_stays_quiet(kafka_bootstrap: str) -> None:
    """Without an injected shift no alert fires and nothing is dead-lettered."""
    run = _run_daemon(kafka_bootstrap, events=30_000, feature_shift_at=10**9, poison=False)
    assert run.daemon.stats.records == run.produced
    assert run.daemon.stats.windows > 5
    assert run.daemon.stats.transitions == []
    assert consume_all(kafka_bootstrap, run.dead_letter_topic) == []
