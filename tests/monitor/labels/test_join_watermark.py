"""The label join's watermark is the lower of the two sides' event times (finding 4)."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.config import Settings
from monitor.engine.labels.events import LabelBatch
from monitor.engine.labels.monitor import LabelMonitor
from monitor.ingest.decode import Rejection

NAMES = ("__other__", "a")
N = 2_000
TTL = 30.0


def _monitor() -> LabelMonitor:
    settings = Settings(
        model="m",
        labels={"enabled": True, "window_pairs": 100, "ttl_seconds": TTL},  # type: ignore[arg-type]
    )
    return LabelMonitor(settings, None)


def _predictions(lo: int, hi: int) -> tuple[list[str], object, object, object, None]:
    ts = 1_000.0 + np.arange(lo, hi, dtype=np.float64)
    return (
        [f"r{i}" for i in range(lo, hi)],
        np.ones(hi - lo, np.int64),
        np.full(hi - lo, 0.7),
        ts,
        None,
    )


def _labels(lo: int, hi: int) -> LabelBatch:
    return LabelBatch(
        ids=[f"r{i}" for i in range(lo, hi)],
        ts=1_005.0 + np.arange(lo, hi, dtype=np.float64),
        label=np.ones(hi - lo),
        source_index=np.arange(hi - lo),
        rejections=list[Rejection](),
    )


@pytest.mark.parametrize("ahead", ["labels", "predictions"])
def test_the_side_read_ahead_expires_nothing_of_the_other(ahead: str) -> None:
    """A whole backlog of one side before the other: every pair joins, nothing expires."""
    monitor = _monitor()
    empty = _predictions(0, 0)
    for lo in range(0, N, 500):
        if ahead == "labels":
            monitor.process(empty, _labels(lo, lo + 500), NAMES)  # type: ignore[arg-type]
        else:
            monitor.process(_predictions(lo, lo + 500), None, NAMES)  # type: ignore[arg-type]
    for lo in range(0, N, 500):
        if ahead == "labels":
            monitor.process(_predictions(lo, lo + 500), None, NAMES)  # type: ignore[arg-type]
        else:
            monitor.process(empty, _labels(lo, lo + 500), NAMES)  # type: ignore[arg-type]
    counts = monitor.join.counts()
    assert counts["matched"] == N
    assert counts["expired_predictions"] == counts["expired_labels"] == 0


def test_what_both_sides_have_passed_still_expires_and_is_logged(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Predictions whose labels never come expire once both sides are past them, logged."""
    monitor = _monitor()
    monitor.process(_predictions(0, 100), None, NAMES)  # type: ignore[arg-type]
    assert monitor.watermark == -np.inf  # no label seen yet: nothing may expire
    monitor.process(_predictions(100, 200), _labels(150, 200), NAMES)  # type: ignore[arg-type]
    counts = monitor.join.counts()
    assert counts["matched"] == 50
    # Predictions at 1,194 (6th highest), labels at 1,199: the watermark is 1,194, and
    # the unmatched predictions before 1,164 (r0..r149; r150 on matched) expire.
    assert counts["expired_predictions"] == 150
    assert "label_join_expired" in capsys.readouterr().out


def test_join_clocks_survive_the_checkpoint_and_older_state_loads() -> None:
    """state_dict keeps both sides' clocks; a state with one watermark still loads."""
    a = _monitor()
    a.process(_predictions(0, 300), _labels(0, 100), NAMES)  # type: ignore[arg-type]
    state = a.state_dict()
    b = _monitor()
    b.load_state_dict(state)
    assert b.watermark == a.watermark
    old = {k: v for k, v in state.items() if k not in ("prediction_clock", "label_clock")}
    c = _monitor()
    c.load_state_dict(old)
    assert c.watermark == -np.inf  # one remembered time is one event of each side
