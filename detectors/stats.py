"""Two-sample statistics computed from bin counts, vectorized over leading axes.

Every function takes a reference count array and a current count array whose last
axis is the bin axis; all other axes broadcast (typically reference ``[feature, bin]``
against current ``[segment, feature, bin]``). Where either side has no values the
statistic and p-value are NaN.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

# scipy is imported inside the functions that use it: loading it takes about 0.9 s,
# which every start of the command line (check-config, --help) would otherwise pay.
# Only scipy.special: scipy.stats costs another ~45 MiB of RSS and 0.5 s of imports, and
# the distributions used here are one special function each (chi2_sf and its
# neighbours below); the exact finite-n KS law (kstwo) is the one exception, imported
# only for the small windows that need it (ks_p_value).
from detectors.base import FloatArray, IntArray

# Additive smoothing of 0.5 per bin is the Jeffreys / Krichevsky-Trofimov estimator.
# It keeps PSI finite when a bin is empty on one side, and an empty bin costs a bounded
# amount instead of the ~708*p that replacing zeros by float_info.min costs (frouros).
# With 10 reference-decile bins and 10k vs 10k values it gives ~0.0008 for the same
# distribution, ~0.051 for a +0.25 sigma shift and ~0.0036 for values clipped to
# +-1.99 (docs/detection.md).
DEFAULT_SMOOTHING = 0.5

# Effective sample sizes up to this use kstwo.sf; above it the limiting Kolmogorov
# distribution. See ks_p_value.
KSTWO_MAX_N = 1000


def chi2_sf(x: npt.ArrayLike, dof: npt.ArrayLike) -> FloatArray:
    """``P(X >= x)`` for ``X ~ chi2(dof)``: ``scipy.stats.chi2.sf`` without scipy.stats.

    ``scipy.special.chdtrc`` with scipy.stats' edges: 1 at ``x <= 0``, NaN where
    ``dof <= 0`` or either argument is NaN.

    >>> round(float(chi2_sf(3.841458820694124, 1)), 6)
    0.05
    >>> chi2_sf([-1.0, 0.0, np.inf], 2).tolist()
    [1.0, 1.0, 0.0]
    """
    from scipy import special  # noqa: PLC0415

    xs, df = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(dof, np.float64))
    with np.errstate(invalid="ignore"):
        tail = special.chdtrc(df, np.maximum(xs, 0.0))
        out = np.where(xs <= 0, 1.0, tail)
        out = np.where((df > 0) & ~np.isnan(xs), out, np.nan)
    return np.asarray(out, dtype=np.float64)


def chi2_isf(alpha: npt.ArrayLike, dof: npt.ArrayLike) -> FloatArray:
    """The ``1 - alpha`` quantile of ``chi2(dof)``: ``scipy.stats.chi2.isf`` for
    ``0 < alpha < 1`` (``scipy.special.chdtri``); NaN where ``dof <= 0`` or ``alpha`` is
    outside (0, 1).

    >>> round(float(chi2_isf(0.05, 1)), 6)
    3.841459
    """
    from scipy import special  # noqa: PLC0415

    q, df = np.broadcast_arrays(np.asarray(alpha, np.float64), np.asarray(dof, np.float64))
    with np.errstate(invalid="ignore"):
        ok = (df > 0) & (q > 0) & (q < 1)
        out = np.where(ok, special.chdtri(np.where(ok, df, 1.0), np.where(ok, q, 0.5)), np.nan)
    return np.asarray(out, dtype=np.float64)


def normal_sf(x: npt.ArrayLike) -> FloatArray:
    """``P(Z >= x)`` for a standard normal ``Z``: ``scipy.stats.norm.sf``, as
    ``scipy.special.ndtr(-x)``.

    >>> float(normal_sf(0.0))
    0.5
    """
    from scipy import special  # noqa: PLC0415

    return np.asarray(special.ndtr(-np.asarray(x, np.float64)), dtype=np.float64)


def normal_isf(alpha: npt.ArrayLike) -> FloatArray:
    """The ``1 - alpha`` quantile of the standard normal: ``scipy.stats.norm.isf``, as
    ``-scipy.special.ndtri(alpha)`` (NaN outside [0, 1]).

    >>> round(float(normal_isf(0.025)), 6)
    1.959964
    """
    from scipy import special  # noqa: PLC0415

    return np.asarray(-special.ndtri(np.asarray(alpha, np.float64)), dtype=np.float64)


def _pair(ref_counts: npt.ArrayLike, cur_counts: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    ref = np.asarray(ref_counts, dtype=np.float64)
    cur = np.asarray(cur_counts, dtype=np.float64)
    if ref.ndim == 0 or cur.ndim == 0 or ref.shape[-1] != cur.shape[-1]:
        raise ValueError(
            f"count arrays need the same last (bin) axis, got {ref.shape} and {cur.shape}"
        )
    if (ref < 0).any() or (cur < 0).any():
        raise ValueError("counts must be >= 0")
    return np.broadcast_arrays(ref, cur)  # type: ignore[return-value]


def psi(
    ref_counts: npt.ArrayLike,
    cur_counts: npt.ArrayLike,
    smoothing: float = DEFAULT_SMOOTHING,
    n_bins: npt.ArrayLike | None = None,
) -> FloatArray:
    """Population stability index ``sum_k (p_k - q_k) ln(p_k / q_k)``.

    Both sides are smoothed additively: ``p_k = (c_k + s) / (n + s*B)`` with ``s = smoothing``
    (default 0.5, see ``DEFAULT_SMOOTHING``) and ``B`` the number of real bins. ``n_bins``
    (broadcast against the leading axes) marks bins at or past it as padding, excluded
    from both the sums and ``B``; without it every bin is real.
    """
    if not smoothing > 0:
        raise ValueError(f"smoothing must be > 0, got {smoothing}")
    ref, cur = _pair(ref_counts, cur_counts)
    width = ref.shape[-1]
    if n_bins is None:
        real: npt.NDArray[np.bool_] | bool = True
        n_real: FloatArray | float = float(width)
    else:
        nb = np.asarray(n_bins, dtype=np.int64)
        real = np.arange(width) < nb[..., None]
        n_real = nb.astype(np.float64)
    ref = np.where(real, ref, 0.0)
    cur = np.where(real, cur, 0.0)
    n_ref, n_cur = ref.sum(axis=-1), cur.sum(axis=-1)
    p = (ref + smoothing) / (n_ref + smoothing * n_real)[..., None]
    q = (cur + smoothing) / (n_cur + smoothing * n_real)[..., None]
    value = np.where(real, (p - q) * np.log(p / q), 0.0).sum(axis=-1)
    return np.asarray(np.where((n_ref > 0) & (n_cur > 0), value, np.nan), dtype=np.float64)


def jensen_shannon(
    ref_counts: npt.ArrayLike, cur_counts: npt.ArrayLike, base: float = 2.0
) -> FloatArray:
    """Jensen-Shannon distance (the square root of the divergence) between the proportions.

    Lies in [0, 1] for ``base=2``; equals ``scipy.spatial.distance.jensenshannon``. Empty
    bins on both sides (padding) contribute nothing.
    """
    from scipy import special  # noqa: PLC0415

    if not (base > 0 and base != 1):
        raise ValueError(f"base must be > 0 and != 1, got {base}")
    ref, cur = _pair(ref_counts, cur_counts)
    n_ref, n_cur = ref.sum(axis=-1, keepdims=True), cur.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p, q = ref / n_ref, cur / n_cur
    m = (p + q) / 2
    total = special.rel_entr(p, m).sum(axis=-1) + special.rel_entr(q, m).sum(axis=-1)
    return np.asarray(np.sqrt(np.maximum(total / np.log(base) / 2, 0.0)), dtype=np.float64)


@dataclass(frozen=True)
class KSStatistics:
    """Bounds on the two-sample KS statistic and the p-values at both bounds."""

    statistic: FloatArray
    statistic_upper: FloatArray
    p_value: FloatArray
    p_value_at_upper: FloatArray
    n_ref: IntArray
    n_cur: IntArray


def ks_p_value(
    statistic: npt.ArrayLike,
    n_eff: npt.ArrayLike,
    distribution: Literal["auto", "kstwo", "kstwobign"] = "auto",
) -> FloatArray:
    """Two-sided KS p-value ``P(D >= statistic)`` for effective sample size ``n_eff``.

    ``kstwo`` is the finite-n distribution, ``scipy.stats.kstwo.sf(D, n_eff)``, as
    ``scipy.stats.ks_2samp(method='asymp')`` uses it. ``kstwobign`` is its limit,
    ``scipy.special.kolmogorov(sqrt(n_eff) * D)``. ``auto`` uses ``kstwo`` up to
    ``KSTWO_MAX_N`` and ``kstwobign`` above.

    Why ``auto``: in scipy 1.17 ``kstwo.sf`` costs at least 0.2 ms per call, and in the
    alerting tail (``2.2 <= n D^2 < 370``) about 1 us times n per value: 60 ms at
    n = 50,000. At both ends of the bracket that is slower than ``ks_2samp`` on the raw
    samples (``benchmarks/ks_speed.py``). The limit costs microseconds, is never below
    ``kstwo.sf`` on the grid the tests check (so it errs on the conservative side) and
    is within 1.5% of it for n >= 10,000 at p >= 1e-4, far inside the uncertainty of a
    statistic bracketed to within one fine bin.
    """
    from scipy import special  # noqa: PLC0415

    d = np.asarray(statistic, dtype=np.float64)
    n = np.asarray(n_eff, dtype=np.float64)
    d, n = np.broadcast_arrays(d, n)
    out = np.full(d.shape, np.nan)
    ok = np.isfinite(d) & (n >= 1)
    if distribution == "kstwo":
        exact = ok
    elif distribution == "kstwobign":
        exact = np.zeros(d.shape, dtype=np.bool_)
    elif distribution == "auto":
        exact = ok & (n <= KSTWO_MAX_N)
    else:
        raise ValueError(
            f"distribution must be 'auto', 'kstwo' or 'kstwobign', got {distribution!r}"
        )
    limit = ok & ~exact
    out[limit] = special.kolmogorov(np.sqrt(n[limit]) * d[limit])
    if exact.any():
        # Only here: scipy.stats is ~45 MiB that windows with n_eff > KSTWO_MAX_N never use.
        from scipy import stats  # noqa: PLC0415

        out[exact] = stats.kstwo.sf(d[exact], n[exact])
    return out


def ks_from_counts(
    ref_fine_counts: npt.ArrayLike,
    cur_fine_counts: npt.ArrayLike,
    distribution: Literal["auto", "kstwo", "kstwobign"] = "auto",
) -> KSStatistics:
    """Bracket the two-sample KS statistic ``D = sup_x |F_r(x) - F_c(x)|`` from bin counts.

    Bins are ``(e_{k-1}, e_k]`` with open outer bins, so the cumulative counts are the
    exact ECDFs at the edges. ``statistic = D_b = max_k |F_r(e_k) - F_c(e_k)|`` and
    ``statistic_upper = D_b + max_k min(p_r,k, p_c,k)``, and ``D_b <= D <= statistic_upper``:

    1. D_b <= D since D_b is the difference of the two ECDFs at points e_k.
    2. For x in bin k, with d(x) = F_r(x) - F_c(x): d(x) = d(e_{k-1}) + a - b and
       d(x) = d(e_k) - (p_r,k - a) + (p_c,k - b), where 0 <= a <= p_r,k, 0 <= b <= p_c,k.
    3. The first form gives d(x) <= D_b + p_r,k and -d(x) <= D_b + p_c,k; the second
       gives d(x) <= D_b + p_c,k and -d(x) <= D_b + p_r,k.
    4. So |d(x)| <= D_b + min(p_r,k, p_c,k) in every bin, and D <= statistic_upper.

    P-values are those of the Kolmogorov distribution with ``n_eff = round(n*m/(n+m))``
    (at least 1), as ``scipy.stats.ks_2samp(method='asymp')`` computes them, evaluated at
    both ends (see ``ks_p_value`` for ``distribution``). ``p_value`` is the one at the
    lower bound ``statistic``: the larger, conservative one. ``p_value_at_upper`` is the
    smallest p-value compatible with the counts. Padding bins (zero on both sides) change
    nothing. Where either side is empty everything is NaN.
    """
    ref, cur = _pair(ref_fine_counts, cur_fine_counts)
    n_ref, n_cur = ref.sum(axis=-1), cur.sum(axis=-1)
    empty = (n_ref == 0) | (n_cur == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cdf_ref = np.cumsum(ref, axis=-1) / n_ref[..., None]
        cdf_cur = np.cumsum(cur, axis=-1) / n_cur[..., None]
        lower = np.abs(cdf_ref - cdf_cur).max(axis=-1)
        overlap = np.minimum(ref / n_ref[..., None], cur / n_cur[..., None]).max(axis=-1)
        n_eff = np.maximum(np.round(n_ref * n_cur / (n_ref + n_cur)), 1.0)
    # D_b + overlap <= 1 holds exactly; the clip only absorbs rounding.
    upper = np.minimum(lower + overlap, 1.0)
    lower = np.where(empty, np.nan, lower)
    upper = np.where(empty, np.nan, upper)
    both = ks_p_value(np.stack([lower, upper]), n_eff, distribution)
    return KSStatistics(
        statistic=lower,
        statistic_upper=upper,
        p_value=both[0],
        p_value_at_upper=both[1],
        n_ref=n_ref.astype(np.int64),
        n_cur=n_cur.astype(np.int64),
    )


@dataclass(frozen=True)
class ChiSquareStatistics:
    """Pearson chi-square on the 2 x K table, its p-value, dof and Cohen's w."""

    statistic: FloatArray
    p_value: FloatArray
    dof: IntArray
    effect: FloatArray


def chi_square(ref_counts: npt.ArrayLike, cur_counts: npt.ArrayLike) -> ChiSquareStatistics:
    """Chi-square contingency test of reference vs current counts (2 x K table).

    Equals ``scipy.stats.chi2_contingency(table, correction=False)`` after dropping the
    categories with no count on either side: no Yates correction, which scipy only
    applies at dof = 1 and which would make the test depend on how many categories a
    window happens to hold. ``dof = K_nonzero - 1``; with a single category left the
    statistic is 0 and p is 1, as in scipy.

    ``effect`` is Cohen's w, ``sqrt(chi2 * (1/n_ref + 1/n_cur))``, which for two rows equals
    ``sqrt(sum_k (p_k - q_k)^2 / m_k)`` with ``m_k`` the pooled proportion: an effect size
    that does not grow with the sample sizes (0.1 small, 0.3 medium, 0.5 large).
    """
    ref, cur = _pair(ref_counts, cur_counts)
    n_ref, n_cur = ref.sum(axis=-1), cur.sum(axis=-1)
    total = n_ref + n_cur
    column = ref + cur
    present = column > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        # Same operation order as scipy.stats.contingency.expected_freq.
        exp_ref = n_ref[..., None] * column / total[..., None]
        exp_cur = n_cur[..., None] * column / total[..., None]
        terms = (ref - exp_ref) ** 2 / exp_ref + (cur - exp_cur) ** 2 / exp_cur
        statistic = np.where(present, terms, 0.0).sum(axis=-1)
        effect = np.sqrt(statistic * (1 / n_ref + 1 / n_cur))
    dof = present.sum(axis=-1) - 1
    empty = (n_ref == 0) | (n_cur == 0)
    statistic = np.where(empty, np.nan, np.where(dof > 0, statistic, 0.0))
    p_value = np.where(dof > 0, chi2_sf(statistic, np.maximum(dof, 1)), 1.0)
    return ChiSquareStatistics(
        statistic=statistic,
        p_value=np.where(empty, np.nan, p_value),
        dof=dof.astype(np.int64),
        effect=np.where(empty, np.nan, np.where(dof > 0, effect, 0.0)),
    )


def _null_threshold(
    statistic: Callable[[FloatArray, FloatArray], FloatArray],
    ref_counts: npt.ArrayLike,
    window_n: npt.ArrayLike,
    n_sim: int,
    seed: int,
    n_sigma: float,
) -> FloatArray:
    if n_sim < 2:
        raise ValueError(f"n_sim must be >= 2, got {n_sim}")
    n = np.asarray(window_n, dtype=np.int64)
    if (n < 1).any():
        raise ValueError(f"window_n must be >= 1, got {n.tolist()}")
    ref = np.asarray(ref_counts, dtype=np.float64)
    n_ref = ref.sum(axis=-1, keepdims=True)
    if (n_ref <= 0).any():
        raise ValueError("every reference row needs at least one count")
    lead = np.broadcast_shapes(ref.shape[:-1], n.shape)
    rng = np.random.default_rng(seed)
    samples = rng.multinomial(n, ref / n_ref, size=(n_sim, *lead))
    values = statistic(ref, samples.astype(np.float64))
    threshold = values.mean(axis=0) + n_sigma * values.std(axis=0, ddof=1)
    return np.asarray(threshold, dtype=np.float64)


def psi_null_threshold(
    ref_counts: npt.ArrayLike,
    window_n: npt.ArrayLike,
    n_sim: int = 1000,
    seed: int = 0,
    smoothing: float = DEFAULT_SMOOTHING,
    n_bins: npt.ArrayLike | None = None,
    n_sigma: float = 3.0,
) -> FloatArray:
    """PSI threshold calibrated for windows of ``window_n`` values: mean + 3 sigma of PSI.

    Draws ``n_sim`` multinomial windows of size ``window_n`` from the reference
    proportions (the null hypothesis) and returns the mean plus ``n_sigma`` sample
    standard deviations of their PSI against the reference, per leading index; the same
    seed gives the same thresholds. This is NannyML's way of setting thresholds, and it
    matters for small windows, where PSI's null level ((B-1)/n roughly) crosses fixed
    thresholds by chance.
    """
    return _null_threshold(
        lambda ref, cur: psi(ref, cur, smoothing, n_bins),
        ref_counts,
        window_n,
        n_sim,
        seed,
        n_sigma,
    )


def js_null_threshold(
    ref_counts: npt.ArrayLike,
    window_n: npt.ArrayLike,
    n_sim: int = 1000,
    seed: int = 0,
    n_sigma: float = 3.0,
) -> FloatArray:
    """Jensen-Shannon distance threshold calibrated like ``psi_null_threshold``."""
    return _null_threshold(jensen_shannon, ref_counts, window_n, n_sim, seed, n_sigma)
