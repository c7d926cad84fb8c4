"""The label side end to end in memory: join, windows, ADWIN, exported metrics, state."""

from __future__ import annotations

from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

from monitor.config import Settings
from monitor.emit.label_metrics import LabelCollector
from monitor.engine.labels.events import LabelBatch
from monitor.engine.labels.monitor import LabelMonitor
from monitor.ingest.decode import Rejection

NAMES = ("__other__", "eu", "us")
WINDOW = 200


def _settings() -> Settings:
    return Settings(
        model="m",
        labels={  # type: ignore[arg-type]
            "enabled": True,
            "window_pairs": WINDOW,
            "group_by": "features.g",
            "min_group_size": 1,
        },
    )


def _stream(n: int, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        "ids": [f"r{i}" for i in range(n)],
        "segment": rng.integers(1, 3, n).astype(np.int64),
        "score": rng.random(n),
        "label": (rng.random(n) < 0.3).astype(np.float64),
        "ts": 1_000.0 + np.arange(n, dtype=np.float64),
        "group": [["a", "b", "c"][k] for k in rng.integers(0, 3, n).tolist()],
    }


def _feed(monitor: LabelMonitor, data: dict[str, Any], lo: int, hi: int) -> list[Any]:
    """Predictions lo..hi, and the labels of the predictions 50 events earlier."""
    ids = data["ids"][lo:hi]
    predictions = (
        ids,
        data["segment"][lo:hi],
        data["score"][lo:hi],
        data["ts"][lo:hi],
        data["group"][lo:hi],
    )
    l_lo, l_hi = max(0, lo - 50), max(0, hi - 50)
    labels = LabelBatch(
        ids=data["ids"][l_lo:l_hi],
        ts=data["ts"][l_lo:l_hi] + 50.0,
        label=data["label"][l_lo:l_hi],
        source_index=np.arange(l_hi - l_lo),
        rejections=list[Rejection](),
    )
    out = monitor.process(predictions, labels, NAMES)
    return [
        (
            r.segments,
            r.columns,
            {m: np.where(np.isnan(v), -1.0, np.round(v, 12)).tolist() for m, v in r.scores.items()},
        )
        for r in out.results
    ]


def test_exported_performance_equals_a_direct_computation() -> None:
    """driftd_performance of a segment's latest window equals accuracy etc. of its pairs."""
    data = _stream(3_000)
    monitor = LabelMonitor(_settings(), None)
    for lo in range(0, 3_000, 250):
        _feed(monitor, data, lo, lo + 250)
    registry = CollectorRegistry()
    registry.register(LabelCollector(monitor, lambda: NAMES))

    # Pairs of a segment, in join order: the labels arrive in id order, 50 events late.
    joined = 3_000 - 50
    seg = data["segment"][:joined]
    for sid, name in ((1, "eu"), (2, "us")):
        rows = np.flatnonzero(seg == sid)
        n_windows = rows.size // WINDOW
        last = rows[(n_windows - 1) * WINDOW : n_windows * WINDOW]
        predicted = data["score"][last] >= 0.5
        truth = data["label"][last] >= 0.5
        accuracy = float(np.mean(predicted == truth))
        brier = float(np.mean((data["score"][last] - data["label"][last]) ** 2))
        labels = {"model": "m", "segment": name}
        got = registry.get_sample_value("driftd_performance", {**labels, "metric": "accuracy"})
        assert got is not None and abs(got - accuracy) < 1e-12
        got = registry.get_sample_value("driftd_performance", {**labels, "metric": "brier"})
        assert got is not None and abs(got - brier) < 1e-12
    matched = registry.get_sample_value("driftd_label_join_matched_total", {"model": "m"})
    assert matched == joined
    pending = {"model": "m", "side": "prediction"}
    assert registry.get_sample_value("driftd_label_join_pending", pending) == 50


def test_restored_monitor_continues_identically() -> None:
    """state_dict mid-stream, load into a new monitor: the rest of the outputs match."""
    data = _stream(4_000, seed=3)
    straight = LabelMonitor(_settings(), None)
    expected = [_feed(straight, data, lo, lo + 400) for lo in range(0, 4_000, 400)]
    first = LabelMonitor(_settings(), None)
    got = [_feed(first, data, lo, lo + 400) for lo in range(0, 2_000, 400)]
    resumed = LabelMonitor(_settings(), None)
    resumed.load_state_dict(first.state_dict())
    got += [_feed(resumed, data, lo, lo + 400) for lo in range(2_000, 4_000, 400)]
    assert got == expected
    assert resumed.join.counts() == straight.join.counts()


def test_label_delay_histogram_matches_prometheus_client() -> None:
    """The batch-counted delay histogram equals the client's own Histogram sample by sample."""
    from prometheus_client import Histogram

    from monitor.emit.label_metrics import DELAY_BUCKETS, LabelDelay

    rng = np.random.default_rng(5)
    delays = np.concatenate([rng.exponential(3_600, 5_000), [0.0, 1.0, 60.0, -2.0, 1e9]])
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    LabelDelay(ours, "m").observe(delays)
    oracle = Histogram(
        "driftd_label_delay_seconds", "x", ["model"], buckets=DELAY_BUCKETS, registry=theirs
    ).labels(model="m")
    for d in delays.tolist():
        oracle.observe(max(0.0, d))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for metric in theirs.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    }
    for (name, labels), value in samples.items():
        got = ours.get_sample_value(name, dict(labels))
        assert got is not None and abs(got - value) < 1e-6 * max(1.0, value), (name, labels)
