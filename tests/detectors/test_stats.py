"""Statistics from counts against scipy and against the formulas computed by hand."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from scipy import special, stats
from scipy.spatial.distance import jensenshannon

from detectors.profile import NumericProfile, build_profile
from detectors.sketch import Sketch
from detectors.stats import (
    KSTWO_MAX_N,
    chi_square,
    jensen_shannon,
    js_null_threshold,
    ks_from_counts,
    ks_p_value,
    psi,
    psi_null_threshold,
)

# --------------------------------------------------------------------------- KS


def _sample(family: str, rng: np.random.Generator, n: int, shift: float) -> np.ndarray:
    if family == "normal":
        return rng.normal(shift, 1.0, n)
    if family == "t3":
        return rng.standard_t(3, n) + shift
    if family == "cauchy":
        return rng.standard_cauchy(n) + shift
    if family == "poisson":
        return rng.poisson(4.0 + 4 * shift, n).astype(np.float64)
    if family == "rounded":
        return np.round(rng.normal(shift, 2.0, n))
    return rng.uniform(shift, 1.0 + shift, n)  # uniform


FAMILIES = ["normal", "t3", "cauchy", "poisson", "rounded", "uniform"]


def _ks_pair(seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    rng = np.random.default_rng(seed)
    family = FAMILIES[seed % len(FAMILIES)]
    n_ref = int(rng.choice([20, 100, 700, 3000, 8000]))
    n_cur = int(rng.choice([5, 50, 400, 2000, 8000]))
    shift = float(rng.choice([0.0, 0.0, 0.1, 0.5]))
    n_fine = int(rng.integers(100, 201))
    return _sample(family, rng, n_ref, 0.0), _sample(family, rng, n_cur, shift), n_fine


def _counts(profile: NumericProfile, x: np.ndarray) -> np.ndarray:
    sketch = Sketch([profile])
    sketch.update(np.zeros(x.size, np.int64), x[:, None])
    counts: np.ndarray = sketch.counts[0, 0]
    return counts


def test_ks_bounds_contain_scipy_statistic_on_300_pairs() -> None:
    """scipy's ks_2samp D lies in [statistic, statistic_upper] for 300 seeded sample pairs."""
    gaps = []
    for seed in range(300):
        a, b, n_fine = _ks_pair(seed)
        profile = build_profile({"x": a}, n_fine=n_fine).feature("x")
        assert isinstance(profile, NumericProfile)
        ks = ks_from_counts(profile.counts, _counts(profile, b))
        d = stats.ks_2samp(a, b, method="asymp").statistic
        assert ks.statistic - 1e-12 <= d <= ks.statistic_upper + 1e-12, (seed, ks, d)
        assert ks.statistic_upper - ks.statistic <= profile.proportions.max() + 1e-12
        assert ks.n_ref == a.size and ks.n_cur == b.size
        gaps.append(ks.statistic_upper - ks.statistic)
    # Continuous references on a fine grid keep the bracket near 1/B wide.
    assert np.median(gaps) < 0.02


def test_ks_p_values_are_kstwo_at_both_ends() -> None:
    """Up to KSTWO_MAX_N p-values are kstwo.sf at each bound, with scipy's n_eff rounding."""
    for seed in range(40):
        a, b, n_fine = _ks_pair(seed)
        profile = build_profile({"x": a}, n_fine=n_fine).feature("x")
        assert isinstance(profile, NumericProfile)
        ks = ks_from_counts(profile.counts, _counts(profile, b))
        n_eff = max(round(a.size * b.size / (a.size + b.size)), 1)
        if n_eff > KSTWO_MAX_N:
            continue
        assert ks.p_value == stats.kstwo.sf(ks.statistic, n_eff)
        assert ks.p_value_at_upper == stats.kstwo.sf(ks.statistic_upper, n_eff)
        assert ks.p_value >= ks.p_value_at_upper


def test_ks_p_value_equals_ks_2samp_when_the_bracket_is_tight() -> None:
    """Where the lower bound is scipy's D (discrete data), the p-value is ks_2samp's too."""
    rng = np.random.default_rng(11)
    a = rng.poisson(3.0, 900).astype(np.float64)
    b = rng.poisson(3.3, 700).astype(np.float64)
    profile = build_profile({"x": a}).feature("x")
    assert isinstance(profile, NumericProfile)
    ks = ks_from_counts(profile.counts, _counts(profile, b), distribution="kstwo")
    expected = stats.ks_2samp(a, b, method="asymp")
    assert ks.statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert ks.statistic_upper > ks.statistic
    assert ks.p_value == pytest.approx(expected.pvalue, rel=1e-9)


def test_limiting_distribution_is_conservative_and_close() -> None:
    """kolmogorov(sqrt(n) D) is never below kstwo.sf(D, n), and within 1.5% at n >= 10k."""
    for n in (KSTWO_MAX_N + 1, 3000, 10_000, 20_000):
        for z in (0.3, 0.6, 0.9, 1.2, 1.36, 1.6, 2.0, 2.5, 3.0, 4.0):
            d = z / math.sqrt(n)
            exact = float(stats.kstwo.sf(d, n))
            limit = float(ks_p_value(d, n))
            assert limit == special.kolmogorov(math.sqrt(n) * d)
            assert limit >= exact, (n, z)
            if n >= 10_000 and exact >= 1e-4:
                assert limit <= exact * 1.015, (n, z)


def test_ks_distribution_choice() -> None:
    """'auto' switches from kstwo to the limit above KSTWO_MAX_N; bad names are refused."""
    d = np.array([0.05, 0.05])
    n = np.array([KSTWO_MAX_N, KSTWO_MAX_N + 1])
    auto = ks_p_value(d, n)
    assert auto[0] == stats.kstwo.sf(0.05, KSTWO_MAX_N)
    assert auto[1] == special.kolmogorov(math.sqrt(KSTWO_MAX_N + 1) * 0.05)
    np.testing.assert_array_equal(ks_p_value(d, n, "kstwo"), stats.kstwo.sf(d, n))
    np.testing.assert_array_equal(ks_p_value(d, n, "kstwobign"), special.kolmogorov(np.sqrt(n) * d))
    with pytest.raises(ValueError, match="distribution must be 'auto', 'kstwo' or 'kstwobign'"):
        ks_p_value(d, n, "exact")  # type: ignore[arg-type]


def test_ks_is_vectorized_and_handles_empty_windows() -> None:
    """Leading axes broadcast like per-pair calls; an empty side gives NaN everywhere."""
    rng = np.random.default_rng(2)
    ref = rng.integers(0, 50, (3, 12))
    cur = rng.integers(0, 50, (4, 3, 12))
    cur[1, 2] = 0
    ks = ks_from_counts(ref, cur)
    for s in range(4):
        for f in range(3):
            one = ks_from_counts(ref[f], cur[s, f])
            for name in ("statistic", "statistic_upper", "p_value", "p_value_at_upper"):
                np.testing.assert_array_equal(getattr(ks, name)[s, f], getattr(one, name))
    assert np.isnan(ks.statistic[1, 2]) and np.isnan(ks.p_value[1, 2])
    assert ks.n_cur[1, 2] == 0


def test_ks_identical_and_disjoint_counts() -> None:
    """Identical counts give D = 0 and p = 1; disjoint supports give D = 1 at both ends."""
    same = ks_from_counts([5, 0, 7, 3], [10, 0, 14, 6])
    assert same.statistic == 0.0 and same.p_value == 1.0
    apart = ks_from_counts([5, 5, 0, 0], [0, 0, 3, 3])
    assert apart.statistic == 1.0 and apart.statistic_upper == 1.0


# --------------------------------------------------------------------------- PSI


def _psi_loop(ref: list[int], cur: list[int], s: float) -> float:
    """PSI written out plainly, as on paper."""
    b = len(ref)
    n, m = sum(ref), sum(cur)
    total = 0.0
    for k in range(b):
        p = (ref[k] + s) / (n + s * b)
        q = (cur[k] + s) / (m + s * b)
        total += (p - q) * math.log(p / q)
    return total


def test_psi_matches_the_formula_with_padding_excluded() -> None:
    """Vectorized PSI with per-feature n_bins equals a plain loop over the real bins only."""
    rng = np.random.default_rng(0)
    n_bins = np.array([10, 4, 21, 2])
    ref = rng.integers(0, 40, (4, 21))
    cur = rng.integers(0, 40, (5, 4, 21))
    ref[rng.random(ref.shape) < 0.2] = 0
    cur[rng.random(cur.shape) < 0.2] = 0
    for smoothing in (0.5, 1.0, 0.01):
        got = psi(ref, cur, smoothing, n_bins)
        for s in range(5):
            for f in range(4):
                k = n_bins[f]
                want = _psi_loop(ref[f, :k].tolist(), cur[s, f, :k].tolist(), smoothing)
                assert got[s, f] == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_psi_edge_cases() -> None:
    """Identical proportions give 0, empty bins stay finite, an empty side gives NaN."""
    assert psi([10, 20, 30], [1, 2, 3])[()] == pytest.approx(0.0, abs=0.01)
    assert psi([10, 20, 30], [10, 20, 30])[()] == 0.0
    assert np.isfinite(psi([100, 0, 0], [0, 0, 100]))
    assert np.isnan(psi([100, 0, 0], [0, 0, 0]))
    with pytest.raises(ValueError, match=re.escape("smoothing must be > 0, got 0")):
        psi([1], [1], smoothing=0)
    with pytest.raises(ValueError, match="same last"):
        psi([1, 2], [1, 2, 3])


def test_psi_null_threshold_is_deterministic_and_calibrated() -> None:
    """Same seed, same threshold; about <= 1% of fresh null windows exceed it."""
    ref = np.full(10, 1000)
    t1 = psi_null_threshold(ref, 200, n_sim=2000, seed=1)
    assert t1 == psi_null_threshold(ref, 200, n_sim=2000, seed=1)
    assert t1 != psi_null_threshold(ref, 200, n_sim=2000, seed=2)
    rng = np.random.default_rng(99)
    fresh = psi(ref, rng.multinomial(200, np.full(10, 0.1), size=5000))
    assert (fresh > t1).mean() < 0.015
    # The null level falls with the window size, roughly as (B - 1) / n.
    big = psi_null_threshold(ref, 20_000, n_sim=500, seed=1)
    assert big < t1 / 10
    assert 9 / 200 < t1 < 4 * 9 / 200


def test_null_thresholds_broadcast_over_features() -> None:
    """Thresholds come out per leading index, padding bins excluded via n_bins."""
    ref = np.array([[50, 50, 0, 0], [10, 20, 30, 40]])
    t = psi_null_threshold(ref, np.array([100, 1000]), n_sim=300, seed=0, n_bins=[2, 4])
    assert t.shape == (2,)
    assert np.all(t > 0)
    js = js_null_threshold(ref, 500, n_sim=300, seed=0)
    assert js.shape == (2,) and np.all((js > 0) & (js < 1))
    with pytest.raises(ValueError, match="window_n must be >= 1, got 0"):
        psi_null_threshold(ref, 0)
    with pytest.raises(ValueError, match="n_sim must be >= 2, got 1"):
        psi_null_threshold(ref, 10, n_sim=1)


# --------------------------------------------------------------------------- chi-square


def test_chi_square_matches_scipy_contingency_without_correction() -> None:
    """Statistic, p-value and dof equal scipy.stats.chi2_contingency(correction=False)."""
    rng = np.random.default_rng(5)
    ref = rng.integers(0, 30, (60, 8))
    cur = rng.integers(0, 30, (60, 8))
    zero = rng.random((60, 8)) < 0.25
    ref[zero] = 0
    cur[zero] = 0
    cur[:5, :6] = 0  # few categories left, down to dof 1
    got = chi_square(ref, cur)
    for i in range(60):
        table = np.array([ref[i], cur[i]])
        table = table[:, table.sum(axis=0) > 0]
        want = stats.chi2_contingency(table, correction=False)
        assert got.statistic[i] == pytest.approx(want.statistic, rel=1e-12, abs=1e-12)
        assert got.p_value[i] == pytest.approx(want.pvalue, rel=1e-10, abs=1e-300)
        assert got.dof[i] == want.dof


def test_chi_square_effect_is_cohens_w() -> None:
    """effect equals sqrt(sum (p - q)^2 / m) with m the pooled proportions."""
    ref, cur = np.array([300, 200, 100, 0]), np.array([10, 30, 50, 10])
    p, q, m = ref / ref.sum(), cur / cur.sum(), (ref + cur) / (ref.sum() + cur.sum())
    expected = math.sqrt(float(((p - q) ** 2 / m).sum()))
    assert chi_square(ref, cur).effect[()] == pytest.approx(expected, rel=1e-12)


def test_chi_square_degenerate_tables() -> None:
    """One category gives statistic 0 and p 1 (as scipy); an empty side gives NaN."""
    one = chi_square([5, 0], [7, 0])
    assert one.statistic[()] == 0.0 and one.p_value[()] == 1.0 and one.dof[()] == 0
    empty = chi_square([5, 3], [0, 0])
    assert np.isnan(empty.statistic) and np.isnan(empty.p_value) and np.isnan(empty.effect)


# --------------------------------------------------------------------------- Jensen-Shannon


def test_jensen_shannon_matches_scipy() -> None:
    """Distance equals scipy.spatial.distance.jensenshannon for base 2 and base e."""
    rng = np.random.default_rng(6)
    ref = rng.integers(0, 20, (50, 9))
    cur = rng.integers(0, 20, (50, 9))
    ref[rng.random(ref.shape) < 0.3] = 0
    ref[:, 0] += 1
    cur[:, 0] += 1
    for base in (2.0, math.e):
        got = jensen_shannon(ref, cur, base=base)
        want = [jensenshannon(r, c, base=base) for r, c in zip(ref, cur, strict=True)]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_jensen_shannon_range_and_validation() -> None:
    """0 for identical proportions, 1 for disjoint supports (base 2), NaN for an empty side."""
    assert jensen_shannon([1, 2, 0], [2, 4, 0])[()] == 0.0
    assert jensen_shannon([1, 0], [0, 1])[()] == pytest.approx(1.0, rel=1e-15)
    assert np.isnan(jensen_shannon([1, 0], [0, 0]))
    with pytest.raises(ValueError, match=re.escape("base must be > 0 and != 1, got 1")):
        jensen_shannon([1], [1], base=1)
