"""Two replicas in one group: a partition moves mid-stream, and nothing changes.

One daemon reads a 3-partition topic (one segment per partition, as a producer keyed
by segment writes it) alone. The same stream goes to a group of two replicas that
checkpoint per partition to a compacted Kafka topic: replica A starts alone, replica
B joins mid-stream, and the rebalance moves partitions from A to B with their state
(windows, decisions). The union of A's and B's closed windows equals the single
daemon's, window by window and score by score.

The replicas here run on kafka-python; ``test_rebalance_confluent.py`` runs them on
confluent-kafka through :func:`check_partition_move` (in its own module, so that the two
slow runs go to different workers). The single daemon is always the kafka-python
reference.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry

from monitor.config import Settings
from monitor.engine.outcome import BatchOutcome
from monitor.ingest.demo_stream import SEGMENTS, DemoStream
from monitor.ingest.kafka.confluent_source import ConfluentSource
from monitor.ingest.kafka.source import KafkaSource
from monitor.wiring import build_daemon
from tests.kafka_broker import create_topic, produce, unique_topic
from tests.monitor.scenarios import write_reference

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N_EVENTS = 150_000
FIRST_PART = 60_000

Window = tuple[str, float, int, tuple[Any, ...]]


def _messages() -> dict[int, list[bytes]]:
    stream = DemoStream(feature_shift_at=70_000, prediction_shift_at=10**9)
    stream.start_ts = time.time() - N_EVENTS / stream.rate
    by_partition: dict[int, list[bytes]] = defaultdict(list)
    for event in stream.next_batch(N_EVENTS).events():
        by_partition[SEGMENTS.index(event["features"]["region"])].append(orjson.dumps(event))
    return by_partition


def _settings(
    bootstrap: str, topic: str, group: str, reference: Path, store: str, client: str
) -> Settings:
    """Replicas of one group share the group name, and so the checkpoint topic."""
    return Settings(
        model="credit-risk",
        kafka={  # type: ignore[arg-type]
            "client": client,
            "bootstrap_servers": [bootstrap],
            "topics": [topic],
            "group_id": group,
            "dead_letter_topic": None,
            "max_poll_records": 2_000,
            "poll_timeout_ms": 200,
            "commit_interval_ms": 0,
        },
        schema={"segment_by": ["features.region"]},  # type: ignore[arg-type]
        reference={"path": reference},  # type: ignore[arg-type]
        windows={"size_events": 3_000, "min_samples": 500},  # type: ignore[arg-type]
        metrics={"port": 0},  # type: ignore[arg-type]
        checkpoint={  # type: ignore[arg-type]
            "store": store,
            "topic": f"{group}-checkpoints",
            "interval_s": 0.5,
        },
    )


class Replica:
    """A daemon on its own thread, recording every window it closes."""

    def __init__(self, settings: Settings) -> None:
        self.windows: list[Window] = []
        # The CLI's wiring: the source tells the daemon of every rebalance.
        self.daemon = build_daemon(settings, registry=CollectorRegistry(), on_batch=self.record)
        self.thread = threading.Thread(target=self.daemon.run, daemon=True)

    def record(self, outcome: BatchOutcome) -> None:
        """Keep the windows of one batch."""
        r = outcome.results
        if r is None:
            return
        for row, segment in enumerate(r.segments):
            scores = tuple(
                (m, [None if np.isnan(x) else round(x, 12) for x in v[row].tolist()])
                for m, v in sorted(r.scores.items())
            )
            self.windows.append((segment, float(r.window_end_ts[row]), int(r.rows[row]), scores))

    def owned(self) -> list[tuple[str, int]]:
        """The partitions this replica owns now."""
        source = self.daemon.source
        assert isinstance(source, KafkaSource | ConfluentSource)
        return source.assignment()

    def stop(self) -> None:
        """Stop gracefully and wait."""
        self.daemon.should_exit.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()


def _by_segment(windows: list[Window]) -> dict[str, list[Window]]:
    out: dict[str, list[Window]] = defaultdict(list)
    for w in windows:
        if w not in out[w[0]]:
            out[w[0]].append(w)
    return dict(out)


def _wait(what: str, check: Any, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_partition_moved_mid_stream_changes_no_result(
    kafka_bootstrap: str,
    tmp_path: Path,
) -> None:
    """A's windows plus B's equal one daemon's, though partitions moved between them."""
    check_partition_move(kafka_bootstrap, tmp_path, "kafka-python")


def check_partition_move(kafka_bootstrap: str, tmp_path: Path, client: str) -> None:
    """Replicas A and B on ``client`` against one kafka-python daemon (see module doc)."""
    topic = unique_topic("driftd-rebalance")
    create_topic(kafka_bootstrap, topic, partitions=len(SEGMENTS))
    reference = tmp_path / "reference.json"
    write_reference(reference)
    messages = _messages()
    cut = {p: round(len(m) * FIRST_PART / N_EVENTS) for p, m in messages.items()}
    for p, m in messages.items():
        produce(kafka_bootstrap, topic, m[: cut[p]], partition=p, timeout=120)

    group = unique_topic("driftd-rebalance-group")
    a = Replica(_settings(kafka_bootstrap, topic, group, reference, "kafka", client))
    a.thread.start()
    _wait("A to read the first part", lambda: a.daemon.stats.records >= FIRST_PART)
    b = Replica(_settings(kafka_bootstrap, topic, group, reference, "kafka", client))
    b.thread.start()
    try:
        _wait("B to take partitions over", lambda: bool(b.owned()) and len(a.owned()) < 3)
        for p, m in messages.items():
            produce(kafka_bootstrap, topic, m[cut[p] :], partition=p, timeout=120)
        _wait(
            "the group to read everything",
            lambda: a.daemon.stats.records + b.daemon.stats.records >= N_EVENTS,
        )
        time.sleep(1.0)
    finally:
        b.stop()
        a.stop()
    assert b.windows, "B closed no window: no partition moved"

    single_group = unique_topic("driftd-single-group")
    single = Replica(
        _settings(kafka_bootstrap, topic, single_group, reference, "none", "kafka-python")
    )
    single.thread.start()
    try:
        _wait("the single daemon", lambda: single.daemon.stats.records >= N_EVENTS)
        time.sleep(1.0)
    finally:
        single.stop()

    expected = _by_segment(single.windows)
    assert sum(len(w) for w in expected.values()) >= N_EVENTS // 3_000 - 3
    assert _by_segment(a.windows + b.windows) == expected
