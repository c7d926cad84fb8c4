"""Windows close per segment by count or event time, independently of batching."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from detectors.binning import Binner
from detectors.profile import build_profile
from monitor.config import WindowsConfig
from monitor.engine.windows import ClosedWindows, Windows

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


def _closed_by_segment(closed: list[ClosedWindows]) -> dict[int, list[tuple[int, ...]]]:
    """Each segment's closed windows in order, as per-feature binned counts."""
    out: dict[int, list[tuple[int, ...]]] = {}
    for part in closed:
        for segment, counts in zip(part.segments.tolist(), part.counts, strict=True):
            out.setdefault(segment, []).append(tuple(counts.ravel().tolist()))
    return out


def _batched(
    config: WindowsConfig,
    seg: np.ndarray,
    X: np.ndarray,
    ts: np.ndarray,
    cuts: list[int],
    max_ahead: float | None = 3_600.0,
) -> tuple[dict[int, list[tuple[int, ...]]], list[int], int, Windows]:
    windows = Windows(BINNER, config)
    closed: list[ClosedWindows] = []
    refused: list[int] = []
    late = 0
    bounds = sorted({0, seg.size, *(c for c in cuts if 0 < c < seg.size)})
    for lo, hi in itertools.pairwise(bounds):
        part = windows.add(seg[lo:hi], X[lo:hi], ts[lo:hi], max_ahead=max_ahead)
        closed.append(part)
        refused.extend((part.refused + lo).tolist())
        late += part.late
    return _closed_by_segment(closed), refused, late, windows


@hyp_settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    outliers=st.lists(
        st.tuples(st.integers(0, 1_499), st.sampled_from([3_500.0, 90_000.0, -400.0])),
        max_size=8,
    ),
    cuts=st.lists(st.integers(1, 1_499), max_size=12),
    config=st.sampled_from(
        [
            WindowsConfig(size_events=None, duration_seconds=20.0, allowed_lateness_seconds=5),
            WindowsConfig(size_events=60, duration_seconds=30.0, watermark_outliers=3),
            WindowsConfig(
                size_events=None, duration_seconds=40.0, mode="sliding", panes=4, min_samples=1
            ),
            WindowsConfig(size_events=50),
        ]
    ),
)
def test_batching_never_changes_windows_even_with_outlier_timestamps(
    seed: int, outliers: list[tuple[int, float]], cuts: list[int], config: WindowsConfig
) -> None:
    """Closed windows (segment, counts), refusals and late counts are the same for any cut."""
    rng = np.random.default_rng(seed)
    n = 1_500
    seg = rng.integers(0, 3, n)
    X = np.column_stack([rng.normal(size=n), rng.exponential(size=n)])
    ts = 10_000.0 + np.arange(n) * 0.2 + rng.uniform(-3, 3, n)
    for position, shift in outliers:
        ts[position] += shift
    whole = _batched(config, seg, X, ts, [])
    cut = _batched(config, seg, X, ts, cuts)
    one_by_one = _batched(config, seg, X, ts, list(range(1, n, 7)))
    for other in (cut, one_by_one):
        assert other[0] == whole[0]
        assert other[1] == whole[1]
        assert other[2] == whole[2]
    assert sum(len(w) for w in whole[0].values()) > 0


def _minute_stream(n_segments: int = 5, minutes: int = 17, per_minute: int = 300):
    """Events of ``n_segments`` segments, in order, over ``minutes`` whole minutes."""
    rng = np.random.default_rng(7)
    n = n_segments * minutes * per_minute
    seg = rng.integers(0, n_segments, n)
    X = np.column_stack([rng.normal(size=n), rng.exponential(size=n)])
    ts = 60_000.0 + np.sort(rng.uniform(0, minutes * 60.0, n))
    return seg, X, ts


def test_one_event_an_hour_ahead_changes_no_window() -> None:
    """Finding 3: an event dated +3,500 s leaves every segment's windows as they were."""
    config = WindowsConfig(size_events=None, duration_seconds=60.0, min_samples=100)
    seg, X, ts = _minute_stream()
    cuts = list(range(250, ts.size, 250))
    clean, _, _, _ = _batched(config, seg, X, ts, cuts)
    poisoned_ts = ts.copy()
    poisoned_ts[2_000] += 3_500.0  # inside schema.max_future_seconds: accepted
    poisoned, refused, late, _ = _batched(config, seg, X, poisoned_ts, cuts)
    assert refused == [] and late == 0
    assert {s: len(w) for s, w in poisoned.items()} == {s: len(w) for s, w in clean.items()}
    assert sum(len(w) for w in clean.values()) == 5 * 16
    rows = {s: [sum(c) // 2 for c in w] for s, w in poisoned.items()}
    assert min(r for w in rows.values() for r in w) >= config.min_samples
    for s in set(clean) - {int(seg[2_000])}:
        assert poisoned[s] == clean[s]


def test_an_event_a_day_ahead_is_refused_and_late_events_are_counted() -> None:
    """Beyond max_future_seconds of the stream: refused; behind the watermark: late."""
    config = WindowsConfig(size_events=None, duration_seconds=60.0, allowed_lateness_seconds=10)
    seg, X, ts = _minute_stream(n_segments=2, minutes=4)
    ts = ts.copy()
    ts[1_000] += 86_400.0
    ts[2_000] -= 300.0
    closed = Windows(BINNER, config).add(seg, X, ts, max_ahead=3_600.0)
    assert closed.refused.tolist() == [1_000]
    assert closed.refused_ahead[0] > 86_000.0
    assert closed.late == 1
    assert int(closed.rows.sum()) < ts.size - 2  # the last panes are still open


def test_window_state_keeps_the_clock_and_reads_older_state() -> None:
    """The event clock and late count survive state_dict; older state (one watermark) loads."""
    config = WindowsConfig(size_events=None, duration_seconds=60.0)
    seg, X, ts = _minute_stream(n_segments=2, minutes=3)
    a = Windows(BINNER, config)
    a.add(seg[:900], X[:900], ts[:900])
    state = a.state_dict()
    b = Windows(BINNER, config)
    b.load_state_dict(state)
    assert b.watermark == a.watermark and b.late_events == a.late_events
    ca, cb = a.add(seg[900:], X[900:], ts[900:]), b.add(seg[900:], X[900:], ts[900:])
    np.testing.assert_array_equal(ca.counts, cb.counts)
    old = {k: v for k, v in state.items() if k not in ("clock", "late_events")}
    old["watermark"] = float(ts[899])
    c = Windows(BINNER, config)
    c.load_state_dict(old)
    assert c.watermark == -np.inf and c.late_events == 0


def test_count_windows_refuse_nothing_for_event_time() -> None:
    """Count windows ignore event order: a shuffled replay spanning days loses no event."""
    seg, X, ts = _stream(3000, 2)
    shuffled = np.random.default_rng(1).permutation(ts * 1_000.0)  # 30,000 s, in any order
    windows = Windows(BINNER, WindowsConfig(size_events=300))
    closed = windows.add(seg, X, shuffled, max_ahead=60.0)
    assert closed.refused.size == 0 and closed.late == 0
    assert int(closed.rows.sum() + windows.open_rows().sum()) == 3000
