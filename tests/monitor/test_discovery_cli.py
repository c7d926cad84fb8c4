"""Issue 13, findings 1 and 2, through the real CLI: schema discovery one event cannot poison.

Each test replays a recorded JSONL file with ``driftd run`` and a warm-up reference
(the default kind), and reads what the run says: its JSON log lines and its summary.
Before discovery was bounded, a first message with 20,000 feature names made 20,000
monitored columns (5.8 GB RSS with the default warm-up), a string ``"1.5"`` in the
first event made a numeric feature categorical for good, and events lacking
``features`` at the start left every feature unmonitored.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.slow

HISTORY = 1_600_000_000.0  # a replay of 2020: no wall-clock window applies
ONE_GIB_KB = 1024 * 1024  # ru_maxrss is in KiB on Linux
FLOOD_NAMES = 20_000


def _event(i: int, rng: np.random.Generator, **features: Any) -> dict[str, Any]:
    return {
        "id": f"e{i}",
        "ts": HISTORY + i,
        "model": "car_loan",
        "model_version": "v1",
        "features": {
            "income": float(rng.normal(50, 10)),
            "plan": str(rng.choice(["a", "b"])),
            **features,
        },
        "prediction": float(rng.random()),
    }


class Run:
    """A finished ``driftd run``: exit code, stderr, its JSON log lines, and its peak RSS."""

    def __init__(self, code: int, stderr: str, peak_rss_kb: int) -> None:
        self.code = code
        self.stderr = stderr
        self.peak_rss_kb = peak_rss_kb
        self.logs = [json.loads(x) for x in stderr.splitlines() if x.startswith("{")]

    def log(self, event: str) -> list[dict[str, Any]]:
        """The log lines of ``event``."""
        return [line for line in self.logs if line.get("event") == event]

    @property
    def summary(self) -> str:
        """The replay summary line (events read, accepted, rejected)."""
        return next(x for x in self.stderr.splitlines() if " events read, " in x)

    @property
    def columns(self) -> list[str]:
        """The columns the reference monitors (the last ``reference_columns`` line)."""
        return list(self.log("reference_columns")[-1]["columns"])


def _run(tmp_path: Path, lines: list[bytes], **schema: Any) -> Run:
    """Replay ``lines`` with a warm-up reference; measure the run's own peak RSS."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    config = {
        "model": "car_loan",
        "source": {"type": "file", "path": str(path), "batch_size": 500},
        "reference": {"warmup_events": 2_000},
        "windows": {"size_events": 500, "min_samples": 200},
        "schema": schema,
        "checkpoint": {"store": "none"},
        "journal": {"path": str(tmp_path / "journal.jsonl")},
        "metrics": {"port": 0},
        "logging": {"format": "json", "level": "info"},
    }
    (tmp_path / "driftd.yaml").write_text(json.dumps(config))
    err = tmp_path / "stderr.txt"
    with err.open("wb") as stderr:
        child = subprocess.Popen(
            [sys.executable, "-m", "monitor.cli", "run", "-c", str(tmp_path / "driftd.yaml")],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        # wait4 gives this child's own resource usage, ru_maxrss being its peak RSS.
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    return Run(child.returncode, err.read_text(), usage.ru_maxrss)


def test_a_first_message_with_20000_feature_names_is_refused_in_bounded_memory(
    tmp_path: Path,
) -> None:
    """Finding 1: the flooded first message is refused, the real features monitored, RSS < 1 GiB."""
    rng = np.random.default_rng(1)
    junk = {f"feature_{i:05d}": float(i) for i in range(FLOOD_NAMES)}
    first = json.dumps(_event(0, rng, **junk)).encode()
    assert len(first) > 280_000
    lines = [first] + [json.dumps(_event(i, rng)).encode() for i in range(1, 6_000)]
    run = _run(tmp_path, lines)
    assert run.code == 0, run.stderr[-2_000:]
    assert sorted(run.columns) == ["income", "plan", "prediction"]
    assert "5,999 accepted, 1 rejected (too_many_features: 1)" in run.summary
    (refused,) = run.log("events_rejected")
    assert refused["reason"] == "too_many_features"
    assert "20,002 keys" in refused["example"]
    assert run.log("warmup_reference_built")
    assert run.peak_rss_kb < ONE_GIB_KB, f"peak RSS {run.peak_rss_kb / 1024:.0f} MiB"


def test_a_flood_of_distinct_names_across_the_warm_up_is_not_monitored(tmp_path: Path) -> None:
    """Every warm-up event carrying 200 names of its own: none is monitored, memory stays low."""
    rng = np.random.default_rng(2)
    lines = [
        json.dumps(_event(i, rng, **{f"junk_{i}_{k}": 1.0 for k in range(200)})).encode()
        for i in range(4_000)
    ]
    run = _run(tmp_path, lines)
    assert run.code == 0, run.stderr[-2_000:]
    assert sorted(run.columns) == ["income", "plan", "prediction"]
    (left_out,) = run.log("features_not_discovered")
    assert left_out["rare"] > 0
    assert run.peak_rss_kb < ONE_GIB_KB, f"peak RSS {run.peak_rss_kb / 1024:.0f} MiB"


def test_a_numeric_string_in_the_first_event_does_not_make_a_category(tmp_path: Path) -> None:
    """Finding 2: with "1.5" as a string first, income stays numeric and later events pass."""
    rng = np.random.default_rng(3)
    lines = [json.dumps(_event(0, rng, income="1.5")).encode()]
    lines += [json.dumps(_event(i, rng)).encode() for i in range(1, 6_000)]
    # Strict: a value of the wrong type refuses its event, as in the report.
    run = _run(tmp_path, lines, strict=True)
    assert run.code == 0, run.stderr[-2_000:]
    # Strict refuses a wrong type, but that string was read before types were known.
    assert "6,000 accepted, 0 rejected" in run.summary
    (found,) = run.log("features_discovered")
    assert found["numeric"] == ["income"] and found["categorical"] == ["plan"]
    assert run.log("warmup_reference_built")


def test_events_without_features_first_do_not_blind_the_monitor(tmp_path: Path) -> None:
    """Finding 2: 300 events lacking features first; the features after them are monitored."""
    rng = np.random.default_rng(4)
    lines = []
    for i in range(300):
        bare = _event(i, rng)
        del bare["features"]
        lines.append(json.dumps(bare).encode())
    lines += [json.dumps(_event(i, rng)).encode() for i in range(300, 6_000)]
    run = _run(tmp_path, lines)
    assert run.code == 0, run.stderr[-2_000:]
    assert sorted(run.columns) == ["income", "plan", "prediction"]
    assert "5,700 accepted, 300 rejected (missing_features: 300)" in run.summary


def test_a_feature_that_appears_after_the_warm_up_is_reported(tmp_path: Path) -> None:
    """A name first seen after discovery is logged as not in the reference, not ignored."""
    rng = np.random.default_rng(5)
    lines = [json.dumps(_event(i, rng)).encode() for i in range(2_000)]
    lines += [json.dumps(_event(i, rng, late_score=1.0)).encode() for i in range(2_000, 3_000)]
    run = _run(tmp_path, lines)
    assert run.code == 0, run.stderr[-2_000:]
    assert "late_score" not in run.columns
    assert [e["feature"] for e in run.log("feature_not_in_reference")] == ["late_score"]
