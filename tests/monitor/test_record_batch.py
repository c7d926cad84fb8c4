"""A poll batch held as columns behaves as the list of records it stands for."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import orjson
import pytest

from detectors.profile import build_profile
from monitor.app import make_results
from monitor.config import Settings
from monitor.engine.pipeline import Pipeline
from monitor.ingest.demo_stream import NUMERIC_FEATURES, DemoStream
from monitor.ingest.source import (
    Record,
    RecordBatch,
    make_records,
    next_offsets,
    split_topic,
)

NOW = DemoStream().start_ts + 3_600

COLUMNS = (
    [b"a", b"b", b"c", b"d"],
    ["t", "t", "t", "u"],
    [0, 0, 1, 0],
    [5, 6, 9, 2],
    [1_000, None, 3_000, 4_000],
)


def _batch() -> RecordBatch:
    values, topics, partitions, offsets, stamps = COLUMNS
    return RecordBatch(list(values), list(topics), list(partitions), list(offsets), list(stamps))


def test_reads_as_the_records_it_holds() -> None:
    """Iteration, indexing, slicing and equality agree with ``make_records``."""
    batch, records = _batch(), make_records(*COLUMNS)
    assert list(batch) == records
    assert batch == records and records == list(batch)
    assert [batch[i] for i in range(len(batch))] == records
    assert batch[-1] == Record(b"d", "u", 0, 2, 4_000)
    assert batch[1:3] == records[1:3]
    assert batch != records[:3]
    assert len(batch) == 4 and bool(batch) and not RecordBatch([], [], [], [], [])


def test_next_offsets_are_one_past_the_last_of_each_partition() -> None:
    """The offsets to commit are those a list of the same records gives."""
    assert _batch().next_offsets() == {("t", 0): 7, ("t", 1): 10, ("u", 0): 3}


def test_columns_of_unequal_length_are_refused() -> None:
    """A batch whose columns disagree in length is a programming error, said at once."""
    with pytest.raises(ValueError, match="one value per record"):
        RecordBatch([b"a"], ["t"], [0], [1, 2], [None])


def test_a_batch_is_compared_by_content_not_hashed() -> None:
    """Like a list, a batch has no hash, and survives a pickle round trip."""
    with pytest.raises(TypeError):
        hash(_batch())
    assert pickle.loads(pickle.dumps(_batch())) == _batch()


def test_the_pipeline_gets_the_same_outcome_from_columns_and_records() -> None:
    """Windows, rejections and offsets are the same from a batch as from its records."""
    sample = DemoStream(seed=3).next_batch(3_000)
    columns: dict[str, Any] = {name: sample.numeric[name] for name in NUMERIC_FEATURES}
    columns["prediction"] = sample.prediction
    profile = build_profile(columns, prediction="prediction")
    settings = Settings(
        model="credit-risk",
        schema={"segment_by": ["features.region"], "categorical": []},  # type: ignore[arg-type]
        windows={"size_events": 400, "min_samples": 100},  # type: ignore[arg-type]
    )
    values = [orjson.dumps(e) for e in DemoStream(seed=4).next_batch(2_400).events()]
    values[17] = b"{not json"
    partitions = [i % 2 for i in range(len(values))]
    offsets = [i // 2 for i in range(len(values))]
    stamps: list[int | None] = [None] * len(values)
    topics = ["t"] * len(values)
    outcomes = []
    for as_columns in (False, True):
        pipeline = Pipeline(settings, profile, make_results(settings))
        runs = []
        for lo in range(0, len(values), 800):
            part = slice(lo, lo + 800)
            cols = (values[part], topics[part], partitions[part], offsets[part], stamps[part])
            batch = RecordBatch(*cols) if as_columns else make_records(*cols)
            runs.append(pipeline.process(batch, now=NOW))
        outcomes.append(runs)
    for listed, columnar in zip(*outcomes, strict=True):
        assert columnar.next_offsets == listed.next_offsets
        assert columnar.accepted == listed.accepted
        assert columnar.rejected == listed.rejected
        assert (columnar.results is None) == (listed.results is None)
        if listed.results is not None and columnar.results is not None:
            for method, scores in listed.results.scores.items():
                assert np.array_equal(columnar.results.scores[method], scores, equal_nan=True)
    assert outcomes[0][0].rejected[0][0] == Record(values[17], "t", 1, 8, None)
    assert sum(o.results is not None for o in outcomes[1]) >= 2


def test_offsets_and_times_left_for_later_are_read_once_when_asked() -> None:
    """Columns given as functions are made on first read, once; the batch reads the same."""
    calls: list[str] = []
    values, topics, partitions, offsets, stamps = COLUMNS

    def later(name: str, column: list[Any]) -> Any:
        def make() -> list[Any]:
            calls.append(name)
            return list(column)

        return make

    batch = RecordBatch(
        list(values),
        list(topics),
        list(partitions),
        later("offsets", offsets),
        later("times", stamps),
        next_offsets={("t", 0): 7, ("t", 1): 10, ("u", 0): 3},
    )
    assert batch.next_offsets() == _batch().next_offsets() and calls == []
    assert batch == _batch() and batch[2] == Record(b"c", "t", 1, 9, 3_000)
    assert batch.offsets == offsets and calls == ["offsets", "times"]
    assert pickle.loads(pickle.dumps(batch)) == _batch()


def test_a_column_left_for_later_must_match_and_come_with_its_commits() -> None:
    """Offsets read later need the next offsets now; a later column of another length fails."""
    with pytest.raises(ValueError, match="next offsets"):
        RecordBatch([b"a"], ["t"], [0], lambda: [1], [None])
    batch = RecordBatch([b"a"], ["t"], [0], lambda: [1, 2], [None], next_offsets={("t", 0): 2})
    with pytest.raises(ValueError, match="one value per record"):
        batch.offsets  # noqa: B018


def test_split_by_topic_keeps_order_and_what_each_part_commits() -> None:
    """The records of a topic and the others, each in order, as a list comprehension gives."""
    batch, records = _batch(), make_records(*COLUMNS)
    for topic in ("t", "u", "absent"):
        ours, others = batch.split_topic(topic)
        assert list(ours) == [r for r in records if r.topic == topic]
        assert list(others) == [r for r in records if r.topic != topic]
        listed_ours, listed_others = split_topic(records, topic)
        assert list(listed_ours) == list(ours) and list(listed_others) == list(others)
    assert next_offsets(records) == next_offsets(batch) == batch.next_offsets()
    ours, _ = batch.split_topic("t")
    assert ours.next_offsets() == {("t", 0): 7, ("t", 1): 10}
