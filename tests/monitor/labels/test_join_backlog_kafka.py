"""A pre-filled backlog of predictions and labels, read from a real broker, joins fully.

Both topics are filled before the daemon starts, so the consumer reads them at its
own pace: one topic runs thousands of events ahead of the other in event time. Each
label comes 5 s (event time) after its prediction and the TTL is 30 s, so a join
whose watermark followed the side read ahead expired most of the other side before
its partner arrived (issue 13, finding 4). With the watermark the lower of the two
sides' event times, every pair joins, as it does live.
"""

from __future__ import annotations

import threading
import time

import orjson
import pytest
from prometheus_client import CollectorRegistry

from monitor.config import Settings
from monitor.wiring import build_daemon
from tests.kafka_broker import create_topic, produce, unique_topic

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N_EVENTS = 20_000
SPACING_S = 0.5
LABEL_DELAY_S = 5.0
TTL_S = 30.0


def _messages(start_ts: float) -> tuple[list[bytes], list[bytes]]:
    events: list[bytes] = []
    labels: list[bytes] = []
    for i in range(N_EVENTS):
        ts = start_ts + i * SPACING_S
        events.append(
            orjson.dumps(
                {
                    "id": f"e{i}",
                    "ts": ts,
                    "model_version": "v1",
                    "features": {"x": float(i % 89), "y": float(i % 13)},
                    "prediction": (i % 10) / 10,
                }
            )
        )
        labels.append(orjson.dumps({"id": f"e{i}", "ts": ts + LABEL_DELAY_S, "label": i % 2}))
    return events, labels


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, {"model": "backlog", **labels})
    return 0.0 if value is None else value


def test_a_prefilled_backlog_of_both_topics_joins_every_pair(
    kafka_bootstrap: str,
) -> None:
    """20k predictions and 20k labels already on their topics: all 20k pairs join, none expire."""
    topic, label_topic = unique_topic("driftd-backlog"), unique_topic("driftd-backlog-labels")
    create_topic(kafka_bootstrap, topic)
    create_topic(kafka_bootstrap, label_topic)
    events, labels = _messages(time.time() - 4 * N_EVENTS * SPACING_S)
    produce(kafka_bootstrap, topic, events)
    produce(kafka_bootstrap, label_topic, labels)

    settings = Settings(
        model="backlog",
        kafka={  # type: ignore[arg-type]
            "bootstrap_servers": [kafka_bootstrap],
            "topics": [topic],
            "labels_topic": label_topic,
            "group_id": unique_topic("driftd-backlog-group"),
            "dead_letter_topic": None,
            "max_poll_records": 1_000,
            "poll_timeout_ms": 200,
        },
        reference={"warmup_events": 2_000},  # type: ignore[arg-type]
        windows={"size_events": 2_000, "min_samples": 200},  # type: ignore[arg-type]
        labels={"enabled": True, "window_pairs": 500, "ttl_seconds": TTL_S},  # type: ignore[arg-type]
        checkpoint={"store": "none"},  # type: ignore[arg-type]
        metrics={"port": 0},  # type: ignore[arg-type]
    )
    registry = CollectorRegistry()
    daemon = build_daemon(settings, registry=registry)

    def settled() -> float:
        matched = _sample(registry, "driftd_label_join_matched_total")
        expired = sum(
            _sample(registry, "driftd_label_join_expired_total", side=side)
            for side in ("prediction", "label")
        )
        return matched + expired

    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and (
            _sample(registry, "driftd_labels_consumed_total") < N_EVENTS
            or _sample(registry, "driftd_events_consumed_total") < N_EVENTS
            or settled() < N_EVENTS
        ):
            time.sleep(0.2)
    finally:
        daemon.should_exit.set()
        thread.join(timeout=60)

    assert _sample(registry, "driftd_labels_consumed_total") == N_EVENTS
    for side in ("prediction", "label"):
        assert _sample(registry, "driftd_label_join_expired_total", side=side) == 0, side
        assert _sample(registry, "driftd_label_join_evicted_total", side=side) == 0, side
    assert _sample(registry, "driftd_label_join_matched_total") == N_EVENTS
