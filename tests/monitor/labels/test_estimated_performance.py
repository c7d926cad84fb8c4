"""Estimated performance (CBPE) in the daemon: windows, perf_drop decisions, state, config."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from detectors.profile import ReferenceProfile, build_profile
from monitor.app import make_results
from monitor.cli import main
from monitor.config import SchemaConfig, Settings
from monitor.emit.label_metrics import PerformanceCollector
from monitor.engine.labels.calibration_fit import fit_performance
from monitor.engine.outcome import BatchOutcome
from monitor.engine.performance_estimate import NO_CALIBRATION
from monitor.engine.pipeline import Pipeline
from monitor.engine.reference.build import build_reference
from monitor.engine.reference.profile_file import load_reference, write_reference
from monitor.ingest.source import Record

WINDOW = 2_000
T0 = 1_700_000_000.0


def reference(calibrated: bool = True) -> ReferenceProfile:
    """One feature and a uniform calibrated score; with the calibration when asked."""
    rng = np.random.default_rng(3)
    p = rng.random(20_000)
    profile = build_profile(
        {"x": rng.normal(size=p.size), "prediction": p}, prediction="prediction"
    )
    if not calibrated:
        return profile
    performance, _ = fit_performance(p, (rng.random(p.size) < p).astype(int))
    return replace(profile, performance=performance, version="")


def pipeline(ref: ReferenceProfile) -> Pipeline:
    """A pipeline on ``ref`` with tumbling windows of ``WINDOW`` events."""
    settings = Settings(model="m", windows={"size_events": WINDOW, "min_samples": 100})  # type: ignore[arg-type]
    return Pipeline(settings, ref, make_results(settings))


class Stream:
    """Events whose labels (kept here, never sent) are drawn from their scores."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng(11)
        self.offset = 0
        self.labels: list[np.ndarray[Any, Any]] = []
        self.scores: list[np.ndarray[Any, Any]] = []

    def batch(self, scores: np.ndarray[Any, Any]) -> list[Record]:
        """One batch of events with these scores."""
        self.scores.append(scores)
        self.labels.append(self.rng.random(scores.size) < scores)
        records = []
        for i, score in enumerate(scores.tolist()):
            event = {
                "id": f"e{self.offset + i}",
                "ts": T0 + self.offset + i,
                "model": "m",
                "features": {"x": float(self.rng.normal())},
                "prediction": score,
            }
            records.append(Record(orjson.dumps(event), "events", 0, self.offset + i))
        self.offset += scores.size
        return records


def run(pipe: Pipeline, stream: Stream, scores: list[np.ndarray[Any, Any]]) -> list[BatchOutcome]:
    """Feed one batch per score array."""
    now = T0 + stream.offset + 1e6
    return [pipe.process(stream.batch(s), now=now) for s in scores]


def perf_transitions(outcomes: list[BatchOutcome]) -> list[tuple[int, str]]:
    """(batch number, new state) of every perf_drop transition."""
    return [
        (k, t.current)
        for k, out in enumerate(outcomes)
        for t in out.transitions
        if t.method == "perf_drop"
    ]


def test_estimate_matches_realized_accuracy_within_sampling_error() -> None:
    """On calibrated scores, each window's estimated accuracy is its realized one within 4 sd."""
    pipe = pipeline(reference())
    stream = Stream()
    assert pipe.performance_estimate is not None
    seen: list[tuple[float, float, float]] = []
    for _ in range(5):
        outcomes = run(pipe, stream, [stream.rng.random(WINDOW)])
        assert perf_transitions(outcomes) == []
        estimated = pipe.performance_estimate.latest()
        if not estimated:
            continue
        # The window that closed holds the last WINDOW events fed before its end.
        (latest,) = estimated
        end = int(latest.window_end_ts - T0) + 1
        scores = np.concatenate(stream.scores)[end - WINDOW : end]
        labels = np.concatenate(stream.labels)[end - WINDOW : end]
        realized = float(np.mean((scores >= 0.5) == labels))
        sd = float(np.sqrt(np.sum(scores * (1 - scores)))) / WINDOW
        seen.append((latest.metrics["accuracy"], realized, sd))
    assert len(seen) >= 3
    for estimate, realized, sd in seen:
        assert abs(estimate - realized) <= 4 * sd + 0.01


def test_score_shift_that_lowers_accuracy_pages_perf_drop_and_stationary_does_not() -> None:
    """Scores squeezed towards 0.5 (accuracy 0.75 -> 0.55) fire perf_drop within 2 windows."""
    pipe = pipeline(reference())
    stream = Stream()
    quiet = run(pipe, stream, [stream.rng.random(WINDOW) for _ in range(4)])
    assert perf_transitions(quiet) == []
    shifted = run(pipe, stream, [0.4 + 0.2 * stream.rng.random(WINDOW) for _ in range(3)])
    fired = [k for k, state in perf_transitions(shifted) if state == "firing"]
    assert fired and fired[0] <= 2
    (latest,) = pipe.performance_estimate.latest() if pipe.performance_estimate else []
    assert latest.drop > latest.threshold


def test_restart_mid_window_gives_the_same_estimates() -> None:
    """Score windows restored from state mid-window close with the same estimates."""
    stream = Stream()
    scores = [stream.rng.random(1_300) for _ in range(5)]
    whole = pipeline(reference())
    run(whole, stream, scores)
    first, second = pipeline(reference()), pipeline(reference())
    stream = Stream()
    run(first, stream, scores[:2])  # 2,600 events: the second window is open
    assert first.performance_estimate is not None and second.performance_estimate is not None
    assert first.windows is not None and second.windows is not None
    second.performance_estimate.load_state_dict(first.performance_estimate.state_dict())
    second.windows.load_state_dict(first.windows.state_dict())
    second.segments.load_state_dict(first.segments.state_dict())
    run(second, stream, scores[2:])
    assert whole.performance_estimate is not None
    assert second.performance_estimate.latest() == whole.performance_estimate.latest()
    assert second.performance_estimate.invalid_scores == 0


def test_invalid_scores_are_counted_not_estimated() -> None:
    """A score outside [0, 1] counts as invalid and leaves the window's estimate alone."""
    pipe = pipeline(reference())
    stream = Stream()
    scores = stream.rng.random(WINDOW + 10)
    scores[1_000:1_010] = 1.5  # the first events wait for their segment's admission
    run(pipe, stream, [scores])
    estimate = pipe.performance_estimate
    assert estimate is not None
    assert estimate.invalid_scores == 10
    (latest,) = estimate.latest()
    assert (latest.n, latest.invalid) == (WINDOW - 10, 10)


def test_reference_without_calibration_says_so_in_a_log_and_a_gauge() -> None:
    """No calibration in the reference: a performance_unmonitored log line and gauge 1."""
    with capture_logs() as logs:
        pipe = pipeline(reference(calibrated=False))
    assert pipe.performance_estimate is None
    assert pipe.performance_unavailable == NO_CALIBRATION
    said = [e for e in logs if e["event"] == "performance_unmonitored"]
    assert said and said[0]["reason"] == NO_CALIBRATION
    registry = CollectorRegistry()
    registry.register(
        PerformanceCollector(
            "m",
            lambda: pipe.performance_estimate,
            lambda: None,
            lambda: pipe.performance_unavailable,
        )
    )
    assert registry.get_sample_value("driftd_performance_unmonitored", {"model": "m"}) == 1.0


def test_reference_build_saves_the_calibration_and_it_loads_back(tmp_path: Path) -> None:
    """`reference build` on scores and 0/1 labels saves a calibration that survives a load."""
    rng = np.random.default_rng(5)
    path = tmp_path / "train.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["x", "prediction", "label"])
        for _ in range(1_000):
            p = float(rng.random())
            writer.writerow([float(rng.normal()), p, int(rng.random() < p)])
    profile = build_reference(path, tmp_path / "ref.json", schema=SchemaConfig())
    assert profile.performance is not None
    loaded = load_reference(tmp_path / "ref.json")
    assert loaded.performance == profile.performance and loaded.version == profile.version
    without = replace(loaded, performance=None, version="")
    write_reference(without, tmp_path / "old.json")
    assert load_reference(tmp_path / "old.json").performance is None


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("detectors:\n  performance_estimation: {metric: bogus}\n", "metric"),
        ("labels:\n  relabel: {enabled: true}\n", "labels.relabel"),
        ("labels:\n  relabel: {path: q.jsonl, topic: relabel}\n", "labels.relabel"),
        ("labels:\n  relabel: {feature_events: -1}\n", "labels.relabel.feature_events"),
        ("labels:\n  noise: {alpha: 0.7}\n", "labels.noise.alpha"),
    ],
)
def test_bad_settings_exit_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, key: str
) -> None:
    """A bad CBPE, label-noise or relabel setting stops check-config with exit 2, by key."""
    config = tmp_path / "driftd.yaml"
    config.write_text(text, encoding="utf-8")
    assert main(["check-config", "-c", str(config)]) == 2
    assert key in capsys.readouterr().err
