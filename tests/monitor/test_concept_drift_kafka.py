"""Concept drift from river's synthetic streams, through real Kafka, caught by ADWIN.

Two segments share one topic. ``drift`` is river's ``ConceptDriftStream`` switching
from SEA concept 0 to SEA concept 3 at a known position; ``control`` stays on SEA
concept 0. The model is SEA concept 0's own rule (``x0 + x1 > 8``), so its error is
the 10% label noise until the change, and about 20% after it in ``drift``. The
features never change: only the delayed labels, joined by id, can show it.

Stated bound: ADWIN (delta 0.002, clock 32) flags the drift within 2,500 joined pairs
of the change (pairs counted per segment, exactly); the control segment, and the
drift segment before the change, never fire.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry
from river.datasets import synth

from monitor.config import Settings
from monitor.engine.outcome import BatchOutcome
from monitor.wiring import build_daemon
from tests.kafka_broker import create_topic, produce, unique_topic

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N_PER_SEGMENT = 16_000
CHANGE_AT = 8_000
BOUND_PAIRS = 2_500


def _stream(drifting: bool) -> list[tuple[dict[int, float], bool]]:
    concept0 = synth.SEA(variant=0, noise=0.1, seed=11 if drifting else 12)
    if not drifting:
        return list(itertools.islice(concept0, N_PER_SEGMENT))
    stream = synth.ConceptDriftStream(
        stream=concept0,
        drift_stream=synth.SEA(variant=3, noise=0.1, seed=13),
        position=CHANGE_AT,
        width=50,  # river's sigmoid needs a width; 50 of 16,000 is abrupt enough
        seed=14,
    )
    return list(itertools.islice(stream, N_PER_SEGMENT))


def _messages(start_ts: float) -> tuple[list[bytes], list[bytes]]:
    events: list[bytes] = []
    labels: list[bytes] = []
    streams = {"drift": _stream(True), "control": _stream(False)}
    for i in range(N_PER_SEGMENT):
        for segment, rows in streams.items():
            x, y = rows[i]
            uid = f"{segment}-{i}"
            ts = start_ts + i * 0.01
            events.append(
                orjson.dumps(
                    {
                        "id": uid,
                        "ts": ts,
                        "model_version": segment,
                        "features": {"x0": x[0], "x1": x[1], "x2": x[2]},
                        "prediction": 1.0 if x[0] + x[1] > 8 else 0.0,
                    }
                )
            )
            labels.append(orjson.dumps({"id": uid, "ts": ts + 3.0, "label": int(y)}))
    return events, labels


def test_adwin_flags_the_concept_change_and_only_it(kafka_bootstrap: str) -> None:
    """Detections land within the bound after the change in 'drift', never in 'control'."""
    topic, label_topic = unique_topic("driftd-sea"), unique_topic("driftd-sea-labels")
    create_topic(kafka_bootstrap, topic)
    create_topic(kafka_bootstrap, label_topic)
    events, labels = _messages(time.time() - 3_600)
    # Labels ride their own topic: some are read before their prediction, some after.
    produce(kafka_bootstrap, topic, events)
    produce(kafka_bootstrap, label_topic, labels)

    settings = Settings(
        model="sea",
        kafka={  # type: ignore[arg-type]
            "bootstrap_servers": [kafka_bootstrap],
            "topics": [topic],
            "labels_topic": label_topic,
            "group_id": unique_topic("driftd-sea-group"),
            "dead_letter_topic": None,
            "max_poll_records": 1_000,
            "poll_timeout_ms": 200,
        },
        reference={"warmup_events": 2_000},  # type: ignore[arg-type]
        windows={"size_events": 2_000, "min_samples": 200},  # type: ignore[arg-type]
        labels={"enabled": True, "window_pairs": 500},  # type: ignore[arg-type]
        # Pairs are counted per segment exactly, from each segment's first event.
        segments={"admit_after_events": 0},  # type: ignore[arg-type]
        metrics={"port": 0},  # type: ignore[arg-type]
        checkpoint={"store": "none"},  # type: ignore[arg-type]
    )
    detections: list[tuple[str, int]] = []

    def record(outcome: BatchOutcome) -> None:
        if outcome.labels is not None:
            detections.extend(outcome.labels.detected_at)

    def matched() -> dict[str, int]:
        labels = daemon.pipeline.labels
        assert labels is not None
        seen = labels._pairs_seen.tolist()
        names = daemon.pipeline.segments.names
        return {names[i]: n for i, n in enumerate(seen) if n}

    registry = CollectorRegistry()
    daemon = build_daemon(settings, registry=registry, on_batch=record)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 180
        while sum(matched().values()) < 2 * N_PER_SEGMENT and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        daemon.should_exit.set()
        thread.join(timeout=60)
    assert matched() == {"drift": N_PER_SEGMENT, "control": N_PER_SEGMENT}

    assert not [d for d in detections if d[0] == "control"], detections
    drift = [at for segment, at in detections if segment == "drift"]
    assert drift, "ADWIN missed the concept change"
    assert all(at >= CHANGE_AT for at in drift), detections  # nothing before the change
    assert drift[0] - CHANGE_AT <= BOUND_PAIRS, detections

    transitions = [t for t in daemon.stats.transitions if t.endswith(":firing")]
    assert "driftd/sea/drift/__error__/adwin:firing" in transitions
    assert not any("/control/" in t for t in transitions)
    accuracy: Any = registry.get_sample_value(
        "driftd_performance", {"model": "sea", "segment": "control", "metric": "accuracy"}
    )
    assert accuracy is not None and 0.85 < accuracy < 0.95  # the 10% label noise
    width = registry.get_sample_value("driftd_adwin_width", {"model": "sea", "segment": "drift"})
    assert width is not None and 0 < width < N_PER_SEGMENT - CHANGE_AT + BOUND_PAIRS
