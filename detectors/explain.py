"""Why a window drifted: the bins that contribute most to its PSI.

A page that says "PSI 0.41" sends the on-call engineer to a dashboard; one that says
"income (-inf, 21000]: 8% -> 31%" often answers the question on the phone. Bins are
ranked by their share of the PSI sum, ``(p_k - q_k) ln(p_k / q_k)`` with the same
additive smoothing as the score, so the listed contributions add up to (at most) the
PSI itself. Numeric features use the coarse PSI bins, categoricals their categories
(``__unseen__`` last).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from detectors.base import IntArray
from detectors.feature_profiles import OTHER, UNSEEN, CategoricalProfile, FeatureProfile
from detectors.stats import DEFAULT_SMOOTHING

TOP_BINS = 5


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def bin_labels(profile: FeatureProfile) -> list[str]:
    """Readable labels of the bins PSI scores: coarse intervals, or the categories."""
    if isinstance(profile, CategoricalProfile):
        return [str(c) for c in profile.categories] + [OTHER, UNSEEN]
    edges = profile.coarse_edges.tolist()
    lows = ["-inf", *map(_fmt, edges)]
    highs = [*map(_fmt, edges), "inf"]
    return [f"({lo}, {hi}]" for lo, hi in zip(lows, highs, strict=True)]


def top_bins(
    labels: Sequence[str],
    reference: IntArray,
    current: IntArray,
    k: int = TOP_BINS,
    smoothing: float = DEFAULT_SMOOTHING,
) -> list[dict[str, Any]]:
    """The ``k`` bins contributing most to PSI, largest first (JSON-safe dicts)."""
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    n_bins = len(labels)
    if ref.shape != (n_bins,) or cur.shape != (n_bins,):
        raise ValueError(f"expected {n_bins} counts per side, got {ref.shape} and {cur.shape}")
    if ref.sum() <= 0 or cur.sum() <= 0:
        return []
    p = (ref + smoothing) / (ref.sum() + smoothing * n_bins)
    q = (cur + smoothing) / (cur.sum() + smoothing * n_bins)
    contribution = (p - q) * np.log(p / q)
    # Stable, so equal contributions keep bin order and the output is deterministic.
    order = np.argsort(-contribution, kind="stable")[:k]
    return [
        {
            "bin": labels[i],
            "reference_share": round(float(ref[i] / ref.sum()), 6),
            "current_share": round(float(cur[i] / cur.sum()), 6),
            "psi_contribution": round(float(contribution[i]), 6),
        }
        for i in order.tolist()
    ]
