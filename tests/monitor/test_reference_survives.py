"""A warm-up reference survives lost state; a lost one is never silently re-learned.

The trial: clean events, stop, lose the state directory (as a pod's emptyDir is lost
on reschedule), drifted events, start again. Today's answer must be a refusal, or
(when the reference was kept on its own) pages, never a quiet new reference.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.kafka_broker import produce, unique_topic

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WARMUP = 4_000


def _events(n: int, shift: float, seed: int, start: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    now = time.time()
    out = []
    for i in range(n):
        event = {
            "id": f"e{start + i}",
            "ts": now - 600 + i * 0.01,
            "model": "car_loan",
            "model_version": "v1",
            "features": {
                "income": float(rng.normal(50 + shift * 10, 10)),
                "age": float(rng.normal(40, 9)),
            },
            "prediction": float(rng.random()),
        }
        out.append(json.dumps(event).encode())
    return out


def _config(tmp_path: Path, bootstrap: str, topic: str, group: str) -> Path:
    config = {
        "model": "car_loan",
        "kafka": {
            "bootstrap_servers": [bootstrap],
            "topics": [topic],
            "group_id": group,
            "dead_letter_topic": None,
        },
        "reference": {"warmup_events": WARMUP},
        "windows": {"size_events": 2_000, "min_samples": 500},
        "metrics": {"host": "127.0.0.1", "port": 0},
        "checkpoint": {"directory": str(tmp_path / "state"), "interval_s": 0.5},
        "journal": {"path": str(tmp_path / "journal.jsonl")},
        "logging": {"format": "json"},
    }
    path = tmp_path / "driftd.yaml"
    path.write_text(json.dumps(config))
    return path


def _windows(journal: Path) -> int:
    return journal.read_text().count('"kind":"window"') if journal.exists() else 0


def _run_until(config: Path, journal: Path, windows: int, *extra: str) -> tuple[int, str]:
    """Run the daemon until it journals ``windows`` more windows (or exits); stop it."""
    target = _windows(journal) + windows
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "run", "-c", str(config), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if _windows(journal) >= target:
            time.sleep(2.0)  # a checkpoint and commit after the last window
            break
        time.sleep(0.3)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def _firing(journal: Path) -> list[str]:
    lines = [json.loads(x) for x in journal.read_text().splitlines()]
    return [x["dedup_key"] for x in lines if x["kind"] == "transition" and x["to"] == "firing"]


def test_lost_state_refuses_to_relearn_the_reference(tmp_path: Path, kafka_bootstrap: str) -> None:
    """State directory lost after a warm-up: exit 3 naming --relearn-reference, no new reference."""
    topic, group = unique_topic("driftd-lost"), unique_topic("driftd-lost-group")
    config = _config(tmp_path, kafka_bootstrap, topic, group)
    journal = tmp_path / "journal.jsonl"
    produce(kafka_bootstrap, topic, _events(WARMUP + 7_000, 0.0, 1, 0))
    code, err = _run_until(config, journal, 2)
    assert code == 0, err[-2000:]
    assert (tmp_path / "state" / "checkpoint.reference.ckpt").exists()
    shutil.rmtree(tmp_path / "state")
    produce(kafka_bootstrap, topic, _events(9_000, 1.0, 2, 100_000))
    proc = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "run", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "refusing to start" in proc.stderr and "--relearn-reference" in proc.stderr
    # With the flag it starts, learning a new reference on purpose (and says so).
    code, err = _run_until(config, journal, 1, "--relearn-reference")
    assert code == 0, err[-2000:]
    assert "warmup_reference_relearned" in err


def test_a_kept_reference_is_reloaded_without_the_checkpoint_and_pages(
    tmp_path: Path,
    kafka_bootstrap: str,
) -> None:
    """Checkpoint lost, reference file kept: the old reference is reloaded and drift pages."""
    topic, group = unique_topic("driftd-kept"), unique_topic("driftd-kept-group")
    config = _config(tmp_path, kafka_bootstrap, topic, group)
    journal = tmp_path / "journal.jsonl"
    produce(kafka_bootstrap, topic, _events(WARMUP + 7_000, 0.0, 3, 0))
    code, err = _run_until(config, journal, 2)
    assert code == 0, err[-2000:]
    assert not _firing(journal)
    (tmp_path / "state" / "checkpoint.ckpt").unlink()
    produce(kafka_bootstrap, topic, _events(6_000, 1.0, 4, 100_000))
    code, err = _run_until(config, journal, 2)
    assert code == 0, err[-2000:]
    assert "warmup_reference_loaded" in err
    assert "driftd/car_loan/v1/income/ks" in _firing(journal)
