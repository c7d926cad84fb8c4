"""River's delete-and-rescan loop after a cut, for many windows at once.

The batched detector finds *where* the first cut fires. What river reports after
that update (the width and estimation once the oldest buckets have been dropped)
comes from its loop "while some cut fires: delete the oldest bucket, rescan".

Each state of that loop (``d`` oldest buckets deleted) is known in advance: the
width, total and variance after ``d`` deletions follow river's ``delete_element``
formulas, applied in order. So every state's scan of every window is scored at
once, in a ``(window, d, boundary)`` array, and each window's loop stops at its first
state where no cut fires.
Every float expression keeps the order of river's ``rust_src/adwin.rs``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from detectors.base import BoolArray, FloatArray


@dataclass(frozen=True)
class SettledBatch:
    """The windows river holds after its detect-change loop, one entry per window."""

    fired: BoolArray
    width: FloatArray
    total: FloatArray


def _states_after_deletions(
    sizes: FloatArray,
    totals: FloatArray,
    variances: FloatArray,
    width: FloatArray,
    total: FloatArray,
    variance: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Width, total and variance after deleting 0, 1, ... oldest buckets, as river does.

    River's updates are sequential subtractions, replayed exactly by
    ``subtract.accumulate`` along each row; column ``d`` is the state after ``d``
    deletions. Columns past a window's last bucket hold meaningless values that the
    scan below never lets fire.
    """
    widths = np.subtract.accumulate(np.concatenate([width[:, None], sizes], axis=1), axis=1)
    tots = np.subtract.accumulate(np.concatenate([total[:, None], totals], axis=1), axis=1)
    w, t = widths[:, 1:], tots[:, 1:]
    mu = totals / sizes
    mu_window = t / w
    removed = variances + sizes * w * (mu - mu_window) * (mu - mu_window) / (sizes + w)
    vars_ = np.subtract.accumulate(np.concatenate([variance[:, None], removed], axis=1), axis=1)
    return widths, tots, vars_


STATES_PER_SCAN = 8
"""States scored per round: river rarely deletes more than a few buckets after a cut."""


def _scan_states(
    sizes: FloatArray,
    totals: FloatArray,
    widths: FloatArray,
    tots: FloatArray,
    vars_: FloatArray,
    first_state: int,
    delta: float,
    mwl: float,
) -> BoolArray:
    """Whether some cut fires in states ``first_state ..`` (one column each) of every window."""
    n_slots = sizes.shape[1]
    states = np.arange(first_state, first_state + widths.shape[1])
    # State d scans buckets d.. oldest first; entries before d are zeros, which
    # leave the running sums exactly as river's fresh 0.0 start.
    keep = np.arange(n_slots)[None, :] >= states[:, None]
    widths, tots, vars_ = widths[..., None], tots[..., None], vars_[..., None]
    steps_u = np.where(keep, totals[:, None, :], 0.0)
    steps_n = np.where(keep, sizes[:, None, :], 0.0)
    u0 = np.cumsum(steps_u, axis=2)
    u1 = np.subtract.accumulate(np.concatenate([tots, steps_u], axis=2), axis=2)[..., 1:]
    n0 = np.cumsum(steps_n, axis=2)
    n1 = widths - n0
    # The boundary after a window's last bucket leaves n1 = 0, which never qualifies.
    qualifies = keep & (n0 >= mwl) & (n1 >= mwl)
    unique_w, inverse = np.unique(widths, return_inverse=True)
    logs = [math.log(2.0 * math.log(w) / delta) if w > 1.0 else math.nan for w in unique_w.tolist()]
    delta_prime = np.asarray(logs)[inverse.reshape(widths.shape)]
    delta_mean = np.abs(u0 / n0 - u1 / n1)
    m_recip = 1.0 / (n0 - mwl + 1.0) + 1.0 / (n1 - mwl + 1.0)
    epsilon = np.sqrt(2.0 * m_recip * (vars_ / widths) * delta_prime)
    epsilon += 2.0 / 3.0 * delta_prime * m_recip
    fires: BoolArray = (qualifies & (delta_mean > epsilon)).any(axis=2)
    return fires


def settle_after_cuts(
    sizes: FloatArray,
    totals: FloatArray,
    variances: FloatArray,
    width: FloatArray,
    total: FloatArray,
    variance: FloatArray,
    delta: float,
    min_window_length: int,
    states_per_scan: int = STATES_PER_SCAN,
) -> SettledBatch:
    """Run river's detect-change loop over many windows at once.

    Row ``h`` of ``sizes``, ``totals`` and ``variances`` holds window ``h``'s buckets
    oldest first, then zero-size padding; ``width``, ``total`` and ``variance`` are
    the windows' own. States are scored a few at a time, only for the windows whose
    loop has not stopped yet.
    """
    mwl = float(min_window_length)
    n_windows, n_slots = sizes.shape
    stop = np.zeros(n_windows, dtype=np.int64)
    fired = np.zeros(n_windows, dtype=np.bool_)
    with np.errstate(divide="ignore", invalid="ignore"):
        widths, tots, vars_ = _states_after_deletions(
            sizes, totals, variances, width, total, variance
        )
        pending = np.arange(n_windows)
        first = 0
        # A window has at most n_slots buckets, so state n_slots - 1 leaves at most one
        # bucket and never fires: every window's loop stops within n_slots states.
        while pending.size and first < n_slots:
            last = min(first + states_per_scan, n_slots)
            fires = _scan_states(
                sizes[pending],
                totals[pending],
                widths[pending, first:last],
                tots[pending, first:last],
                vars_[pending, first:last],
                first,
                delta,
                mwl,
            )
            if first == 0:
                fired = fires[:, 0]
            quiet = ~fires
            stopped = quiet.any(axis=1)
            stop[pending[stopped]] = first + np.argmax(quiet[stopped], axis=1)
            pending = pending[~stopped]
            first = last
    rows = np.arange(n_windows)
    return SettledBatch(fired, widths[rows, stop], tots[rows, stop])
