"""The contract every stateful part keeps: ``state_dict`` / ``load_state_dict`` round-trip,
and hand-over slices (``slice`` / ``drop`` / ``merge``) give back what they took.

Windows, decisions, the label side, the alert service and the pipeline as a whole
(``monitor.state.restore``) each load their own state into a fresh instance and then
report the same state. For hand-over, taking every partition's slice, dropping the
partitions and merging the slices back leaves windows and decisions as they were.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry

from monitor.app import make_results
from monitor.config import Settings
from monitor.emit.alerts.model import AlertAction
from monitor.emit.alerts.service import AlertService
from monitor.engine.decision import DecisionBook, Transition, dedup_key
from monitor.engine.labels.monitor import LabelMonitor
from monitor.engine.pipeline import Pipeline
from monitor.engine.windows import Windows
from monitor.errors import AlertDeliveryError
from monitor.ingest.demo_stream import SEGMENTS, DemoStream
from monitor.ingest.source import Record
from monitor.state.handover import drop_partition, merge_slice, partition_slice
from monitor.state.restore import pipeline_state, restore_pipeline

MODEL = "credit-risk"
EVENTS, LABELS = "events", "labels"
NOW = 1_700_000_000.0 + 50_000


def _settings(**extra: Any) -> Settings:
    return Settings(
        model=MODEL,
        kafka={"labels_topic": LABELS},  # type: ignore[arg-type]
        schema={"segment_by": ["features.region"]},  # type: ignore[arg-type]
        reference={"warmup_events": 6_000},  # type: ignore[arg-type]
        windows={"size_events": 1_500, "min_samples": 300},  # type: ignore[arg-type]
        labels={"enabled": True, "window_pairs": 500},  # type: ignore[arg-type]
        alerts={  # type: ignore[arg-type]
            "sinks": [{"type": "log", "name": "down"}],
            "routes": [{"sinks": ["down"], "group_by_segment": True}],
        },
        **extra,
    )


PARTITIONED: dict[str, Any] = {"checkpoint": {"store": "kafka"}}
"""Slices exist for the Kafka checkpoint store, which keeps no model-wide segment mix."""


def _records(n_batches: int, size: int = 1_700) -> list[list[Record]]:
    """Events of each region on their own partition (a producer keyed by segment)."""
    stream = DemoStream(feature_shift_at=9_000, prediction_shift_at=12_000)
    stream.start_ts = 1_700_000_000.0
    offsets = dict.fromkeys(range(len(SEGMENTS) + 1), 0)
    out = []
    for _ in range(n_batches):
        batch = stream.next_batch(size)
        records = []
        for event in batch.events():
            partition = SEGMENTS.index(event["features"]["region"])
            records.append(Record(orjson.dumps(event), EVENTS, partition, offsets[partition]))
            offsets[partition] += 1
        for label in batch.labels():
            records.append(Record(orjson.dumps(label), LABELS, 0, offsets[len(SEGMENTS)]))
            offsets[len(SEGMENTS)] += 1
        out.append(records)
    return out


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    """A pipeline past its warm-up, with open panes, decisions and joined labels."""
    settings = _settings()
    built = Pipeline(settings, None, make_results(settings))
    for batch in _records(12):
        built.process(batch, now=NOW)
    assert built.ready and built.labels is not None
    assert built.decisions.state_dict()["entries"], "no decision state to carry"
    return built


def test_windows_round_trip(pipeline: Pipeline) -> None:
    """Windows loaded from their state_dict report the same state."""
    assert pipeline.windows is not None and pipeline.binner is not None
    fresh = Windows(pipeline.binner, pipeline.settings.windows, 0)
    fresh.load_state_dict(pipeline.windows.state_dict())
    np.testing.assert_equal(fresh.state_dict(), pipeline.windows.state_dict())


def test_decisions_round_trip(pipeline: Pipeline) -> None:
    """A decision book loaded from its state_dict reports the same state."""
    settings = pipeline.settings
    fresh = DecisionBook(MODEL, settings.detectors, settings.windows.min_samples)
    fresh.load_state_dict(pipeline.decisions.state_dict())
    assert fresh.state_dict() == pipeline.decisions.state_dict()


def test_label_side_round_trip(pipeline: Pipeline) -> None:
    """The label monitor loaded from its state_dict reports the same state."""
    assert pipeline.labels is not None and pipeline.reference is not None
    fresh = LabelMonitor(pipeline.settings, pipeline.reference.label)
    fresh.load_state_dict(pipeline.labels.state_dict())
    np.testing.assert_equal(fresh.state_dict(), pipeline.labels.state_dict())


def test_pipeline_round_trip(pipeline: Pipeline) -> None:
    """A fresh pipeline restored from the whole state tree reports the same tree."""
    state = pipeline_state(pipeline)
    assert state is not None
    settings = pipeline.settings
    fresh = Pipeline(settings, None, make_results(settings))
    restore_pipeline(fresh, state, "test")
    np.testing.assert_equal(pipeline_state(fresh), state)


class _DownSink:
    name = "down"

    def send(self, action: AlertAction) -> None:
        raise AlertDeliveryError(self.name, "down", retriable=True)


def _firing(segment: str) -> Transition:
    return Transition(
        model=MODEL,
        segment=segment,
        column="income",
        method="psi",
        previous="pending",
        current="firing",
        score=0.9,
        threshold=0.2,
        clear=0.1,
        p_value=math.nan,
        n=1_500,
        window_end_ts=time.time(),
        dedup_key=dedup_key(MODEL, segment, "income", "psi"),
        consecutive=3,
    )


def test_alert_service_round_trip() -> None:
    """Queued actions and open groups come back in a fresh alert service (not started)."""
    cfg = _settings().alerts
    service = AlertService(cfg, CollectorRegistry(), sinks=[_DownSink()])
    assert service.submit([_firing("west"), _firing("north")]) == 2
    state = service.state_dict()
    assert len(state["pending"]["down"]) == 2 and len(state["groups"]) == 2
    fresh = AlertService(cfg, CollectorRegistry(), sinks=[_DownSink()])
    fresh.load_state_dict(state)
    assert fresh.state_dict() == state


def _partitions(pipeline: Pipeline) -> list[tuple[str, int]]:
    return sorted(set(pipeline.segment_home.values()))


def test_slices_dropped_then_merged_back_are_the_identity() -> None:
    """Slice every partition, drop them all, merge the slices: windows and decisions as before."""
    settings = _settings(**PARTITIONED)
    pipeline = Pipeline(settings, None, make_results(settings))
    for batch in _records(12):
        pipeline.process(batch, now=NOW)
    assert pipeline.windows is not None
    windows: dict[str, Any] = pipeline.windows.state_dict()
    decisions = pipeline.decisions.state_dict()
    homes = dict(pipeline.segment_home)
    partitions = _partitions(pipeline)
    assert len(partitions) == len(SEGMENTS)
    slices = {tp: partition_slice(pipeline, tp) for tp in partitions}
    for tp in partitions:
        assert drop_partition(pipeline, tp)
    assert not pipeline.decisions.state_dict()["entries"]
    assert int(pipeline.windows.state_dict()["pane_rows"].sum()) == 0
    for tp, part in slices.items():
        assert part is not None
        merge_slice(pipeline, tp, part, "test")
    np.testing.assert_equal(pipeline.windows.state_dict(), windows)
    key = lambda e: (e["segment"], e["column"], e["method"])  # noqa: E731
    after = pipeline.decisions.state_dict()
    assert sorted(after["entries"], key=key) == sorted(decisions["entries"], key=key)
    assert pipeline.segment_home == homes


def test_a_slice_moves_a_partition_to_a_fresh_replica() -> None:
    """A partition's slice merged into an empty replica holds that partition's windows."""
    settings = _settings(**PARTITIONED)
    pipeline = Pipeline(settings, None, make_results(settings))
    for batch in _records(12):
        pipeline.process(batch, now=NOW)
    tp = _partitions(pipeline)[0]
    part = partition_slice(pipeline, tp)
    assert part is not None
    replica = Pipeline(settings, None, make_results(settings))
    names = merge_slice(replica, tp, part, "test")
    assert names == part["segments"] and names
    again = partition_slice(replica, tp)
    assert again is not None
    np.testing.assert_equal(again["windows"], part["windows"])
    assert again["decisions"] == part["decisions"]
