"""The segment table: escaped names, admission after a minimum of events, idle eviction."""

from __future__ import annotations

import math

import numpy as np
import pytest

from monitor.ingest.segment_keys import MISSING_SEGMENT
from monitor.ingest.segments import FREE, MAX_LABEL_LENGTH, OTHER, SegmentTable, segment_name


def _assign(table: SegmentTable, keys: list[str], ts: float = 1_000.0) -> list[int]:
    """Ids of ``keys``, all at event time ``ts``."""
    return [int(x) for x in table.assign(np.array(keys, dtype=object), np.full(len(keys), ts))]


def test_reserved_and_control_characters_are_escaped() -> None:
    """__other__ and other __x__ values get a backslash; NUL, newline, C1, BOM are escaped."""
    assert segment_name(OTHER) == "\\__other__"
    assert segment_name("__free__") == "\\__free__"
    assert segment_name(MISSING_SEGMENT) == MISSING_SEGMENT  # the decoder's own marker
    assert segment_name("a\x00b\nc") == "a\\x00b\\x0ac"
    assert segment_name("\x85\u2028\ufeff\U000e0001") == "\\x85\\u2028\\ufeff\\U000e0001"
    assert segment_name("back\\slash") == "back\\\\slash"
    assert segment_name("Zürich,東京 x") == "Zürich,東京 x"
    assert segment_name("") == ""


def test_escaping_never_merges_two_values() -> None:
    """Values that look like each other's escapes keep distinct names."""
    tricky = [
        "a\nb",
        "a\\x0ab",
        "a\\\\x0ab",
        "__other__",
        "\\__other__",
        "\\\\__other__",
        "__x__",
        "\\x5f_x__",
        "_\x00_",
        "_\\x00_",
    ]
    names = [segment_name(v) for v in tricky]
    assert len(set(names)) == len(tricky)
    assert all(n.isprintable() for n in names)


def test_a_user_value_other_gets_its_own_segment() -> None:
    """A user value "__other__" is admitted under its escaped name, never id 0."""
    table = SegmentTable(10, admit_after=0)
    ids = _assign(table, ["__other__", "eu"])
    assert ids[0] != 0 and ids[1] != 0 and ids[0] != ids[1]
    assert table.names[ids[0]] == "\\__other__"


def test_values_wait_for_admission_in_other() -> None:
    """The first admit_after events count in __other__; the next event is the segment's."""
    table = SegmentTable(10, admit_after=3)
    assert _assign(table, ["eu", "eu"]) == [0, 0]
    assert _assign(table, ["us", "eu", "eu", "us"]) == [0, 0, 1, 0]
    assert table.names == (OTHER, "eu")
    assert (table.unadmitted, table.admitted) == (5, 1)
    assert _assign(table, ["us", "us"]) == [0, 2]


def test_admission_does_not_depend_on_batching() -> None:
    """One batch or one event at a time: the same rows reach the segment."""
    keys = ["a", "b", "a", "a", "b", "c", "a", "b", "b", "a"]
    whole = SegmentTable(10, admit_after=2)
    names_whole = [whole.names[i] for i in _assign(whole, keys)]
    single = SegmentTable(10, admit_after=2)
    ids_single = [_assign(single, [k])[0] for k in keys]
    names_single = [single.names[i] for i in ids_single]
    assert names_whole == names_single
    assert names_whole == [OTHER, OTHER, OTHER, "a", OTHER, OTHER, "a", "b", "b", "a"]


def test_a_junk_flood_takes_no_segment_and_bounded_memory() -> None:
    """100k distinct values seen once take no slot and at most max_candidates counts."""
    table = SegmentTable(200, admit_after=10, max_candidates=1_000)
    for start in range(0, 100_000, 5_000):
        ids = _assign(table, [f"junk-{i}" for i in range(start, start + 5_000)])
        assert set(ids) == {0}
        assert table.candidates <= 1_000
    assert table.tracked == 0 and table.unadmitted == 100_000
    ids = _assign(table, ["eu"] * 11 + ["us"] * 11)
    assert [table.names[i] for i in ids].count("eu") == 1
    assert set(table.names) == {OTHER, "eu", "us"}


def test_a_steady_value_is_admitted_through_a_flood() -> None:
    """A value making 1 in 500 events of a junk flood still reaches admission."""
    table = SegmentTable(200, admit_after=10, max_candidates=1_000)
    for batch in range(40):
        keys = [f"junk-{batch}-{i}" for i in range(2_000)]
        keys[::500] = ["eu"] * 4
        _assign(table, keys)
    assert "eu" in table.names and table.tracked == 1


def test_full_table_overflows_then_reuses_an_evicted_slot() -> None:
    """Past the cap events overflow; an idle segment's eviction frees its id for a new one."""
    table = SegmentTable(2, admit_after=0, idle_seconds=100.0)
    assert _assign(table, ["a", "b"], ts=0.0) == [1, 2]
    assert _assign(table, ["c", "a"], ts=50.0) == [0, 1]
    assert table.overflow == 1
    assert _assign(table, ["c", "a"], ts=120.0) == [2, 1]  # b idle since 0: evicted
    assert table.take_evicted() == [(2, "b")]
    assert table.take_evicted() == []
    assert table.names == (OTHER, "a", "c") and table.evicted == 1


def test_idle_segments_are_evicted_and_their_ids_reused_lowest_first() -> None:
    """A segment without events for idle_seconds goes; its id is FREE until reused."""
    table = SegmentTable(10, admit_after=0, idle_seconds=60.0)
    _assign(table, ["a", "b", "c"], ts=0.0)
    _assign(table, ["b"], ts=30.0)
    _assign(table, ["b"], ts=61.0)
    assert sorted(table.take_evicted()) == [(1, "a"), (3, "c")]
    assert table.names == (OTHER, FREE, "b", FREE) and table.tracked == 1
    assert _assign(table, ["z", "y"], ts=62.0) == [3, 1]  # sorted keys: y gets 1, z 3


def test_one_odd_timestamp_does_not_age_every_segment() -> None:
    """The clock is the batch median: one far-future event in a batch moves nothing."""
    table = SegmentTable(10, admit_after=0, idle_seconds=60.0)
    _assign(table, ["a", "b"], ts=0.0)
    keys = np.array(["a"] * 9 + ["c"], dtype=object)
    ts = np.array([10.0] * 9 + [1e9])
    table.assign(keys, ts)
    assert table.clock == 10.0 and table.take_evicted() == []


def test_no_eviction_while_told_not_to() -> None:
    """evict=False (a warm-up still holds ids) keeps idle segments."""
    table = SegmentTable(10, admit_after=0, idle_seconds=1.0)
    _assign(table, ["a"], ts=0.0)
    table.assign(np.array(["b"], dtype=object), np.array([100.0]), evict=False)
    assert table.take_evicted() == [] and "a" in table.names


def test_too_long_names_overflow() -> None:
    """A name longer than MAX_LABEL_LENGTH once escaped goes to __other__."""
    table = SegmentTable(10, admit_after=0)
    assert _assign(table, ["\n" * (MAX_LABEL_LENGTH // 4 + 1), "x" * MAX_LABEL_LENGTH]) == [0, 1]
    assert table.overflow == 1


def test_state_round_trip_keeps_admission_and_idle_state() -> None:
    """Candidates, free ids, last-seen times and totals survive state_dict."""
    table = SegmentTable(10, admit_after=2, idle_seconds=60.0)
    _assign(table, ["a"] * 3 + ["b"] * 3 + ["c"], ts=0.0)
    _assign(table, ["b"], ts=100.0)
    table.take_evicted()
    restored = SegmentTable(10, admit_after=2, idle_seconds=60.0)
    restored.load_state_dict(table.state_dict())
    assert restored.state_dict() == table.state_dict()
    assert _assign(restored, ["c", "c"], ts=101.0) == [0, 1]  # c had 1 of its 2
    assert restored.names == (OTHER, "c", "b")


def test_an_old_table_loads_escaped_with_a_full_idle_period() -> None:
    """An old table (names, overflow) loads escaped, with a full idle period from now."""
    table = SegmentTable(10, admit_after=0, idle_seconds=60.0)
    table.load_state_dict({"names": [OTHER, "eu", "a\nb"], "overflow": 7})
    assert table.names == (OTHER, "eu", "a\\x0ab") and table.overflow == 7
    _assign(table, ["eu"], ts=1_000.0)
    assert table.take_evicted() == []
    _assign(table, ["eu"], ts=1_061.0)
    assert table.take_evicted() == [(2, "a\\x0ab")]


def test_names_from_a_checkpoint_are_admitted_at_once() -> None:
    """ids() takes names another table admitted: no waiting, no second escaping."""
    table = SegmentTable(10, admit_after=50)
    assert table.ids(np.array(["\\__other__", "eu"], dtype=object)).tolist() == [1, 2]
    assert table.ids(np.array([FREE], dtype=object)).tolist() == [0]
    assert table.names == (OTHER, "\\__other__", "eu")


def test_malformed_state_is_refused() -> None:
    """A table whose first name is not __other__ or whose arrays disagree is a ValueError."""
    with pytest.raises(ValueError, match="__other__"):
        SegmentTable(10).load_state_dict({"names": ["eu"], "overflow": 0})
    with pytest.raises(ValueError, match="length"):
        SegmentTable(10).load_state_dict(
            {"version": 2, "names": [OTHER], "last_seen": [None, 1.0], "overflow": 0}
        )


def test_unknown_event_times_never_evict() -> None:
    """Batches without finite timestamps leave the clock (and every segment) alone."""
    table = SegmentTable(10, admit_after=0, idle_seconds=1.0)
    table.assign(np.array(["a"], dtype=object), np.array([math.nan]))
    table.assign(np.array(["b"], dtype=object), None)
    assert table.clock == -math.inf and table.take_evicted() == [] and table.tracked == 2
