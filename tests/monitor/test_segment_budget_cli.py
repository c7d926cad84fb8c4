"""The segment budget through the real CLI: junk cannot exhaust it, names are label-safe.

Issue 13, finding 5: 100k distinct junk segment values once took 195 of the 200
segments, the table was saved in the checkpoint, and every legitimate segment after
them (after a restart too) was counted in ``__other__``; a user value ``__other__``
merged into that bucket, and NUL or newline reached the metric labels raw.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from detectors.profile import build_profile

pytestmark = pytest.mark.slow

HISTORY = 1_600_000_000.0
JUNK = 100_000


def _event(i: int, segment: str, rng: np.random.Generator) -> dict[str, Any]:
    return {
        "id": f"e{i}",
        "ts": HISTORY + i * 0.01,
        "model": "car_loan",
        "model_version": segment,
        "features": {"income": float(rng.normal(50, 10))},
        "prediction": float(rng.random()),
    }


def _config(tmp_path: Path, source: dict[str, Any], **extra: Any) -> Path:
    rng = np.random.default_rng(0)
    reference = build_profile(
        {"income": rng.normal(50, 10, 5_000), "prediction": rng.random(5_000)},
        prediction="prediction",
    )
    (tmp_path / "reference.json").write_text(json.dumps(reference.to_dict()))
    config = {
        "model": "car_loan",
        "source": source,
        "reference": {"path": str(tmp_path / "reference.json")},
        "windows": {"size_events": 500, "min_samples": 100},
        "checkpoint": {"directory": str(tmp_path / "state"), "interval_s": 0},
        "journal": {"path": str(tmp_path / "journal.jsonl")},
        "metrics": {"host": "127.0.0.1", "port": 0},
        "logging": {"format": "json"},
        **extra,
    }
    path = tmp_path / "driftd.yaml"
    path.write_text(json.dumps(config))
    return path


def _replay(tmp_path: Path, name: str, events: list[dict[str, Any]]) -> set[str]:
    """Run the CLI over ``events`` (checkpoint kept in tmp_path); segments with windows."""
    path = tmp_path / name
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    config = _config(tmp_path, {"type": "file", "path": str(path), "batch_size": 5_000})
    journal = tmp_path / "journal.jsonl"
    journal.unlink(missing_ok=True)
    run = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "run", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [json.loads(x) for x in journal.read_text().splitlines()]
    return {x["segment"] for x in lines if x["kind"] == "window"}


def test_a_junk_flood_leaves_room_for_real_segments_across_a_restart(tmp_path: Path) -> None:
    """After 100k junk values real segments get windows, in that run and after a restart."""
    rng = np.random.default_rng(1)
    junk = [_event(i, f"junk-{i}", rng) for i in range(JUNK)]
    legit = [_event(JUNK + i, ("v1", "v2")[i % 2], rng) for i in range(3_000)]
    assert _replay(tmp_path, "first.jsonl", junk + legit) == {"__other__", "v1", "v2"}
    later = [_event(2 * JUNK + i, ("v1", "v3")[i % 2], rng) for i in range(3_000)]
    assert _replay(tmp_path, "second.jsonl", later) == {"v1", "v3"}


def test_a_user_value_other_does_not_merge_into_the_overflow(tmp_path: Path) -> None:
    """A value "__other__" has its own segment, apart from the not-admitted junk's."""
    rng = np.random.default_rng(2)
    events = [_event(i, "__other__" if i % 2 else f"junk-{i}", rng) for i in range(2_000)]
    segments = _replay(tmp_path, "events.jsonl", events)
    assert segments == {"__other__", "\\__other__"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scrape(port: int, proc: subprocess.Popen[str]) -> str:
    """/metrics once the daemon has closed a window."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"driftd exited {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                body = str(r.read().decode())
            if "driftd_window_size{" in body:
                return body
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.2)
    pytest.fail("no window in /metrics")


def test_nul_and_newline_never_reach_a_metric_label_raw(tmp_path: Path) -> None:
    """A segment value with NUL and newline is exported escaped in every label."""
    port = _free_port()
    config = _config(
        tmp_path,
        {"type": "stdin", "batch_size": 500},
        metrics={"host": "127.0.0.1", "port": port},
        checkpoint={"store": "none"},
    )
    rng = np.random.default_rng(3)
    value = "eu\x00west\nrm -rf"
    lines = "".join(json.dumps(_event(i, value, rng)) + "\n" for i in range(1_200))
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "run", "-c", str(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdin is not None
        proc.stdin.write(lines)
        proc.stdin.flush()
        body = _scrape(port, proc)
    finally:
        _, err = proc.communicate(timeout=120)  # closes stdin: the run ends
    assert proc.returncode == 0, err[-3000:]
    segments = {
        sample.labels["segment"]
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if "segment" in sample.labels
    }
    assert "eu\\x00west\\x0arm -rf" in segments
    assert all(s.isprintable() for s in segments)
