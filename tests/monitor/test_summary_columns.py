"""The metrics summary digests the state API's rows column by column exactly as row by row."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.emit.drift_summary import DriftSummary
from monitor.emit.state_api import SegmentRows, StateRow

METHODS = ("psi", "ks", "samples", "schema", "share")
FLOATS = st.one_of(
    st.floats(min_value=0.0, max_value=5.0),
    st.sampled_from([math.nan, math.inf]),
)


@st.composite
def _rows(draw: st.DrawFn) -> list[StateRow]:
    features = draw(st.lists(st.sampled_from("abcdef"), min_size=0, max_size=5, unique=True))
    out = []
    for feature in sorted(features):
        for method in draw(st.lists(st.sampled_from(METHODS), min_size=1, unique=True)):
            threshold = draw(st.one_of(st.none(), FLOATS))
            out.append(
                StateRow(
                    segment="s",
                    feature=feature,
                    method=method,
                    state=draw(st.sampled_from(["ok", "band", "firing"])),
                    score=draw(FLOATS),
                    p_value=draw(FLOATS),
                    threshold=threshold,
                    clear_threshold=None if threshold is None else draw(FLOATS),
                    breach_streak=draw(st.integers(0, 3)),
                    n=draw(st.integers(0, 10_000)),
                    window_rows=draw(st.one_of(st.none(), st.integers(0, 10_000))),
                    window_end=draw(FLOATS),
                    since=draw(st.one_of(st.none(), FLOATS)),
                )
            )
    return out


@settings(max_examples=25, deadline=None)
@given(_rows(), st.integers(0, 3))
def test_digest_of_segment_rows_equals_digest_of_their_dicts(rows: list[StateRow], k: int) -> None:
    """SegmentRows (read as arrays) and the same rows as plain dicts give the same digest."""
    compact = SegmentRows("s", rows)
    assert list(compact) == [r.as_json() for r in rows]
    fast = DriftSummary(k).refresh({"s": compact}).segments["s"]
    plain = DriftSummary(k).refresh({"s": list(compact)}).segments["s"]
    assert (math.isnan(fast.worst_ratio) and math.isnan(plain.worst_ratio)) or (
        fast.worst_ratio == plain.worst_ratio
    )
    assert fast.features_drifting == plain.features_drifting
    assert fast.detail == plain.detail
    assert fast.top == plain.top
    assert fast.schema_firing == plain.schema_firing
    for name in ("ratios", "thresholds", "clears", "drifting"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(plain, name))


def test_segments_with_the_same_rows_share_their_name_tuples() -> None:
    """Two segments listing the same (feature, method) pairs hold one tuple of each, not two."""

    def row(segment: str, feature: str, method: str) -> StateRow:
        return StateRow(segment, feature, method, "ok", 0.1, math.nan, 0.2, 0.1, 0, 9, 9, 1.0, None)

    pairs = [("a", "ks"), ("a", "psi"), ("b", "psi")]
    one = SegmentRows("x", [row("x", f, m) for f, m in pairs])
    two = SegmentRows("y", [row("y", f, m) for f, m in pairs])
    assert one.features is two.features and one.methods is two.methods
    assert one.states == two.states == ("ok", "ok", "ok")
    assert [r["segment"] for r in two] == ["y", "y", "y"]
