"""The distributions the multivariate and embedding tests score with, from scipy.special.

scipy.stats costs about 45 MiB of RSS and most of a second to import; the daemon scores
windows without it. Each function here is the scipy.stats method it names, computed the
way scipy.stats computes it (``tests/detectors/test_multivariate.py`` and
``test_embedding.py`` hold them to scipy.stats, the oracle).

>>> round(float(f_sf(3.0, 4, 100)), 6), round(float(binom_sf(2, 10, 0.05)), 6)
(0.021997, 0.011504)
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from detectors.base import FloatArray

PEARSON3_NORMAL_BELOW = 0.000016
"""Below this |skew| scipy's ``pearson3`` is the normal law; so is this one."""


def f_sf(x: npt.ArrayLike, dfn: npt.ArrayLike, dfd: npt.ArrayLike) -> FloatArray:
    """``scipy.stats.f.sf(x, dfn, dfd)``."""
    from scipy import special  # noqa: PLC0415

    x_arr = np.asarray(x, dtype=np.float64)
    return np.asarray(np.where(x_arr > 0, special.fdtrc(dfn, dfd, np.maximum(x_arr, 0)), 1.0))


def f_isf(q: npt.ArrayLike, dfn: npt.ArrayLike, dfd: npt.ArrayLike) -> FloatArray:
    """``scipy.stats.f.isf(q, dfn, dfd)`` (its quantile at ``1 - q``)."""
    from scipy import special  # noqa: PLC0415

    return np.asarray(special.fdtri(dfn, dfd, 1.0 - np.asarray(q, dtype=np.float64)))


def binom_sf(k: npt.ArrayLike, n: npt.ArrayLike, p: float) -> FloatArray:
    """``scipy.stats.binom.sf(k, n, p)``: ``P(K > k)``, 1 below the support and 0 from ``n``
    on (to within a few ulp: scipy.stats sums the tail with another library's code)."""
    from scipy import special  # noqa: PLC0415

    k_arr, n_arr = np.broadcast_arrays(
        np.floor(np.asarray(k, dtype=np.float64)), np.asarray(n, dtype=np.float64)
    )
    inside = (k_arr >= 0) & (k_arr < n_arr)
    # Integer arguments: bdtrc deprecates float ones.
    tail = special.bdtrc(np.where(inside, k_arr, 0.0).astype(np.int64), n_arr.astype(np.int64), p)
    return np.asarray(np.where(k_arr < 0, 1.0, np.where(inside, tail, 0.0)))


def normal_isf(q: npt.ArrayLike) -> FloatArray:
    """``scipy.stats.norm.isf(q)``."""
    from scipy import special  # noqa: PLC0415

    return np.asarray(-special.ndtri(np.asarray(q, dtype=np.float64)))


def sample_skew(values: npt.ArrayLike) -> float:
    """``scipy.stats.skew(values)`` (the biased moment ratio ``m3 / m2**1.5``)."""
    x = np.asarray(values, dtype=np.float64)
    centred = x - x.mean()
    m2 = float(np.mean(centred**2))
    m3 = float(np.mean(centred**3))
    return m3 / m2**1.5 if m2 > 0 else 0.0


class Pearson3:
    """``scipy.stats.pearson3(skew, loc, scale)``: a gamma law shifted and scaled to the
    given mean, standard deviation and skew (mirrored for a negative skew), the normal
    law where the skew is below ``PEARSON3_NORMAL_BELOW``."""

    def __init__(self, skew: npt.ArrayLike, loc: npt.ArrayLike, scale: npt.ArrayLike) -> None:
        skew_arr, loc_arr, scale_arr = np.broadcast_arrays(
            np.asarray(skew, dtype=np.float64),
            np.asarray(loc, dtype=np.float64),
            np.asarray(scale, dtype=np.float64),
        )
        self.loc, self.scale = loc_arr, scale_arr
        self.normal = np.abs(skew_arr) < PEARSON3_NORMAL_BELOW
        safe = np.where(self.normal, 1.0, skew_arr)
        self.beta = 2.0 / safe
        self.alpha = self.beta**2
        self.zeta = -self.alpha / self.beta
        self.positive = skew_arr > 0

    def cdf(self, x: npt.ArrayLike) -> FloatArray:
        """``P(X <= x)``."""
        return self._tail(x, lower=True)

    def sf(self, x: npt.ArrayLike) -> FloatArray:
        """``P(X > x)``."""
        return self._tail(x, lower=False)

    def ppf(self, q: npt.ArrayLike) -> FloatArray:
        """The ``q`` quantile."""
        from scipy import special  # noqa: PLC0415

        q_arr = np.asarray(q, dtype=np.float64)
        # A negative skew mirrors the gamma law: its lower quantile is the upper one's.
        gamma_q = np.where(self.positive, q_arr, 1.0 - q_arr)
        with np.errstate(invalid="ignore", divide="ignore"):
            skewed = special.gammaincinv(self.alpha, gamma_q) / self.beta + self.zeta
        standard = np.where(self.normal, special.ndtri(q_arr), skewed)
        return np.asarray(self.loc + self.scale * standard)

    def isf(self, q: npt.ArrayLike) -> FloatArray:
        """The ``1 - q`` quantile."""
        return self.ppf(1.0 - np.asarray(q, dtype=np.float64))

    def _tail(self, x: npt.ArrayLike, *, lower: bool) -> FloatArray:
        from scipy import special  # noqa: PLC0415

        with np.errstate(invalid="ignore", divide="ignore"):
            standard = (np.asarray(x, dtype=np.float64) - self.loc) / self.scale
            t = np.maximum(self.beta * (standard - self.zeta), 0.0)
            below = special.gammainc(self.alpha, t)  # P(G <= t)
            above = special.gammaincc(self.alpha, t)
        # With a negative skew X is mirrored: X <= x is G >= t.
        skewed = np.where(self.positive == lower, below, above)
        normal = special.ndtr(standard if lower else -standard)
        return np.asarray(np.where(self.normal, normal, skewed))
