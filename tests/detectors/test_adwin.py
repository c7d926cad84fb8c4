"""Batched ADWIN: identical to river element by element, plus its own contract."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from river.drift import ADWIN

from detectors.adwin import BatchADWIN
from detectors.adwin_layout import blocks_formed, n_levels_for
from tests.detectors.adwin_oracle import KINDS, Case, make_case, river_trace

SEEDS_PER_KIND = 44  # 5 kinds x 44 = 220 seeded multi-stream cases
FAST_SEEDS = 11
"""Seeds per kind in the fast tier; the other 33 run with the whole suite (``slow``)."""
SEED_RANGES = [
    pytest.param(range(FAST_SEEDS), id="fast"),
    pytest.param(range(FAST_SEEDS, SEEDS_PER_KIND), id="rest", marks=pytest.mark.slow),
]


def _replay(
    case: Case, detector: BatchADWIN
) -> tuple[list[int], list[list[int]], list[list[float]]]:
    positions: list[int] = []
    widths: list[list[int]] = []
    estimations: list[list[float]] = []
    for lo, hi in case.batches:
        result = detector.update(case.streams[lo:hi], case.values[lo:hi])
        positions.extend((result.drift_positions + lo).tolist())
        widths.append(result.n.tolist())
        estimations.append(result.statistic.tolist())
    return positions, widths, estimations


@pytest.mark.parametrize("seeds", SEED_RANGES)
@pytest.mark.parametrize("kind", KINDS)
def test_identical_to_river_on_seeded_streams(kind: str, seeds: range) -> None:
    """Same drift indices, widths and estimations as river on 44 seeded cases per kind."""
    closest = math.inf
    total_detections = 0
    for i in seeds:
        case = make_case(1000 * KINDS.index(kind) + i, kind)
        expected = river_trace(case)
        detector = BatchADWIN(case.n_streams, track_closest_call=True, **case.params)
        positions, widths, estimations = _replay(case, detector)
        assert positions == expected.positions, f"seed {case.seed} params {case.params}"
        assert widths == [[int(w) for w in row] for row in expected.widths], f"seed {case.seed}"
        assert estimations == expected.estimations, f"seed {case.seed}"
        closest = min(closest, detector.closest_call)
        total_detections += len(positions)
    if kind != "constant":
        assert total_detections > 0
    # No decision sat within 1e-9 (relative) of flipping: float ordering could not matter.
    assert closest > 1e-9


@pytest.mark.parametrize("batch", [1, 3, 32, 1000, 10_000])
def test_batch_size_does_not_change_results(batch: int) -> None:
    """Any batch split gives the detections of one element-by-element river run."""
    case = make_case(77, "bernoulli", batch_hint=batch)
    expected = river_trace(case)
    positions, widths, _ = _replay(case, BatchADWIN(case.n_streams, **case.params))
    assert positions == expected.positions
    assert widths[-1] == [int(w) for w in expected.widths[-1]]


def test_long_stream_with_many_levels_matches_river() -> None:
    """A 200k-value Bernoulli stream with repeated shifts matches river exactly."""
    rng = np.random.default_rng(5)
    n = 200_000
    p = np.where((np.arange(n) // 40_000) % 2 == 0, 0.05, 0.25)
    values = (rng.random(n) < p).astype(np.float64)
    river = ADWIN()
    expected = []
    for i, v in enumerate(values.tolist()):
        river.update(v)
        if river.drift_detected:
            expected.append(i)
    detector = BatchADWIN(1)
    got: list[int] = []
    for lo in range(0, n, 25_000):
        result = detector.update(
            np.zeros(min(25_000, n - lo), dtype=np.int64), values[lo : lo + 25_000]
        )
        got.extend((result.drift_positions + lo).tolist())
    assert got == expected
    assert len(expected) >= 4
    assert int(detector.width[0]) == river.width
    assert float(detector.estimation[0]) == river.estimation


def test_layout_formula_matches_river_bucket_counts() -> None:
    """The closed-form row counts reproduce river's total bucket count for every width."""
    for max_buckets in (2, 3, 5):
        river = ADWIN(max_buckets=max_buckets, clock=10**9)
        for width in range(1, 3000):
            river.update(0.5)
            formed = blocks_formed(
                np.array([width]), max_buckets, n_levels_for(width, max_buckets)
            )[0]
            counts = formed[:-1] - 2 * formed[1:]
            assert (counts <= max_buckets).all()
            assert int((counts * (1 << np.arange(counts.size))).sum()) == width == river.width


def test_state_round_trip_mid_stream() -> None:
    """Saving and restoring mid-stream (dict and pickle) continues identically."""
    case = make_case(11, "abrupt", batch_hint=300)
    reference = BatchADWIN(case.n_streams, **case.params)
    expected, _, _ = _replay(case, reference)
    half = len(case.batches) // 2
    first = BatchADWIN(case.n_streams, **case.params)
    got: list[int] = []
    for lo, hi in case.batches[:half]:
        got.extend(
            (first.update(case.streams[lo:hi], case.values[lo:hi]).drift_positions + lo).tolist()
        )
    restored = BatchADWIN(case.n_streams, **case.params)
    restored.load_state_dict(first.state_dict())
    unpickled = pickle.loads(pickle.dumps(first))
    tails = []
    for det in (restored, unpickled):
        tail: list[int] = []
        for lo, hi in case.batches[half:]:
            tail.extend(
                (det.update(case.streams[lo:hi], case.values[lo:hi]).drift_positions + lo).tolist()
            )
        tails.append(tail)
    assert got + tails[0] == expected
    assert tails[0] == tails[1]


def test_load_state_refuses_other_parameters() -> None:
    """A state saved with another delta is refused with a message naming the key."""
    state = BatchADWIN(2, delta=0.01).state_dict()
    with pytest.raises(ValueError, match="delta"):
        BatchADWIN(2).load_state_dict(state)


def test_ensure_streams_adds_empty_streams() -> None:
    """New streams start empty and existing ones keep their windows."""
    det = BatchADWIN(1)
    det.update(np.zeros(50, dtype=np.int64), np.ones(50))
    det.ensure_streams(3)
    assert det.width.tolist() == [50, 0, 0]
    det.update(np.array([2, 2]), np.array([1.0, 3.0]))
    assert det.width.tolist() == [50, 0, 2]
    assert det.estimation.tolist() == [1.0, 0.0, 2.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"delta": 0.0}, "delta must be in (0, 1), got 0.0"),
        ({"delta": 1.5}, "delta must be in (0, 1), got 1.5"),
        ({"clock": 0}, "clock must be a positive integer, got 0"),
        ({"max_buckets": 1}, "max_buckets must be an integer >= 2, got 1"),
        ({"min_window_length": 0}, "min_window_length must be a positive integer, got 0"),
        ({"grace_period": -1}, "grace_period must be a non-negative integer, got -1"),
        ({"n_streams": 0}, "n_streams must be a positive integer, got 0"),
    ],
)
def test_invalid_arguments_are_refused(kwargs: dict[str, float], message: str) -> None:
    """Each bad argument raises ValueError with its exact message."""
    with pytest.raises(ValueError) as info:
        BatchADWIN(**kwargs)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_bad_batches_are_refused() -> None:
    """Non-finite values, mismatched shapes and unknown streams raise ValueError."""
    det = BatchADWIN(2)
    with pytest.raises(ValueError, match="finite"):
        det.update(np.array([0]), np.array([np.nan]))
    with pytest.raises(ValueError, match="same shape"):
        det.update(np.array([0, 1]), np.array([1.0]))
    with pytest.raises(ValueError, match="segment ids"):
        det.update(np.array([2]), np.array([1.0]))
    assert det.width.tolist() == [0, 0]
