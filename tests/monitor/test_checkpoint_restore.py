"""A pipeline restored from a checkpoint carries on exactly like one that never stopped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry

from monitor.app import make_results
from monitor.config import Settings
from monitor.engine.outcome import BatchOutcome
from monitor.engine.pipeline import Pipeline
from monitor.errors import CheckpointError
from monitor.ingest.demo_stream import DemoStream
from monitor.ingest.source import Record
from monitor.state import FileCheckpointStore, encode
from monitor.state.checkpointer import StateCheckpointer, state_fingerprint
from monitor.state.restore import STATE_VERSION, pipeline_state

TOPIC = "events"


def _settings(tmp_path: Path, **extra: Any) -> Settings:
    return Settings(
        model="credit-risk",
        schema={"segment_by": ["features.region"]},  # type: ignore[arg-type]
        reference={"warmup_events": 6_000},  # type: ignore[arg-type]
        windows={"size_events": 1_500, "min_samples": 300},  # type: ignore[arg-type]
        checkpoint={"directory": tmp_path / "state", "interval_s": 0},  # type: ignore[arg-type]
        **extra,
    )


def _batches(n_batches: int, size: int = 1_700) -> list[list[Record]]:
    stream = DemoStream(feature_shift_at=20_000, prediction_shift_at=30_000)
    stream.start_ts = 1_700_000_000.0
    out, offset = [], 0
    for _ in range(n_batches):
        events = stream.next_batch(size).events()
        out.append([Record(orjson.dumps(e), TOPIC, 0, offset + i) for i, e in enumerate(events)])
        offset += size
    return out


def _summary(outcomes: list[BatchOutcome]) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for o in outcomes:
        if o.results is not None:
            for r, segment in enumerate(o.results.segments):
                scores = tuple(
                    (m, [None if np.isnan(x) else round(x, 12) for x in v[r].tolist()])
                    for m, v in sorted(o.results.scores.items())
                )
                rows.append(("w", segment, float(o.results.window_end_ts[r]), scores))
        rows.extend(("t", t.dedup_key, t.current, t.window_end_ts) for t in o.transitions)
    return rows


def _run(settings: Settings, batches: list[list[Record]]) -> tuple[Pipeline, list[BatchOutcome]]:
    pipeline = Pipeline(settings, None, make_results(settings))
    now = 1_700_000_000.0 + 50_000
    return pipeline, [pipeline.process(b, now=now) for b in batches]


@pytest.mark.parametrize("cut", [5, 9, 14])
def test_restore_at_any_batch_continues_identically(tmp_path: Path, cut: int) -> None:
    """Save after batch ``cut``, restore into a new pipeline: the rest matches the straight run."""
    settings = _settings(tmp_path)
    batches = _batches(22)
    _, straight = _run(settings, batches)
    assert any(o.transitions for o in straight)

    first, before = _run(settings, batches[:cut])
    checkpointer = StateCheckpointer(
        FileCheckpointStore(tmp_path / "state"), settings, CollectorRegistry(), location="t"
    )
    assert checkpointer.save(first, {(TOPIC, 0): cut * 1_700})
    resumed = Pipeline(settings, None, make_results(settings))
    offsets = checkpointer.restore(resumed)
    assert offsets == {(TOPIC, 0): cut * 1_700}
    now = 1_700_000_000.0 + 50_000
    after = [resumed.process(b, now=now) for b in batches[cut:]]
    assert _summary(before + after) == _summary(straight)
    assert resumed.events_accepted == 22 * 1_700


def test_warmup_state_is_not_saved_so_nothing_is_committed(tmp_path: Path) -> None:
    """During the warm-up there is no checkpoint: the held events are re-read instead."""
    settings = _settings(tmp_path)
    pipeline, _ = _run(settings, _batches(2))
    assert not pipeline.ready
    assert pipeline_state(pipeline) is None
    checkpointer = StateCheckpointer(
        FileCheckpointStore(tmp_path / "state"), settings, CollectorRegistry(), location="t"
    )
    assert checkpointer.save(pipeline, {(TOPIC, 0): 3_400}) is False


def test_checkpoint_of_other_config_is_refused(tmp_path: Path) -> None:
    """A checkpoint made under other windows is refused, naming the fingerprint mismatch."""
    settings = _settings(tmp_path)
    pipeline, _ = _run(settings, _batches(6))
    store = FileCheckpointStore(tmp_path / "state")
    StateCheckpointer(store, settings, CollectorRegistry(), location="t").save(pipeline, {})
    other = Settings(**{**settings.model_dump(by_alias=True), "windows": {"size_events": 999}})
    assert state_fingerprint(other) != state_fingerprint(settings)
    checkpointer = StateCheckpointer(store, other, CollectorRegistry(), location="t")
    with pytest.raises(CheckpointError, match="fingerprint"):
        checkpointer.restore(Pipeline(other, None, make_results(other)))


def test_corrupt_checkpoint_is_refused_and_start_fresh_sets_it_aside(tmp_path: Path) -> None:
    """Flipped bytes fail the checksum; start_fresh renames the file and restores nothing."""
    settings = _settings(tmp_path)
    pipeline, _ = _run(settings, _batches(6))
    store = FileCheckpointStore(tmp_path / "state")
    checkpointer = StateCheckpointer(store, settings, CollectorRegistry(), location="t")
    checkpointer.save(pipeline, {(TOPIC, 0): 10_200})
    raw = bytearray(store.path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    store.path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError):
        checkpointer.restore(Pipeline(settings, None, make_results(settings)))
    checkpointer.start_fresh()
    assert not store.path.exists()
    assert list((tmp_path / "state").glob("checkpoint.ckpt.refused-*"))
    assert checkpointer.restore(Pipeline(settings, None, make_results(settings))) == {}


def test_state_of_another_model_is_refused(tmp_path: Path) -> None:
    """State saved for one model is never loaded into another model's pipeline."""
    settings = _settings(tmp_path)
    pipeline, _ = _run(settings, _batches(6))
    state = pipeline_state(pipeline)
    assert state is not None
    state["model"] = "fraud"
    store = FileCheckpointStore(tmp_path / "state")
    store.save(
        encode(
            {"pipeline": state},
            {},
            state_version=STATE_VERSION,
            fingerprint=state_fingerprint(settings),
        )
    )
    checkpointer = StateCheckpointer(store, settings, CollectorRegistry(), location="t")
    with pytest.raises(CheckpointError, match="model"):
        checkpointer.restore(Pipeline(settings, None, make_results(settings)))
