"""Multivariate drift in the daemon: reference PCA, windows, decisions, metrics, restarts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import structlog
from prometheus_client import CollectorRegistry

from detectors.multivariate import PCAReference, ReconstructionDrift
from detectors.profile import ReferenceProfile, build_profile
from monitor.app import make_results
from monitor.cli import main
from monitor.config import MultivariateDriftConfig, SchemaConfig, Settings
from monitor.engine.multivariate_window import (
    COLUMN,
    ERROR_STEPS,
    METHOD,
    MultivariateWindows,
    fit_multivariate,
)
from monitor.engine.outcome import BatchOutcome
from monitor.engine.pipeline import Pipeline
from monitor.engine.reference.build import build_reference
from monitor.ingest.source import Record
from monitor.state import FileCheckpointStore
from monitor.state.checkpointer import StateCheckpointer
from monitor.state.handover import drop_partition, merge_slice, partition_slice
from tests.monitor.pipeline_runs import Samples, fired, run_pipeline
from tests.monitor.pipeline_runs import scrape as scrape_families

WINDOW = 1_000
T0 = 1_700_000_000.0
FEATURES = ("a", "b", "c")


def correlated(rho: float, n: int, seed: int) -> np.ndarray:
    """``n`` rows of (a, b, c): standard normals, a and b correlated ``rho``."""
    cov = [[1.0, rho, 0.0], [rho, 1.0, 0.0], [0.0, 0.0, 1.0]]
    return np.random.default_rng(seed).multivariate_normal([0.0, 0.0, 0.0], cov, n)


def reference(with_model: bool = True) -> ReferenceProfile:
    """A profile of 4,000 rows with a and b correlated 0.8 (and its PCA)."""
    rows = correlated(0.8, 4_000, seed=1)
    columns = {name: rows[:, j] for j, name in enumerate(FEATURES)}
    profile = build_profile(columns)
    if not with_model:
        return profile
    joint, why_not = fit_multivariate(columns, FEATURES, MultivariateDriftConfig())
    assert joint is not None, why_not
    return replace(profile, multivariate=joint, version="")


def settings(tmp_path: Path, **extra: Any) -> Settings:
    """Tumbling windows of 1,000 events; multivariate judged from 300 events."""
    return Settings(
        model="m",
        reference={"path": tmp_path / "unused.json"},  # type: ignore[arg-type]
        windows={"size_events": WINDOW, "min_samples": 100},  # type: ignore[arg-type]
        detectors={"multivariate_drift": {"min_samples": 300}, **extra.pop("detectors", {})},  # type: ignore[arg-type]
        checkpoint={"directory": tmp_path / "state", "interval_s": 0},  # type: ignore[arg-type]
        **extra,
    )


def batches(rhos: list[float], size: int = 700) -> list[list[Record]]:
    """Batches of ``size`` events (cut across window boundaries), one correlation each."""
    out, offset = [], 0
    for i, rho in enumerate(rhos):
        rows = correlated(rho, size, seed=100 + i)
        records = []
        for j in range(size):
            features: dict[str, Any] = dict(zip(FEATURES, rows[j].tolist(), strict=True))
            event = {
                "id": f"e{offset + j}",
                "ts": T0 + offset + j,
                "features": features,
                "prediction": 0.5,
            }
            records.append(Record(orjson.dumps(event), "events", 0, offset + j))
        out.append(records)
        offset += size
    return out


def run(
    cfg: Settings, stream: list[list[Record]], profile: ReferenceProfile | None = None
) -> tuple[Pipeline, list[BatchOutcome]]:
    """A pipeline on ``profile`` (the default reference) fed every batch."""
    return run_pipeline(cfg, stream, profile or reference(), T0 + 1e6)


def scrape(pipeline: Pipeline, tmp_path: Path) -> Samples:
    """The daemon's /metrics samples of the multivariate families: name -> samples."""
    return scrape_families(pipeline, tmp_path, "driftd_multivariate")


STATIONARY = [0.8] * 10
FLIPPED = [0.8] * 5 + [-0.8] * 5  # 3,500 events before: windows 4+ are flipped


def test_correlation_flip_pages_multivariate_only_and_stationary_stays_quiet(
    tmp_path: Path,
) -> None:
    """A flip of a-b correlation (marginals unchanged) pages multivariate within 2 windows."""
    cfg = settings(tmp_path)
    pipeline, outcomes = run(cfg, batches(FLIPPED))
    # Window 4 (events 3,000-3,999) holds 500 flipped events, windows 5-6 only flipped ones.
    assert fired(outcomes) == [(7, COLUMN, METHOD)]  # batch 7 closes window 5: 2nd breach
    assert pipeline.multivariate is not None
    (latest,) = pipeline.multivariate.latest()
    assert latest.error > latest.threshold
    _, quiet = run(cfg, batches(STATIONARY))
    assert fired(quiet) == []
    judged = [
        t for o in quiet for t in o.transitions if t.method == METHOD and t.current == "firing"
    ]
    assert judged == []
    metrics = scrape(pipeline, tmp_path)
    (labels, value), *_ = metrics["driftd_multivariate_reconstruction_error"]
    assert labels == {"model": "m", "segment": latest.segment}
    assert value == pytest.approx(latest.error)
    assert metrics["driftd_multivariate_unmonitored"] == [({"model": "m"}, 0.0)]


def test_window_sums_match_the_detector_on_the_same_rows(tmp_path: Path) -> None:
    """The fixed-point window statistics equal ReconstructionDrift.accumulate within a step."""
    profile = reference()
    pca = PCAReference.from_dict(profile.multivariate)  # type: ignore[arg-type]
    cfg = settings(tmp_path)
    windows = MultivariateWindows(
        "m", pca, cfg.detectors.multivariate_drift, cfg.windows, np.arange(3)
    )
    rows = correlated(-0.5, 2_500, seed=9)
    rows[::7, 1] = np.nan
    rows[::50] = np.nan  # no value at all: counted empty, not scored
    segments = np.arange(rows.shape[0]) % 2
    closed = windows.windows.add(segments, windows.encode(rows), T0 + np.arange(2_500.0))
    got = windows.window_stats(closed.counts)
    oracle = ReconstructionDrift(pca, n_segments=2)
    for row, segment in enumerate(closed.segments.tolist()):
        mine = np.flatnonzero(segments == segment)[:WINDOW]
        want = oracle.accumulate(np.zeros(mine.size, np.int64), rows[mine])[0]
        assert got[row, [0, 3, 4]].tolist() == want[[0, 3, 4]].tolist()
        assert got[row, 1] == pytest.approx(want[1], abs=want[0] * pca.cap / ERROR_STEPS)


def test_restart_mid_window_gives_the_same_decisions(tmp_path: Path) -> None:
    """Checkpoint after a batch that ends mid-window, restore: transitions and scores match."""
    cfg = settings(tmp_path)
    stream = batches(FLIPPED)
    straight, expected = run(cfg, stream)
    first, before = run(cfg, stream[:6])  # 4,200 events: the open window holds 200
    checkpointer = StateCheckpointer(
        FileCheckpointStore(tmp_path / "state"), cfg, CollectorRegistry(), location="t"
    )
    assert checkpointer.save(first, {("events", 0): 4_200})
    resumed = Pipeline(cfg, reference(), make_results(cfg))
    assert checkpointer.restore(resumed) == {("events", 0): 4_200}
    after = [resumed.process(b, now=T0 + 1e6) for b in stream[6:]]
    assert fired(before + after) == fired(expected) == [(7, COLUMN, METHOD)]
    assert resumed.multivariate.latest() == straight.multivariate.latest()  # type: ignore[union-attr]


def test_a_reference_without_a_model_says_so(tmp_path: Path) -> None:
    """No PCA in the reference: a multivariate_unmonitored log line and gauge, no windows."""
    cfg = settings(tmp_path)
    with structlog.testing.capture_logs() as logs:
        pipeline, _ = run(cfg, batches(STATIONARY[:2]), reference(with_model=False))
    said = [e for e in logs if e["event"] == "multivariate_unmonitored"]
    assert len(said) == 1 and "no multivariate model" in said[0]["reason"]
    assert pipeline.multivariate is None
    assert scrape(pipeline, tmp_path)["driftd_multivariate_unmonitored"] == [({"model": "m"}, 1.0)]
    off = settings(tmp_path, detectors={"multivariate_drift": {"enabled": False}})
    with structlog.testing.capture_logs() as logs:
        pipeline, _ = run(off, batches(STATIONARY[:1]), reference(with_model=False))
    assert not [e for e in logs if e["event"] == "multivariate_unmonitored"]
    assert scrape(pipeline, tmp_path)["driftd_multivariate_unmonitored"] == [({"model": "m"}, 0.0)]


def test_reference_build_fits_the_model_or_says_why_not(tmp_path: Path) -> None:
    """`reference build` saves the PCA of the numeric features; without two usable, it warns."""
    rows = correlated(0.8, 600, seed=3)
    data = tmp_path / "train.jsonl"
    data.write_text(
        "".join(
            orjson.dumps({"features": {"a": r[0], "b": r[1], "k": 1.0, "kind": "x"}}).decode()
            + "\n"
            for r in rows.tolist()
        )
    )
    warnings: list[str] = []
    profile = build_reference(
        data, tmp_path / "ref.json", schema=SchemaConfig(), warn=warnings.append
    )
    assert profile.multivariate is not None
    assert PCAReference.from_dict(profile.multivariate).features == ("a", "b")  # k: no spread
    assert warnings == []
    assert ReferenceProfile.from_dict(profile.to_dict()) == profile
    # Saved only when present: a profile without it hashes (and loads) as before.
    plain = reference(with_model=False)
    assert "multivariate" not in plain.to_dict()
    assert ReferenceProfile.from_dict(plain.to_dict()).multivariate is None
    with pytest.raises(ValueError, match="multivariate field does not load"):
        replace(plain, multivariate={"features": ["a", "b"]}, version="")
    single = build_reference(
        data, tmp_path / "one.json", schema=SchemaConfig(), exclude=["b"], warn=warnings.append
    )
    assert single.multivariate is None
    (warning,) = warnings
    assert "no multivariate model" in warning and "'k' (no spread)" in warning


def test_a_warmup_reference_fits_no_model_and_says_so(tmp_path: Path) -> None:
    """A warm-up reference gets no joint model: the daemon logs why and sets the gauge."""
    cfg = Settings(
        **{
            **settings(tmp_path).model_dump(by_alias=True, exclude={"reference"}),
            "reference": {"warmup_events": 1_400},
        }
    )
    pipeline = Pipeline(cfg, None, make_results(cfg))
    with structlog.testing.capture_logs() as logs:
        for batch in batches(STATIONARY[:4]):
            pipeline.process(batch, now=T0 + 1e6)
    assert pipeline.reference is not None and pipeline.reference.multivariate is None
    assert pipeline.multivariate is None
    assert pipeline.multivariate_unavailable is not None
    assert "a warm-up reference fits none" in pipeline.multivariate_unavailable
    assert [e["reason"] for e in logs if e["event"] == "multivariate_unmonitored"] == [
        pipeline.multivariate_unavailable
    ]


@pytest.mark.parametrize(
    ("key", "value"),
    [("variance_share", "1.5"), ("alpha", "0.7"), ("min_samples", "1"), ("enabled", "maybe")],
)
def test_bad_multivariate_settings_exit_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: str
) -> None:
    """check-config refuses an out-of-range detectors.multivariate_drift key, naming it."""
    config = tmp_path / "driftd.yaml"
    config.write_text(
        f"reference:\n  warmup_events: 100\ndetectors:\n  multivariate_drift:\n    {key}: {value}\n"
    )
    assert main(["check-config", "-c", str(config)]) == 2
    assert f"detectors.multivariate_drift.{key}" in capsys.readouterr().err


def test_a_partition_handed_over_mid_window_gives_the_same_decisions(tmp_path: Path) -> None:
    """Slice a partition's state mid-window into another replica: the same decisions follow."""
    cfg = settings(tmp_path)
    stream = batches(FLIPPED)
    _, expected = run(cfg, stream)
    first, before = run(cfg, stream[:6])
    part = partition_slice(first, ("events", 0))
    assert part is not None and part["multivariate"] is not None
    assert drop_partition(first, ("events", 0))
    assert first.multivariate is not None and first.multivariate.windows.open_rows().sum() == 0
    second = Pipeline(cfg, reference(), make_results(cfg))
    merge_slice(second, ("events", 0), part, "t")
    after = [second.process(b, now=T0 + 1e6) for b in stream[6:]]
    assert fired(before + after) == fired(expected) == [(7, COLUMN, METHOD)]
