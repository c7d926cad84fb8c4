"""Sketch: counts add up, whatever the batching, merging or restoring."""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.profile import NumericProfile
from detectors.sketch import Sketch
from tests.detectors.window_data import reference_profile, value_matrix

PROFILE = reference_profile()
FEATURES = list(PROFILE.features)
S = 4

PROPERTY = settings(max_examples=60, deadline=None)


def _batch(seed: int, n: int, n_segments: int = S) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_segments, n), value_matrix(FEATURES, rng, n, dirty=0.2)


def _sketch(*batches: tuple[np.ndarray, np.ndarray], n_segments: int = S) -> Sketch:
    sketch = Sketch(FEATURES, n_segments)
    for seg, X in batches:
        sketch.update(seg, X)
    return sketch


def _naive_counts(seg: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts and missing counts by a per-feature loop, the obvious way."""
    counts = np.zeros((S, len(FEATURES), max(p.n_bins for p in FEATURES)), np.int64)
    missing = np.zeros((S, len(FEATURES)), np.int64)
    for f, p in enumerate(FEATURES):
        x = X[:, f]
        ok = np.isfinite(x)
        edges = p.edges if isinstance(p, NumericProfile) else np.arange(p.n_bins - 1) + 0.5
        np.add.at(counts[:, f], (seg[ok], np.searchsorted(edges, x[ok], side="left")), 1)
        np.add.at(missing[:, f], seg[~ok], 1)
    return counts, missing


@PROPERTY
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 300), data=st.data())
def test_any_split_into_batches_gives_the_same_counts(
    seed: int, n: int, data: st.DataObject
) -> None:
    """One batch and any split of it into smaller batches give identical sketches."""
    seg, X = _batch(seed, n)
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=6)))
    bounds = [0, *cuts, n]
    split = _sketch(*[(seg[a:b], X[a:b]) for a, b in itertools.pairwise(bounds)])
    whole = _sketch((seg, X))
    np.testing.assert_array_equal(split.counts, whole.counts)
    np.testing.assert_array_equal(split.missing, whole.missing)


@PROPERTY
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 300))
def test_counts_match_a_naive_count_and_missing_never_binned(seed: int, n: int) -> None:
    """Counts equal a per-feature searchsorted count; NaN/inf only ever count as missing."""
    seg, X = _batch(seed, n)
    sketch = _sketch((seg, X))
    counts, missing = _naive_counts(seg, X)
    np.testing.assert_array_equal(sketch.counts, counts)
    np.testing.assert_array_equal(sketch.missing, missing)
    np.testing.assert_array_equal(sketch.rows, np.bincount(seg, minlength=S))
    np.testing.assert_array_equal(sketch.counts.sum(axis=2), sketch.rows[:, None] - sketch.missing)
    np.testing.assert_array_equal(sketch.n, sketch.rows[:, None] - sketch.missing)


@PROPERTY
@given(seeds=st.lists(st.integers(0, 2**32 - 1), min_size=3, max_size=3), n=st.integers(0, 200))
def test_merge_is_associative_commutative_and_adds(seeds: list[int], n: int) -> None:
    """(a+b)+c == a+(b+c), a+b == b+a, and a+b equals the sketch of both batches."""
    a, b, c = (_sketch(_batch(s, n)) for s in seeds)
    left = a.merge(b).merge(c)
    right = a.merge(b.merge(c))
    np.testing.assert_array_equal(left.counts, right.counts)
    np.testing.assert_array_equal(left.missing, right.missing)
    np.testing.assert_array_equal(a.merge(b).counts, b.merge(a).counts)
    both = _sketch(_batch(seeds[0], n), _batch(seeds[1], n))
    np.testing.assert_array_equal(a.merge(b).counts, both.counts)
    np.testing.assert_array_equal(a.merge(b).missing, both.missing)


def test_merge_leaves_operands_unchanged_and_pads_segments() -> None:
    """merge returns a new sketch with the larger segment count; operands keep their counts."""
    a = _sketch(_batch(1, 100))
    b = _sketch(_batch(2, 100, n_segments=2), n_segments=2)
    before_a, before_b = a.counts.copy(), b.counts.copy()
    merged = b.merge(a)
    assert merged.n_segments == S
    np.testing.assert_array_equal(a.counts, before_a)
    np.testing.assert_array_equal(b.counts, before_b)
    np.testing.assert_array_equal(merged.counts[:2], before_a[:2] + before_b)
    np.testing.assert_array_equal(merged.counts[2:], before_a[2:])


@PROPERTY
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 200))
def test_state_round_trip_changes_nothing(seed: int, n: int) -> None:
    """state_dict -> load_state_dict, directly or through pickle, restores identical counts."""
    sketch = _sketch(_batch(seed, n))
    for state in (sketch.state_dict(), pickle.loads(pickle.dumps(sketch.state_dict()))):
        restored = Sketch(FEATURES, 1)
        restored.load_state_dict(state)
        np.testing.assert_array_equal(restored.counts, sketch.counts)
        np.testing.assert_array_equal(restored.missing, sketch.missing)
    unpickled = pickle.loads(pickle.dumps(sketch))
    np.testing.assert_array_equal(unpickled.counts, sketch.counts)
    seg, X = _batch(seed + 1, 50)
    unpickled.update(seg, X)
    sketch.update(seg, X)
    np.testing.assert_array_equal(unpickled.counts, sketch.counts)


def test_state_from_other_profiles_is_refused() -> None:
    """Loading state made against different profiles, or merging with them, raises."""
    other = Sketch(list(reference_profile(seed=9).features), S)
    sketch = _sketch(_batch(0, 10))
    with pytest.raises(ValueError, match="sketch state was made against profiles"):
        sketch.load_state_dict(other.state_dict())
    with pytest.raises(ValueError, match="cannot merge sketches built on different profiles"):
        sketch.merge(other)
    state = sketch.state_dict()
    state["counts"] = state["counts"][:, :2]
    with pytest.raises(ValueError, match="sketch state counts must have shape"):
        sketch.load_state_dict(state)


def test_coarse_counts_sum_whole_fine_bins() -> None:
    """coarse_counts equals np.add.reduceat of each feature's fine counts, zero-padded."""
    sketch = _sketch(_batch(3, 500))
    coarse = sketch.coarse_counts()
    for f, p in enumerate(FEATURES):
        expected = np.add.reduceat(sketch.counts[:, f, : p.n_bins], p.coarse_starts, axis=1)
        np.testing.assert_array_equal(coarse[:, f, : p.n_coarse], expected)
        assert not coarse[:, f, p.n_coarse :].any()


def test_segments_grow_on_demand() -> None:
    """ensure_segments adds empty segments and keeps counts; unknown segment ids raise."""
    seg, X = _batch(4, 100)
    sketch = _sketch((seg, X))
    before = sketch.counts.copy()
    with pytest.raises(ValueError, match=r"segment ids must lie in \[0, 4\)"):
        sketch.update(np.array([4]), X[:1])
    sketch.ensure_segments(6)
    sketch.ensure_segments(2)
    assert sketch.n_segments == 6
    np.testing.assert_array_equal(sketch.counts[:S], before)
    assert not sketch.counts[S:].any()
    sketch.update(np.array([5]), X[:1])
    assert sketch.rows[5] == 1


def test_views_are_read_only_and_reset_zeroes() -> None:
    """counts and missing cannot be written through; reset empties every segment."""
    sketch = _sketch(_batch(5, 100))
    with pytest.raises(ValueError, match="read-only"):
        sketch.counts[0, 0, 0] = 1
    sketch.reset()
    assert sketch.n_segments == S and not sketch.rows.any()


def test_mismatched_rows_are_refused() -> None:
    """A batch with more segment ids than rows raises a ValueError."""
    with pytest.raises(ValueError, match="got 3 segment ids for 2 rows"):
        Sketch(FEATURES, S).update(np.zeros(3, np.int64), np.zeros((2, len(FEATURES))))
    with pytest.raises(ValueError, match="n_segments must be >= 1, got 0"):
        Sketch(FEATURES, 0)


def test_reference_sketch_holds_the_profile_counts() -> None:
    """Sketch.from_reference holds each profile's counts and missing count."""
    ref = Sketch.from_reference(FEATURES)
    for f, p in enumerate(FEATURES):
        np.testing.assert_array_equal(ref.counts[0, f, : p.n_bins], p.counts)
        assert ref.missing[0, f] == p.n_missing
        np.testing.assert_array_equal(ref.coarse_counts()[0, f, : p.n_coarse], p.coarse_counts)
