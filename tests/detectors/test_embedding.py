"""Embedding drift against numpy whitening, a brute-force Hotelling T^2 and scipy laws."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
from scipy import stats

from detectors.embedding import COUNT_COLUMNS, EmbeddingDrift, EmbeddingReference
from detectors.mv_common import UnavailableError
from detectors.mv_vectors import sort_vectors
from detectors.rules import BAND, BREACH, CLEAR, SKIP


@functools.cache
def _rotation(d: int) -> np.ndarray:
    rotation, _ = np.linalg.qr(np.random.default_rng(99).normal(size=(d, d)))
    return np.asarray(rotation.T)


def _anisotropic(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """Vectors whose coordinate sds span two orders of magnitude in a random basis."""
    return np.asarray((rng.normal(size=(n, d)) * np.geomspace(3, 0.03, d)) @ _rotation(d))


@pytest.mark.parametrize("projection", ["gaussian", "pca"])
def test_reference_coordinates_are_white(projection: str) -> None:
    """On the reference, the whitened coordinates have mean 0 and identity covariance."""
    rng = np.random.default_rng(0)
    vectors = _anisotropic(rng, 800, 24)
    ref = EmbeddingReference.fit(vectors, k=6, projection=projection, seed=2)  # type: ignore[arg-type]
    coordinates = ref.coordinates(vectors)
    np.testing.assert_allclose(coordinates.mean(axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(np.cov(coordinates, rowvar=False), np.eye(6), atol=1e-9)


def test_pca_projection_spans_the_top_eigenvectors() -> None:
    """The PCA projection's column space is that of numpy's top-k covariance eigenvectors."""
    rng = np.random.default_rng(1)
    vectors = _anisotropic(rng, 1_000, 16)
    ref = EmbeddingReference.fit(vectors, k=4, projection="pca")
    _, eigenvectors = np.linalg.eigh(np.cov(vectors, rowvar=False))
    top = eigenvectors[:, -4:]
    basis, _ = np.linalg.qr(ref.projection)
    np.testing.assert_allclose(basis @ basis.T, top @ top.T, atol=1e-8)


def test_distance_and_share_match_a_brute_force_hotelling_test() -> None:
    """Distance, T^2 p-value and drifted share equal a direct computation on raw vectors."""
    rng = np.random.default_rng(2)
    reference = rng.normal(size=(600, 12))
    ref = EmbeddingReference.fit(reference, k=5, seed=4)
    window = rng.normal(size=(300, 12)) + 0.15
    result = EmbeddingDrift(ref, min_samples=10).update(np.zeros(300, np.int64), window)
    raw = np.random.default_rng(4).normal(0, 1 / np.sqrt(12), size=(12, 5))
    projected_ref = reference @ raw
    gap = window.mean(axis=0) @ raw - projected_ref.mean(axis=0)
    cov = np.cov(projected_ref, rowvar=False)
    squared = gap @ np.linalg.solve(cov, gap)
    t2 = squared / (1 / 300 + 1 / 600)
    p = stats.f.sf(t2 * (600 - 5) / (5 * (600 - 1)), 5, 600 - 5)
    assert result.distance[0] == pytest.approx(np.sqrt(squared), rel=1e-9)
    assert result.distance_p_value[0] == pytest.approx(p, rel=1e-6)
    white = ref.coordinates(window).mean(axis=0) / np.sqrt(1 / 300 + 1 / 600)
    drifted = int((np.abs(white) > stats.norm.isf(0.025)).sum())
    assert result.drifted_share[0] == drifted / 5
    assert result.share_p_value[0] == pytest.approx(stats.binom.sf(drifted - 1, 5, 0.05))


def test_shift_of_a_tenth_sigma_root_d_breaches_and_stationary_stays_quiet() -> None:
    """d=256, window 2,000: a 0.1 sigma x sqrt(d) shift breaches; a clean one does not."""
    rng = np.random.default_rng(3)
    d = 256
    ref = EmbeddingReference.fit(_anisotropic(rng, 2_000, d), k=32, seed=1)
    sigma = np.sqrt((np.geomspace(3, 0.03, d) ** 2).mean())
    direction = rng.normal(size=d)
    shift = 0.1 * sigma * np.sqrt(d) * direction / np.linalg.norm(direction)
    vectors = np.vstack([_anisotropic(rng, 2_000, d), _anisotropic(rng, 2_000, d) + shift])
    stats_rows = EmbeddingDrift(ref, 2).accumulate(np.repeat([0, 1], 2_000), vectors)
    for statistic in ("mahalanobis", "share"):
        verdict = EmbeddingDrift(ref, 2, statistic=statistic).evaluate(stats_rows).verdict
        assert verdict[0] in (CLEAR, BAND) and verdict[1] == BREACH, statistic


def test_merging_pane_statistics_is_a_sum() -> None:
    """Two panes' statistics add up to the whole batch's, and score the same."""
    rng = np.random.default_rng(4)
    detector = EmbeddingDrift(EmbeddingReference.fit(rng.normal(size=(500, 10)), k=4), 3)
    seg, vectors = rng.integers(0, 3, 700), rng.normal(size=(700, 10))
    whole = detector.accumulate(seg, vectors)
    panes = detector.accumulate(seg[:300], vectors[:300]) + detector.accumulate(
        seg[300:], vectors[300:]
    )
    np.testing.assert_allclose(panes, whole, rtol=1e-12, atol=1e-12)
    assert whole.shape == (3, len(COUNT_COLUMNS) + 4)
    np.testing.assert_allclose(
        detector.evaluate(panes).statistic, detector.evaluate(whole).statistic, rtol=1e-9
    )


def test_bad_vectors_are_counted_and_good_ones_beside_them_kept() -> None:
    """None, wrong lengths, strings and NaNs are counted apart; good vectors score as alone."""
    rng = np.random.default_rng(5)
    detector = EmbeddingDrift(EmbeddingReference.fit(rng.normal(size=(300, 4)), k=3), 2)
    good = rng.normal(size=(3, 4))
    batch = [good[0], None, [1.0, 2.0], ["a", "b", "c", "d"], good[1], [np.nan] * 4]
    batch += [[1.0, np.inf, 0.0, 0.0], good[2]]
    seg = np.array([0, 0, 1, 1, 0, 1, 1, 1])
    stats_rows = detector.accumulate(seg, batch)
    alone = detector.accumulate(seg[[0, 4, 7]], good)
    np.testing.assert_array_equal(stats_rows[:, len(COUNT_COLUMNS) :], alone[:, 4:])
    result = detector.evaluate(stats_rows)
    assert result.n.tolist() == [2, 1]
    assert result.missing.tolist() == [1, 4]
    assert result.malformed.tolist() == [0, 2] and result.nonfinite.tolist() == [0, 1]
    assert result.verdict.tolist() == [SKIP, SKIP]
    wrong_width = sort_vectors(np.zeros((5, 3)), 4)
    assert wrong_width.malformed.all() and not wrong_width.ok.any()


def test_reference_round_trips_and_is_deterministic() -> None:
    """to_dict is JSON-able, from_dict restores it exactly, and a seed fixes the projection."""
    rng = np.random.default_rng(6)
    vectors = rng.normal(size=(400, 20))
    ref = EmbeddingReference.fit(vectors, k=8, seed=3)
    back = EmbeddingReference.from_dict(json.loads(json.dumps(ref.to_dict())))
    np.testing.assert_array_equal(back.projection, ref.projection)
    assert back.to_dict() == ref.to_dict()
    np.testing.assert_array_equal(
        EmbeddingReference.fit(vectors, k=8, seed=3).projection, ref.projection
    )
    assert not np.array_equal(
        EmbeddingReference.fit(vectors, k=8, seed=4).projection, ref.projection
    )


def test_bad_arguments_raise_clear_errors() -> None:
    """Unusable references and out-of-range arguments are refused with their name."""
    rng = np.random.default_rng(7)
    with pytest.raises(UnavailableError, match="no spread"):
        EmbeddingReference.fit(np.ones((200, 8)))
    with pytest.raises(UnavailableError, match="dim >= 2"):
        EmbeddingReference.fit(np.ones(200))
    with pytest.raises(ValueError, match="projection"):
        EmbeddingReference.fit(rng.normal(size=(200, 8)), projection="sparse")  # type: ignore[arg-type]
    ref = EmbeddingReference.fit(rng.normal(size=(200, 8)), k=100)
    assert ref.k == 8
    with pytest.raises(ValueError, match="statistic"):
        EmbeddingDrift(ref, statistic="auc")  # type: ignore[arg-type]
    with pytest.raises(UnavailableError, match="no share of 3 coordinates"):
        EmbeddingDrift(EmbeddingReference.fit(rng.normal(size=(200, 8)), k=3), statistic="share")
    with pytest.raises(ValueError, match="segment ids"):
        EmbeddingDrift(ref).update([0, 1], rng.normal(size=(2, 8)))
