"""Label values are checked against ``labels.task``: a 7 is no binary label.

A binary label is 0 or 1 (a JSON ``true``/``false`` reads as 1/0, a numeric string as
its number); anything else is refused as ``invalid_label``, counted and dead-lettered,
and the good labels beside it are still joined. A regression label is any finite number.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson
from prometheus_client import CollectorRegistry

from monitor.app import Daemon, make_results
from monitor.config import LabelsConfig, SchemaConfig, Settings
from monitor.engine.labels.events import LABEL_REASONS, LabelDecoder
from monitor.engine.pipeline import Pipeline
from monitor.ingest.source import Record, TopicPartition, UngroupedSource

NOW = 1_790_000_000.0


def _label(label: Any, uid: str = "a") -> bytes:
    return orjson.dumps({"id": uid, "ts": NOW, "label": label})


def _decode(task: str, messages: list[bytes], strict: bool = False) -> Any:
    decoder = LabelDecoder(
        LabelsConfig(enabled=True, task=task),  # type: ignore[arg-type]
        SchemaConfig(strict=strict),
    )
    return decoder.decode(messages, now=NOW)


def test_binary_labels_are_zero_one_true_false_and_their_spellings() -> None:
    """0, 1, 1.0, "1", "0.0", true and false are labels; 7, 0.5, -1, "7" and 1e300 are not."""
    good = [1, 0, 1.0, "1", "0.0", True, False]
    bad = [7, 0.5, -1, "7", 1e300]
    batch = _decode("binary", [_label(v, f"g{i}") for i, v in enumerate(good + bad)])
    assert batch.ids == [f"g{i}" for i in range(len(good))]
    np.testing.assert_array_equal(batch.label, [1, 0, 1, 1, 0, 1, 0])
    refused = [(r.index, r.reason) for r in batch.rejections]
    assert refused == [(len(good) + i, "invalid_label") for i in range(len(bad))]
    assert "label is 7; a binary label is 0, 1, true or false" in batch.rejections[0].detail
    assert set(LABEL_REASONS) == {"missing_label", "invalid_label"}


def test_a_bad_label_refuses_its_whole_array_message_only() -> None:
    """An array message with one 7 is refused whole; the message beside it is kept."""
    array = orjson.dumps(
        [{"id": "x", "ts": NOW, "label": True}, {"id": "y", "ts": NOW, "label": 7}]
    )
    batch = _decode("binary", [array, _label(False, "z")])
    assert batch.ids == ["z"]
    assert [(r.index, r.reason) for r in batch.rejections] == [(0, "invalid_label")]


def test_strict_schema_takes_booleans_but_not_strings() -> None:
    """With schema.strict, true is a binary label and "1" is refused as a wrong type."""
    batch = _decode("binary", [_label(True), _label("1", "b")], strict=True)
    assert batch.ids == ["a"]
    assert [(r.index, r.reason) for r in batch.rejections] == [(1, "wrong_type")]


def test_regression_labels_are_finite_numbers() -> None:
    """Regression takes 7, 0.5 and -3; a boolean, NaN or Infinity is no number."""
    messages = [_label(7), _label(0.5, "b"), _label(-3, "c"), _label(True, "d")]
    messages += [json.dumps({"id": "nan", "ts": NOW, "label": math.nan}).encode()]
    messages += [b'{"id": "inf", "ts": %d, "label": Infinity}' % NOW]
    batch = _decode("regression", messages)
    assert batch.ids == ["a", "b", "c"]
    np.testing.assert_array_equal(batch.label, [7, 0.5, -3])
    assert [(r.index, r.reason) for r in batch.rejections] == [
        (3, "missing_label"),
        (4, "missing_label"),
        (5, "missing_label"),
    ]


def test_labels_that_are_no_json_boolean_keep_their_bytes() -> None:
    """Only a boolean at the label path is rewritten; "true" elsewhere changes nothing."""
    message = orjson.dumps({"id": "true-story", "ts": NOW, "label": 1, "note": False})
    batch = _decode("binary", [message, b'{"id": "n", "ts": 1, "label": true, NaN}'])
    assert batch.ids == ["true-story"]
    assert [r.reason for r in batch.rejections] == ["invalid_json"]


class _ListSource(UngroupedSource):
    """A source of one fixed batch that records what it dead-letters."""

    name = "list"

    def __init__(self, records: list[Record]) -> None:
        self.records = records
        self.dead: list[tuple[Record, str, str]] = []

    def poll(self, timeout_s: float) -> list[Record]:
        records, self.records = self.records, []
        return records

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        pass

    def dead_letter(self, records: Sequence[tuple[Record, str, str]]) -> None:
        self.dead.extend(records)

    def lag(self) -> dict[TopicPartition, int]:
        return {}

    @property
    def exhausted(self) -> bool:
        return not self.records

    def close(self) -> None:
        pass


def test_daemon_dead_letters_a_label_of_seven_and_joins_the_labels_beside_it() -> None:
    """Through the daemon: the 7 is counted and dead-lettered as invalid_label; 3 labels join."""
    settings = Settings.model_validate(
        {
            "model": "m",
            "kafka": {"topics": ["events"], "labels_topic": "labels"},
            "labels": {"enabled": True, "task": "binary"},
            "checkpoint": {"store": "none"},
        }
    )
    now = time.time()
    events = [
        orjson.dumps({"id": uid, "ts": now, "features": {"x": 1.0}, "prediction": 0.7})
        for uid in "abcd"
    ]
    labels = [
        orjson.dumps({"id": uid, "ts": now + 1, "label": value})
        for uid, value in zip("abcd", [True, 7, 0, "1"], strict=True)
    ]
    records = [Record(v, "events", 0, i) for i, v in enumerate(events)]
    records += [Record(v, "labels", 0, i) for i, v in enumerate(labels)]
    source = _ListSource(records)
    registry = CollectorRegistry()
    daemon = Daemon(
        settings,
        source,
        Pipeline(settings, None, make_results(settings)),
        registry=registry,
    )
    outcome = daemon.handle(source.poll(0))
    assert outcome.labels is not None
    assert (outcome.labels.labels, outcome.labels.matched) == (3, 3)
    assert [(r.topic, r.offset, reason) for r, reason, _ in source.dead] == [
        ("labels", 1, "invalid_label")
    ]
    rejected = registry.get_sample_value(
        "driftd_events_rejected_total", {"model": "m", "reason": "invalid_label"}
    )
    assert rejected == 1
