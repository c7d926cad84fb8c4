"""The batched ADWIN's shortcuts equal the slow definitions they replace, exactly."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import detectors.adwin
from detectors.adwin import BatchADWIN
from detectors.adwin_checks import DeltaPrimeTable, LevelArrays, bucket_index, slot_index
from detectors.adwin_layout import blocks_formed, n_levels_for, ragged_concat
from detectors.adwin_scalar import SettledBatch, settle_after_cuts
from tests.detectors.adwin_oracle import make_case, river_trace


def _blocks_formed_by_recursion(width: int, max_buckets: int, n_levels: int) -> list[int]:
    formed, out = width, []
    for _ in range(n_levels + 1):
        out.append(formed)
        formed = max(0, (formed - max_buckets + 1) // 2)
    return out


@pytest.mark.parametrize("max_buckets", [2, 3, 5, 40, 2**40])
def test_blocks_formed_closed_form_matches_the_recursion(max_buckets: int) -> None:
    """J_i in closed form equals the level-by-level recursion, up to int64's largest width."""
    rng = np.random.default_rng(max_buckets % 1000)
    widths = np.concatenate(
        [
            np.arange(0, 2000),
            rng.integers(0, 2**40, 200),
            np.array([2**62, 2**63 - 2, 2**63 - 1]),
        ]
    )
    for n_levels in (1, 7, 64):
        got = blocks_formed(widths, max_buckets, n_levels)
        expected = [_blocks_formed_by_recursion(int(w), max_buckets, n_levels) for w in widths]
        assert got.tolist() == expected


def test_ragged_concat_joins_each_row_and_every_plane_alike() -> None:
    """Each row is its left prefix then its right values, in both planes, via one layout."""
    rng = np.random.default_rng(3)
    rows, n_left, n_right = 40, 5, 17
    left_len = rng.integers(0, n_left + 1, rows)
    right_len = rng.integers(0, n_right + 1, rows)
    right_len[0] = n_right
    left = rng.random((2, rows, n_left)) * (np.arange(n_left) < left_len[:, None])
    right = rng.random((2, rows, n_right))
    width = int((left_len + right_len).max())
    out = np.full((2, rows, width), np.nan)
    ragged_concat(left, left_len, right, out)
    for plane in range(2):
        for r in range(rows):
            joined = np.concatenate(
                [left[plane, r, : left_len[r]], right[plane, r, : right_len[r]]]
            )
            assert out[plane, r, : joined.size].tolist() == joined.tolist()


def test_items_through_equals_the_running_sum_of_bucket_sizes() -> None:
    """The closed-form item counts equal a running sum of bucket sizes, oldest first."""
    max_buckets = 5
    widths = np.concatenate([np.arange(1, 700), np.array([5_000, 123_457, 10**9])])
    n_levels = n_levels_for(int(widths.max()), max_buckets)
    rows = np.arange(widths.size)
    levels = LevelArrays(
        flat=np.zeros(1),
        offsets=np.zeros(n_levels, dtype=np.int64),
        widths=np.zeros(n_levels, dtype=np.int64),
        lo=np.zeros((n_levels, widths.size), dtype=np.int64),
    )
    _, sizes = bucket_index(rows, widths, levels, max_buckets)
    through = slot_index(rows, widths, levels, max_buckets, oldest_first=True).items_through()
    assert through.reshape(sizes.shape).tolist() == np.cumsum(sizes, axis=0).tolist()
    # The last boundary holds the whole window.
    assert through.reshape(sizes.shape)[-1].tolist() == widths.astype(float).tolist()


def test_delta_prime_table_equals_river_logs_at_every_width() -> None:
    """Table lookups (growing, past the table, off the clock) give river's exact values."""
    delta, clock = 0.002, 32
    table = DeltaPrimeTable(delta, clock, max_entries=64)

    def direct(widths: np.ndarray) -> list[float]:
        return [math.log(2.0 * math.log(float(w)) / delta) for w in widths.tolist()]

    for widths in (
        np.array([64, 32, 96]),
        np.arange(32, 64 * 32, 32),
        np.array([64 * 32, 10**6 * 32]),
        np.array([33, 64, 1000]),
    ):
        assert table.at(widths).tolist() == direct(widths)
    assert table.values.size == 64


def test_settling_in_rounds_of_any_size_gives_the_same_windows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """River's delete-and-rescan loop ends at the same state whatever the round size."""
    calls: list[tuple[tuple[Any, ...], SettledBatch]] = []

    def recording(*args: Any) -> SettledBatch:
        result = settle_after_cuts(*args)
        calls.append((args, result))
        return result

    monkeypatch.setattr(detectors.adwin, "settle_after_cuts", recording)
    case = make_case(4242, "abrupt", batch_hint=2000)
    detector = BatchADWIN(case.n_streams, **case.params)
    positions: list[int] = []
    for lo, hi in case.batches:
        positions.extend(
            (detector.update(case.streams[lo:hi], case.values[lo:hi]).drift_positions + lo).tolist()
        )
    assert positions == river_trace(case).positions
    assert calls
    deleted_buckets = 0
    for args, expected in calls:
        deleted_buckets = max(deleted_buckets, int((args[3] - expected.width).max()))
        for states_per_scan in (1, 3, 64):
            settle: Callable[..., SettledBatch] = settle_after_cuts
            got = settle(*args, states_per_scan=states_per_scan)
            assert got.fired.tolist() == expected.fired.tolist()
            assert got.width.tolist() == expected.width.tolist()
            assert got.total.tolist() == expected.total.tolist()
    # Some loop went past its first state, so rounds of 1 and 3 needed several rounds.
    assert deleted_buckets > 0


def test_state_layout_stays_what_checkpoints_hold() -> None:
    """state_dict keeps its keys, dtypes and shapes, so saved checkpoints still load."""
    case = make_case(8, "bernoulli", batch_hint=500)
    detector = BatchADWIN(case.n_streams, **case.params)
    for lo, hi in case.batches:
        detector.update(case.streams[lo:hi], case.values[lo:hi])
    state = detector.state_dict()
    assert set(state) == {
        "params",
        "run_length",
        "total",
        "variance",
        "row_totals",
        "row_variances",
        "reset_pending",
        "settled_width",
        "settled_total",
        "n_detections",
        "closest_call",
    }
    n, m = case.n_streams, detector.max_buckets
    n_levels = n_levels_for(int(state["run_length"].max()), m)
    assert state["row_totals"].shape == state["row_variances"].shape == (n, n_levels, m)
    assert state["run_length"].dtype == np.int64 and state["reset_pending"].dtype == np.bool_
    restored = BatchADWIN(n, **case.params)
    restored.load_state_dict(state)
    assert restored.width.tolist() == detector.width.tolist()
