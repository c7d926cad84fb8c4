"""An evicted segment leaves nothing behind: windows, references, decisions, results, series."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from prometheus_client import CollectorRegistry, generate_latest

from detectors.profile import build_profile
from monitor.app import make_results
from monitor.config import Settings
from monitor.emit.drift_collector import DriftCollector
from monitor.emit.metrics import DaemonMetrics
from monitor.engine.labels.events import LabelBatch
from monitor.engine.labels.monitor import LabelMonitor
from monitor.engine.pipeline import Pipeline
from monitor.ingest.decode import Rejection
from monitor.ingest.source import Record

START = 1_600_000_000.0


def _settings(**segments: Any) -> Settings:
    return Settings(
        model="car_loan",
        source={"type": "file", "path": "unused.jsonl"},  # type: ignore[arg-type]
        windows={"size_events": 100, "min_samples": 50},  # type: ignore[arg-type]
        segments={"admit_after_events": 0, "idle_seconds": 100.0, **segments},  # type: ignore[arg-type]
    )


def _pipeline(settings: Settings) -> Pipeline:
    rng = np.random.default_rng(0)
    reference = build_profile(
        {"income": rng.normal(50, 10, 5_000), "prediction": rng.random(5_000)},
        prediction="prediction",
    )
    return Pipeline(settings, reference, make_results(settings))


def _records(segment: str, n: int, ts: float, income: float, offset: int) -> list[Record]:
    rng = np.random.default_rng(offset)
    events = [
        {
            "id": f"e{offset + i}",
            "ts": ts + i * 0.01,
            "model": "car_loan",
            "model_version": segment,
            "features": {"income": income + float(rng.normal(0, 1))},
            "prediction": float(rng.random()),
        }
        for i in range(n)
    ]
    return [Record(orjson.dumps(e), "file:x", 0, offset + i) for i, e in enumerate(events)]


def test_an_evicted_segment_resets_its_id_and_resolves_its_alert() -> None:
    """An idle drifting segment is evicted: alert resolved, state and series gone, id fresh."""
    settings = _settings()
    pipeline = _pipeline(settings)
    registry = CollectorRegistry()
    metrics = DaemonMetrics(registry, "car_loan")
    registry.register(DriftCollector(pipeline.results, pipeline.decisions))

    first = pipeline.process(_records("old", 150, START, income=500.0, offset=0))
    metrics.observe_batch(first, 0.0)
    assert any(t.segment == "old" and t.current == "firing" for t in first.transitions)
    assert pipeline.windows is not None
    assert pipeline.windows.open_rows().tolist() == [0, 50]
    assert b'segment="old"' in generate_latest(registry)

    second = pipeline.process(_records("new", 160, START + 1_000, income=50.0, offset=150))
    metrics.observe_batch(second, 0.0)
    metrics.forget_segments(second.evicted)

    assert second.evicted == ["old"]
    resolved = [t for t in second.transitions if t.segment == "old"]
    assert resolved and {t.current for t in resolved} == {"resolved"}
    assert pipeline.segments.names == ("__other__", "new")
    assert second.results is not None and second.results.segments == ("new",)
    assert pipeline.windows.open_rows().tolist() == [0, 60]  # the pane closed at 100, not 50
    assert all(s.segment != "old" for s in pipeline.decisions.states())
    assert all(w.segment != "old" for w in pipeline.results.windows())
    assert all(s.segment != "old" for s in pipeline.results.scores())
    assert pipeline.segment_home == {1: ("file:x", 0)}
    assert b'segment="old"' not in generate_latest(registry)


def test_a_reused_id_never_inherits_a_segment_reference() -> None:
    """The own warm-up reference of an evicted segment is dropped with it."""
    pipeline = _pipeline(_settings())
    pipeline.process(_records("old", 10, START, income=50.0, offset=0))
    assert pipeline.evaluator is not None
    pipeline.evaluator.set_segment_reference(1, pipeline.evaluator.pooled)
    pipeline.process(_records("new", 10, START + 1_000, income=50.0, offset=10))
    assert pipeline.segments.names[1] == "new" and 1 not in pipeline.evaluator.own


def test_the_label_side_of_an_evicted_segment_is_reset() -> None:
    """Its performance windows, ADWIN and results go; its pending predictions join in id 0."""
    settings = Settings(
        model="m",
        labels={"enabled": True, "window_pairs": 50},  # type: ignore[arg-type]
    )
    monitor = LabelMonitor(settings, None)
    names = ("__other__", "eu", "us")
    n = 400
    rng = np.random.default_rng(0)
    ids = [f"r{i}" for i in range(n)]
    segments = np.where(np.arange(n) % 2 == 0, 1, 2).astype(np.int64)
    ts = 1_000.0 + np.arange(n, dtype=np.float64)
    predictions = (ids, segments, rng.random(n), ts, None)
    labelled = n - 20  # the last 20 predictions wait for their labels
    labels = LabelBatch(
        ids=ids[:labelled],
        ts=ts[:labelled] + 1.0,
        label=(rng.random(labelled) < 0.3).astype(np.float64),
        source_index=np.arange(labelled),
        rejections=list[Rejection](),
    )
    monitor.process(predictions, labels, names)
    assert {p.segment for p in monitor.latest()} == {"eu", "us"}
    assert monitor.performance.open_pairs()[1] > 0
    monitor.forget_segments(np.array([1]), {"eu"})
    assert {p.segment for p in monitor.latest()} == {"us"}
    assert monitor.performance.open_pairs()[1] == 0
    assert monitor.performance.open_pairs()[2] > 0
    assert int(monitor.adwin.width[1]) == 0 and int(monitor.adwin.width[2]) > 0
    late = LabelBatch(
        ids=ids[labelled:],
        ts=ts[labelled:] + 1.0,
        label=np.zeros(n - labelled),
        source_index=np.arange(n - labelled),
        rejections=list[Rejection](),
    )
    pending = monitor.performance.open_pairs().copy()
    monitor.process(([], np.zeros(0, np.int64), np.zeros(0), np.zeros(0), None), late, names)
    grown = monitor.performance.open_pairs() - np.pad(pending, (0, 3))[:3]
    assert grown[1] == 0 and grown[0] == (n - labelled) // 2
