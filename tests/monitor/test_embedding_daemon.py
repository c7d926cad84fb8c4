"""Embedding drift in the daemon: vector features, windows, decisions, metrics, restarts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import structlog
from prometheus_client import CollectorRegistry

from detectors.embedding import EmbeddingDrift, EmbeddingReference
from detectors.profile import ReferenceProfile, build_profile
from monitor.app import make_results
from monitor.cli import main
from monitor.config import EmbeddingDriftConfig, SchemaConfig, Settings
from monitor.engine.embedding_window import (
    CLIP,
    EMBED_STEPS,
    METHOD,
    EmbeddingWindows,
    fit_embeddings,
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

DIM = 64
K = 16
WINDOW = 1_000
T0 = 1_700_000_000.0
SHIFT = 0.1 * np.sqrt(DIM)  # 0.1 sigma x sqrt(d), along the first axis


def vectors(n: int, seed: int, shift: float = 0.0) -> np.ndarray:
    """``n`` standard normal vectors of ``DIM``, the first coordinate moved by ``shift``."""
    out = np.random.default_rng(seed).normal(size=(n, DIM))
    out[:, 0] += shift
    return out


def reference(with_model: bool = True) -> ReferenceProfile:
    """A one-feature profile (x) with, by default, an embedding model of ``embedding``."""
    profile = build_profile({"x": np.random.default_rng(2).normal(size=2_000)})
    if not with_model:
        return profile
    models, why_not = fit_embeddings(
        {"embedding": vectors(4_000, seed=1).tolist()}, EmbeddingDriftConfig(dimensions=K)
    )
    assert "embedding" in models, why_not
    return replace(profile, embeddings=models, version="")


def settings(tmp_path: Path, **extra: Any) -> Settings:
    """Tumbling windows of 1,000 events; embeddings judged from 300 vectors."""
    return Settings(
        model="m",
        schema={"vector_features": ["embedding"]},  # type: ignore[arg-type]
        reference={"path": tmp_path / "unused.json"},  # type: ignore[arg-type]
        windows={"size_events": WINDOW, "min_samples": 100},  # type: ignore[arg-type]
        detectors={"embedding_drift": {"min_samples": 300}, **extra.pop("detectors", {})},  # type: ignore[arg-type]
        checkpoint={"directory": tmp_path / "state", "interval_s": 0},  # type: ignore[arg-type]
        **extra,
    )


def batches(shifts: list[float], size: int = 700, bad_every: int = 0) -> list[list[Record]]:
    """Batches of ``size`` events, one shift each; every ``bad_every``-th vector is bad."""
    out, offset = [], 0
    for i, shift in enumerate(shifts):
        rows = vectors(size, seed=100 + i, shift=shift)
        x = np.random.default_rng(200 + i).normal(size=size)
        records = []
        for j in range(size):
            vector: Any = rows[j].tolist()
            if bad_every and j % bad_every == 0:
                vector = vector[:-1] if j % (2 * bad_every) else ["a", *vector[1:]]
            event = {
                "id": f"e{offset + j}",
                "ts": T0 + offset + j,
                "features": {"x": float(x[j]), "embedding": vector},
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
    """The daemon's /metrics samples of the embedding families: name -> samples."""
    return scrape_families(pipeline, tmp_path, "driftd_embedding")


SHIFTED = [0.0] * 5 + [SHIFT] * 5  # windows 4+ shifted (window 4 half)


def test_mean_shift_pages_embedding_and_stationary_stays_quiet(tmp_path: Path) -> None:
    """A mean shift of 0.1 sigma x sqrt(d) pages embedding within 2 windows; none stays quiet."""
    cfg = settings(tmp_path)
    pipeline, outcomes = run(cfg, batches(SHIFTED))
    # Shifted from event 3,500: batch 8 closes window 6, the 2nd wholly shifted one.
    assert fired(outcomes) == [(8, "embedding", METHOD)]
    _, quiet = run(cfg, batches([0.0] * 10))
    assert fired(quiet) == []
    (latest,) = pipeline.embeddings["embedding"].latest()
    metrics = scrape(pipeline, tmp_path)
    assert metrics["driftd_embedding_drift_distance"] == [
        ({"model": "m", "segment": latest.segment, "feature": "embedding"}, latest.distance)
    ]
    assert latest.distance > latest.threshold
    assert metrics["driftd_embedding_unmonitored"] == [({"model": "m", "feature": "embedding"}, 0)]


def test_bad_vectors_are_counted_and_spare_their_batch_mates(tmp_path: Path) -> None:
    """Wrong-length and non-numeric vectors are counted by reason; every event is kept."""
    cfg = settings(tmp_path)
    pipeline, outcomes = run(cfg, batches([0.0] * 2, bad_every=10))
    assert sum(o.accepted for o in outcomes) == 1_400
    assert pipeline.invalid_values == {
        ("embedding", "wrong_length"): 70,
        ("embedding", "wrong_type"): 70,
    }
    (latest,) = pipeline.embeddings["embedding"].latest()
    assert (latest.n, latest.missing) == (900, 100)  # window 1: every 10th vector refused
    assert pipeline.windows is not None and pipeline.windows.open_rows().sum() == 400


def test_window_sums_match_the_detector_on_the_same_vectors(tmp_path: Path) -> None:
    """The fixed-point window statistics equal EmbeddingDrift.accumulate within a step."""
    model = EmbeddingReference.from_dict(reference().embeddings["embedding"])  # type: ignore[index]
    cfg = settings(tmp_path)
    windows = EmbeddingWindows("m", "embedding", model, cfg.detectors.embedding_drift, cfg.windows)
    rows = vectors(1_200, seed=5, shift=0.3)
    rows[::9] = np.nan
    closed = windows.windows.add(
        np.zeros(1_200, np.int64), windows.encode(rows), T0 + np.arange(1_200.0)
    )
    got = windows.window_stats(closed.counts)[0]
    first = rows[:WINDOW]
    want = EmbeddingDrift(model).accumulate(
        np.zeros(WINDOW, np.int64), [None if np.isnan(r).all() else r for r in first]
    )[0]
    assert got[:2].tolist() == want[:2].tolist()
    step = CLIP / EMBED_STEPS  # half a step, each vector
    np.testing.assert_allclose(got[4:], want[4:], atol=want[0] * step)


def test_restart_mid_window_gives_the_same_decisions(tmp_path: Path) -> None:
    """Checkpoint after a batch that ends mid-window, restore: transitions and scores match."""
    cfg = settings(tmp_path)
    stream = batches(SHIFTED)
    straight, expected = run(cfg, stream)
    first, before = run(cfg, stream[:6])
    checkpointer = StateCheckpointer(
        FileCheckpointStore(tmp_path / "state"), cfg, CollectorRegistry(), location="t"
    )
    assert checkpointer.save(first, {("events", 0): 4_200})
    resumed = Pipeline(cfg, reference(), make_results(cfg))
    assert checkpointer.restore(resumed) == {("events", 0): 4_200}
    after = [resumed.process(b, now=T0 + 1e6) for b in stream[6:]]
    assert fired(before + after) == fired(expected) == [(8, "embedding", METHOD)]
    assert resumed.embeddings["embedding"].latest() == straight.embeddings["embedding"].latest()


def test_a_vector_feature_without_a_model_says_so(tmp_path: Path) -> None:
    """A listed vector feature the reference has no model for: a log line and a gauge."""
    cfg = settings(tmp_path)
    with structlog.testing.capture_logs() as logs:
        pipeline, _ = run(cfg, batches([0.0]), reference(with_model=False))
    said = [e for e in logs if e["event"] == "embedding_unmonitored"]
    assert [e["feature"] for e in said] == ["embedding"]
    assert pipeline.embeddings == {}
    assert scrape(pipeline, tmp_path)["driftd_embedding_unmonitored"] == [
        ({"model": "m", "feature": "embedding"}, 1.0)
    ]


def test_reference_build_fits_an_embedding_model(tmp_path: Path) -> None:
    """`reference build` fits the listed vector feature's model and leaves it out of columns."""
    data = tmp_path / "train.jsonl"
    rows = vectors(300, seed=8)
    data.write_text(
        "".join(
            orjson.dumps({"features": {"x": float(r[1]), "emb": r.tolist()}}).decode() + "\n"
            for r in rows
        )
    )
    warnings: list[str] = []
    profile = build_reference(
        data,
        tmp_path / "ref.json",
        schema=SchemaConfig(vector_features=["emb", "absent"]),
        warn=warnings.append,
    )
    assert profile.names == ("x",)
    assert profile.embeddings is not None
    assert EmbeddingReference.from_dict(profile.embeddings["emb"]).dim == DIM
    assert ReferenceProfile.from_dict(profile.to_dict()) == profile
    assert any("'absent'" in w for w in warnings)
    assert "embeddings" not in reference(with_model=False).to_dict()  # older profiles load as is
    with pytest.raises(ValueError, match="embeddings field does not load"):
        replace(profile, embeddings={"emb": {"dim": 4}}, version="")


@pytest.mark.parametrize(("key", "value"), [("dimensions", "1"), ("alpha", "0.7")])
def test_bad_embedding_settings_exit_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: str
) -> None:
    """check-config refuses an out-of-range detectors.embedding_drift key, naming it."""
    config = tmp_path / "driftd.yaml"
    config.write_text(
        f"reference:\n  warmup_events: 100\ndetectors:\n  embedding_drift:\n    {key}: {value}\n"
    )
    assert main(["check-config", "-c", str(config)]) == 2
    assert f"detectors.embedding_drift.{key}" in capsys.readouterr().err


def test_a_partition_handed_over_mid_window_gives_the_same_decisions(tmp_path: Path) -> None:
    """Slice a partition's state mid-window into another replica: the same decisions follow."""
    cfg = settings(tmp_path)
    stream = batches(SHIFTED)
    _, expected = run(cfg, stream)
    first, before = run(cfg, stream[:6])
    part = partition_slice(first, ("events", 0))
    assert part is not None and set(part["embeddings"]) == {"embedding"}
    drop_partition(first, ("events", 0))
    second = Pipeline(cfg, reference(), make_results(cfg))
    merge_slice(second, ("events", 0), part, "t")
    after = [second.process(b, now=T0 + 1e6) for b in stream[6:]]
    assert fired(before + after) == fired(expected) == [(8, "embedding", METHOD)]
