"""The features in relabel tasks: the bounded store, the tasks, the counted gaps, the sinks."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry

from detectors.label_noise import ConfidentThresholds
from detectors.profile import build_profile
from monitor.app import make_results
from monitor.config import KafkaConfig, Settings
from monitor.emit.relabel import MISSING_REASONS, RelabelQueue
from monitor.engine.labels import relabel_features
from monitor.engine.labels.events import LabelBatch
from monitor.engine.labels.monitor import LabelMonitor
from monitor.engine.labels.pair_quality import RelabelCandidate
from monitor.engine.labels.relabel_features import EventFeatures, RelabelFeatures
from monitor.engine.pipeline import Pipeline
from monitor.ingest.source import Record
from monitor.kafka.keyed_topic import KeyedTopic
from tests.monitor.labels.test_label_noise_daemon import (
    NAMES,
    WINDOW,
    feed,
    performance,
    settings,
    stream,
)


def test_store_keeps_what_could_be_suspicious_bounded_and_evicts_on_join_and_expiry() -> None:
    """Only disputable predictions are kept, at most capacity, oldest out; take and expire."""
    store = RelabelFeatures(ConfidentThresholds(np.array([0.7, 0.8]), 100, 5), 4, 2)
    scores = np.array([0.9, 0.5, 0.95, 0.1, 0.85, 0.05])  # 0.5 can never be suspicious
    batch = EventFeatures(
        ("amount", "prediction"),
        np.c_[np.arange(6.0), [1.0, 2.0, np.nan, 4.0, 5.0, 6.0]],
        {"country": list("abcdef")},
    )
    ids = [f"e{i}" for i in range(6)]
    assert store.keep(ids, scores, np.arange(6.0), batch) == 5
    assert (len(store), store.evicted) == (4, 1)  # e0, the oldest, made room
    taken = store.take(["e0", "e2", "e1", "e2"])
    assert taken.row("e0") is None and taken.row("e1") is None
    # max_features 2: the numeric ones; a feature named like a task key is renamed.
    assert taken.row("e2") == {"amount": 2.0, "feature.prediction": None}
    assert len(store) == 3 and store.missing_reason(0.0) == "store_full"
    assert store.missing_reason(3.5) == "not_captured"
    assert store.expire(4.0) == 1 and len(store) == 2  # e3 (ts 3) went with its prediction
    assert store.take(["e3"]).row("e3") is None
    store.forget()  # a restart
    assert len(store) == 0 and store.missing_reason(5.0) == "restart"
    assert store.keep(["late"], [0.99], [9.0], batch.take([5])) == 1
    assert store.take(["late"]).row("late") == {"amount": 5.0, "feature.prediction": 6.0}


def test_tasks_carry_their_events_features_and_none_is_missing(tmp_path: Path) -> None:
    """With room in the store every task's data holds its own event's features."""
    cfg = settings(tmp_path)
    monitor = LabelMonitor(cfg, None, performance())
    assert monitor.quality is not None
    queue = RelabelQueue(tmp_path / "queue.jsonl", "m", cfg.labels.relabel)
    data = stream(3 * WINDOW)
    for lo in range(0, 3 * WINDOW, 1_000):
        queue.write(feed(monitor, data, lo, lo + 1_000, with_features=True).relabel)
    tasks = [orjson.loads(line) for line in (tmp_path / "queue.jsonl").read_bytes().splitlines()]
    assert tasks and queue.without_features == dict.fromkeys(queue.without_features, 0)
    for task in tasks:
        row = int(task["data"]["event_id"][1:])
        assert task["data"]["amount"] == row and task["data"]["country"] == f"c{row % 7}"
    features = monitor.quality.features
    assert features is not None and features.kept > len(tasks)
    assert len(features) == 0  # every prediction here was joined: none left waiting


def test_tasks_whose_features_were_pushed_out_are_written_and_counted(tmp_path: Path) -> None:
    """A store too small for the label delay: tasks still go out, counted as store_full."""
    cfg = settings(tmp_path, feature_events=100)
    monitor = LabelMonitor(cfg, None, performance())
    queue = RelabelQueue(tmp_path / "queue.jsonl", "m", cfg.labels.relabel)
    data = stream(2 * WINDOW)
    n = 2 * WINDOW
    # All predictions first, then all labels: the store keeps only the newest 100.
    monitor.process(
        (data["ids"], data["segment"], data["score"], data["ts"], None),
        None,
        NAMES,
        EventFeatures(("amount",), np.arange(n, dtype=np.float64)[:, None], {}),
    )
    labels = LabelBatch(data["ids"], data["ts"] + 10.0, data["label"], np.arange(n), [])
    none: tuple[list[str], Any, Any, Any, None] = ([], np.zeros(0, np.int64), [], [], None)
    out = monitor.process(none, labels, NAMES)
    assert out.relabel and queue.write(out.relabel) == len(out.relabel)
    registry = CollectorRegistry()
    registry.register(queue)
    missing = registry.get_sample_value(
        "driftd_relabel_tasks_without_features_total", {"model": "m", "reason": "store_full"}
    )
    bare = [c for c in out.relabel if c.features is None]
    assert bare and missing == len(bare)
    assert all(int(c.event_id[1:]) < n - 100 for c in bare)
    assert MISSING_REASONS == relabel_features.MISSING_REASONS  # the metric's label values


class _Future:
    def __init__(self, ok: bool) -> None:
        self.is_done = True
        self.exception = None if ok else RuntimeError("broker said no")


class _Producer:
    """Acknowledges every record except those whose key is in ``refuse``."""

    def __init__(self, refuse: set[str]) -> None:
        self.refuse = refuse
        self.sent: list[tuple[str, bytes, bytes]] = []

    def send(self, topic: str, key: bytes, value: bytes) -> _Future:
        self.sent.append((topic, key, value))
        return _Future(key.decode() not in self.refuse)

    def flush(self, timeout: float) -> None:
        pass

    def close(self, timeout: float) -> None:
        pass


def test_topic_sink_counts_unacknowledged_tasks_and_forgets_their_ids() -> None:
    """A refused record counts as delivery_failed, its id stays free; then writes back off."""
    cfg = Settings(labels={"relabel": {"topic": "relabel"}}).labels.relabel  # type: ignore[arg-type]
    producer = _Producer({"e1"})
    sink = KeyedTopic(
        KafkaConfig(),
        "relabel",
        timeout_s=1.0,
        keep=10,
        retry_after_s=3_600.0,
        make_producer=lambda: producer,
        make_consumer=lambda: pytest.fail("no read-back in this test"),
    )
    sink.read_back = lambda: (0, ["e0"])  # type: ignore[method-assign]
    queue = RelabelQueue(None, "m", cfg, sink=sink)
    candidates = [RelabelCandidate("us", f"e{i}", 0.9, 0, 0.8) for i in range(3)]
    assert queue.write(candidates) == 1  # e0 read back, e1 refused, e2 taken
    assert queue.dropped["duplicate"] == 1 and queue.dropped["delivery_failed"] == 1
    assert [(t, k) for t, k, _ in producer.sent] == [("relabel", b"e1"), ("relabel", b"e2")]
    assert orjson.loads(producer.sent[1][2])["data"]["event_id"] == "e2"
    producer.refuse.clear()
    assert queue.write(candidates) == 0  # backing off: e1 refused again without a send
    assert queue.dropped["delivery_failed"] == 2 and len(producer.sent) == 2


def test_the_pipeline_hands_the_decoded_features_to_the_tasks(tmp_path: Path) -> None:
    """Events and labels through Pipeline.process: candidates carry the events' values."""
    rng = np.random.default_rng(0)
    profile = build_profile(
        {
            "amount": rng.normal(size=1_000),
            "country": rng.choice(["fr", "de"], 1_000),
        },
        categorical=["country"],
    )
    profile = replace(profile, performance=performance(), version="")
    cfg = settings(tmp_path).model_copy(
        update={
            "labels": settings(tmp_path).labels.model_copy(update={"window_pairs": 100}),
            "kafka": KafkaConfig(topics=["events"], labels_topic="labels"),
        }
    )
    pipeline = Pipeline(cfg, profile, make_results(cfg))
    now = time.time()
    score = rng.beta(0.5, 0.5, 300)
    events = [
        orjson.dumps(
            {
                "id": f"r{i}",
                "ts": now,
                "features": {"amount": i / 10, "country": "fr" if i % 2 else "de"},
                "prediction": float(score[i]),
            }
        )
        for i in range(300)
    ]
    labels = [
        orjson.dumps({"id": f"r{i}", "ts": now + 1, "label": int(score[i] < 0.5)})
        for i in range(300)
    ]
    out = pipeline.process([Record(v, "events", 0, i) for i, v in enumerate(events)], now=now)
    assert out.labels is not None and not out.labels.relabel
    out = pipeline.process([Record(v, "labels", 0, i) for i, v in enumerate(labels)], now=now)
    assert out.labels is not None and out.labels.relabel  # every label flipped: 3 windows
    for c in out.labels.relabel:
        i = int(c.event_id[1:])
        assert c.features == {"amount": i / 10, "country": "fr" if i % 2 else "de"}


@pytest.mark.parametrize(
    ("relabel", "message"),
    [
        ({"enabled": True}, "path or topic"),
        ({"path": "q.jsonl", "topic": "relabel"}, "both set"),
        ({"topic": "bad topic!"}, "topic"),
    ],
)
def test_bad_relabel_destinations_are_refused(relabel: dict[str, Any], message: str) -> None:
    """Neither or both of path and topic, or a bad topic name, fail validation."""
    with pytest.raises(ValueError, match=message):
        Settings(labels={"relabel": relabel})  # type: ignore[arg-type]
