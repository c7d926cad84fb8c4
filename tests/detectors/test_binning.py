"""Binner: exactly np.searchsorted's bins on every path, missing values kept out."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from detectors.binning import Binner
from detectors.profile import CategoricalProfile, NumericProfile


def _numeric(edges: np.ndarray, name: str = "x") -> NumericProfile:
    return NumericProfile(name, edges, np.zeros(edges.size + 1, np.int64), np.array([0]), 0)


def _expected(edges: np.ndarray, x: np.ndarray) -> np.ndarray:
    codes = np.searchsorted(edges, x, side="left")
    return np.where(np.isfinite(x), codes, -1)


def _tricky_values(edges: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """Values on, just below and just above edges, far out, and non-finite."""
    picks = rng.choice(edges, n) if edges.size else np.zeros(n)
    lo, hi = (edges[0], edges[-1]) if edges.size else (-1.0, 1.0)
    u = rng.uniform(-0.1, 1.1, n)
    pool = [
        picks,
        np.nextafter(picks, -np.inf),
        np.nextafter(picks, np.inf),
        lo * (1 - u) + hi * u,  # spans the range without overflowing
        rng.choice([np.nan, np.inf, -np.inf, 1e308, -1e308, 0.0, -0.0, 5e-324], n),
    ]
    which = rng.integers(0, len(pool), n)
    return np.choose(which, pool)


# Edge sets chosen to hit each search path: one comparison per value on a uniform
# grid, several comparisons (a tight cluster of edges), and searchsorted (edges
# spanning many orders of magnitude).
EDGE_SETS = {
    "uniform": np.linspace(-3.0, 3.0, 99),
    "cluster": np.concatenate([[0.0, 1e-12, 2e-12], np.linspace(1.0, 10.0, 40)]),
    "power_law": np.unique(10.0 ** np.linspace(-8, 8, 150)),
    "single": np.array([2.5]),
    "none": np.array([], dtype=np.float64),
    "huge_range": np.array([-1e308, 0.0, 1e308]),
}


def test_edge_sets_cover_every_search_path() -> None:
    """The edge sets above exercise one-step grids, multi-step grids and searchsorted."""
    plans = {name: Binner([_numeric(e)]) for name, e in EDGE_SETS.items()}
    assert plans["uniform"].steps == 1 and not plans["uniform"].searchsorted_features
    assert 2 <= plans["cluster"].steps <= 4 and not plans["cluster"].searchsorted_features
    assert plans["power_law"].searchsorted_features == [0]


@pytest.mark.parametrize("name", sorted(EDGE_SETS))
def test_bins_equal_searchsorted_on_tricky_values(name: str) -> None:
    """Every value lands where np.searchsorted(side='left') puts it; non-finite is missing."""
    edges = EDGE_SETS[name]
    rng = np.random.default_rng(len(name))
    x = _tricky_values(edges, rng, 50_000)
    codes, missing = Binner([_numeric(edges)]).bin(x[:, None])
    np.testing.assert_array_equal(codes[:, 0], _expected(edges, x))
    np.testing.assert_array_equal(missing[:, 0], ~np.isfinite(x))


@settings(max_examples=150, deadline=None)
@given(
    edges=hnp.arrays(
        np.float64,
        st.integers(0, 120),
        elements=st.floats(-1e12, 1e12, allow_nan=False, allow_subnormal=True),
        unique=True,
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_bins_equal_searchsorted_for_any_edges(edges: np.ndarray, seed: int) -> None:
    """For arbitrary sorted distinct edges the grid search agrees with searchsorted."""
    edges = np.sort(edges)
    x = _tricky_values(edges, np.random.default_rng(seed), 2000)
    codes, missing = Binner([_numeric(edges)]).bin(x[:, None])
    np.testing.assert_array_equal(codes[:, 0], _expected(edges, x))
    np.testing.assert_array_equal(missing[:, 0], ~np.isfinite(x))


def test_chunks_and_features_are_independent() -> None:
    """Many features and more rows than one chunk bin exactly like each column alone."""
    rng = np.random.default_rng(7)
    sets = list(EDGE_SETS.values())
    binner = Binner([_numeric(e, f"f{i}") for i, e in enumerate(sets)])
    X = np.column_stack([_tricky_values(e, rng, 40_000) for e in sets])
    codes, _ = binner.bin(X)
    for f, e in enumerate(sets):
        np.testing.assert_array_equal(codes[:, f], _expected(e, X[:, f]))


def test_categorical_codes_are_their_own_bins() -> None:
    """Code k is bin k, unknown values __other__, codes past it __unseen__, NaN missing."""
    profile = CategoricalProfile("c", ("a", "b", "c"), np.array([1, 1, 1, 0]), 0)
    codes = profile.encode(np.array(["c", "a", None, "zz", "b"], dtype=object))
    got, missing = Binner([profile]).bin(np.append(codes, [3.0, 9.0])[:, None])
    np.testing.assert_array_equal(got[:, 0], [2, 0, -1, 3, 1, 3, 4])
    np.testing.assert_array_equal(missing[:, 0], [0, 0, 1, 0, 0, 0, 0])


def test_layout_and_coarsening() -> None:
    """Width is the widest feature; coarse counts sum whole fine bins and skip padding."""
    fine = NumericProfile("x", np.arange(9.0), np.arange(10), np.array([0, 3, 7]), 4)
    cat = CategoricalProfile("c", ("a",), np.array([5, 6]), 1)
    binner = Binner([fine, cat])
    assert (binner.width, binner.stride, binner.coarse_width) == (10, 11, 3)
    np.testing.assert_array_equal(binner.n_bins, [10, 3])
    slots = binner.reference_slots()
    np.testing.assert_array_equal(slots[:, -1], [4, 1])
    np.testing.assert_array_equal(binner.coarsen(slots), [[3, 18, 24], [5, 6, 0]])


def test_wrong_shape_is_refused() -> None:
    """X must have one column per profile."""
    binner = Binner([_numeric(np.array([0.0]))])
    with pytest.raises(ValueError, match=r"X must have shape \(n, 1\), got \(3, 2\)"):
        binner.bin(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="at least one feature profile is required"):
        Binner([])
