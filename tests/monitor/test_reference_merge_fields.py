"""``driftd reference merge`` of the fields beyond the columns (score calibration and
label-noise thresholds, PCA, embedding models), and ``labels.decision_threshold`` from
``reference build`` to the daemon."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.optimize import isotonic_regression
from structlog.testing import capture_logs

from detectors.merge import profile_on_grid
from detectors.profile import ReferenceProfile, build_profile, performance_from_dict
from detectors.segment_mix import SegmentMix
from monitor.app import make_results
from monitor.config import EmbeddingDriftConfig, Settings
from monitor.engine.embedding_window import fit_embeddings
from monitor.engine.labels.calibration_fit import (
    calibration_threshold,
    fit_performance,
    merge_performance,
)
from monitor.engine.pipeline import Pipeline
from monitor.engine.reference.merge import merge_reference_files
from monitor.engine.reference.profile_file import load_reference, write_reference
from tests.monitor.cli_helpers import run_reference as run

N = 4_000


def labelled(n: int = N, seed: int = 1) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Calibrated scores and their 0/1 labels."""
    rng = np.random.default_rng(seed)
    p = rng.beta(2, 2, n).round(4)
    return p, (rng.random(n) < p).astype(int)


def write_rows(path: Path, p: np.ndarray[Any, Any], y: np.ndarray[Any, Any] | None) -> Path:
    """Training rows (two numeric features, the score, the label when given) as CSV."""
    rng = np.random.default_rng(int(p.size))
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["a", "b", "prediction", *(["label"] if y is not None else [])])
        for i in range(p.size):
            extra = [int(y[i])] if y is not None else []
            writer.writerow([round(float(rng.normal()), 3), int(rng.integers(0, 9)), p[i], *extra])
    return path


def test_calibrations_on_one_grid_merge_into_the_unions() -> None:
    """Shards calibrated on one grid merge into the union's calibration, checked by brute force."""
    p, y = labelled()
    grid, _ = fit_performance(p[:1_000], y[:1_000])
    assert grid is not None
    cuts = (slice(0, 1_500), slice(1_500, 2_200), slice(2_200, None))
    merged, why_not = merge_performance([fit_performance(p[s], y[s], grid=grid)[0] for s in cuts])
    assert why_not is None and merged is not None
    assert merged == fit_performance(p, y, grid=grid)[0]
    estimator, noise = performance_from_dict(merged)
    grid_estimator, grid_noise = performance_from_dict(grid)
    calibration = estimator.calibration
    np.testing.assert_array_equal(calibration.edges, grid_estimator.calibration.edges)
    # numpy oracle: events and positives of the union per bin of the grid's edges
    bins = np.searchsorted(calibration.edges[1:-1], p, side="right")
    counts = np.bincount(bins, minlength=calibration.n_bins)
    np.testing.assert_array_equal(calibration.reference_counts, counts)
    np.testing.assert_array_equal(
        calibration.reference_positives, np.bincount(bins, weights=y, minlength=counts.size)
    )
    # scipy oracle: the calibrated rates are the weighted isotonic fit of the union's rates
    seen = counts > 0
    rates = calibration.reference_positives[seen] / counts[seen]
    expected = isotonic_regression(rates, weights=counts[seen].astype(float)).x
    np.testing.assert_allclose(calibration.calibrated[seen], expected, rtol=1e-12)
    # label noise: the union's suspicious pairs under the grid's per-class thresholds
    np.testing.assert_array_equal(noise.thresholds.thresholds, grid_noise.thresholds.thresholds)
    own = np.where(y == 1, p, 1 - p)
    suspicious = ((1 - own) >= grid_noise.thresholds.thresholds[1 - y]) & (1 - own > own)
    assert noise.thresholds.reference_pairs == p.size
    assert noise.thresholds.reference_suspicious == int(suspicious.sum())


def test_calibrations_on_their_own_scores_are_not_merged() -> None:
    """Shards calibrated on their own quantiles, or one without a calibration: none, and why."""
    p, y = labelled()
    own = [fit_performance(p[s], y[s])[0] for s in (slice(0, 2_000), slice(2_000, None))]
    merged, why_not = merge_performance(own)
    assert merged is None and why_not is not None and "bin edges" in why_not
    merged, why_not = merge_performance([own[0], None])
    assert merged is None and why_not is not None and "[1]" in why_not
    assert merge_performance([own[0], own[0]]) == (own[0], None)
    assert merge_performance([None, None]) == (None, None)


def test_cli_merge_of_grid_shards_keeps_the_calibration_of_the_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Shards built --grid-from a calibrated grid merge into the whole's profile, silently."""
    p, y = labelled()
    grid = tmp_path / "grid.json"
    assert (
        run(
            "build",
            "-i",
            str(write_rows(tmp_path / "g.csv", p[:1_000], y[:1_000])),
            "-o",
            str(grid),
        )
        == 0
    )
    assert load_reference(grid).performance is not None
    shards = []
    for k, part in enumerate((slice(0, 2_500), slice(2_500, None))):
        out = tmp_path / f"shard{k}.json"
        data = write_rows(tmp_path / f"s{k}.csv", p[part], y[part])
        assert run("build", "-i", str(data), "-o", str(out), "--grid-from", str(grid)) == 0
        shards.append(out)
    capsys.readouterr()
    assert run("merge", *map(str, shards), "-o", str(tmp_path / "merged.json")) == 0
    assert "warning" not in capsys.readouterr().err
    merged = load_reference(tmp_path / "merged.json")
    whole_performance, _ = fit_performance(p, y, grid=load_reference(grid).performance)
    assert merged.performance == whole_performance


def merge_warnings(capsys: pytest.CaptureFixture[str], *profiles: Path, out: Path) -> list[str]:
    """``reference merge`` of ``profiles`` (it must succeed); its warning lines."""
    capsys.readouterr()
    assert run("merge", *map(str, profiles), "-o", str(out)) == 0
    err = capsys.readouterr().err.splitlines()
    return [line for line in err if line.startswith("driftd reference merge: warning: ")]


def test_cli_merge_names_every_field_it_drops(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Shards calibrated on their own scores, and a PCA in one shard: dropped, each named."""
    p, y = labelled()
    built = tmp_path / "built.json"
    assert (
        run(
            "build",
            "-i",
            str(write_rows(tmp_path / "g.csv", p[:2_000], y[:2_000])),
            "-o",
            str(built),
        )
        == 0
    )
    # A grid saved before references carried a calibration: the shards calibrate alone.
    grid = tmp_path / "grid.json"
    write_reference(replace(load_reference(built), performance=None, version=""), grid)
    shards = []
    for k, part in enumerate((slice(2_000, 3_000), slice(3_000, None))):
        out = tmp_path / f"shard{k}.json"
        data = write_rows(tmp_path / f"s{k}.csv", p[part], y[part])
        assert run("build", "-i", str(data), "-o", str(out), "--grid-from", str(grid)) == 0
        shards.append(out)
    (performance,) = merge_warnings(capsys, *shards, out=tmp_path / "m1.json")
    assert "no score calibration" in performance and "bin edges" in performance
    assert "--grid-from" in performance and "union of the data" in performance
    assert load_reference(tmp_path / "m1.json").performance is None
    # The grid itself as the first shard: no calibration there, and a PCA only there.
    warnings = merge_warnings(capsys, grid, shards[0], out=tmp_path / "m2.json")
    assert len(warnings) == 2, warnings
    performance, multivariate = sorted(warnings, key=lambda w: "multivariate" in w)
    assert "no score calibration" in performance and "[0]" in performance
    assert "no multivariate model" in multivariate and str(shards[0]) in multivariate
    merged = load_reference(tmp_path / "m2.json")
    assert merged.performance is None and merged.multivariate is None


def _with_embedding(profile: ReferenceProfile, seed: int) -> ReferenceProfile:
    rows = np.random.default_rng(seed).normal(size=(300, 6)).tolist()
    models, why_not = fit_embeddings({"vec": rows}, EmbeddingDriftConfig(dimensions=3))
    assert "vec" in models, why_not
    return replace(profile, embeddings=models, version="")


def test_embedding_models_are_kept_only_when_every_shard_has_the_same(tmp_path: Path) -> None:
    """The same embedding model in every shard is kept; other fits are dropped with a warning."""
    x = np.random.default_rng(4).normal(size=2_000)
    grid = build_profile({"x": x[:500]}, chunks=1)
    halves = [
        profile_on_grid({"x": x[s]}, grid, chunks=1) for s in (slice(0, 1_000), slice(1_000, None))
    ]
    said: list[str] = []
    same = [_with_embedding(h, seed=1) for h in halves]
    other = [_with_embedding(halves[0], seed=1), _with_embedding(halves[1], seed=2)]
    for name, shards in (("same", same), ("other", other)):
        for k, shard in enumerate(shards):
            write_reference(shard, tmp_path / f"{name}{k}.json")
    paths = [tmp_path / "same0.json", tmp_path / "same1.json"]
    kept = merge_reference_files(paths, tmp_path / "m1.json", warn=said.append)
    assert kept.embeddings == same[0].embeddings and said == []
    paths = [tmp_path / "other0.json", tmp_path / "other1.json"]
    dropped = merge_reference_files(paths, tmp_path / "m2.json", warn=said.append)
    assert dropped.embeddings is None
    assert len(said) == 1 and "'vec'" in said[0] and "union of the data" in said[0]


def test_a_shard_without_a_segment_mix_drops_the_mix_and_says_which(tmp_path: Path) -> None:
    """Mixes add up only when every shard has one; otherwise none, naming the shard without."""
    x = np.random.default_rng(6).normal(size=2_000)
    grid = build_profile({"x": x[:500]}, chunks=1)
    halves = [
        profile_on_grid({"x": x[s]}, grid, chunks=1) for s in (slice(0, 1_000), slice(1_000, None))
    ]
    mix = SegmentMix.from_counts({"north": 600, "south": 400})
    write_reference(replace(halves[0], segments=mix, version=""), tmp_path / "a.json")
    write_reference(halves[1], tmp_path / "b.json")
    said: list[str] = []
    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    assert merge_reference_files(paths, tmp_path / "m.json", warn=said.append).segments is None
    assert len(said) == 1 and "no segment mix" in said[0] and str(paths[1]) in said[0]


def test_reference_build_calibrates_at_the_configured_decision_threshold(tmp_path: Path) -> None:
    """labels.decision_threshold is a bin edge of the calibration, splitting the classes there."""
    p, y = labelled()
    config = tmp_path / "driftd.yaml"
    config.write_text("labels:\n  decision_threshold: 0.7\n")
    out = tmp_path / "ref.json"
    data = write_rows(tmp_path / "t.csv", p, y)
    assert run("build", "-i", str(data), "-o", str(out), "-c", str(config)) == 0
    performance = load_reference(out).performance
    assert performance is not None and calibration_threshold(performance) == 0.7
    calibration = performance_from_dict(performance)[0].calibration
    predicted_positive = calibration.reference_counts[calibration.positive_bins].sum()
    assert predicted_positive == int((p >= 0.7).sum())


def test_daemon_does_not_estimate_for_another_threshold() -> None:
    """A calibration fitted at 0.5 under labels.decision_threshold 0.7: no CBPE, and it says why."""
    p, y = labelled()
    profile = build_profile({"x": p * 2, "prediction": p}, prediction="prediction")
    performance, _ = fit_performance(p, y)
    reference = replace(profile, performance=performance, version="")
    for threshold, estimated in ((0.5, True), (0.7, False)):
        settings = Settings(
            model="m",
            labels={"enabled": True, "decision_threshold": threshold},  # type: ignore[arg-type]
        )
        with capture_logs() as logs:
            pipe = Pipeline(settings, reference, make_results(settings))
        assert (pipe.performance_estimate is not None) is estimated
        assert pipe.labels is not None and pipe.labels.quality is not None
        assert (pipe.labels.quality.estimator is not None) is estimated  # on the pairs too
        said = [e for e in logs if e["event"] == "performance_unmonitored"]
        if estimated:
            assert pipe.performance_unavailable is None and said == []
        else:
            reason = pipe.performance_unavailable
            assert reason is not None and "0.5" in reason and "0.7" in reason
            assert said and said[0]["reason"] == reason and said[0]["signals"] == ["perf_drop"]
