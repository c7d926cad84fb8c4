"""Reconstruction-error drift against numpy's SVD, brute-force projections and scipy."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from detectors.detector import DriftDetector
from detectors.multivariate import STAT_COLUMNS, PCAReference, ReconstructionDrift
from detectors.mv_common import UnavailableError
from detectors.profile import build_profile
from detectors.rules import BREACH, CLEAR, DISTRIBUTION_METHODS, SKIP


def _pair(rng: np.random.Generator, n: int, rho: float) -> np.ndarray:
    """Three columns: a normal and a lognormal tied by ``rho`` (Gaussian copula), and a
    discrete-ish one; the marginals do not depend on ``rho``."""
    z1 = rng.normal(size=n)
    z2 = rho * z1 + np.sqrt(1 - rho**2) * rng.normal(size=n)
    return np.column_stack([z1, np.exp(0.5 * z2), np.round(rng.normal(0, 1.5, n))])


def _standardised(rows: np.ndarray) -> np.ndarray:
    return np.asarray((rows - rows.mean(axis=0)) / rows.std(axis=0, ddof=1))


def test_components_match_the_eigenvectors_of_the_standardised_fit_rows() -> None:
    """Components and explained ratios are numpy's eigh of the correlation matrix, up to sign."""
    rng = np.random.default_rng(0)
    fit_rows = rng.normal(size=(600, 5)) @ rng.normal(size=(5, 5)) + [1, 2, 3, 4, 5]
    ref = PCAReference.fit_halves(
        tuple("abcde"), fit_rows, rng.normal(size=(300, 5)), variance_share=0.8, cap_quantile=1.0
    )
    values, vectors = np.linalg.eigh(np.cov(_standardised(fit_rows), rowvar=False))
    values, vectors = values[::-1], vectors[:, ::-1]
    ratio = values / values.sum()
    k = int(np.argmax(np.cumsum(ratio) >= 0.8)) + 1
    assert ref.n_components == k
    np.testing.assert_allclose(ref.explained_variance_ratio, ratio[:k], rtol=1e-10)
    for component, vector in zip(ref.components, vectors.T, strict=False):
        assert np.isclose(abs(component @ vector), 1.0, atol=1e-9)
    np.testing.assert_allclose(ref.mean, fit_rows.mean(axis=0))
    np.testing.assert_allclose(ref.scale, fit_rows.std(axis=0, ddof=1))


def test_errors_equal_a_least_squares_projection_with_mean_imputation() -> None:
    """Per-row error is a least-squares residual on the components; missing cells are imputed."""
    rng = np.random.default_rng(1)
    ref = PCAReference.fit(rng.normal(size=(400, 4)) @ rng.normal(size=(4, 4)), seed=3)
    rows = rng.normal(size=(30, 4)) * 2
    rows[3, 1] = np.nan
    rows[7, :] = np.inf
    errors, missing, empty = ref.errors(rows)
    filled = np.where(np.isfinite(rows), rows, ref.mean)
    z = (filled - ref.mean) / ref.scale
    coef, *_ = np.linalg.lstsq(ref.components.T, z.T, rcond=None)
    brute = ((z.T - ref.components.T @ coef) ** 2).sum(axis=0)
    np.testing.assert_allclose(errors, brute, rtol=1e-9, atol=1e-12)
    assert missing.tolist() == [0, 0, 0, 1, 0, 0, 0, 4] + [0] * 22
    assert np.flatnonzero(empty).tolist() == [7]


def test_component_count_follows_the_variance_share_and_stays_below_the_features() -> None:
    """At least one component, fewer than the features, the fewest reaching the share."""
    rng = np.random.default_rng(2)
    independent = rng.normal(size=(2_000, 4))
    assert PCAReference.fit(independent, variance_share=0.99).n_components == 3
    assert PCAReference.fit(independent, variance_share=0.01).n_components == 1
    assert PCAReference.fit(_pair(rng, 2_000, 0.8)[:, :2]).n_components == 1


def test_merging_pane_statistics_is_a_sum() -> None:
    """Two panes' statistics add up to the whole batch's, and score the same."""
    rng = np.random.default_rng(3)
    detector = ReconstructionDrift(PCAReference.fit(_pair(rng, 2_000, 0.8)), 3, min_samples=50)
    seg, rows = rng.integers(0, 3, 900), _pair(rng, 900, 0.5)
    rows[::17, 2] = np.nan
    whole = detector.accumulate(seg, rows)
    panes = detector.accumulate(seg[:400], rows[:400]) + detector.accumulate(seg[400:], rows[400:])
    np.testing.assert_allclose(panes, whole, rtol=1e-12)
    assert whole[:, STAT_COLUMNS.index("missing")].sum() == 53
    a, b = detector.evaluate(whole), detector.evaluate(panes)
    np.testing.assert_allclose(a.statistic, b.statistic, rtol=1e-12)
    assert a.verdict.tolist() == b.verdict.tolist()


def test_window_mean_is_tested_against_the_held_out_law() -> None:
    """Score, z and p-value follow from the statistics row and scipy's Pearson III law."""
    rng = np.random.default_rng(4)
    ref = PCAReference.fit(_pair(rng, 4_000, 0.8))
    detector = ReconstructionDrift(ref, min_samples=100)
    rows = _pair(rng, 700, 0.6)
    errors = np.minimum(ref.errors(rows)[0], ref.cap)
    result = detector.update(np.zeros(700, np.int64), rows)
    se = ref.error_sd * np.sqrt(1 / 700 + 1 / ref.n_calibration)
    gamma = ref.error_skew * ref.error_sd**3 * (1 / 700**2 - 1 / ref.n_calibration**2) / se**3
    law = stats.pearson3(gamma, loc=ref.error_mean, scale=se)
    assert result.statistic[0] == pytest.approx(errors.mean(), rel=1e-12)
    assert result.z[0] == pytest.approx((errors.mean() - ref.error_mean) / se, rel=1e-9)
    assert result.threshold[0] == pytest.approx(law.isf(0.5e-4), rel=1e-9)
    assert result.lower[0] == pytest.approx(law.ppf(0.5e-4), rel=1e-9)
    assert result.p_value[0] == pytest.approx(2 * law.sf(errors.mean()), rel=1e-6)
    assert result.drift[0] == (result.verdict[0] == BREACH)


def test_correlation_flip_breaches_while_univariate_tests_stay_quiet() -> None:
    """A flip from 0.8 to -0.8 breaches in one window of 2,000; PSI/KS/JS do not."""
    rng = np.random.default_rng(5)
    reference = _pair(rng, 10_000, 0.8)
    detector = ReconstructionDrift(PCAReference.fit(reference), 2)
    seg = np.repeat([0, 1], 2_000)
    rows = np.vstack([_pair(rng, 2_000, 0.8), _pair(rng, 2_000, -0.8)])
    result = detector.update(seg, rows)
    assert result.verdict.tolist() == [CLEAR, BREACH]
    profile = build_profile({name: reference[:, i] for i, name in enumerate("abc")})
    univariate = DriftDetector(profile, 2).update(
        seg, profile.encode({name: rows[:, i] for i, name in enumerate("abc")})
    )
    for method in DISTRIBUTION_METHODS & set(univariate.verdict):
        assert not (univariate.verdict[method] >= BREACH).any(), method


def test_too_few_events_skip_and_empty_rows_are_counted_not_scored() -> None:
    """Below min_samples the verdict is SKIP; rows without values count as empty only."""
    rng = np.random.default_rng(6)
    detector = ReconstructionDrift(PCAReference.fit(_pair(rng, 1_000, 0.8)), 2, min_samples=10)
    rows = _pair(rng, 12, 0.8)
    rows[:3] = np.nan
    result = detector.update(np.array([0] * 12), rows)
    assert result.verdict.tolist()[1] == SKIP and np.isnan(result.statistic[1])
    assert (result.n[0], result.empty[0], result.missing[0]) == (9, 3, 9)
    assert result.verdict[0] == SKIP  # 9 scored events < 10


def test_unusable_features_are_named() -> None:
    """Fewer than two features with spread: unavailable, naming the unusable ones."""
    rng = np.random.default_rng(7)
    columns = {"x": rng.normal(size=500), "flat": np.ones(500), "empty": np.full(500, np.nan)}
    with pytest.raises(UnavailableError, match=r"'flat' \(no spread\).*'empty'") as err:
        PCAReference.fit(columns)
    assert err.value.features == ("x",)
    kept = PCAReference.fit({**columns, "y": rng.normal(size=500)})
    assert kept.features == ("x", "y")


def test_reference_round_trips_through_json() -> None:
    """to_dict is JSON-able and from_dict restores every array exactly."""
    rng = np.random.default_rng(8)
    ref = PCAReference.fit(_pair(rng, 1_000, 0.3), ["a", "b", "c"], seed=5)
    back = PCAReference.from_dict(json.loads(json.dumps(ref.to_dict())))
    assert back.to_dict() == ref.to_dict()
    np.testing.assert_array_equal(back.components, ref.components)
    assert PCAReference.fit(_pair(np.random.default_rng(8), 1_000, 0.3), seed=5).cap == ref.cap


def test_bad_arguments_raise_clear_errors() -> None:
    """Shapes, shares and states out of range are refused with their name."""
    rng = np.random.default_rng(9)
    ref = PCAReference.fit(_pair(rng, 500, 0.5))
    with pytest.raises(ValueError, match="variance_share"):
        PCAReference.fit(_pair(rng, 500, 0.5), variance_share=1.0)
    with pytest.raises(ValueError, match=r"rows must be \(events, 3\)"):
        ref.errors(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="at least 200 rows"):
        PCAReference.fit(_pair(rng, 50, 0.5))
    with pytest.raises(ValueError, match="alpha"):
        ReconstructionDrift(ref, alpha=0.7)
    with pytest.raises(ValueError, match="stats must be"):
        ReconstructionDrift(ref).load_state_dict({"stats": np.zeros((1, 2)), "reference": {}})
