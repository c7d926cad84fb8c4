"""The scipy.special twins of the scipy.stats distributions on the hot path: bit for bit.

The engine scores windows without importing scipy.stats (~45 MiB of RSS); these tests
hold its twins to scipy.stats itself, the oracle, on random and edge arguments.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
from numpy.testing import assert_array_equal
from scipy import stats

from detectors.calibration import beta_binomial_sf
from detectors.stats import chi2_isf, chi2_sf, normal_isf, normal_sf


def test_chi2_sf_equals_scipy_stats_with_its_edges() -> None:
    """chi2_sf is scipy.stats.chi2.sf bit for bit, including x <= 0, inf, NaN and dof <= 0."""
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.exponential(5.0, 500), [-1.0, 0.0, np.inf, np.nan, 1e-300, 1e5]])
    dof = np.concatenate([rng.uniform(0.01, 200.0, 500), [3.0, 3.0, 3.0, 3.0, 0.5, 2.0]])
    assert_array_equal(chi2_sf(x, dof), stats.chi2.sf(x, dof))
    bad = np.array([0.0, -1.0, np.nan, 0.5, 7.0])
    assert_array_equal(chi2_sf(2.0, bad), stats.chi2.sf(2.0, bad))


def test_chi2_isf_and_normal_tails_equal_scipy_stats() -> None:
    """chi2_isf, normal_sf and normal_isf are scipy.stats' chi2.isf, norm.sf, norm.isf."""
    rng = np.random.default_rng(2)
    alpha = rng.uniform(1e-9, 0.5, 500)
    dof = rng.uniform(0.01, 200.0, 500)
    assert_array_equal(chi2_isf(alpha, dof), stats.chi2.isf(alpha, dof))
    assert_array_equal(chi2_isf(0.05, [0.0, -2.0]), stats.chi2.isf(0.05, [0.0, -2.0]))
    z = np.concatenate([rng.normal(0.0, 5.0, 500), [np.inf, -np.inf, np.nan, 0.0]])
    assert_array_equal(normal_sf(z), stats.norm.sf(z))
    assert_array_equal(normal_isf(alpha), stats.norm.isf(alpha))


def test_beta_binomial_sf_equals_scipy_betabinom() -> None:
    """beta_binomial_sf(k) is P(K >= k) from scipy.stats.betabinom.sf(k - 1), bit for bit."""
    rng = np.random.default_rng(3)
    n = rng.integers(0, 3_000, 400).astype(np.float64)
    k = np.floor(rng.uniform(-0.2, 1.0, 400) * n * rng.uniform(0.0, 0.05, 400))
    k[:6] = [0.0, 1.0, 5.0, 3_000.0, 2.0, 1.0]
    a = rng.uniform(0.5, 30.0, 400)
    b = rng.uniform(1.0, 5e4, 400)
    expected = np.where(k <= 0, 1.0, np.clip(stats.betabinom.sf(k - 1, n, a, b), 0.0, 1.0))
    assert_array_equal(beta_binomial_sf(k, n, a, b), expected)


def test_scoring_large_windows_does_not_import_scipy_stats() -> None:
    """Profiling, calibrating and scoring windows past KSTWO_MAX_N leave scipy.stats unloaded."""
    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        from detectors.profile import build_profile
        from detectors.report import compare
        rng = np.random.default_rng(0)
        train = {"x": rng.normal(0, 1, 5_000), "c": rng.choice(["a", "b"], 5_000)}
        ref = build_profile(train, categorical=["c"])
        now = {"x": rng.normal(0.5, 1, 3_000), "c": rng.choice(["a", "b", "z"], 3_000)}
        report = compare(ref, now)
        assert report.drifted, report.drifted
        print("scipy.stats" in sys.modules)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "False", out.stdout + out.stderr
