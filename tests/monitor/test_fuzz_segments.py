"""Fuzzing the segment table: hostile values, junk floods, arbitrary batch cuts."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.ingest.segment_keys import MISSING_SEGMENT
from monitor.ingest.segments import OTHER, SegmentTable, segment_name


@given(st.text(), st.text())
def test_names_are_printable_and_never_merge(a: str, b: str) -> None:
    """Any two different values get two different printable names."""
    assert segment_name(a).isprintable()
    assert (segment_name(a) == segment_name(b)) == (a == b)


@given(st.text())
def test_no_value_takes_a_reserved_name(value: str) -> None:
    """No value is named __other__ or another __x__ name (bar the decoder's __missing__)."""
    name = segment_name(value)
    reserved = name.startswith("__") and name.endswith("__") and len(name) >= 4
    assert not reserved or value == MISSING_SEGMENT
    assert name != OTHER


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 5),
    st.integers(0, 10),
    st.lists(st.integers(1, 400), min_size=1, max_size=12),
    st.integers(0, 2**32 - 1),
)
def test_a_junk_flood_never_takes_a_segment(
    admit_after: int, legit: int, batch_sizes: list[int], seed: int
) -> None:
    """Values seen once never get a segment; counts stay bounded; frequent values get in."""
    rng = np.random.default_rng(seed)
    table = SegmentTable(20, admit_after=admit_after, max_candidates=50)
    n = sum(batch_sizes)
    stream = [f"junk-{i}" for i in range(n)]
    if legit:
        stream[: n // 3] = [f"real-{i % legit}" for i in range(n // 3)]
    rng.shuffle(stream)
    start = 0
    for size in batch_sizes:
        ids = table.assign(np.array(stream[start : start + size], dtype=object))
        start += size
        assert table.candidates <= 50 and table.tracked <= 20
        assert all(not table.names[i].startswith("junk-") for i in ids.tolist())
    assert all(not name.startswith("junk-") for name in table.names)
    # Misra-Gries undercounts a value by at most n / (max_candidates + 1).
    for value in {v for v in stream if v.startswith("real-")}:
        if stream.count(value) > admit_after + n / 51 + 1:
            assert value in table.names


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "b", "c", "__other__", "x\n"]), min_size=1, max_size=80),
    st.lists(st.integers(1, 20), min_size=1, max_size=20),
    st.integers(0, 6),
)
def test_rows_reach_the_same_segment_however_the_stream_is_cut(
    keys: list[str], cuts: list[int], admit_after: int
) -> None:
    """Admission splits a value's rows at the same event whatever the batch boundaries."""
    whole = SegmentTable(10, admit_after=admit_after)
    expected = [whole.names[i] for i in whole.assign(np.array(keys, dtype=object)).tolist()]
    cut = SegmentTable(10, admit_after=admit_after)
    got: list[int] = []
    start, k = 0, 0
    while start < len(keys):
        size = cuts[k % len(cuts)]
        got.extend(cut.assign(np.array(keys[start : start + size], dtype=object)).tolist())
        start, k = start + size, k + 1
    assert [cut.names[i] for i in got] == expected
