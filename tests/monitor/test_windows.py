"""Windows close per segment by count or event time, independently of batching."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from detectors.binning import Binner
from detectors.profile import build_profile
from monitor.config import WindowsConfig
from monitor.windows import ClosedWindows, Windows

RNG = np.random.default_rng(3)
PROFILE = build_profile({"x": RNG.normal(size=2000), "y": RNG.exponential(size=2000)})
BINNER = Binner(PROFILE.features)


def _stream(n: int, n_segments: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    seg = rng.integers(0, n_segments, n)
    X = np.column_stack([rng.normal(size=n), rng.exponential(size=n)])
    X[rng.random(n) < 0.02, 0] = np.nan
    ts = 1_000.0 + np.arange(n) * 0.01 + rng.uniform(0, 0.005, n)
    return seg, X, ts


def _run(config: WindowsConfig, cuts: list[int], n: int = 6000, n_segments: int = 4):
    seg, X, ts = _stream(n, n_segments)
    windows = Windows(BINNER, config)
    closed: list[ClosedWindows] = []
    bounds = [0, *cuts, n]
    for lo, hi in itertools.pairwise(bounds):
        closed.append(windows.add(seg[lo:hi], X[lo:hi], ts[lo:hi]))
    segments = np.concatenate([c.segments for c in closed])
    counts = np.concatenate([c.counts for c in closed])
    # Each segment's windows come in order; interleaving across segments follows batches.
    order = np.argsort(segments, kind="stable")
    return segments[order], counts[order], windows


CONFIGS = [
    WindowsConfig(size_events=300),
    WindowsConfig(size_events=None, duration_seconds=3.0),
    WindowsConfig(size_events=250, duration_seconds=4.0),
    WindowsConfig(size_events=400, mode="sliding", panes=4),
]


@pytest.mark.parametrize("config", CONFIGS, ids=["count", "time", "both", "sliding"])
def test_batching_does_not_change_windows(config: WindowsConfig) -> None:
    """One batch, many small batches and uneven batches close identical windows."""
    expected_seg, expected_counts, _ = _run(config, [])
    for cuts in ([1, 2, 3, 700, 701, 3000], list(range(97, 6000, 97)), [5999]):
        seg, counts, _ = _run(config, cuts)
        np.testing.assert_array_equal(seg, expected_seg)
        np.testing.assert_array_equal(counts, expected_counts)
    assert expected_seg.size > 4


def test_count_windows_hold_exactly_size_events_and_nothing_is_lost() -> None:
    """Every closed count window holds size_events rows; closed plus open rows = all rows."""
    _seg, counts, windows = _run(WindowsConfig(size_events=300), [1000, 2500])
    rows = counts[:, 0, :].sum(axis=1)
    assert (rows == 300).all()
    assert int(rows.sum() + windows.open_rows().sum()) == 6000
    missing = counts[:, 0, BINNER.width].sum()
    assert missing > 0 and (counts[:, 1, BINNER.width] == 0).all()


def test_time_windows_split_at_pane_boundaries() -> None:
    """Events of one epoch-aligned time pane never share a window with the next pane."""
    config = WindowsConfig(size_events=None, duration_seconds=3.0)
    seg, X, ts = _stream(6000, 1)
    closed = Windows(BINNER, config).add(seg, X, ts)
    pane = np.floor(ts / 3.0)
    expected = np.unique(pane, return_counts=True)[1][:-1]
    np.testing.assert_array_equal(closed.rows, expected)


def test_sliding_windows_overlap_by_all_but_one_pane() -> None:
    """After the ring fills, each pane close emits a window of panes x pane_events rows."""
    _seg, counts, _ = _run(
        WindowsConfig(size_events=400, mode="sliding", panes=4), [], n_segments=1
    )
    rows = counts[:, 0, :].sum(axis=1)
    assert (rows == 400).all()
    assert rows.size == 6000 // 100 - 3


def test_state_round_trip_continues_identically() -> None:
    """Windows restored from state_dict close the same windows as the original."""
    config = WindowsConfig(size_events=250, duration_seconds=4.0)
    seg, X, ts = _stream(4000, 3)
    a = Windows(BINNER, config)
    a.add(seg[:1500], X[:1500], ts[:1500])
    b = Windows(BINNER, config)
    b.load_state_dict(a.state_dict())
    ca, cb = a.add(seg[1500:], X[1500:], ts[1500:]), b.add(seg[1500:], X[1500:], ts[1500:])
    np.testing.assert_array_equal(ca.segments, cb.segments)
    np.testing.assert_array_equal(ca.counts, cb.counts)
