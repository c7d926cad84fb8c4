"""Fairness gaps equal a direct per-window, per-group computation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from monitor.engine.labels.fairness import FAIRNESS_GAPS, fairness_gaps


def _direct(counts: np.ndarray, min_group_size: int) -> dict[str, list[float]]:
    """counts[w, g] = (n, predicted_pos, tp, fn, fp, tn); the gaps by plain loops."""
    out: dict[str, list[float]] = {name: [] for name in FAIRNESS_GAPS}
    for window in counts.tolist():
        rates: dict[str, list[float]] = {name: [] for name in FAIRNESS_GAPS}
        for n, pp, tp, fn, fp, tn in window:
            if n < min_group_size:
                continue
            if n > 0:
                rates["demographic_parity_difference"].append(pp / n)
            if tp + fn > 0:
                rates["tpr_gap"].append(tp / (tp + fn))
            if fp + tn > 0:
                rates["fpr_gap"].append(fp / (fp + tn))
        for name, values in rates.items():
            out[name].append(max(values) - min(values) if len(values) >= 2 else math.nan)
    return out


def _random_counts(rng: np.random.Generator, windows: int, groups: int) -> np.ndarray:
    """Consistent per-group confusion counts: n = tp + fn + fp + tn, pp = tp + fp."""
    confusion = rng.integers(0, 6, size=(windows, groups, 4))
    confusion[rng.random((windows, groups)) < 0.3] = 0  # empty groups
    tp, fn, fp, tn = np.moveaxis(confusion, -1, 0)
    return np.stack([tp + fn + fp + tn, tp + fp, tp, fn, fp, tn], axis=-1)


@pytest.mark.parametrize("min_group_size", [1, 5, 12])
def test_gaps_equal_direct_computation(min_group_size: int) -> None:
    """All three gaps match a loop over groups, NaN included, for several minimum sizes."""
    rng = np.random.default_rng(min_group_size)
    counts = _random_counts(rng, 300, 4)
    n, pp, tp, fn, fp, tn = np.moveaxis(counts, -1, 0)
    got = fairness_gaps(n, pp, tp, fn, fp, tn, min_group_size=min_group_size)
    expected = _direct(counts, min_group_size)
    assert list(got) == list(FAIRNESS_GAPS)
    for name in FAIRNESS_GAPS:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-15, equal_nan=True)
        assert np.isnan(got[name]).any() and np.isfinite(got[name]).any()


def test_fewer_than_two_qualifying_groups_is_nan() -> None:
    """One group, or one group big enough, gives NaN; two give max - min."""
    one = fairness_gaps([[10]], [[4]], [[3]], [[1]], [[1]], [[5]])
    assert all(np.isnan(v).all() for v in one.values())
    small = fairness_gaps([[10, 2]], [[4, 2]], [[3, 1]], [[1, 0]], [[1, 1]], [[5, 0]], 3)
    assert all(np.isnan(v).all() for v in small.values())
    two = fairness_gaps([[10, 4]], [[4, 1]], [[3, 1]], [[1, 1]], [[1, 0]], [[5, 2]])
    np.testing.assert_allclose(two["demographic_parity_difference"], [0.4 - 0.25])
    np.testing.assert_allclose(two["tpr_gap"], [0.75 - 0.5])
    np.testing.assert_allclose(two["fpr_gap"], [1 / 6])


def test_no_windows_gives_empty_gaps() -> None:
    """Zero windows give empty arrays."""
    empty = np.zeros((0, 3))
    gaps = fairness_gaps(empty, empty, empty, empty, empty, empty)
    assert all(v.shape == (0,) for v in gaps.values())


def test_validation_messages() -> None:
    """Shapes and min_group_size are checked with exact messages."""
    a = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"^min_group_size must be >= 1$"):
        fairness_gaps(a, a, a, a, a, a, 0)
    with pytest.raises(TypeError, match=r"^min_group_size must be an int, got float$"):
        fairness_gaps(a, a, a, a, a, a, 1.5)  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=r"^n must be shaped \(windows, groups\), got shape \(3,\)$"
    ):
        fairness_gaps(a[0], a[0], a[0], a[0], a[0], a[0])
    with pytest.raises(ValueError, match=r"^tn has shape \(2, 2\) but n has shape \(2, 3\)$"):
        fairness_gaps(a, a, a, a, a, a[:, :2])
