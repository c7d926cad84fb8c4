"""The pipeline turns the windows' event-time refusals into rejections, and counts late events."""

from __future__ import annotations

import numpy as np
import orjson
from prometheus_client import CollectorRegistry

from detectors.profile import build_profile
from monitor.app import make_results
from monitor.config import Settings
from monitor.emit.metrics import DaemonMetrics
from monitor.engine.pipeline import Pipeline
from monitor.ingest.source import Record

START = 1_600_000_000.0


def _pipeline() -> Pipeline:
    settings = Settings(
        model="m",
        source={"type": "file", "path": "unused.jsonl"},  # type: ignore[arg-type]
        windows={  # type: ignore[arg-type]
            "size_events": None,
            "duration_seconds": 60,
            "min_samples": 10,
            "allowed_lateness_seconds": 5,
        },
        labels={"enabled": True},  # type: ignore[arg-type]
    )
    rng = np.random.default_rng(0)
    reference = build_profile(
        {"x": rng.normal(size=2_000), "prediction": rng.random(2_000)}, prediction="prediction"
    )
    return Pipeline(settings, reference, make_results(settings))


def _records(times: list[float]) -> list[Record]:
    return [
        Record(
            orjson.dumps({"id": f"e{i}", "ts": ts, "features": {"x": 0.1}, "prediction": 0.5}),
            "file:x",
            0,
            i,
        )
        for i, ts in enumerate(times)
    ]


def test_far_ahead_events_are_rejected_and_late_ones_counted() -> None:
    """One event a day ahead is an ahead_of_watermark rejection, not a prediction; one late."""
    pipeline = _pipeline()
    times = [START + i for i in range(300)]
    times[150] += 86_400.0  # far ahead: refused
    times[250] -= 200.0  # its minute closed long ago: late
    outcome = pipeline.process(_records(times))
    assert [(r.offset, reason) for r, reason, _ in outcome.rejected] == [
        (150, "ahead_of_watermark")
    ]
    assert "ahead of the stream's event time" in outcome.rejected[0][2]
    assert outcome.accepted == 299
    assert outcome.late == 1
    assert pipeline.labels is not None
    assert pipeline.labels.join.pending_predictions == 299  # the refused one never waits
    registry = CollectorRegistry()
    DaemonMetrics(registry, "m").observe_batch(outcome, 0.0)
    assert registry.get_sample_value("driftd_events_late_total", {"model": "m"}) == 1
    assert (
        registry.get_sample_value(
            "driftd_events_rejected_total", {"model": "m", "reason": "ahead_of_watermark"}
        )
        == 1
    )
