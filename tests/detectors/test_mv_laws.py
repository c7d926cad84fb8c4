"""The multivariate and embedding tests' laws from scipy.special, held to scipy.stats."""

from __future__ import annotations

import numpy as np
from numpy.testing import assert_allclose, assert_array_equal
from scipy import stats

from detectors.mv_laws import Pearson3, binom_sf, f_isf, f_sf, normal_isf, sample_skew


def test_pearson3_equals_scipy_stats_for_any_skew_sign() -> None:
    """cdf, sf, ppf and isf are scipy.stats.pearson3's, bit for bit, normal skews included."""
    rng = np.random.default_rng(4)
    skew = np.concatenate([rng.normal(0.0, 1.5, 400), [0.0, 1e-6, -1e-6, 3.0, -3.0]])
    loc = rng.normal(0.0, 1.0, skew.size)
    scale = rng.uniform(0.01, 3.0, skew.size)
    x = loc + scale * rng.normal(0.0, 2.0, skew.size)
    oracle, twin = stats.pearson3(skew, loc=loc, scale=scale), Pearson3(skew, loc, scale)
    assert_array_equal(twin.cdf(x), oracle.cdf(x))
    assert_array_equal(twin.sf(x), oracle.sf(x))
    for q in (5e-5, 0.3, 0.5, 0.97):
        assert_array_equal(twin.ppf(q), oracle.ppf(q))
        assert_array_equal(twin.isf(q), oracle.isf(q))


def test_f_binomial_normal_and_skew_equal_scipy_stats() -> None:
    """f.sf, f.isf, f.median, norm.isf and skew exactly; binom.sf to within a few ulp."""
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.uniform(0.0, 6.0, 300), [0.0, -1.0, np.inf]])
    dfn = rng.integers(1, 128, x.size)
    dfd = rng.integers(1, 10_000, x.size)
    assert_array_equal(f_sf(x, dfn, dfd), stats.f.sf(x, dfn, dfd))
    assert_array_equal(f_isf(1e-4, dfn, dfd), stats.f.isf(1e-4, dfn, dfd))
    assert_array_equal(f_isf(0.5, dfn, dfd), stats.f.median(dfn, dfd))
    q = rng.uniform(1e-9, 0.5, 200)
    assert_array_equal(normal_isf(q), stats.norm.isf(q))
    k = np.arange(-2, 70)
    for n, p in ((32, 0.01), (64, 0.2), (1, 0.5)):
        assert_allclose(binom_sf(k, n, p), stats.binom.sf(k, n, p), rtol=1e-12, atol=0)
    values = rng.gamma(2.0, 1.0, 2_000)
    assert sample_skew(values) == float(stats.skew(values))
    assert sample_skew(np.ones(5)) == 0.0
