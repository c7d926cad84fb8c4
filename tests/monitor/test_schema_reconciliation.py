"""Reference columns the events do not carry are reported loudly, and renames reconcile them."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from detectors.engine import DriftEngine
from detectors.profile import build_profile
from detectors.rules import BREACH, SEVERE, SKIP, Rules
from detectors.sketch import Sketch

ROWS = 6_000


def _events(path: Path, name: str, rng: np.random.Generator) -> None:
    """Inference events whose car value sits under ``name``, with current timestamps."""
    now = time.time()
    with path.open("w", encoding="utf-8") as out:
        for i in range(ROWS):
            event = {
                "id": f"e{i}",
                "ts": now - ROWS + i,
                "model": "car_loan",
                "model_version": "v1",
                "features": {name: float(rng.lognormal(10, 0.5)), "age": float(rng.normal(40, 9))},
                "prediction": float(rng.random()),
            }
            out.write(json.dumps(event) + "\n")


def _reference(path: Path, rng: np.random.Generator) -> None:
    """A training CSV that names the column ``carValue``."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["carValue", "age", "prediction"])
        for _ in range(20_000):
            writer.writerow([rng.lognormal(10, 0.5), rng.normal(40, 9), rng.random()])


def _run(tmp_path: Path, rename: dict[str, str]) -> tuple[list[dict[str, Any]], str]:
    """Build the reference and replay the events with the real CLI; journal and stderr."""
    rng = np.random.default_rng(5)
    train, events = tmp_path / "train.csv", tmp_path / "events.jsonl"
    _reference(train, rng)
    _events(events, "car_value", rng)
    driftd = [sys.executable, "-m", "monitor.cli"]
    reference = tmp_path / "reference.json"
    built = subprocess.run(
        [*driftd, "reference", "build", "-i", str(train), "-o", str(reference)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    journal = tmp_path / "journal.jsonl"
    config = {
        "model": "car_loan",
        "source": {"type": "file", "path": str(events), "batch_size": 1_000},
        "reference": {"path": str(reference)},
        "schema": {"rename": rename},
        "windows": {"size_events": 2_000, "min_samples": 500},
        "checkpoint": {"store": "none"},
        "journal": {"path": str(journal)},
        "metrics": {"port": 0},
        "logging": {"format": "json"},
    }
    cfg = tmp_path / "driftd.yaml"
    cfg.write_text(json.dumps(config), encoding="utf-8")
    run = subprocess.run(
        [*driftd, "run", "-c", str(cfg)], capture_output=True, text=True, check=False, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    lines = [json.loads(line) for line in journal.read_text(encoding="utf-8").splitlines()]
    return lines, run.stdout + run.stderr


@pytest.mark.slow
def test_a_reference_column_missing_from_the_events_pages_and_is_logged(tmp_path: Path) -> None:
    """carValue in training, car_value in events: a schema page and a column_absent log."""
    lines, logs = _run(tmp_path, rename={})
    firing = [x["dedup_key"] for x in lines if x["kind"] == "transition" and x["to"] == "firing"]
    assert "driftd/car_loan/v1/carValue/schema" in firing
    # The one schema page stands for the column: no missing or samples page beside it.
    assert not any(
        k.startswith("driftd/car_loan/v1/carValue/") and not k.endswith("/schema") for k in firing
    )
    assert '"column_absent"' in logs and "carValue" in logs


@pytest.mark.slow
def test_schema_rename_maps_event_names_onto_the_reference(tmp_path: Path) -> None:
    """With schema.rename car_value -> carValue the column is monitored and nothing pages."""
    lines, logs = _run(tmp_path, rename={"car_value": "carValue"})
    firing = [x for x in lines if x["kind"] == "transition" and x["to"] == "firing"]
    assert firing == []
    windows = [x for x in lines if x["kind"] == "window"]
    assert windows and all("carValue" in w["scores"]["ks"] for w in windows)
    assert '"column_absent"' not in logs


def test_engine_schema_method_fires_at_once_for_an_absent_column() -> None:
    """A full window without any value of a reference column: schema SEVERE, no missing page."""
    rng = np.random.default_rng(0)
    profile = build_profile({"x": rng.normal(size=5_000), "y": rng.normal(size=5_000)})
    sketch = Sketch(profile.features, 2)
    rows = np.column_stack([rng.normal(size=1_000), rng.normal(size=1_000)])
    rows[:500, 1] = np.nan  # segment 0: y absent; segment 1: both present
    sketch.update(np.repeat([0, 1], 500), rows)
    engine = DriftEngine(sketch.binner, Rules(min_samples=100))
    scores = engine.score(sketch.state_dict()["counts"], [engine.calibrate_profiles()])
    assert scores.verdict["schema"].tolist() == [[-1, SEVERE], [-1, -1]]
    assert scores.verdict["missing"][0, 1] == SKIP and scores.verdict["samples"][0, 1] == SKIP
    assert scores.verdict["missing"][1, 1] < BREACH
    assert not scores.drifting[1].any()
