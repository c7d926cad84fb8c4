"""The replay source: two recorded inputs merged by event time, cut into event batches."""

from __future__ import annotations

import math

import pytest

from monitor.ingest.replay_source import ReplayItem, ReplaySource


def _items(prefix: str, times: list[float]) -> list[ReplayItem]:
    return [ReplayItem(f"{prefix}{i}".encode(), t, i + 1) for i, t in enumerate(times)]


def _drain(source: ReplaySource) -> list[list[str]]:
    batches = []
    while not source.exhausted:
        batch = source.poll(0.0)
        assert batch, "a source that is not exhausted hands out records"
        batches.append([r.value.decode() for r in batch])
    return batches


def test_labels_are_interleaved_by_time_and_events_win_ties() -> None:
    """Each label goes before the first event later than it; at equal times the event first."""
    source = ReplaySource(
        _items("e", [1.0, 2.0, 3.0, 4.0]),
        10,
        events_topic="ev",
        labels=_items("l", [0.5, 2.0, 2.5, 9.0]),
        labels_topic="lab",
    )
    assert _drain(source) == [["l0", "e0", "e1", "l1", "l2", "e2", "e3", "l3"]]
    assert (source.events_read, source.labels_read) == (4, 4)


def test_batches_hold_batch_size_events_and_the_labels_between_them() -> None:
    """A poll hands out batch_size events, plus the labels due before the next event."""
    source = ReplaySource(
        _items("e", [1.0, 2.0, 3.0, 4.0, 5.0]),
        2,
        events_topic="ev",
        labels=_items("l", [1.5, 2.5, 2.6, 6.0]),
        labels_topic="lab",
    )
    assert _drain(source) == [["e0", "l0", "e1", "l1", "l2"], ["e2", "e3"], ["e4", "l3"]]


def test_each_input_keeps_its_own_order() -> None:
    """An input out of time order is not sorted: it is replayed as recorded."""
    source = ReplaySource(
        _items("e", [5.0, 1.0, 6.0]),
        10,
        events_topic="ev",
        labels=_items("l", [2.0, 0.0]),
        labels_topic="lab",
    )
    assert _drain(source) == [["l0", "l1", "e0", "e1", "e2"]]


def test_an_unreadable_time_keeps_its_place_behind_the_previous_item() -> None:
    """An item without a time (NaN) stays right after the item before it in its input."""
    source = ReplaySource(
        _items("e", [1.0, math.nan, 3.0]),
        10,
        events_topic="ev",
        labels=_items("l", [2.0]),
        labels_topic="lab",
    )
    assert _drain(source) == [["e0", "e1", "l0", "e2"]]


def test_records_carry_topics_and_offsets() -> None:
    """Events and labels come on their own topics with their inputs' offsets."""
    source = ReplaySource(
        _items("e", [1.0]), 10, events_topic="ev", labels=_items("l", [2.0]), labels_topic="lab"
    )
    records = source.poll(0.0)
    assert [(r.topic, r.offset) for r in records] == [("ev", 1), ("lab", 1)]
    assert source.exhausted and source.poll(0.0) == []


def test_refused_records_are_counted_with_one_example_per_reason() -> None:
    """dead_letter counts by reason and keeps the first detail; nothing is written."""
    source = ReplaySource(_items("e", [1.0, 2.0]), 10, events_topic="ev")
    records = source.poll(0.0)
    source.dead_letter([(records[0], "invalid_json", "first"), (records[1], "invalid_json", "2nd")])
    assert source.dead_letter_counts == {"invalid_json": 2}
    assert source.dead_letter_examples == {"invalid_json": "first"}
    assert source.dead_letters_written_to() is None


def test_close_stops_a_reader_half_way() -> None:
    """close() closes a generator input that was not read to its end."""
    closed = []

    def reader() -> object:
        try:
            for i in range(100):
                yield ReplayItem(b"x", float(i), i)
        finally:
            closed.append(True)

    source = ReplaySource(reader(), 10, events_topic="ev")  # type: ignore[arg-type]
    source.poll(0.0)
    source.close()
    assert closed == [True]
    assert source.exhausted


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"labels": []}, "labels_topic"),
        ({"labels": [], "labels_topic": "ev"}, "differ"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, object], message: str) -> None:
    """A non-positive batch size, labels without a topic, or one topic for both, raise."""
    args: dict[str, object] = {"batch_size": 5, "events_topic": "ev", **kwargs}
    with pytest.raises(ValueError, match=message):
        ReplaySource([], **args)  # type: ignore[arg-type]
