"""Finding 3 through the real ``driftd`` CLI: one outlier timestamp cannot break time windows.

A file replay of 5 segments over 17 whole minutes with one-minute windows. One event
is dated 3,500 s ahead (inside ``schema.max_future_seconds``), another two days ahead.
Before the fix, the first moved the global watermark: every other segment's window
closed at batch boundaries, many under ``windows.min_samples``, and a replay with
other batch sizes closed other windows. Now the windows in the journal are the same
for any batch size and as many as without the outlier, and the far one is refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # four runs of the real CLI

SEGMENTS = 5
MINUTES = 17
PER_MINUTE = 100
MIN_SAMPLES = 50
START = 1_700_000_040.0  # a whole minute


def _driftd(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("DRIFTD_")}
    return subprocess.run(
        [str(Path(sys.executable).with_name("driftd")), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )


def _events(path: Path, outliers: dict[int, float]) -> Path:
    rng = np.random.default_rng(5)
    n = SEGMENTS * MINUTES * PER_MINUTE
    ts = START + np.sort(rng.uniform(0, MINUTES * 60.0, n))
    for row, shift in outliers.items():
        ts[row] += shift
    with path.open("w", encoding="utf-8") as out:
        for i in range(n):
            event = {
                "id": f"e{i}",
                "ts": float(ts[i]),
                "model_version": f"v{int(rng.integers(SEGMENTS))}",
                "features": {"x": float(rng.normal()), "y": float(rng.exponential())},
                "prediction": float(rng.uniform()),
            }
            out.write(json.dumps(event) + "\n")
    return path


def _windows(tmp_path: Path, name: str, events: Path, reference: Path, batch: int) -> Any:
    """(segment -> window row counts in order, the run's stderr) of one replay."""
    journal = tmp_path / f"{name}.journal.jsonl"
    config = {
        "source": {"type": "file", "path": str(events), "batch_size": batch},
        "reference": {"path": str(reference)},
        "windows": {"size_events": None, "duration_seconds": 60, "min_samples": MIN_SAMPLES},
        "checkpoint": {"store": "none"},
        "journal": {"path": str(journal)},
        "metrics": {"host": "127.0.0.1", "port": 0},
        "logging": {"level": "error", "format": "json"},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    proc = _driftd("run", "-c", str(path))
    assert proc.returncode == 0, proc.stderr
    rows: dict[str, list[int]] = {}
    for line in journal.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["kind"] == "window":
            rows.setdefault(record["segment"], []).append(record["rows"])
    return rows, proc.stderr


def test_an_outlier_timestamp_changes_no_time_window(tmp_path: Path) -> None:
    """Same windows for batch sizes 100 and 1,000, none under min_samples; the far one refused."""
    clean = _events(tmp_path / "clean.jsonl", {})
    poisoned = _events(tmp_path / "poisoned.jsonl", {1_500: 3_500.0, 4_000: 2 * 86_400.0})
    reference = tmp_path / "reference.json"
    built = _driftd("reference", "build", "-i", str(clean), "-o", str(reference))
    assert built.returncode == 0, built.stderr

    expected, _ = _windows(tmp_path, "clean", clean, reference, 100)
    small, err_small = _windows(tmp_path, "small", poisoned, reference, 100)
    large, err_large = _windows(tmp_path, "large", poisoned, reference, 1_000)

    assert small == large
    assert Counter({s: len(w) for s, w in small.items()}) == Counter(
        {s: len(w) for s, w in expected.items()}
    )
    # Segments are admitted after a few events (those go to __other__ until then).
    assert sum(len(w) for s, w in expected.items() if s.startswith("v")) == SEGMENTS * (MINUTES - 1)
    assert min(r for w in small.values() for r in w) >= MIN_SAMPLES
    for err in (err_small, err_large):
        assert "1 rejected (ahead_of_watermark: 1)" in err, err
