"""The stream's event time: robust to outliers, refusing far-ahead events, batch-independent."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.ingest.watermark import EventClock


def _reference(
    ts: list[float], rank: int, max_ahead: float | None
) -> tuple[list[float], list[bool]]:
    """The rule written plainly: sort everything seen, take the rank-th highest."""
    seen: list[float] = []
    before: list[float] = []
    refused: list[bool] = []
    for t in ts:
        now = sorted(seen, reverse=True)[rank - 1] if len(seen) >= rank else -math.inf
        before.append(now)
        ahead = max_ahead is not None and math.isfinite(now) and t > now + max_ahead
        refused.append(ahead)
        seen.append(now + max_ahead if ahead and max_ahead is not None else t)
    return before, refused


def _stream(draw_ts: list[float], outliers: list[int]) -> list[float]:
    ts = [1_000.0 + i + jitter for i, jitter in enumerate(draw_ts)]
    for position in outliers:
        if position < len(ts):
            ts[position] += 3_500.0 if position % 2 else 90_000.0
    return ts


@settings(max_examples=150, deadline=None)
@given(
    jitter=st.lists(st.floats(-5, 5), min_size=1, max_size=120),
    outliers=st.lists(st.integers(0, 119), max_size=6),
    rank=st.integers(1, 5),
    cuts=st.lists(st.integers(1, 119), max_size=6),
    max_ahead=st.sampled_from([None, 3_600.0, 10.0]),
)
def test_clock_matches_the_plain_rule_however_batched(
    jitter: list[float],
    outliers: list[int],
    rank: int,
    cuts: list[int],
    max_ahead: float | None,
) -> None:
    """Per event, the clock before it and the refusals equal the plain rule, for any batching."""
    ts = _stream(jitter, outliers)
    expected_before, expected_refused = _reference(ts, rank, max_ahead)
    clock = EventClock(rank)
    before: list[float] = []
    refused: list[bool] = []
    bounds = sorted({0, len(ts), *(c for c in cuts if c < len(ts))})
    for lo, hi in itertools.pairwise(bounds):
        ticks = clock.advance(np.asarray(ts[lo:hi]), max_ahead)
        before.extend(ticks.before.tolist())
        refused.extend(ticks.refused.tolist())
    assert before == expected_before
    assert refused == expected_refused


def test_fewer_outliers_than_the_rank_do_not_move_the_clock() -> None:
    """Ten events an hour ahead leave an 11th-highest clock on the bulk of the stream."""
    ts = np.arange(1_000.0, 2_000.0)
    ts[[100, 300, 301, 500, 600, 700, 800, 850, 900, 950]] += 3_500.0
    clock = EventClock(11)
    ticks = clock.advance(ts, max_ahead=3_600.0)
    assert not ticks.refused.any()
    assert clock.time == 1_999.0  # the highest bulk time: the outliers are the ten above it
    bulk = np.where(ts > 2_000.0, -np.inf, ts)
    assert (ticks.before[1:] <= np.maximum.accumulate(bulk)[:-1]).all()


def test_far_ahead_events_are_refused_and_a_real_jump_is_caught_up() -> None:
    """An event a day ahead is refused; a stream that really jumps is followed after a few."""
    clock = EventClock(3)
    clock.advance(np.arange(0.0, 100.0))
    outlier = clock.advance(np.array([100.0, 86_400.0, 101.0]), max_ahead=3_600.0)
    assert outlier.refused.tolist() == [False, True, False]
    assert clock.time == 100.0
    jump = clock.advance(np.full(20, 20_000.0), max_ahead=3_600.0)
    assert jump.refused[:3].all() and not jump.refused[-1]
    assert clock.time == 20_000.0


def test_the_wall_clock_floor_keeps_a_quiet_night_from_refusing_the_morning() -> None:
    """Live, events at the wall clock are not refused however far behind the clock is."""
    clock = EventClock(2)
    clock.advance(np.arange(0.0, 10.0))
    ticks = clock.advance(np.array([30_000.0, 30_001.0]), max_ahead=3_600.0, not_before=30_000.0)
    assert not ticks.refused.any()


def test_state_round_trip_and_older_histories() -> None:
    """load(state()) continues identically; a single remembered time counts as one."""
    a = EventClock(4)
    a.advance(np.array([5.0, 1.0, 9.0, 7.0, 3.0]))
    b = EventClock(4)
    b.load(a.state())
    nxt = np.array([8.0, 10.0, 2.0])
    assert a.advance(nxt).before.tolist() == b.advance(nxt).before.tolist()
    old = EventClock(4)
    old.load([1e12])
    assert old.time == -math.inf
    with pytest.raises(ValueError, match="rank"):
        EventClock(0)
