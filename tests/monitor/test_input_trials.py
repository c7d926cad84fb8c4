"""The input trials, through the real CLI on a recorded file: nothing goes silently unmonitored.

Each recorded stream below once produced a wrong answer with exit code 0: NaN literals
and one bad value threw whole events away, millisecond and historical timestamps were
all refused, another model's events were monitored as this one's, and a missing
segment value became the segment "".
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from detectors.profile import build_profile

pytestmark = pytest.mark.slow

ROWS = 4_000
HISTORY = 1_600_000_000.0  # 2020: far outside the live wall-clock window


def _event(i: int, rng: np.random.Generator, **changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": f"e{i}",
        "ts": HISTORY + i,
        "model": "car_loan",
        "model_version": "v1",
        "features": {"income": float(rng.normal(50, 10)), "plan": str(rng.choice(["a", "b"]))},
        "prediction": float(rng.random()),
    }
    for key, value in changes.items():
        if key in ("income", "plan"):
            event["features"][key] = value
        else:
            event[key] = value
    return event


def _run(tmp_path: Path, events: list[dict[str, Any]]) -> tuple[int, str, list[dict[str, Any]]]:
    """Replay ``events`` (json.dumps, NaN literals allowed) against a built reference."""
    rng = np.random.default_rng(0)
    reference = build_profile(
        {
            "income": rng.normal(50, 10, 20_000),
            "plan": rng.choice(["a", "b"], 20_000),
            "prediction": rng.random(20_000),
        },
        categorical=["plan"],
        prediction="prediction",
    )
    (tmp_path / "reference.json").write_text(json.dumps(reference.to_dict()))
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))  # NaN as Python writes it
    journal = tmp_path / "journal.jsonl"
    config = {
        "model": "car_loan",
        "source": {"type": "file", "path": str(path), "batch_size": 1_000},
        "reference": {"path": str(tmp_path / "reference.json")},
        "windows": {"size_events": 1_000, "min_samples": 200},
        # Every segment from its first event, so the window counts below are exact.
        "segments": {"admit_after_events": 0},
        "checkpoint": {"store": "none"},
        "journal": {"path": str(journal)},
        "metrics": {"port": 0},
        "logging": {"format": "json"},
    }
    (tmp_path / "driftd.yaml").write_text(json.dumps(config))
    run = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "run", "-c", str(tmp_path / "driftd.yaml")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = [json.loads(x) for x in journal.read_text().splitlines()] if journal.exists() else []
    return run.returncode, run.stderr, lines


def test_nan_literals_and_bad_values_cost_only_their_own_feature(tmp_path: Path) -> None:
    """NaN/Infinity literals and "12638.0" keep their events; history needs no tuning."""
    rng = np.random.default_rng(1)
    events = []
    for i in range(ROWS):
        change: dict[str, Any] = {}
        if i % 10 == 0:
            change["income"] = math.nan  # json.dumps writes NaN
        elif i % 10 == 1:
            change["income"] = math.inf
        elif i % 10 == 2:
            change["income"] = "12638.0"
        elif i % 10 == 3:
            change["income"] = "n/a"
        events.append(_event(i, rng, **change))
    code, err, lines = _run(tmp_path, events)
    assert code == 0, err[-2000:]
    assert f"{ROWS:,} accepted, 0 rejected" in err
    windows = [x for x in lines if x["kind"] == "window"]
    assert len(windows) == ROWS // 1_000
    assert '"events_rejected"' not in err


def test_other_models_are_refused_and_missing_segments_are_explicit(tmp_path: Path) -> None:
    """Another model's events are refused as other_model; a null segment is __missing__."""
    rng = np.random.default_rng(2)
    events = [_event(i, rng) for i in range(ROWS)]
    events += [_event(ROWS + i, rng, model="fraud") for i in range(500)]
    events += [_event(2 * ROWS + i, rng, model_version=None) for i in range(1_000)]
    code, err, lines = _run(tmp_path, events)
    assert code == 0, err[-2000:]
    assert "rejected (other_model: 500)" in err
    assert '"events_rejected"' in err and "fraud" in err  # the reason is in the log too
    segments = {x["segment"] for x in lines if x["kind"] == "window"}
    assert segments == {"v1", "__missing__"}


def test_millisecond_timestamps_are_read_and_a_run_with_nothing_accepted_fails(
    tmp_path: Path,
) -> None:
    """Epoch milliseconds are read as such; a stream of only bad events exits 1."""
    rng = np.random.default_rng(3)
    millis = [_event(i, rng, ts=(HISTORY + i) * 1000) for i in range(ROWS)]
    code, err, lines = _run(tmp_path, millis)
    assert code == 0, err[-2000:]
    assert f"{ROWS:,} accepted" in err
    assert all(x["window_end_ts"] < HISTORY + ROWS for x in lines if x["kind"] == "window")
    broken = tmp_path / "broken"
    broken.mkdir()
    code, err, _ = _run(broken, [_event(i, rng, ts="yesterday") for i in range(100)])
    assert code == 1
    assert "no event was accepted" in err and "bad_timestamp" in err
