"""Label noise and the relabel queue on the label side: decisions, tasks, metrics, state."""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from prometheus_client import CollectorRegistry

from detectors.profile import build_profile
from monitor.config import Settings
from monitor.emit.label_metrics import PerformanceCollector
from monitor.emit.relabel import RelabelQueue
from monitor.engine.decision import DecisionBook
from monitor.engine.labels.calibration_fit import fit_performance
from monitor.engine.labels.events import LabelBatch
from monitor.engine.labels.monitor import LabelMonitor, LabelOutcome
from monitor.engine.labels.pair_quality import RelabelCandidate
from monitor.engine.labels.relabel_features import EventFeatures
from monitor.engine.outcome import BatchOutcome
from monitor.engine.reference.profile_file import write_reference
from monitor.ingest.decode import Rejection
from monitor.state.codec import decode, encode
from monitor.wiring import build_daemon

NAMES = ("__other__", "eu", "us")
WINDOW = 2_000
TOP_N = 5


def settings(tmp_path: Path, **relabel: Any) -> Settings:
    """Labels on, windows of ``WINDOW`` pairs, a relabel queue in ``tmp_path``."""
    return Settings(
        model="m",
        labels={  # type: ignore[arg-type]
            "enabled": True,
            "window_pairs": WINDOW,
            "relabel": {"enabled": True, "path": tmp_path / "queue.jsonl", "top_n": TOP_N}
            | relabel,
        },
    )


def performance() -> dict[str, Any]:
    """The calibration and thresholds of a confident, calibrated binary classifier."""
    rng = np.random.default_rng(1)
    p = rng.beta(0.5, 0.5, 20_000)
    fitted, _ = fit_performance(p, (rng.random(p.size) < p).astype(int))
    assert fitted is not None
    return fitted


def stream(n: int, flip_share: float = 0.1) -> dict[str, Any]:
    """Pairs over eu and us with calibrated scores; ``flip_share`` of us's labels flipped."""
    rng = np.random.default_rng(2)
    segment = rng.integers(1, 3, n).astype(np.int64)
    score = rng.beta(0.5, 0.5, n)
    label = (rng.random(n) < score).astype(np.float64)
    flipped = (segment == 2) & (rng.random(n) < flip_share)
    return {
        "ids": [f"r{i}" for i in range(n)],
        "segment": segment,
        "score": score,
        "label": np.where(flipped, 1.0 - label, label),
        "flipped": {f"r{i}" for i in np.flatnonzero(flipped).tolist()},
        "ts": 1_000.0 + np.arange(n, dtype=np.float64),
    }


def features(data: dict[str, Any], lo: int, hi: int) -> EventFeatures:
    """Events ``lo..hi``'s features: ``amount`` (the row number) and ``country``."""
    amount = np.arange(lo, hi, dtype=np.float64)[:, None]
    return EventFeatures(("amount",), amount, {"country": [f"c{i % 7}" for i in range(lo, hi)]})


def feed(
    monitor: LabelMonitor, data: dict[str, Any], lo: int, hi: int, with_features: bool = False
) -> LabelOutcome:
    """Predictions ``lo..hi`` with their labels in the same batch."""
    predictions = (
        data["ids"][lo:hi],
        data["segment"][lo:hi],
        data["score"][lo:hi],
        data["ts"][lo:hi],
        None,
    )
    labels = LabelBatch(
        ids=data["ids"][lo:hi],
        ts=data["ts"][lo:hi] + 10.0,
        label=data["label"][lo:hi],
        source_index=np.arange(hi - lo),
        rejections=list[Rejection](),
    )
    kept = features(data, lo, hi) if with_features else None
    return monitor.process(predictions, labels, NAMES, kept)


def test_flipped_labels_page_label_noise_in_their_segment_and_queue_tasks(
    tmp_path: Path,
) -> None:
    """10% flipped labels in us fire label_noise there only; its tasks are mostly the flips."""
    cfg = settings(tmp_path)
    monitor = LabelMonitor(cfg, None, performance())
    book = DecisionBook("m", cfg.detectors, cfg.windows.min_samples)
    queue = RelabelQueue(tmp_path / "queue.jsonl", "m", cfg.labels.relabel)
    data = stream(6 * WINDOW)
    firing: list[tuple[str, str]] = []
    for lo in range(0, 6 * WINDOW, 1_500):
        out = feed(monitor, data, lo, lo + 1_500)
        for results in out.results:
            firing += [(t.segment, t.column) for t in book.observe(results)]
        queue.write(out.relabel)
    noise_firing = [s for s, c in firing if c == "__label__"]
    assert noise_firing == ["us"]
    lines = (tmp_path / "queue.jsonl").read_bytes().splitlines()
    tasks = [orjson.loads(line) for line in lines]
    ids = [t["data"]["event_id"] for t in tasks]
    assert len(ids) == len(set(ids)) == queue.in_file
    us = [t for t in tasks if t["data"]["segment"] == "us"]
    assert 0 < len(us) <= TOP_N * 3  # at most top_n per closed window (3 of us)
    assert sum(t["data"]["event_id"] in data["flipped"] for t in us) >= 0.8 * len(us)
    index = {i: k for k, i in enumerate(data["ids"])}
    for task in tasks:
        row = index[task["data"]["event_id"]]
        assert task["data"]["prediction"] == data["score"][row]
        result = task["predictions"][0]["result"][0]
        assert result["value"]["choices"] == [str(int(data["label"][row]))]


def test_realized_and_estimated_performance_on_the_same_pairs_are_exported(
    tmp_path: Path,
) -> None:
    """On clean calibrated pairs the exported estimate is the realized accuracy within 4 sd."""
    monitor = LabelMonitor(settings(tmp_path), None, performance())
    data = stream(2 * WINDOW + 500, flip_share=0.0)
    feed(monitor, data, 0, 2 * WINDOW + 500)
    registry = CollectorRegistry()
    registry.register(
        PerformanceCollector("m", lambda: None, lambda: monitor.quality, lambda: None)
    )
    for name in ("eu", "us"):
        labels = {"model": "m", "segment": name, "metric": "accuracy"}
        realized = registry.get_sample_value("driftd_realized_performance_on_pairs", labels)
        estimated = registry.get_sample_value("driftd_estimated_performance_on_pairs", labels)
        assert realized is not None and estimated is not None
        rows = np.flatnonzero(data["segment"] == NAMES.index(name))[:WINDOW]
        assert realized == np.mean((data["score"][rows] >= 0.5) == data["label"][rows])
        sd = float(np.sqrt(np.sum(data["score"][rows] * (1 - data["score"][rows])))) / WINDOW
        assert abs(realized - estimated) <= 4 * sd + 0.01
        share = registry.get_sample_value(
            "driftd_label_noise_share", {"model": "m", "segment": name}
        )
        assert share is not None and 0.0 <= share < 0.1


def test_restart_mid_window_gives_the_same_rows_and_candidates(tmp_path: Path) -> None:
    """Restored mid-window: same rows and candidates; only held candidates keep features."""
    cfg = settings(tmp_path)
    data = stream(3 * WINDOW)
    whole = LabelMonitor(cfg, None, performance())
    expected = [feed(whole, data, lo, lo + 700, True) for lo in range(0, 3 * WINDOW, 700)]
    first = LabelMonitor(cfg, None, performance())
    for lo in range(0, 2_800, 700):
        feed(first, data, lo, lo + 700, True)
    assert first.quality is not None
    held = set(first.quality.state_dict()["candidate_id"])
    second = LabelMonitor(cfg, None, performance())
    saved = encode(first.state_dict(), {}, state_version=2, fingerprint="f")
    second.load_state_dict(decode(saved, location="test").state)  # through the codec
    got = [feed(second, data, lo, lo + 700, True) for lo in range(2_800, 3 * WINDOW, 700)]

    def noise_rows(outcomes: list[LabelOutcome]) -> list[tuple[Any, ...]]:
        return [
            (r.segments, r.scores["label_noise"].tolist())
            for out in outcomes
            for r in out.results
            if "label_noise" in r.scores
        ]

    assert noise_rows(got) == noise_rows(expected[4:])

    def without_features(outcomes: list[LabelOutcome]) -> list[list[RelabelCandidate]]:
        return [[replace(c, features=None, missing="") for c in o.relabel] for o in outcomes]

    assert without_features(got) == without_features(expected[4:])
    restored = [c for o in got for c in o.relabel]
    straight = {c.event_id: c for o in expected[4:] for c in o.relabel}
    assert all(c.features is not None for c in straight.values())
    assert held and any(c.event_id in held for c in restored)
    for c in restored:
        if c.event_id in held:  # checkpointed with its candidate
            assert c.features == straight[c.event_id].features
        elif c.features is None:  # its prediction came before the restart
            assert c.missing == "restart" and int(c.event_id[1:]) < 2_800
        else:
            assert c.features == straight[c.event_id].features
            assert c.features["amount"] == float(c.event_id[1:])
    assert second.quality is not None and whole.quality is not None
    assert second.quality.latest() == whole.quality.latest()


def test_relabel_queue_deduplicates_bounds_and_survives_a_restart(tmp_path: Path) -> None:
    """Ids are queued once (also after a reopen), the file stops at max_tasks, mode is 0600."""
    cfg = settings(tmp_path, max_tasks=4).labels.relabel
    path = tmp_path / "queue.jsonl"
    candidates = [RelabelCandidate("us", f"e{i}", 0.9, 0, 0.8) for i in range(3)]
    queue = RelabelQueue(path, "m", cfg)
    assert queue.write(candidates + candidates[:1]) == 3
    assert queue.dropped["duplicate"] == 1
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with path.open("ab") as f:
        f.write(b'{"data": {"event_id": "torn')  # a kill in the middle of a line
    again = RelabelQueue(path, "m", cfg)
    assert again.in_file == 3
    more = [RelabelCandidate("us", f"e{i}", 0.9, 0, 0.8) for i in range(5)]
    bad = RelabelCandidate("us", "nan", float("nan"), 0, 0.8)
    assert again.write([bad, *more]) == 1
    assert again.dropped == {"duplicate": 3, "queue_full": 1, "invalid": 1, "delivery_failed": 0}
    tasks = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert [t["data"]["event_id"] for t in tasks] == ["e0", "e1", "e2", "e3"]
    registry = CollectorRegistry()
    registry.register(again)
    assert registry.get_sample_value("driftd_relabel_tasks_total", {"model": "m"}) == 1.0
    assert registry.get_sample_value("driftd_relabel_queue_tasks", {"model": "m"}) == 4.0


def test_build_daemon_wires_the_queue_and_the_metrics(tmp_path: Path) -> None:
    """build_daemon with a calibrated reference: label noise runs, the queue gets batches."""
    rng = np.random.default_rng(0)
    profile = build_profile({"x": rng.normal(size=2_000), "prediction": rng.random(2_000)})
    write_reference(replace(profile, performance=performance(), version=""), tmp_path / "r.json")
    cfg = settings(tmp_path).model_copy(
        update={"reference": Settings(reference={"path": tmp_path / "r.json"}).reference}  # type: ignore[arg-type]
    )
    registry = CollectorRegistry()
    daemon = build_daemon(
        cfg, source_kind="demo", registry=registry, serve_metrics=False, demo_events=10
    )
    labels = daemon.pipeline.labels
    assert labels is not None and labels.quality is not None and labels.quality.noise is not None
    assert daemon.pipeline.performance_estimate is not None
    assert daemon.on_batch is not None
    candidate = RelabelCandidate("us", "e1", 0.95, 0, 0.9)
    daemon.on_batch(BatchOutcome(1, 1, [], None, [], labels=LabelOutcome(relabel=[candidate])))
    assert len((tmp_path / "queue.jsonl").read_bytes().splitlines()) == 1
    assert registry.get_sample_value("driftd_relabel_tasks_total", {"model": "m"}) == 1.0
    assert registry.get_sample_value("driftd_performance_unmonitored", {"model": "m"}) == 0.0


def test_an_evicted_segment_starts_its_pair_windows_empty(tmp_path: Path) -> None:
    """forget_segments drops a segment's open pair window, candidates and latest values."""
    monitor = LabelMonitor(settings(tmp_path), None, performance())
    data = stream(3 * WINDOW)
    feed(monitor, data, 0, 3 * WINDOW)
    quality = monitor.quality
    assert quality is not None
    assert {q.segment for q in quality.latest()} == {"eu", "us"}
    monitor.forget_segments(np.array([2]), ["us"])
    assert {q.segment for q in quality.latest()} == {"eu"}
    state = quality.state_dict()
    assert not state["noise"][2].any() and not state["outcomes"][2].any()
    assert 2 not in state["candidate_segment"].tolist()
