"""Null distributions of the drift statistics, for thresholds that follow the data.

A fixed threshold (PSI 0.25, KS D 0.15) ignores how far a statistic wanders when
nothing has changed, and that depends on the reference, on the number of bins and on
the window's actual number of values. Here every method gets its null distribution
for a window drawn from the reference, at any sample size, and the threshold is the
value a stationary window exceeds with probability ``alpha``:

- **PSI, chi-square (Cohen's w) and Jensen-Shannon** are, for small differences,
  chi-square statistics divided by the effective sample size
  ``n_eff = n_cur * n_ref / (n_cur + n_ref)``: ``PSI * n_eff``, ``w^2 * n_eff`` and
  ``JS^2 * n_eff * 8 ln 2`` all tend to ``chi2(B - 1)``. Sparse bins, smoothing and
  padding make the exact law differ, so it is measured instead of assumed: reference
  and window counts are drawn from the reference's (smoothed) proportions, both at
  their real sizes, and a scaled chi-square ``scale * chi2(dof)`` is fitted to the
  draws by their mean and variance (Satterthwaite's moment match). One fit per
  reference serves every window size through ``n_eff``.
- **KS**: ``sqrt(n_eff) * D`` follows the Kolmogorov distribution. With ties, discrete
  values or the binned lower bound ``D_b <= D`` the test is conservative.
- **missing**: the difference of two missing-value shares, a two-proportion z test.
- **range** and **unseen**: the share of values outside the reference's observed
  range, or never seen in it. For exchangeable data the chance that a new value falls
  outside the range of ``m`` reference values is ``Beta(2, m - 1)`` distributed, and the
  chance that it is a new category is about ``Beta(f1 + 1, m - f1 + 1)`` with ``f1`` the
  reference's singletons (Good-Turing); the window's count is then beta-binomial.

Real reference data is not i.i.d. (seasons, batches, drifting traffic), and a pure
i.i.d. null pages constantly on it. When the reference has an order in time,
:func:`chunk_spread` compares each of its chunks with the rest: where the chunks
disagree more than sampling explains, the excess (in the statistic's own units) is
added to the threshold, so that the larger of the i.i.d. null and the reference's own
spread applies (NannyML sets thresholds from the spread over reference chunks).

Everything is vectorized over features; nothing here does I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

# scipy is imported inside the functions that use it: loading it takes about 0.9 s,
# which every start of the command line (check-config, --help) would otherwise pay.
from detectors.base import FloatArray
from detectors.stats import (
    DEFAULT_SMOOTHING,
    chi2_isf,
    chi2_sf,
    chi_square,
    jensen_shannon,
    ks_from_counts,
    normal_isf,
    normal_sf,
    psi,
)

CHI_FAMILY: Final = ("psi", "chi2", "js")
"""Methods whose statistic, scaled by ``n_eff``, is chi-square-like."""
_JS_SCALE: Final = 8.0 * math.log(2.0)
_KOLMOGOROV_MEAN: Final = math.sqrt(math.pi / 2.0) * math.log(2.0)
_KOLMOGOROV_SD: Final = math.sqrt(math.pi**2 / 12.0 - _KOLMOGOROV_MEAN**2)
SPREAD_CHUNKS: Final = 10
"""Chunks a time-ordered reference is cut into for :func:`chunk_spread`."""
MIN_CHUNK_ROWS: Final = 50
SPREAD_P: Final = 0.01
"""Chunks must disagree beyond sampling at this level before their spread counts."""


def n_effective(n_ref: npt.ArrayLike, n_cur: npt.ArrayLike) -> FloatArray:
    """``n_ref * n_cur / (n_ref + n_cur)``, 0 where either side is empty."""
    m = np.asarray(n_ref, dtype=np.float64)
    n = np.asarray(n_cur, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where((m > 0) & (n > 0), m * n / (m + n), 0.0)
    return np.asarray(out, dtype=np.float64)


def to_chi(method: str, score: npt.ArrayLike, n_eff: npt.ArrayLike) -> FloatArray:
    """A chi-square-family score on the ``chi2(B - 1)`` scale."""
    s = np.asarray(score, dtype=np.float64)
    n = np.asarray(n_eff, dtype=np.float64)
    if method == "psi":
        return np.asarray(s * n, dtype=np.float64)
    if method == "chi2":
        return np.asarray(s * s * n, dtype=np.float64)
    if method == "js":
        return np.asarray(s * s * n * _JS_SCALE, dtype=np.float64)
    raise ValueError(f"not a chi-square-family method: {method!r}")


def from_chi(method: str, t: npt.ArrayLike, n_eff: npt.ArrayLike) -> FloatArray:
    """Inverse of :func:`to_chi`."""
    x = np.maximum(np.asarray(t, dtype=np.float64), 0.0)
    n = np.asarray(n_eff, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        if method == "psi":
            out = x / n
        elif method == "chi2":
            out = np.sqrt(x / n)
        elif method == "js":
            out = np.sqrt(x / (n * _JS_SCALE))
        else:
            raise ValueError(f"not a chi-square-family method: {method!r}")
    return np.asarray(out, dtype=np.float64)


def statistic(
    method: str,
    ref: npt.ArrayLike,
    cur: npt.ArrayLike,
    n_bins: npt.ArrayLike | None = None,
    smoothing: float = DEFAULT_SMOOTHING,
) -> FloatArray:
    """The score of a chi-square-family method from bin counts (last axis: bins)."""
    if method == "psi":
        return psi(ref, cur, smoothing, n_bins)
    if method == "chi2":
        return chi_square(ref, cur).effect
    if method == "js":
        return jensen_shannon(ref, cur)
    raise ValueError(f"not a chi-square-family method: {method!r}")


@dataclass(frozen=True)
class ChiNull:
    """``T ~ scale * chi2(dof)`` per feature, ``T`` the score on the chi-square scale."""

    scale: FloatArray
    dof: FloatArray

    def critical(self, alpha: float) -> FloatArray:
        """The ``1 - alpha`` quantile of ``T``."""
        return np.asarray(self.scale * chi2_isf(alpha, self.dof), dtype=np.float64)

    def sf(self, t: npt.ArrayLike) -> FloatArray:
        """``P(T >= t)``."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return chi2_sf(np.asarray(t) / self.scale, self.dof)

    def level(self, sigmas: float) -> FloatArray:
        """Mean plus ``sigmas`` standard deviations of ``T``."""
        return np.asarray(self.scale * (self.dof + sigmas * np.sqrt(2 * self.dof)), np.float64)


def on_support(
    ref_counts: npt.ArrayLike, cur_counts: npt.ArrayLike, n_bins: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int64]]:
    """Both sides restricted to the bins the reference filled, those moved first.

    A bin the reference never filled (a category missing from a segment's own
    reference, ``__other__`` when every category was kept, the gap below a point mass)
    has no stationary share to compare with: smoothing would turn every stray value in
    it into a large PSI term, and one such value adds about ``n`` to Pearson's chi-square.
    The distribution tests therefore compare shapes on the reference's support; what
    falls outside it is the business of ``range`` and ``unseen``. Returns the compacted
    reference (broadcast to the current side's shape), the compacted current counts
    (zero outside the support) and the number of bins kept, for ``psi(n_bins=...)``.
    """
    cur = np.asarray(cur_counts, dtype=np.float64)
    ref = np.broadcast_to(np.asarray(ref_counts, dtype=np.float64), cur.shape)
    nb = np.asarray(n_bins, dtype=np.int64)
    keep = (ref > 0) & (np.arange(cur.shape[-1]) < nb[..., None])
    order = np.argsort(~keep, axis=-1, kind="stable")
    ref_c = np.take_along_axis(np.where(keep, ref, 0.0), order, axis=-1)
    cur_c = np.take_along_axis(np.where(keep, cur, 0.0), order, axis=-1)
    return ref_c, cur_c, keep.sum(axis=-1).astype(np.int64)


def predictive(ref_counts: npt.ArrayLike, n_bins: npt.ArrayLike) -> FloatArray:
    """Proportions to draw stationary data from: the reference's, smoothed by 1/2 per bin.

    A bin the reference never filled (the out-of-range bins, ``__unseen__``) still gets a
    little mass, as new data does.
    """
    ref = np.asarray(ref_counts, dtype=np.float64)
    nb = np.asarray(n_bins, dtype=np.int64)
    real = np.arange(ref.shape[-1]) < nb[..., None]
    smoothed = np.where(real, ref + 0.5, 0.0)
    return np.asarray(smoothed / smoothed.sum(axis=-1, keepdims=True), dtype=np.float64)


def simulate_chi_null(
    method: str,
    ref_counts: npt.ArrayLike,
    n_bins: npt.ArrayLike,
    n_cur: int = 2000,
    n_sim: int = 1000,
    seed: int = 0,
    smoothing: float = DEFAULT_SMOOTHING,
    streams: npt.ArrayLike | None = None,
) -> ChiNull:
    """Fit ``scale * chi2(dof)`` to the method's null, per feature (row of ``ref_counts``).

    Both sides are drawn: the reference at its own size and a window of ``n_cur``
    values, from :func:`predictive` proportions. Row ``i`` draws from its own random
    stream ``(seed, streams[i])`` (default: ``i``), so the same seed gives the same fit.
    """
    ref = np.atleast_2d(np.asarray(ref_counts, dtype=np.float64))
    nb = np.broadcast_to(np.asarray(n_bins, dtype=np.int64), ref.shape[:-1])
    m = ref.sum(axis=-1)
    if (m <= 0).any():
        raise ValueError("every reference row needs at least one count")
    p = predictive(ref, nb)
    keys = np.arange(ref.shape[0]) if streams is None else np.asarray(streams, dtype=np.int64)
    t = np.empty((n_sim, ref.shape[0]))
    for row in range(ref.shape[0]):
        # One random stream per column: adding a column leaves the others' fits alone.
        rng = np.random.default_rng([seed, int(keys[row])])
        r = rng.multinomial(int(m[row]), p[row], size=n_sim).astype(np.float64)
        c = rng.multinomial(n_cur, p[row], size=n_sim).astype(np.float64)
        score = statistic(method, r, c, np.full(n_sim, nb[row]), smoothing)
        t[:, row] = to_chi(method, score, n_effective(m[row], n_cur))
    mean = t.mean(axis=0)
    var = np.maximum(t.var(axis=0, ddof=1), 1e-12)
    mean = np.maximum(mean, 1e-9)
    return ChiNull(scale=var / (2 * mean), dof=2 * mean * mean / var)


def ks_critical(alpha: float, n_eff: npt.ArrayLike) -> FloatArray:
    """KS D exceeded with probability ``alpha`` (the Kolmogorov limit)."""
    from scipy import special  # noqa: PLC0415

    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(special.kolmogi(alpha) / np.sqrt(n_effective_or(n_eff)), np.float64)


def n_effective_or(n_eff: npt.ArrayLike) -> FloatArray:
    """``n_eff`` with zeros as NaN (no test possible)."""
    n = np.asarray(n_eff, dtype=np.float64)
    return np.asarray(np.where(n > 0, n, np.nan), dtype=np.float64)


def proportion_sd(p0: npt.ArrayLike, n_ref: npt.ArrayLike, n_cur: npt.ArrayLike) -> FloatArray:
    """Standard deviation of the difference of two shares drawn at rate ``p0``."""
    p = np.asarray(p0, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.sqrt(p * (1 - p) * (1 / np.asarray(n_ref, float) + 1 / np.asarray(n_cur, float)))
    return np.asarray(sd, dtype=np.float64)


def _betabinom_sf(
    k: npt.ArrayLike, n: npt.ArrayLike, a: npt.ArrayLike, b: npt.ArrayLike
) -> FloatArray:
    """``scipy.stats.betabinom.sf(k, n, a, b)``, the same operations in the same order.

    scipy.stats has no closed form either: it sums the pmf from 0 to ``floor(k)`` one
    element at a time (``rv_discrete._cdf_single``) and returns ``1 - cdf`` clipped to
    [0, 1]. Repeated here on scipy.special so that the hot path does not load
    scipy.stats (~45 MiB); the tests compare both bit for bit.
    """
    from scipy import special  # noqa: PLC0415

    shaped = np.broadcast_arrays(
        np.asarray(k, np.float64),
        np.asarray(n, np.float64),
        np.asarray(a, np.float64),
        np.asarray(b, np.float64),
    )
    kk, nn, aa, bb = (x.ravel() for x in shaped)
    valid = (nn >= 0) & (nn == np.round(nn)) & (aa > 0) & (bb > 0)
    out = np.zeros(kk.shape)
    out[~valid | np.isnan(kk)] = np.nan
    out[((kk < 0) | np.isneginf(kk)) & valid] = 1.0
    inside = valid & (kk >= 0) & (kk < nn) & np.isfinite(kk)
    for i in np.flatnonzero(inside):
        n_i, a_i, b_i = nn[i], aa[i], bb[i]
        m = np.floor(np.arange(0, np.floor(kk[i]) + 1))
        combiln = -np.log(n_i + 1) - special.betaln(n_i - m + 1, m + 1)
        log_pmf = combiln + special.betaln(m + a_i, n_i - m + b_i) - special.betaln(a_i, b_i)
        out[i] = np.clip(1.0 - np.sum(np.exp(log_pmf), axis=0), 0, 1)
    return np.asarray(out.reshape(shaped[0].shape), dtype=np.float64)


def beta_binomial_sf(
    k: npt.ArrayLike, n: npt.ArrayLike, a: npt.ArrayLike, b: npt.ArrayLike
) -> FloatArray:
    """``P(K >= k)`` for ``K ~ BetaBinomial(n, a, b)``."""
    kk = np.asarray(k, dtype=np.float64)
    out = _betabinom_sf(kk - 1, n, a, b)
    return np.asarray(np.where(kk <= 0, 1.0, np.clip(out, 0.0, 1.0)), dtype=np.float64)


def beta_binomial_critical(
    alpha: float, n: npt.ArrayLike, a: npt.ArrayLike, b: npt.ArrayLike
) -> FloatArray:
    """The smallest count ``k`` with ``P(K >= k) < alpha``, ``K ~ BetaBinomial(n, a, b)``.

    Exact on a grid of counts where the expected count is small (the usual case: a few
    values out of range), the normal approximation where it is large.
    """
    from scipy import special  # noqa: PLC0415

    n_, a_, b_ = np.broadcast_arrays(
        np.asarray(n, dtype=np.float64), np.asarray(a, np.float64), np.asarray(b, np.float64)
    )
    shape = n_.shape
    n_, a_, b_ = n_.ravel(), a_.ravel(), b_.ravel()
    mean = n_ * a_ / (a_ + b_)
    var = n_ * a_ * b_ * (a_ + b_ + n_) / ((a_ + b_) ** 2 * (a_ + b_ + 1))
    sd = np.sqrt(var)
    out = np.minimum(mean + normal_isf(alpha) * sd, n_) + 1
    small = (mean < 40) & (n_ > 0)
    if small.any():
        ns, as_, bs = n_[small], a_[small], b_[small]
        top = int(np.ceil(np.max(mean[small] + 25 * sd[small] + 25)))
        k = np.arange(top + 1, dtype=np.float64)[:, None]
        log_pmf = (
            special.gammaln(ns + 1)
            - special.gammaln(k + 1)
            - special.gammaln(np.maximum(ns - k, 0) + 1)
            + special.betaln(k + as_, np.maximum(ns - k, 0) + bs)
            - special.betaln(as_, bs)
        )
        pmf = np.where(k <= ns, np.exp(log_pmf), 0.0)
        # P(K >= k) from the top down, so small tails keep their precision.
        tail = np.cumsum(pmf[::-1], axis=0)[::-1]
        below = tail < alpha
        first = np.where(below.any(axis=0), below.argmax(axis=0), top + 1).astype(np.float64)
        out[small] = np.minimum(first, ns + 1)
    return np.asarray(out.reshape(shape), dtype=np.float64)


def _kolmogorov_level(sigmas: float) -> float:
    return _KOLMOGOROV_MEAN + sigmas * _KOLMOGOROV_SD


def chunk_spread(
    method: str,
    chunk_ref: npt.ArrayLike,
    n_bins: npt.ArrayLike | None = None,
    null: ChiNull | None = None,
    smoothing: float = DEFAULT_SMOOTHING,
    sigmas: float = 3.0,
) -> FloatArray:
    """The reference's own spread beyond i.i.d. sampling, per feature, in score units.

    ``chunk_ref`` holds the counts of ``K`` time-ordered chunks, ``(K, F, bins)`` for the
    distribution methods (``psi``, ``chi2``, ``js``, ``ks``), or ``(K, F, 2)`` as
    (missing, present) for ``missing``. Each chunk is scored against the rest of the
    reference. If the chunks disagree more than i.i.d. sampling explains (a test at level
    ``SPREAD_P`` on the sum of their chi-square-scaled scores, or their mean for KS), the
    spread is mean + ``sigmas`` sd of the chunk scores minus the same level of the
    i.i.d. null at the chunk sizes; else 0. ``null`` is the method's i.i.d. fit for the
    chi-square family (:func:`simulate_chi_null` on the whole reference).
    """
    chunks = np.asarray(chunk_ref, dtype=np.float64)
    if chunks.ndim != 3:
        raise ValueError(f"chunk counts must be (chunks, features, bins), got {chunks.shape}")
    k, f = chunks.shape[:2]
    total = chunks.sum(axis=0)
    rest = total[None] - chunks
    out = np.zeros(f)
    if k < 2:
        return out
    if method == "missing":
        rows_c, rows_r = chunks.sum(axis=-1), rest.sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            share_c, share_r = chunks[..., 0] / rows_c, rest[..., 0] / rows_r
            p0 = (total[:, 0] + 0.5) / (total.sum(axis=-1) + 1)
            sd = proportion_sd(p0[None], rows_r, rows_c)
            score = np.abs(share_c - share_r)
            z2 = np.where(sd > 0, (score / sd) ** 2, 0.0).sum(axis=0)
        over = chi2_sf(z2, k) < SPREAD_P
        iid = sd.mean(axis=0) * (math.sqrt(2 / math.pi) + sigmas * math.sqrt(1 - 2 / math.pi))
    elif method == "ks":
        ks = ks_from_counts(rest, chunks, "kstwobign")
        n_eff = n_effective(ks.n_ref, ks.n_cur)
        score = np.nan_to_num(ks.statistic)
        t = score * np.sqrt(n_eff)
        z = (t.mean(axis=0) - _KOLMOGOROV_MEAN) / (_KOLMOGOROV_SD / math.sqrt(k))
        over = normal_sf(z) < SPREAD_P
        with np.errstate(invalid="ignore", divide="ignore"):
            iid = _kolmogorov_level(sigmas) / np.sqrt(n_eff).mean(axis=0)
    else:
        if null is None:
            raise ValueError(f"chunk_spread({method!r}) needs the method's i.i.d. null")
        nb = None if n_bins is None else np.broadcast_to(np.asarray(n_bins), (k, f))
        score = np.nan_to_num(statistic(method, rest, chunks, nb, smoothing))
        n_eff = n_effective(rest.sum(axis=-1), chunks.sum(axis=-1))
        t = to_chi(method, score, n_eff) / null.scale
        over = chi2_sf(t.sum(axis=0), k * null.dof) < SPREAD_P
        iid = from_chi(method, null.level(sigmas), n_eff.mean(axis=0))
    level = score.mean(axis=0) + sigmas * score.std(axis=0, ddof=1)
    excess = np.where(over, np.maximum(level - np.nan_to_num(iid), 0.0), 0.0)
    out[:] = np.nan_to_num(excess)
    return out


def chunk_ids(n_rows: int, n_chunks: int = SPREAD_CHUNKS) -> npt.NDArray[np.int64] | None:
    """The chunk of each of ``n_rows`` time-ordered rows, or None when chunks would be tiny."""
    if n_rows < n_chunks * MIN_CHUNK_ROWS:
        return None
    return (np.arange(n_rows, dtype=np.int64) * n_chunks) // n_rows


def spread_methods(kinds: Sequence[str]) -> tuple[str, ...]:
    """The methods with a chunk spread, for a set of column kinds."""
    out = ["missing", "psi"]
    if "numeric" in kinds:
        out.append("ks")
    if "categorical" in kinds:
        out += ["chi2", "js"]
    return tuple(out)
