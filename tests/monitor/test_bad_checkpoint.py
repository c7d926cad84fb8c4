"""A corrupt checkpoint stops the daemon with a clear message; --start-fresh sets it aside."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.kafka_broker import unique_topic

pytestmark = pytest.mark.integration


def _config(tmp_path: Path, bootstrap: str) -> Path:
    config = {
        "model": "credit-risk",
        "kafka": {
            "bootstrap_servers": [bootstrap],
            "topics": [unique_topic("driftd-badckpt")],
            "group_id": unique_topic("driftd-badckpt-group"),
            "dead_letter_topic": None,
        },
        "reference": {"warmup_events": 1_000},
        "metrics": {"host": "127.0.0.1", "port": 0},
        "checkpoint": {"directory": str(tmp_path / "state")},
        "logging": {"format": "json"},
    }
    path = tmp_path / "driftd.yaml"
    path.write_text(json.dumps(config))
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "checkpoint.ckpt").write_bytes(b"DRIFTDCK" + b"\x00\x01garbage")
    return path


def _run(config: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "run", "-c", str(config), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_corrupt_checkpoint_refuses_to_start(tmp_path: Path, kafka_bootstrap: str) -> None:
    """Without the flag the daemon exits 3, naming the file and the way out."""
    proc = _run(_config(tmp_path, kafka_bootstrap))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err[-2000:]
    assert "refusing to start" in err and "checkpoint.ckpt" in err and "--start-fresh" in err
    assert (tmp_path / "state" / "checkpoint.ckpt").exists()  # left for forensics


def test_start_fresh_sets_the_checkpoint_aside_and_runs(
    tmp_path: Path,
    kafka_bootstrap: str,
) -> None:
    """With --start-fresh the bad file is renamed, the daemon runs and stops cleanly."""
    proc = _run(_config(tmp_path, kafka_bootstrap), "--start-fresh")
    deadline = time.monotonic() + 30
    state = tmp_path / "state"
    while not list(state.glob("checkpoint.ckpt.refused-*")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.2)
    time.sleep(2.0)
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert list(state.glob("checkpoint.ckpt.refused-*"))
