"""State saved by the previous release restores with today's code (no forced fresh start)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.app import make_results
from monitor.config import Settings
from monitor.engine.pipeline import Pipeline
from monitor.errors import CheckpointIncompatibleError
from monitor.state import FileCheckpointStore
from monitor.state.checkpointer import StateCheckpointer, state_fingerprint
from monitor.state.reference_store import ReferenceStore
from tests.monitor.fixtures.previous_release import make

PREVIOUS = Path(make.__file__).resolve().parent


def _settings(directory: Path, **windows: object) -> Settings:
    values = {**make.SETTINGS, "checkpoint": {"directory": str(directory)}}
    values["windows"] = {**make.SETTINGS["windows"], **windows}
    return Settings(**values)


def _copy(tmp_path: Path) -> Path:
    directory = tmp_path / "state"
    directory.mkdir()
    for blob in PREVIOUS.glob("*.ckpt"):
        shutil.copyfile(blob, directory / blob.name)
    return directory


def test_previous_release_checkpoint_restores_and_carries_on(tmp_path: Path) -> None:
    """The previous release's checkpoint and warm-up reference load, and windows keep closing."""
    directory = _copy(tmp_path)
    settings = _settings(directory)
    pipeline = Pipeline(settings, None, make_results(settings))
    store = ReferenceStore.from_settings(settings)
    assert store is not None and store.load_into(pipeline)
    checkpointer = StateCheckpointer(
        FileCheckpointStore(directory), settings, CollectorRegistry(), location="t"
    )
    offsets = checkpointer.restore(pipeline)
    assert offsets == {(make.TOPIC, 0): make.BATCHES * make.SIZE}
    assert len(set(pipeline.segments.names) - {"__other__"}) == 3
    closed = 0
    for batch in make.records(make.BATCHES, 6):
        outcome = pipeline.process(batch, now=make.NOW)
        closed += 0 if outcome.results is None else len(outcome.results.segments)
    assert closed >= 6
    # The next save carries today's fingerprint, which restores as well.
    assert checkpointer.save(pipeline, {(make.TOPIC, 0): (make.BATCHES + 6) * make.SIZE})
    again = Pipeline(settings, None, make_results(settings))
    assert store.load_into(again)
    assert checkpointer.restore(again) == {(make.TOPIC, 0): (make.BATCHES + 6) * make.SIZE}


def test_a_shaping_key_the_user_changed_still_refuses_the_old_state(tmp_path: Path) -> None:
    """Changing a shaping key (window size) refuses the previous release's checkpoint."""
    directory = _copy(tmp_path)
    settings = _settings(directory, size_events=3_000)
    checkpointer = StateCheckpointer(
        FileCheckpointStore(directory), settings, CollectorRegistry(), location="t"
    )
    with pytest.raises(CheckpointIncompatibleError, match="fingerprint"):
        checkpointer.restore(Pipeline(settings, None, make_results(settings)))


def test_a_new_key_left_at_its_default_keeps_the_fingerprint() -> None:
    """Only keys a user set enter the fingerprint, so new defaulted keys change nothing."""
    plain = Settings(**make.SETTINGS)
    explicit = Settings(
        **{**make.SETTINGS, "windows": {**make.SETTINGS["windows"], "mode": "tumbling"}}
    )
    assert state_fingerprint(plain) == state_fingerprint(explicit)
