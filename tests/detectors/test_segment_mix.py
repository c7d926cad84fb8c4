"""Segment-mix drift against scipy's chisquare, merge by addition, and new segments."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from detectors.rules import BREACH, SKIP
from detectors.segment_mix import (
    SegmentMix,
    SegmentMixDetector,
    accumulate,
    evaluate_mix,
    merge_mixes,
    new_segments,
)

TEN = SegmentMix.from_counts({f"s{i}": 10_000 for i in range(10)})


def pooled_by_hand(expected: list[float], observed: list[int]) -> tuple[list[float], list[int]]:
    """Cells expected below 5 summed into one; a pool still below 5 joins the smallest cell."""
    big = [(e, o) for e, o in zip(expected, observed, strict=True) if e >= 5]
    small = [(e, o) for e, o in zip(expected, observed, strict=True) if e < 5]
    if small:
        pool = (sum(e for e, _ in small), sum(o for _, o in small))
        if pool[0] >= 5 or not big:
            big.append(pool)
        else:
            i = min(range(len(big)), key=lambda k: big[k][0])
            big[i] = (big[i][0] + pool[0], big[i][1] + pool[1])
    return [e for e, _ in big], [o for _, o in big]


@settings(max_examples=25, deadline=None)
@given(
    ref=st.lists(st.integers(1, 400), min_size=2, max_size=12),
    seed=st.integers(0, 2**16),
    size=st.integers(1, 300),
)
def test_statistic_and_p_value_equal_scipy_chisquare_on_pooled_cells(
    ref: list[int], seed: int, size: int
) -> None:
    """The chi-square and p-value are scipy.stats.chisquare's on the pooled cells."""
    mix = SegmentMix.from_counts({f"k{i}": c for i, c in enumerate(ref)})
    rng = np.random.default_rng(seed)
    names = rng.choice(list(mix.names), size)
    result = SegmentMixDetector(mix, min_samples=1).update(np.zeros(size, np.int64), names)
    observed = [int((names == n).sum()) for n in mix.names]
    expected = [size * c / mix.n_events for c in mix.counts.tolist()]
    exp, obs = pooled_by_hand(expected, observed)
    assert result.n[0] == size and result.dof[0] == len(exp) - 1
    if len(exp) < 2:
        assert (result.statistic[0], result.p_value[0], result.verdict[0]) == (0.0, 1.0, SKIP)
        return
    oracle = stats.chisquare(obs, exp)
    np.testing.assert_allclose(result.statistic[0], oracle.statistic, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(result.p_value[0], oracle.pvalue, rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(result.effect[0], np.sqrt(oracle.statistic / size), rtol=1e-12)


def test_doubling_one_of_ten_segments_breaches_in_one_window() -> None:
    """One of ten segments doubling its share breaches at 5,000 events; a stationary one not."""
    rng = np.random.default_rng(0)
    shifted = np.full(10, 0.8 / 9)
    shifted[3] = 0.2
    detector = SegmentMixDetector(TEN)
    streams = np.zeros(5_000, np.int64)
    assert not detector.update(streams, rng.choice(list(TEN.names), 5_000)).drift[0]
    detector.reset()
    result = detector.update(streams, rng.choice(list(TEN.names), 5_000, p=shifted))
    assert result.verdict[0] == BREACH and result.effect[0] > 0.3


def test_a_tiny_change_in_a_huge_window_is_gated_by_the_effect_size() -> None:
    """Significant at p < alpha but below min_effect: no breach, however large the window."""
    counts = np.zeros((1, TEN.n_cells), np.int64)
    n = 2_000_000
    counts[0, :10] = n // 10
    counts[0, 0] += 6_000
    counts[0, 1] -= 6_000
    result = evaluate_mix(TEN, counts)
    assert result.p_value[0] < 1e-4
    assert result.effect[0] < 0.05 and result.threshold[0] == 0.05
    assert result.verdict[0] != BREACH and not result.drift[0]


def test_counts_merge_by_addition() -> None:
    """Two partitions' (or panes') counts summed score exactly like one detector on all rows."""
    rng = np.random.default_rng(1)
    names = rng.choice([*TEN.names, "new-a", "new-b"], 3_000)
    streams = rng.integers(0, 2, 3_000)
    cells = TEN.cells(names)
    whole = accumulate(streams, cells, 2, TEN.n_cells)
    parts = accumulate(streams[:1_000], cells[:1_000], 2, TEN.n_cells) + accumulate(
        streams[1_000:], cells[1_000:], 2, TEN.n_cells
    )
    np.testing.assert_array_equal(parts, whole)
    detector = SegmentMixDetector(TEN, 2)
    direct = detector.update(streams, names)
    merged = detector.evaluate(parts)
    for field in ("statistic", "p_value", "effect", "threshold", "verdict", "n", "new"):
        np.testing.assert_array_equal(getattr(merged, field), getattr(direct, field))


def test_new_segments_are_reported_bounded_and_kept_out_of_the_test() -> None:
    """Unseen keys go to the new cell: share, first names in order (bounded), not tested."""
    rng = np.random.default_rng(2)
    names = rng.choice(list(TEN.names), 1_000).astype(object)
    names[[10, 20, 30, 40]] = ["zz", "aa", "zz", "mm"]
    detector = SegmentMixDetector(TEN, max_new_keys=2)
    result = detector.update(np.zeros(1_000, np.int64), names)
    assert result.new_keys == (("zz", "aa"),)
    assert result.new[0] == 4 and result.new_share[0] == 4 / 1_000
    assert result.n[0] == 996
    assert new_segments(set(TEN.names), names.tolist()) == ["zz", "aa", "mm"]
    assert new_segments(set(TEN.names), ["__other__", 7, "s1"]) == []


def test_incomplete_reference_pools_unlisted_keys_instead_of_calling_them_new() -> None:
    """With the reference's tail summed, an unlisted key may be a tail key: it counts in OTHER."""
    mix = SegmentMix.from_counts({"a": 50, "b": 30, "c": 10, "d": 10}, max_keys=2)
    cells = mix.cells(["a", "c", "zz", "__other__", "b"])
    assert cells.tolist() == [0, mix.other_cell, mix.other_cell, mix.other_cell, 1]
    complete = SegmentMix.from_counts({"a": 1, "b": 1})
    assert complete.cells(["zz", "__other__"]).tolist() == [complete.new_cell, complete.other_cell]


def test_merged_mixes_add_up_and_say_when_they_are_inexact() -> None:
    """Complete mixes merge exactly; a truncated one keeps the total and stays incomplete."""
    a = SegmentMix.from_counts({"eu": 5, "us": 2, "apac": 1})
    b = SegmentMix.from_counts({"us": 4, "latam": 1})
    exact = merge_mixes([a, b], max_keys=3)
    assert exact == SegmentMix.from_counts({"eu": 5, "us": 6, "apac": 1, "latam": 1}, 3)
    truncated = merge_mixes([SegmentMix.from_counts({"eu": 5, "us": 2, "apac": 1}, 1), b])
    assert truncated.n_events == a.n_events + b.n_events and not truncated.complete


def test_bad_values_are_counted_and_good_ones_kept() -> None:
    """None, numbers and NaN count as invalid; the valid names beside them are scored."""
    detector = SegmentMixDetector(TEN, min_samples=1)
    values = np.array(["s1", None, 3, float("nan"), "s2"], dtype=object)
    result = detector.update(np.zeros(5, np.int64), values)
    assert (result.invalid[0], result.n[0], result.new[0]) == (3, 2, 0)


def test_too_few_events_or_one_segment_skip() -> None:
    """Below min_samples, or with one testable cell, the verdict is SKIP, never a pass."""
    rng = np.random.default_rng(3)
    few = SegmentMixDetector(TEN).update(np.zeros(499, np.int64), rng.choice(list(TEN.names), 499))
    assert few.verdict[0] == SKIP and not few.drift[0]
    single = SegmentMix.from_keys(["v3"] * 100)
    one = SegmentMixDetector(single).update(np.zeros(600, np.int64), ["v3"] * 600)
    assert (one.verdict[0], one.dof[0]) == (SKIP, 0)
    empty = SegmentMixDetector(TEN).evaluate()
    assert empty.verdict[0] == SKIP and np.isnan(empty.new_share[0])


def test_state_round_trips_through_a_plain_dict() -> None:
    """state_dict, pickled, loads into a new detector with equal counts and new names."""
    detector = SegmentMixDetector(TEN, 2)
    detector.update([0, 1, 1], ["s1", "zz", "s2"])
    state = pickle.loads(pickle.dumps(detector.state_dict()))
    restored = SegmentMixDetector(TEN, 2)
    restored.load_state_dict(state)
    np.testing.assert_array_equal(restored.counts, detector.counts)
    assert restored.new_keys == [[], ["zz"]]
    with pytest.raises(ValueError, match="do not fit"):
        SegmentMixDetector(TEN, 3).load_state_dict(state)


def test_mix_round_trips_and_is_validated() -> None:
    """A mix survives to_dict/from_dict; bad mixes and arguments are refused in __init__."""
    mix = SegmentMix.from_counts({"b": 2, "a": 2, "c": 5, "d": 1}, max_keys=3)
    assert (mix.names, mix.other, mix.other_keys) == (("c", "a", "b"), 1, 1)
    assert SegmentMix.from_dict(mix.to_dict()) == mix
    with pytest.raises(ValueError, match="distinct"):
        SegmentMix(("a", "a"), np.array([1, 1]))
    with pytest.raises(ValueError, match="overflow"):
        SegmentMix(("__other__",), np.array([1]))
    with pytest.raises(ValueError, match="at least one"):
        SegmentMix.from_counts({})
    for kwargs in ({"alpha": 0.0}, {"min_effect": -1.0}, {"clear_ratio": 2.0}, {"n_streams": 0}):
        with pytest.raises(ValueError):
            SegmentMixDetector(mix, **kwargs)
