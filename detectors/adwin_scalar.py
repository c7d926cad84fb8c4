"""River's delete-and-rescan loop after a cut, for one window.

The batched detector finds *where* the first cut fires. What river reports after
that update (the width and estimation once the oldest buckets have been dropped)
comes from its loop "while some cut fires: delete the oldest bucket, rescan".

Each state of that loop (``d`` oldest buckets deleted) is known in advance: the
width, total and variance after ``d`` deletions follow river's ``delete_element``
formulas, applied in order. So every state's scan is scored at once, in a
``(d, boundary)`` matrix, and the loop stops at the first state where no cut fires.
Every float expression keeps the order of river's ``rust_src/adwin.rs``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from detectors.base import FloatArray


@dataclass(frozen=True)
class Settled:
    """The window river holds after its detect-change loop."""

    fired: bool
    width: float
    total: float
    variance: float


def _states_after_deletions(
    sizes: FloatArray,
    totals: FloatArray,
    variances: FloatArray,
    width: float,
    total: float,
    variance: float,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Width, total and variance after deleting 0, 1, ... oldest buckets, as river does."""
    n_states = sizes.size
    widths = np.full(n_states, np.nan)
    tots = np.full(n_states, np.nan)
    vars_ = np.full(n_states, np.nan)
    w, t, v = width, total, variance
    for d, (n, u, bucket_var) in enumerate(
        zip(sizes.tolist(), totals.tolist(), variances.tolist(), strict=True)
    ):
        widths[d], tots[d], vars_[d] = w, t, v
        mu = u / n
        w -= n
        t -= u
        if w <= 0.0:
            break
        mu_window = t / w
        v -= bucket_var + n * w * (mu - mu_window) * (mu - mu_window) / (n + w)
    return widths, tots, vars_


def settle_after_cut(
    sizes: FloatArray,
    totals: FloatArray,
    variances: FloatArray,
    width: float,
    total: float,
    variance: float,
    delta: float,
    min_window_length: int,
) -> Settled:
    """Run river's detect-change loop over buckets given oldest first."""
    mwl = float(min_window_length)
    n_buckets = sizes.size
    # States beyond n_buckets - 2 leave fewer than two buckets: no boundary can qualify.
    n_states = max(1, n_buckets - 1)
    all_widths, all_tots, all_vars = _states_after_deletions(
        sizes, totals, variances, width, total, variance
    )
    widths, tots, vars_ = all_widths[:n_states], all_tots[:n_states], all_vars[:n_states]

    # Row d scans buckets d.. oldest first; entries before d are zeros, which leave
    # the running sums exactly as river's fresh 0.0 start.
    keep = np.arange(n_buckets)[None, :] >= np.arange(n_states)[:, None]
    steps_u = np.where(keep, totals[None, :], 0.0)
    steps_n = np.where(keep, sizes[None, :], 0.0)
    u0 = np.cumsum(steps_u, axis=1)
    u1 = np.subtract.accumulate(np.concatenate([tots[:, None], steps_u], axis=1), axis=1)[:, 1:]
    n0 = np.cumsum(steps_n, axis=1)
    n1 = widths[:, None] - n0
    qualifies = keep & (n0 >= mwl) & (n1 >= mwl)
    qualifies[:, -1] = False
    with np.errstate(divide="ignore", invalid="ignore"):
        delta_prime = np.array(
            [math.log(2.0 * math.log(w) / delta) if w > 1.0 else np.nan for w in widths.tolist()]
        )[:, None]
        delta_mean = np.abs(u0 / n0 - u1 / n1)
        m_recip = 1.0 / (n0 - mwl + 1.0) + 1.0 / (n1 - mwl + 1.0)
        epsilon = np.sqrt(2.0 * m_recip * (vars_ / widths)[:, None] * delta_prime)
        epsilon += 2.0 / 3.0 * delta_prime * m_recip
        fires = (qualifies & (delta_mean > epsilon)).any(axis=1)
    if not fires[0]:
        return Settled(False, width, total, variance)
    # The first state where no cut fires; if all fire, river deletes down to one bucket.
    stop = int(np.argmin(fires)) if not fires.all() else n_buckets - 1
    return Settled(True, float(all_widths[stop]), float(all_tots[stop]), float(all_vars[stop]))
