"""The columnar decoder: accepted rows, every rejection reason, and agreement with the oracle."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from monitor.config import LabelsConfig, SchemaConfig
from monitor.engine.labels.events import LabelDecoder
from monitor.ingest.decode import (
    INVALID_REASONS,
    MAX_ID_LENGTH,
    MAX_MESSAGE_BYTES,
    REASONS,
    DecodedBatch,
    Decoder,
)
from monitor.ingest.demo_stream import CATEGORICAL_FEATURES, NUMERIC_FEATURES, DemoStream
from monitor.ingest.json_parse import parse_messages
from monitor.ingest.segment_keys import MISSING_SEGMENT
from tests.monitor.decode_oracle import OracleDecoder

NOW = 1_795_000_000.0
SCHEMA = SchemaConfig(segment_by=["model_version", "features.region"])
STRICT = SchemaConfig(segment_by=["model_version", "features.region"], strict=True)
NUMERIC = ("income", "age")
CATEGORICAL = ("employment_type",)


def event(**overrides: Any) -> dict[str, Any]:
    """A valid inference event; ``overrides`` replace (or, with ``...``, drop) top-level keys."""
    base: dict[str, Any] = {
        "id": "req-1",
        "ts": NOW - 10,
        "model": "credit-risk",
        "model_version": "v3",
        "features": {
            "income": 50_000.0,
            "age": 41,
            "employment_type": "salaried",
            "region": "west",
        },
        "prediction": 0.25,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


def with_features(**overrides: Any) -> dict[str, Any]:
    """A valid event whose feature values are replaced (``...`` drops one)."""
    features = {**event()["features"], **overrides}
    return event(features={k: v for k, v in features.items() if v is not ...})


def msg(obj: Any) -> bytes:
    """JSON bytes of ``obj``."""
    return orjson.dumps(obj)


def decoder(schema: SchemaConfig = SCHEMA, **options: Any) -> Decoder:
    """The decoder under test, with a fixed clock; ``options`` go to the constructor."""
    return Decoder(schema, NUMERIC, CATEGORICAL, now=NOW, **options)


def schema(**fields: Any) -> SchemaConfig:
    """The test schema with some fields replaced."""
    return SCHEMA.model_copy(update=fields)


def reasons(batch: DecodedBatch) -> dict[int, str]:
    """Message index -> rejection reason."""
    return {r.index: r.reason for r in batch.rejections}


def test_demo_events_decode_into_matching_columns() -> None:
    """Demo events decode to columns equal to the values in the events."""
    events = DemoStream(start_ts=NOW).next_batch(500).events()
    cats = CATEGORICAL_FEATURES[:2]
    batch = Decoder(SCHEMA, NUMERIC_FEATURES, cats, now=NOW).decode([msg(e) for e in events])
    assert batch.rejections == []
    assert len(batch) == 500
    assert batch.ids == [e["id"] for e in events]
    assert batch.models == ["credit-risk"] * 500
    assert batch.segment_keys == [f"v3,{e['features']['region']}" for e in events]
    expected = np.array(
        [
            [math.nan if (v := e["features"][n]) is None else v for n in NUMERIC_FEATURES]
            for e in events
        ]
    )
    np.testing.assert_array_equal(batch.numeric, expected)
    assert batch.numeric.shape == (500, len(NUMERIC_FEATURES))
    for name in cats:
        assert batch.categorical[name] == [e["features"][name] for e in events]
    np.testing.assert_array_equal(batch.prediction, [e["prediction"] for e in events])
    assert np.isnan(batch.label).all()
    np.testing.assert_allclose(batch.ts, NOW + np.arange(500) / 2_000.0, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(batch.source_index, np.arange(500))


BAD_MESSAGES: list[tuple[str, bytes | None]] = [
    ("empty", b""),
    ("empty", None),
    ("too_large", b" " * (MAX_MESSAGE_BYTES + 1)),
    ("invalid_json", b"{not json"),
    ("invalid_json", b'{"id": "\xff"}'),
    ("invalid_json", b'{"x": NaN,}'),
    ("invalid_json", b'{"x": 1e400}'),
    ("invalid_json", b'{"x": NaN, "y": 1e400}'),
    ("invalid_json", b'{"x": NaN, "y": "\\udc00"}'),
    ("invalid_json", b'{"x": NaN, "y": "\xff"}'),
    ("not_an_object", b"42"),
    ("not_an_object", b'"text"'),
    ("not_an_object", b"null"),
    ("not_an_object", b"[]"),
    ("not_an_object", b"[1, 2]"),
    ("other_model", msg(event(model="fraud"))),
    ("other_model", msg(event(model=""))),
    ("other_model", msg([event(), event(model=7)])),
    ("missing_id", msg(event(id=...))),
    ("missing_id", msg(event(id=None))),
    ("missing_id", msg(event(id=True))),
    ("missing_id", msg(event(id=1.5))),
    ("missing_id", msg(event(id={"a": 1}))),
    ("bad_id", msg(event(id="x" * (MAX_ID_LENGTH + 1)))),
    ("bad_id", msg([event(), event(id="y" * 300)])),
    ("bad_timestamp", msg(event(ts=...))),
    ("bad_timestamp", msg(event(ts=None))),
    ("bad_timestamp", msg(event(ts="yesterday"))),
    ("bad_timestamp", msg(event(ts=True))),
    ("bad_timestamp", msg(event(ts=[NOW]))),
    ("timestamp_out_of_range", msg(event(ts=NOW + 2 * 3600))),
    ("timestamp_out_of_range", msg(event(ts=NOW - 31 * 86_400))),
    ("timestamp_out_of_range", msg(event(ts=(NOW + 86_400) * 1000))),
    ("timestamp_out_of_range", msg(event(ts=str(int(NOW - 40 * 86_400))))),
    ("timestamp_out_of_range", msg(event(ts=-1))),
    ("timestamp_out_of_range", msg(event(ts="2000-01-01T00:00:00Z"))),
    ("missing_features", msg(event(features=...))),
    ("missing_features", msg(event(features=None))),
    ("missing_features", msg(event(features=[1, 2]))),
    ("missing_features", msg(event(features="income=3"))),
    ("too_many_features", msg(with_features(**{f"f{i}": i for i in range(1_001)}))),
    ("too_many_features", msg([event(), with_features(**{f"f{i}": 1 for i in range(2_000)})])),
    ("wrong_type", msg(with_features(income="50000"))),
    ("wrong_type", msg(with_features(income=True))),
    ("wrong_type", msg(with_features(age={"years": 41}))),
    ("wrong_type", msg(event(prediction="high"))),
    ("wrong_type", msg(event(label="yes"))),
    ("wrong_type", msg(with_features(employment_type=1.5))),
    ("wrong_type", msg(with_features(employment_type=["a"]))),
    ("wrong_type", msg(with_features(income="12638.0"))),
    ("wrong_type", json.dumps(with_features(income=math.nan)).encode()),
    ("wrong_type", json.dumps(event(prediction=-math.inf)).encode()),
]


@pytest.mark.parametrize(("reason", "bad"), BAD_MESSAGES)
def test_a_bad_message_is_rejected_alone_with_its_reason(reason: str, bad: bytes | None) -> None:
    """A bad message is refused with its reason; its batch-mates decode, mapped back by index."""
    # The decoder is strict and knows its model, so that every reason can occur.
    good = [msg(event(id=f"req-{i}")) for i in range(4)]
    strict = decoder(STRICT, model="credit-risk")
    batch = strict.decode([good[0], good[1], bad, good[2], good[3]])
    assert reason in REASONS
    assert reasons(batch) == {2: reason}
    assert batch.ids == ["req-0", "req-1", "req-2", "req-3"]
    np.testing.assert_array_equal(batch.source_index, [0, 1, 3, 4])
    assert len(batch.ts) == len(batch.prediction) == len(batch.segment_keys) == 4
    assert batch.numeric.shape == (4, 2)
    assert all(len(v) == 4 for v in batch.categorical.values())


def test_every_reason_is_covered_by_the_bad_message_table() -> None:
    """The table above exercises every rejection reason the decoder has."""
    # ahead_of_watermark is refused by the windows, not the decoder (see REASONS).
    assert {reason for reason, _ in BAD_MESSAGES} == set(REASONS) - {"ahead_of_watermark"}


def test_parsing_maps_each_event_to_its_message_and_refuses_in_order() -> None:
    """Array messages give one event per object; refusals come back sorted by index."""
    messages = [msg([{"a": 1}, {"a": 2}]), b"", msg(7), msg({"a": 3}), b"{", b"x" * 65]
    parsed = parse_messages(messages, limit=64)
    assert parsed.events == [{"a": 1}, {"a": 2}, {"a": 3}]
    assert list(parsed.owners) == [0, 0, 3]
    assert [(i, reason) for i, reason, _ in parsed.refusals] == [
        (1, "empty"),
        (2, "not_an_object"),
        (4, "invalid_json"),
        (5, "too_large"),
    ]
    assert not parsed.lenient
    nan = parse_messages([b'{"a": NaN}'], limit=64)
    assert nan.lenient and math.isnan(nan.events[0]["a"]) and not nan.refusals


def test_wrong_type_detail_names_the_field() -> None:
    """A strict wrong-type rejection says which field held the wrong type."""
    batch = decoder(STRICT).decode([msg(with_features(age="41")), msg(event(prediction=False))])
    assert "age" in batch.rejections[0].detail
    assert "string" in batch.rejections[0].detail
    assert "prediction" in batch.rejections[1].detail
    assert "boolean" in batch.rejections[1].detail


def test_first_failing_check_gives_the_reason() -> None:
    """A message with several problems is refused once, for the first check it fails."""
    bad = msg(event(id=None, ts="nope", features=None))
    other = msg(event(model="fraud", id=None, ts="nope"))
    messages = [bad, msg(event(ts="nope", prediction=True)), other]
    batch = decoder(STRICT, model="credit-risk").decode(messages)
    assert [(r.index, r.reason) for r in batch.rejections] == [
        (0, "missing_id"),
        (1, "bad_timestamp"),
        (2, "other_model"),
    ]


def test_array_message_yields_one_row_per_object() -> None:
    """An array of objects decodes to one row per object, all mapped to that message."""
    array = msg([event(id="a"), event(id="b"), event(id="c")])
    batch = decoder().decode([msg(event(id="x")), array, msg(event(id="y"))])
    assert batch.ids == ["x", "a", "b", "c", "y"]
    np.testing.assert_array_equal(batch.source_index, [0, 1, 1, 1, 2])


def test_array_message_is_all_or_nothing() -> None:
    """One bad object refuses its whole array message, once, with the first bad object's reason."""
    array = msg([event(id="a"), with_features(income="x"), event(id=None), event(id="d")])
    messages = [msg(event(id="x")), array, msg(event(id="y"))]
    batch = decoder(STRICT).decode(messages)
    assert batch.ids == ["x", "y"]
    np.testing.assert_array_equal(batch.source_index, [0, 2])
    assert [(r.index, r.reason) for r in batch.rejections] == [(1, "wrong_type")]
    # Tolerant, the bad value is no refusal; the missing id still refuses the array, and
    # the bad value of a refused message is not counted.
    tolerant = decoder().decode(messages)
    assert [(r.index, r.reason) for r in tolerant.rejections] == [(1, "missing_id")]
    assert tolerant.ids == ["x", "y"]
    assert tolerant.invalid == {}


def test_array_with_a_non_object_is_not_an_object() -> None:
    """An array holding anything but objects is refused as not_an_object."""
    batch = decoder().decode([msg([event(), 3]), msg([[event()]]), msg(event())])
    assert reasons(batch) == {0: "not_an_object", 1: "not_an_object"}
    assert len(batch) == 1


def test_null_and_missing_numeric_features_are_nan() -> None:
    """A null or absent numeric feature decodes as NaN and keeps its row."""
    batch = decoder().decode([msg(with_features(income=None)), msg(with_features(age=...))])
    assert batch.rejections == []
    assert np.isnan(batch.numeric[0, 0])
    assert batch.numeric[0, 1] == 41
    assert batch.numeric[1, 0] == 50_000
    assert np.isnan(batch.numeric[1, 1])


def test_integers_and_big_integers_are_numbers() -> None:
    """Integers, including ones beyond 64 bits, decode to floats."""
    batch = decoder().decode(
        [b'{"id":"a","ts":%d,"features":{"income":123456789012345678901234}}' % NOW]
    )
    assert batch.rejections == []
    assert batch.numeric[0, 0] == pytest.approx(1.2345678901234568e23)


def test_missing_prediction_and_label_are_nan() -> None:
    """An event without prediction or label decodes with NaN in both."""
    batch = decoder().decode([msg(event(prediction=...)), msg(event(label=1))])
    assert np.isnan(batch.prediction[0])
    assert np.isnan(batch.label[0])
    assert batch.label[1] == 1.0


def test_categorical_values() -> None:
    """Categorical strings stay, null and absent are None, ints and booleans become text."""
    batch = decoder().decode(
        [
            msg(with_features(employment_type="contract")),
            msg(with_features(employment_type=None)),
            msg(with_features(employment_type=...)),
            msg(with_features(employment_type=7)),
            msg(with_features(employment_type=True)),
        ]
    )
    assert batch.rejections == []
    assert batch.categorical["employment_type"] == ["contract", None, None, "7", "True"]


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2026-11-18T11:06:40Z", 1_795_000_000.0),
        ("2026-11-18T11:06:40+00:00", 1_795_000_000.0),
        ("2026-11-18T13:06:40.250+02:00", 1_795_000_000.25),
        ("2026-11-18T06:36:40-04:30", 1_795_000_000.0),
        ("2026-11-18T11:06:40", 1_795_000_000.0),
        ("2026-11-18 11:06:40.5", 1_795_000_000.5),
        (1_795_000_000, 1_795_000_000.0),
        (1_795_000_000.125, 1_795_000_000.125),
        (1_795_000_000_250, 1_795_000_000.25),  # auto: milliseconds
        (1_795_000_000_250_000, 1_795_000_000.25),  # auto: microseconds
        (1_795_000_000_250_000_000, 1_795_000_000.25),  # auto: nanoseconds
        (1_795_000_000_250.0, 1_795_000_000.25),
        ("1795000000", 1_795_000_000.0),  # numeric strings, read like numbers
        ("1795000000.125", 1_795_000_000.125),
        ("1795000000250", 1_795_000_000.25),
        ("1795000000250000000", 1_795_000_000.25),
        (" 1795000000 ", 1_795_000_000.0),
    ],
)
def test_timestamps_iso_and_epoch(ts: Any, expected: float) -> None:
    """ISO times (Z, offsets, none meaning UTC), epochs in any unit and numeric strings."""
    batch = decoder().decode([msg(event(ts=ts))])
    assert batch.rejections == []
    # Nanoseconds near 2026 are beyond float64's 53 bits: a rounding of ~0.2 microseconds.
    assert batch.ts[0] == pytest.approx(expected, rel=0, abs=1e-6)


@pytest.fixture
def local_zone_not_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time zone set to New York for the test."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("local_zone_not_utc")
def test_iso_time_without_offset_is_utc_whatever_the_local_zone() -> None:
    """An ISO time without an offset means UTC, not the host's local time."""
    assert time.localtime(NOW).tm_gmtoff != 0
    naive = msg(event(ts="2026-11-18T11:06:40"))
    assert decoder().decode([naive]).ts[0] == NOW  # all strings: the column path
    assert decoder().decode([naive, msg(event(ts=[]))]).ts[0] == NOW  # mixed: row by row


def test_mixed_timestamp_kinds_in_one_batch() -> None:
    """A batch mixing ISO strings, epoch numbers and bad values decodes row by row."""
    messages = [
        msg(event(ts="2026-11-18T11:06:40Z")),
        msg(event(ts=NOW + 1)),
        msg(event(ts="not a time")),
        msg(event(ts=int(NOW) - 5)),
    ]
    batch = decoder().decode(messages)
    assert reasons(batch) == {2: "bad_timestamp"}
    np.testing.assert_array_equal(batch.ts, [NOW, NOW + 1, NOW - 5])


def test_timestamp_window_edges_are_inclusive() -> None:
    """Times exactly at the past and future limits are accepted; just beyond them are not."""
    assert SCHEMA.max_past_seconds is not None and SCHEMA.max_future_seconds is not None
    past, future = NOW - SCHEMA.max_past_seconds, NOW + SCHEMA.max_future_seconds
    messages = [msg(event(ts=t)) for t in (past, future, past - 0.5, future + 0.5)]
    batch = decoder().decode(messages)
    assert reasons(batch) == {2: "timestamp_out_of_range", 3: "timestamp_out_of_range"}


def test_millisecond_epochs_get_a_hint() -> None:
    """With ``ts_unit: s`` an epoch in milliseconds is out of range, and the detail says so."""
    batch = decoder(schema(ts_unit="s")).decode([msg(event(ts=NOW * 1000))])
    (rejection,) = batch.rejections
    assert rejection.reason == "timestamp_out_of_range"
    assert "milliseconds" in rejection.detail
    assert "ts_unit" in rejection.detail


def test_clock_passed_to_decode_wins() -> None:
    """``decode(now=...)`` overrides the decoder's clock for the range check."""
    later = NOW + 365 * 86_400
    batch = decoder().decode([msg(event(ts=later))], now=later)
    assert batch.rejections == []


def test_integer_ids_become_strings() -> None:
    """An integer id is accepted and decoded as its decimal text."""
    batch = decoder().decode([msg(event(id=123)), msg(event(id="abc"))])
    assert batch.ids == ["123", "abc"]


def test_segment_keys_join_paths_with_commas() -> None:
    """The segment key joins the configured paths' values; absent parts are ``__missing__``."""
    batch = decoder().decode(
        [
            msg(event()),
            msg(event(model_version=...)),
            msg(event(model_version=4)),
            msg(with_features(region=None)),
        ]
    )
    assert batch.segment_keys == ["v3,west", "__missing__,west", "4,west", "v3,__missing__"]


def test_segment_keys_cannot_be_forged_by_user_values() -> None:
    """A user "__missing__" is not the missing marker, and commas cannot re-split a key."""
    batch = decoder().decode(
        [
            msg(event(model_version="__missing__")),
            msg(event(model_version=...)),
            msg(event(model_version="a,b")),
            msg(with_features(region="b,west")),
            msg(event(model_version="x\\__missing__")),
        ]
    )
    keys = batch.segment_keys
    assert keys[:2] == ["\\__missing__,west", "__missing__,west"]
    assert keys[2] == "a\\,b,west"
    assert keys[3].endswith("b\\,west")
    assert keys[4] == "x\\\\__missing__,west"
    assert len(set(keys)) == len(keys)


def test_single_path_user_missing_value_is_its_own_key() -> None:
    """With one segment path a user value "__missing__" still differs from a null."""
    schema = SchemaConfig(segment_by=["model_version"])
    batch = decoder(schema).decode(
        [msg(event(model_version="__missing__")), msg(event(model_version=None))]
    )
    assert batch.segment_keys == ["\\__missing__", "__missing__"]


def test_no_segment_paths_give_empty_keys() -> None:
    """Without segment paths every key is the empty string."""
    schema = SchemaConfig(segment_by=[])
    batch = decoder(schema).decode([msg(event()), msg(event())])
    assert batch.segment_keys == ["", ""]


def test_dotted_paths_and_flat_features() -> None:
    """Dotted schema paths reach into nested objects; an empty features path means top level."""
    schema = SchemaConfig(
        id="meta.id",
        timestamp="meta.ts",
        features="",
        prediction="out.score",
        segment_by=["meta.v"],
    )
    flat = {
        "meta": {"id": "a", "ts": NOW, "v": "v9"},
        "income": 1.0,
        "age": 2,
        "out": {"score": 0.5},
    }
    bad = {"meta": "not an object", "income": 1.0}
    batch = decoder(schema).decode([msg(flat), msg(bad)])
    assert reasons(batch) == {1: "missing_id"}
    assert batch.ids == ["a"]
    assert batch.segment_keys == ["v9"]
    np.testing.assert_array_equal(batch.numeric, [[1.0, 2.0]])
    assert batch.prediction[0] == 0.5


def test_empty_batch() -> None:
    """An empty poll batch decodes to empty columns of the right shapes."""
    batch = decoder().decode([])
    assert len(batch) == 0
    assert batch.numeric.shape == (0, 2)
    assert batch.source_index.dtype == np.int64
    assert batch.categorical == {"employment_type": []}


def test_rejections_are_sorted_by_message_index() -> None:
    """Rejections come back in message order, whatever stage refused them."""
    messages = [msg(event(id=None)), b"", msg(with_features(age="x")), b"{", msg(event())]
    batch = decoder(STRICT).decode(messages)
    assert [(r.index, r.reason) for r in batch.rejections] == [
        (0, "missing_id"),
        (1, "empty"),
        (2, "wrong_type"),
        (3, "invalid_json"),
    ]


# --- NaN/Infinity literals -------------------------------------------------------------


def literal_event(**features: Any) -> bytes:
    """An event written by the stdlib, which writes NaN/Infinity for non-finite floats."""
    return json.dumps(with_features(**features)).encode()


def test_nan_and_infinity_literals_are_missing_values_counted_per_feature() -> None:
    """NaN/Infinity literals (Python's json.dumps) are missing for their field alone, counted."""
    literals = json.dumps(
        event(
            id="lit",
            features={"income": math.nan, "age": math.inf, "employment_type": "salaried"},
            prediction=-math.inf,
            label=math.nan,
        )
    ).encode()
    assert b"NaN" in literals and b"-Infinity" in literals
    good = [msg(event(id=f"req-{i}", label=1)) for i in range(3)]
    batch = decoder().decode([good[0], literals, good[1], good[2]])
    assert batch.rejections == []
    assert batch.ids == ["req-0", "lit", "req-1", "req-2"]
    assert np.isnan(batch.numeric[1]).all()
    assert np.isnan(batch.prediction[1]) and np.isnan(batch.label[1])
    assert batch.categorical["employment_type"][1] == "salaried"
    assert batch.invalid == {
        ("income", "not_finite"): 1,
        ("age", "not_finite"): 1,
        ("prediction", "not_finite"): 1,
        ("label", "not_finite"): 1,
    }
    # The batch-mates come out exactly as they do without the literal message.
    alone = decoder().decode([good[0], good[1], good[2]])
    np.testing.assert_array_equal(batch.numeric[[0, 2, 3]], alone.numeric)
    np.testing.assert_array_equal(batch.prediction[[0, 2, 3]], alone.prediction)
    np.testing.assert_array_equal(batch.label[[0, 2, 3]], alone.label)
    assert np.isfinite(batch.numeric[[0, 2, 3]]).all()


def test_literals_elsewhere_in_the_event() -> None:
    """A literal as a category is a wrong type; as a time, a bad timestamp; as an id, no id."""
    batch = decoder().decode(
        [
            literal_event(employment_type=math.nan),
            json.dumps(event(ts=math.inf)).encode(),
            json.dumps(event(id=math.nan)).encode(),
            json.dumps(event(model_version=math.nan)).encode(),
        ]
    )
    assert reasons(batch) == {1: "bad_timestamp", 2: "missing_id"}
    assert "Infinity" in batch.rejections[0].detail
    assert batch.categorical["employment_type"] == [None, "salaried"]
    assert batch.segment_keys == ["v3,west", "nan,west"]
    assert batch.invalid == {("employment_type", "wrong_type"): 1}


def test_broken_json_with_a_literal_is_still_invalid_json_with_a_clear_detail() -> None:
    """The lenient parser accepts the literals and nothing else orjson refuses."""
    messages = [
        b'{"x": NaN,}',
        b'{"x": NaN, "y": 1e999}',
        b'{"x": NaN, "y": "\\ud800"}',
        b'{"x": NaN, "y": "\xff"}',
        b'{"x": nan}',
        b'{"x": NaN',
        b"[" * 5_000 + b"NaN" + b"]" * 5_000,
        b'{"x": "Infinity", "y": }',
    ]
    batch = decoder().decode([*messages, msg(event())])
    assert reasons(batch) == dict.fromkeys(range(len(messages)), "invalid_json")
    assert all(r.detail for r in batch.rejections)
    assert "line 1 column 11" in batch.rejections[0].detail
    assert "out of range" in batch.rejections[1].detail
    assert "surrogate" in batch.rejections[2].detail
    assert batch.ids == ["req-1"]


def test_paired_surrogate_escapes_pass_the_lenient_parser() -> None:
    """An escaped surrogate pair is one character, as orjson reads it."""
    text = msg(event(model_version="\U0001f600")).replace(
        b'"\xf0\x9f\x98\x80"', b'"\\ud83d\\ude00"'
    )
    nan = text.replace(b'"prediction":0.25', b'"prediction":NaN')
    assert nan != text
    batch = decoder().decode([text, nan])
    assert batch.rejections == []
    assert batch.segment_keys == ["\U0001f600,west", "\U0001f600,west"]
    assert batch.invalid == {("prediction", "not_finite"): 1}


def test_numbers_beyond_64_bits_read_alike_by_both_parsers() -> None:
    """An integer beyond 64 bits is a float whichever parser reads it; within, an exact int."""
    body = b'"id":"a","ts":%d,"model_version":%s,"features":{"income":%s}' % (
        int(NOW),
        str(2**64 - 1).encode(),
        str(2**70).encode(),
    )
    fast = b"{" + body + b"}"
    lenient = b"{" + body + b',"prediction":NaN}'
    batch = decoder().decode([fast, lenient])
    assert batch.rejections == []
    assert batch.segment_keys[0] == batch.segment_keys[1] == f"{2**64 - 1},__missing__"
    assert batch.numeric[0, 0] == batch.numeric[1, 0] == float(2**70)


# --- one bad value --------------------------------------------------------------------


def test_a_numeric_string_is_its_number() -> None:
    """A numeric feature sent as a string holding a number is that number, counted nowhere."""
    batch = decoder().decode(
        [
            msg(with_features(income="12638.0", age=" 41 ")),
            msg(with_features(income="-1e3", age="+7")),
            msg(event(prediction="0.8", label="1")),
        ]
    )
    assert batch.rejections == []
    np.testing.assert_array_equal(batch.numeric, [[12_638.0, 41.0], [-1_000.0, 7.0], [50_000, 41]])
    np.testing.assert_array_equal(batch.prediction, [0.25, 0.25, 0.8])
    np.testing.assert_array_equal(batch.label, [math.nan, math.nan, 1.0])
    assert batch.invalid == {}


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("abc", "not_a_number"),
        ("", "not_a_number"),
        ("12,638", "not_a_number"),
        ("1_000", "not_a_number"),
        ("NaN", "not_finite"),
        ("-Infinity", "not_finite"),
        ("1e999", "not_finite"),
        (True, "wrong_type"),
        ({"amount": 1}, "wrong_type"),
        ([1, 2], "wrong_type"),
    ],
)
def test_a_bad_numeric_value_is_missing_and_counted(value: Any, reason: str) -> None:
    """A bad value in one numeric feature is NaN, counted by reason; the rest of the event stays."""
    batch = decoder().decode([msg(with_features(income=value)), msg(event(id="mate"))])
    assert batch.rejections == []
    assert np.isnan(batch.numeric[0, 0])
    assert batch.numeric[0, 1] == 41
    assert batch.categorical["employment_type"] == ["salaried", "salaried"]
    assert batch.prediction[0] == 0.25
    assert batch.segment_keys[0] == "v3,west"
    assert batch.invalid == {("income", reason): 1}
    assert reason in INVALID_REASONS
    np.testing.assert_array_equal(batch.numeric[1], [50_000, 41])


def test_bad_prediction_label_and_category_are_missing_and_counted() -> None:
    """A wrong-typed prediction, label or category is missing, counted under its own name."""
    paths = schema(prediction="out.score", label="truth")
    batch = Decoder(paths, NUMERIC, ("employment_type", "region"), now=NOW).decode(
        [
            msg(event(out={"score": "high"}, truth=[1])),
            msg(event(out={"score": False}, truth="yes")),
            msg(with_features(employment_type=1.5, region={"a": 1})),
            msg(with_features(employment_type=["x"])),
        ]
    )
    assert batch.rejections == []
    assert np.isnan(batch.prediction[:2]).all() and np.isnan(batch.label).all()
    assert batch.categorical["employment_type"] == ["salaried", "salaried", None, None]
    assert batch.categorical["region"] == ["west", "west", None, "west"]
    assert batch.invalid == {
        ("out.score", "not_a_number"): 1,
        ("out.score", "wrong_type"): 1,
        ("truth", "wrong_type"): 1,
        ("truth", "not_a_number"): 1,
        ("employment_type", "wrong_type"): 2,
        ("region", "wrong_type"): 1,
    }


def test_invalid_counts_add_up_over_the_batch() -> None:
    """Counts are per (field, reason) over every accepted event of the batch."""
    messages = [
        msg(with_features(income="abc", age="x")),
        msg([with_features(income="def"), with_features(income=None)]),
        msg(with_features(income=True)),
        msg(event(id=None, features={"income": "refused with its event"})),
    ]
    batch = decoder().decode(messages)
    assert reasons(batch) == {3: "missing_id"}
    assert batch.invalid == {
        ("income", "not_a_number"): 2,
        ("age", "not_a_number"): 1,
        ("income", "wrong_type"): 1,
    }


def test_strict_mode_refuses_the_whole_event() -> None:
    """``schema.strict``: one bad value refuses its event (wrong_type); nothing is counted."""
    bad = [
        msg(with_features(income="abc")),
        msg(with_features(income="12638.0")),
        msg(with_features(age=True)),
        literal_event(income=math.nan),
        msg(event(prediction="0.5")),
        msg(with_features(employment_type=2.5)),
    ]
    batch = decoder(STRICT).decode([msg(event(id="ok")), *bad])
    assert reasons(batch) == {i: "wrong_type" for i in range(1, len(bad) + 1)}
    assert batch.ids == ["ok"]
    assert batch.invalid == {}
    assert "income" in batch.rejections[0].detail
    assert "NaN" in batch.rejections[3].detail


def test_strict_is_off_by_default() -> None:
    """The default schema is tolerant."""
    assert SchemaConfig().strict is False


# --- ids, models, segments ------------------------------------------------------------


def test_id_is_optional_when_not_required() -> None:
    """``require_id=False``: an absent, null, wrong-typed or too long id is "", the event kept."""
    messages = [
        msg(event(id=...)),
        msg(event(id=None)),
        msg(event(id=True)),
        msg(event(id={"a": 1})),
        msg(event(id="x" * (MAX_ID_LENGTH + 1))),
        msg(event(id=7)),
        msg(event(id="req-9")),
    ]
    batch = decoder(require_id=False).decode(messages)
    assert batch.rejections == []
    assert batch.ids == ["", "", "", "", "", "7", "req-9"]
    assert batch.invalid == {}
    required = decoder().decode(messages)
    assert reasons(required) == {
        0: "missing_id",
        1: "missing_id",
        2: "missing_id",
        3: "missing_id",
    } | {4: "bad_id"}


def test_events_of_another_model_are_refused() -> None:
    """With a model configured, an event naming another one is refused as other_model."""
    messages = [
        msg(event(model="credit-risk")),
        msg(event(model="fraud", id="f")),
        msg(event(model=None)),
        msg(event(model=...)),
        msg(event(model="fraud", id=None, features=None)),
    ]
    batch = decoder(model="credit-risk").decode(messages)
    assert reasons(batch) == {1: "other_model", 4: "other_model"}
    detail = batch.rejections[0].detail
    assert "'fraud'" in detail and "'credit-risk'" in detail
    assert batch.models == ["credit-risk"] * 3
    unconfigured = decoder().decode(messages)
    assert reasons(unconfigured) == {4: "missing_id"}
    assert unconfigured.models == ["credit-risk", "fraud", "", ""]


def test_missing_segment_values_are_named() -> None:
    """An absent or null segment value is ``__missing__``; an empty string stays empty."""
    assert MISSING_SEGMENT == "__missing__"
    one = decoder(schema(segment_by=["model_version"])).decode(
        [
            msg(event(model_version=...)),
            msg(event(model_version=None)),
            msg(event(model_version="")),
        ]
    )
    assert one.segment_keys == [MISSING_SEGMENT, MISSING_SEGMENT, ""]
    two = decoder().decode([msg(event(model_version=None, features={}))])
    assert two.segment_keys == [f"{MISSING_SEGMENT},{MISSING_SEGMENT}"]


# --- timestamps -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unit", "ts", "expected"),
    [
        ("s", 1_795_000_000, 1_795_000_000.0),
        ("ms", 1_795_000_000_500, 1_795_000_000.5),
        ("us", 1_795_000_000_500_000, 1_795_000_000.5),
        ("ns", 1_795_000_000_500_000_000, 1_795_000_000.5),
        ("ms", "1795000000500", 1_795_000_000.5),
        ("ns", "1795000000500000000", 1_795_000_000.5),
        ("ms", "2026-11-18T11:06:40.5Z", 1_795_000_000.5),  # the unit is for epochs only
    ],
)
def test_configured_timestamp_units(unit: str, ts: Any, expected: float) -> None:
    """``schema.ts_unit`` fixes the unit of epoch numbers and numeric strings."""
    batch = decoder(schema(ts_unit=unit)).decode([msg(event(ts=ts))])
    assert batch.rejections == []
    assert batch.ts[0] == pytest.approx(expected, rel=0, abs=1e-6)


def test_auto_unit_boundaries() -> None:
    """auto: below 1e11 seconds, below 1e14 milliseconds, below 1e17 microseconds, else ns."""
    auto = decoder(check_wall_clock=False)
    values = [1e11 - 1, 1e11, 1e14 - 1, 1e14, 1e17 - 16, 1e17]  # 1e17 - 16: the float below
    batch = auto.decode([msg(event(ts=v)) for v in values])
    assert batch.rejections == []
    np.testing.assert_array_equal(
        batch.ts, [1e11 - 1, 1e8, (1e14 - 1) / 1e3, 1e8, (1e17 - 16) / 1e6, 1e8]
    )
    # Row by row (a mixed column) gives the very same numbers as the column at once.
    mixed = auto.decode([msg(event(ts=v)) for v in values] + [msg(event(ts="x"))])
    np.testing.assert_array_equal(mixed.ts, batch.ts)


def test_wrong_unit_gets_a_hint() -> None:
    """A fixed unit that does not fit the magnitude is named in the out-of-range detail."""
    batch = decoder(schema(ts_unit="ms")).decode([msg(event(ts=NOW))])
    detail = batch.rejections[0].detail
    assert str(int(NOW)) in detail
    assert "read as milliseconds" in detail
    assert "looks like seconds" in detail


def test_timestamp_details_say_what_was_seen() -> None:
    """Timestamp refusals name the field and show the value and how it was read."""
    batch = decoder().decode(
        [
            msg(event(ts="last tuesday")),
            msg(event(ts=True)),
            msg(event(ts=...)),
            msg(event(ts=(NOW - 90 * 86_400) * 1000)),
            msg(event(ts="2000-01-01T00:00:00Z")),
        ]
    )
    details = [r.detail for r in batch.rejections]
    assert "'last tuesday'" in details[0] and "ISO 8601" in details[0]
    assert "boolean" in details[1]
    assert "missing" in details[2]
    assert "read as milliseconds" in details[3] and "2026-08-20" in details[3]
    assert "2000-01-01" in details[4] and "outside [2026-10-19T11:06:40Z" in details[4]


def test_a_numeric_string_is_an_epoch_even_when_it_reads_as_a_compact_date() -> None:
    """ "20261118" is the epoch 20261118 (1970), alone or among ISO strings, never a date."""
    compact = msg(event(ts="20261118"))
    iso = msg(event(ts="2026-11-18T11:06:40Z"))
    for messages in ([compact], [iso, compact], [compact, iso]):
        batch = decoder(check_wall_clock=False).decode(messages)
        assert batch.rejections == []
        assert batch.ts[messages.index(compact)] == 20_261_118.0


def test_kafka_timestamps_replace_the_event_time() -> None:
    """``timestamp_source: kafka``: the record's time; the event's only where there is none."""
    kafka = decoder(schema(timestamp_source="kafka"))
    messages = [
        msg(event(ts="garbage")),
        msg(event(ts=NOW - 5)),
        msg([event(id="a", ts=...), event(id="b", ts=NOW)]),
        msg(event(ts=NOW - 7)),
        msg(event(ts=...)),
    ]
    kafka_ts = [NOW - 1, None, NOW - 2, -0.001, None]
    batch = kafka.decode(messages, kafka_ts=kafka_ts)
    assert reasons(batch) == {4: "bad_timestamp"}
    np.testing.assert_array_equal(batch.ts, [NOW - 1, NOW - 5, NOW - 2, NOW - 2, NOW - 7])
    # Without Kafka times (a file source) the event's field is read.
    assert reasons(kafka.decode(messages)) == {
        0: "bad_timestamp",
        2: "bad_timestamp",
        4: "bad_timestamp",
    }
    # With the event time configured the Kafka times are ignored.
    events_only = decoder().decode(messages, kafka_ts=kafka_ts)
    assert reasons(events_only) == reasons(kafka.decode(messages))


def test_kafka_timestamps_are_checked_against_the_window() -> None:
    """A Kafka time outside the window is refused, and the detail says it was Kafka's."""
    kafka = decoder(schema(timestamp_source="kafka"))
    batch = kafka.decode([msg(event()), msg(event())], kafka_ts=[NOW - 90 * 86_400, NOW])
    assert reasons(batch) == {0: "timestamp_out_of_range"}
    assert "Kafka" in batch.rejections[0].detail
    with pytest.raises(ValueError, match="Kafka timestamps"):
        kafka.decode([msg(event())], kafka_ts=[])


def test_no_wall_clock_window_when_disabled() -> None:
    """``check_wall_clock=False`` (file replays) or null limits accept historical times."""
    old = [
        msg(event(ts="2000-01-01T00:00:00Z")),
        msg(event(ts=946_684_800_000)),
        msg(event(ts=NOW + 86_400 * 365)),
    ]
    assert set(reasons(decoder().decode(old)).values()) == {"timestamp_out_of_range"}
    replay = decoder(check_wall_clock=False).decode(old)
    assert replay.rejections == []
    np.testing.assert_array_equal(replay.ts, [946_684_800.0, 946_684_800.0, NOW + 86_400 * 365])
    no_past = decoder(schema(max_past_seconds=None)).decode(old)
    assert reasons(no_past) == {2: "timestamp_out_of_range"}
    no_future = decoder(schema(max_future_seconds=None)).decode(old)
    assert reasons(no_future) == {0: "timestamp_out_of_range", 1: "timestamp_out_of_range"}


def test_times_beyond_year_9999_are_refused_without_a_window() -> None:
    """Whatever the window, a time must be one a datetime can show (years 1 to 9999)."""
    batch = decoder(check_wall_clock=False).decode(
        [msg(event(ts=1e300)), msg(event(ts=-1e300)), msg(event(ts="0001-01-01T00:00:00+01:00"))]
    )
    assert reasons(batch) == dict.fromkeys(range(3), "timestamp_out_of_range")


def test_schema_config_accepts_the_new_keys() -> None:
    """The new schema keys have their defaults and are validated."""
    default = SchemaConfig()
    assert (default.ts_unit, default.timestamp_source) == ("auto", "event")
    assert default.max_past_seconds == 30 * 86_400 and default.max_future_seconds == 3_600
    none = SchemaConfig(max_past_seconds=None, max_future_seconds=None)
    assert none.max_past_seconds is None and none.max_future_seconds is None
    with pytest.raises(ValidationError):
        SchemaConfig(ts_unit="minutes")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        SchemaConfig(timestamp_source="broker")  # type: ignore[arg-type]


def test_label_decoder_reads_numeric_strings_and_refuses_other_labels() -> None:
    """Label events share the tolerance: "1" is a label, "yes" is a missing label."""
    decoder_ = LabelDecoder(LabelsConfig(enabled=True), SCHEMA)
    batch = decoder_.decode(
        [
            msg({"id": "a", "ts": NOW, "label": "1"}),
            msg({"id": "b", "ts": NOW, "label": "yes"}),
            json.dumps({"id": "c", "ts": NOW, "label": math.nan}).encode(),
            msg({"id": "d", "ts": NOW * 1000, "label": 0}),
        ],
        now=NOW,
    )
    assert batch.ids == ["a", "d"]
    np.testing.assert_array_equal(batch.label, [1.0, 0.0])
    assert [(r.index, r.reason) for r in batch.rejections] == [
        (1, "missing_label"),
        (2, "missing_label"),
    ]
    assert "not a number" in batch.rejections[0].detail


# --- properties --------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

NUMBERS = st.floats(-1e12, 1e12, allow_nan=False) | st.integers(-(2**70), 2**70) | st.none()
NUMERIC_TEXT = st.sampled_from(["12638.0", " 41 ", "-1e3", ".5", "1.", "NaN", "-inf", "1e999"])
# Values a numeric field may hold: numbers, NaN/Infinity literals, numeric and other strings.
LITERALS = st.sampled_from([math.nan, math.inf, -math.inf])  # json.dumps: NaN, Infinity
NUMBER_LIKE = (
    NUMBERS
    | LITERALS
    | NUMBERS.filter(lambda v: v is not None).map(str)
    | NUMERIC_TEXT
    | st.text(max_size=6)
    | st.booleans()
)
CATEGORIES = st.sampled_from(["salaried", "contract", "west", "north", ""]) | st.none()
ISO_TIMES = st.builds(
    lambda d, tz: d.replace(tzinfo=tz).isoformat(),
    st.datetimes(min_value=datetime(2026, 10, 15), max_value=datetime(2026, 11, 18, 14)),
    st.sampled_from([UTC, timezone(timedelta(hours=-5)), None]),
)
SECONDS = st.floats(NOW - 32 * 86_400, NOW + 2 * 3600)
EPOCHS = (
    SECONDS
    | SECONDS.map(int)
    | SECONDS.map(lambda t: int(t * 1e3))
    | SECONDS.map(lambda t: int(t * 1e6))
    | SECONDS.map(lambda t: int(t * 1e9))
)
TIMES = (
    EPOCHS
    | EPOCHS.map(str)
    | ISO_TIMES
    | st.sampled_from(["20261118", "1e9", "nan", " 1795000000 ", "2026-11-18", math.inf])
    # the auto unit's edges (inside the window only when the wall clock is off)
    | st.sampled_from([1e11 - 1, 1e11, 10**14 - 1, 10**14, 10**17 - 16, 10**17, "99999999999"])
)
FIELDS = ("id", "ts", "model", "model_version", "features", "prediction", "label")
MISSING = object()


# Built once: a strategy made inside the composite would be built and validated again on
# every draw, which was most of this module's time.
BROKEN_FIELDS: st.SearchStrategy[set[str]] = st.just(set()) | st.sets(
    st.sampled_from([*FIELDS, *NUMERIC, "cat"]), max_size=2
)
BROKEN_VALUES = st.just(MISSING) | JSON_VALUES | NUMBER_LIKE
NUMBER_VALUES = NUMBERS | NUMBER_LIKE
CATEGORY_VALUES = CATEGORIES | st.integers() | st.booleans() | LITERALS
REGIONS = CATEGORIES | st.just(MISSING)
IDS = st.text(max_size=10) | st.integers() | st.sampled_from(["i" * 256, "i" * 257])
MODEL_NAMES = st.sampled_from(["m1", "m2", None])
MODEL_VERSIONS = st.sampled_from(["v1", "v2", None])
PREDICTIONS = st.floats(0, 1) | NUMBER_LIKE
LABELS = st.integers(0, 1) | st.none() | NUMERIC_TEXT


@st.composite
def event_like(draw: st.DrawFn) -> Any:
    """An event, its values of every kind, with one or two broken fields half of the time."""
    broken = draw(BROKEN_FIELDS)

    def value(name: str, good: st.SearchStrategy[Any]) -> Any:
        if name in broken:
            return draw(BROKEN_VALUES)
        return draw(good)

    features = {
        "income": value("income", NUMBER_VALUES),
        "age": value("age", NUMBER_VALUES),
        "employment_type": value("cat", CATEGORY_VALUES),
        "region": draw(REGIONS),
    }
    out = {
        "id": value("id", IDS),
        "ts": value("ts", TIMES),
        "model": value("model", MODEL_NAMES),
        "model_version": value("model_version", MODEL_VERSIONS),
        "features": value(
            "features", st.just({k: v for k, v in features.items() if v is not MISSING})
        ),
        "prediction": value("prediction", PREDICTIONS),
        "label": value("label", LABELS),
    }
    return {k: v for k, v in out.items() if v is not MISSING}


def encode(value: Any) -> bytes:
    """JSON text by the stdlib: big integers survive, non-finite floats become NaN/Infinity."""
    return json.dumps(value).encode()


MESSAGES = st.lists(
    st.one_of(
        event_like().map(encode),
        event_like().map(encode),
        event_like().map(encode),
        st.lists(event_like(), min_size=1, max_size=3).map(encode),
        JSON_VALUES.map(encode),
        st.binary(max_size=40),
        st.none(),
    ),
    max_size=12,
)
SCHEMA_OPTIONS = st.fixed_dictionaries(
    {
        "strict": st.booleans(),
        "ts_unit": st.sampled_from(["auto", "auto", "s", "ms", "us", "ns"]),
        "timestamp_source": st.sampled_from(["event", "kafka"]),
        "max_past_seconds": st.sampled_from([30 * 86_400.0, None]),
        "max_future_seconds": st.sampled_from([3_600.0, None]),
    }
)
DECODER_OPTIONS = st.fixed_dictionaries(
    {
        "require_id": st.booleans(),
        "model": st.sampled_from([None, "m1"]),
        "check_wall_clock": st.booleans(),
    }
)
KAFKA_TIMES = st.none() | SECONDS | st.sampled_from([math.nan, -0.001, 0.0, NOW * 1000])


def assert_accounted(batch: DecodedBatch, n_messages: int) -> None:
    """Each message is either accepted (rows) or rejected once, and the columns line up."""
    accepted = set(batch.source_index.tolist())
    rejected = [r.index for r in batch.rejections]
    assert len(rejected) == len(set(rejected))
    assert accepted.isdisjoint(rejected)
    assert len(accepted) + len(rejected) == n_messages
    assert all(r.reason in REASONS for r in batch.rejections)
    assert all(reason in INVALID_REASONS for _, reason in batch.invalid)
    assert all(count > 0 for count in batch.invalid.values())
    n = len(batch)
    assert len(batch.ts) == len(batch.models) == len(batch.segment_keys) == n
    assert batch.numeric.shape[0] == n
    assert len(batch.prediction) == len(batch.label) == len(batch.source_index) == n
    assert all(len(col) == n for col in batch.categorical.values())
    assert np.isfinite(batch.ts).all()
    assert not np.isinf(batch.numeric).any() and not np.isinf(batch.prediction).any()


@settings(max_examples=150, deadline=None)
@given(MESSAGES, SCHEMA_OPTIONS, DECODER_OPTIONS, st.data())
def test_agrees_with_the_per_event_oracle(
    messages: list[bytes | None],
    schema_options: dict[str, Any],
    options: dict[str, Any],
    data: st.DataObject,
) -> None:
    """Same rows, refusals (by reason) and bad-value counts as the oracle, under every option."""
    _check_against_the_oracle(messages, schema_options, options, data)


@pytest.mark.slow
@settings(max_examples=250, deadline=None)
@given(MESSAGES, SCHEMA_OPTIONS, DECODER_OPTIONS, st.data())
def test_agrees_with_the_per_event_oracle_on_more_examples(
    messages: list[bytes | None],
    schema_options: dict[str, Any],
    options: dict[str, Any],
    data: st.DataObject,
) -> None:
    """The same agreement on 250 more random batches (the whole suite; the fast tier runs 150)."""
    _check_against_the_oracle(messages, schema_options, options, data)


def _check_against_the_oracle(
    messages: list[bytes | None],
    schema_options: dict[str, Any],
    options: dict[str, Any],
    data: st.DataObject,
) -> None:
    paths = SCHEMA.model_copy(update=schema_options)
    kafka_ts = data.draw(
        st.none() | st.lists(KAFKA_TIMES, min_size=len(messages), max_size=len(messages))
    )
    cats = (*CATEGORICAL, "region")
    fast = Decoder(paths, NUMERIC, cats, now=NOW, **options).decode(messages, kafka_ts=kafka_ts)
    slow = OracleDecoder(paths, NUMERIC, cats, now=NOW, **options).decode(
        messages, kafka_ts=kafka_ts
    )
    assert_accounted(fast, len(messages))
    assert reasons(fast) == reasons(slow)
    assert fast.ids == slow.ids
    assert fast.models == slow.models
    assert fast.segment_keys == slow.segment_keys
    assert fast.categorical == slow.categorical
    assert fast.invalid == slow.invalid
    np.testing.assert_array_equal(fast.source_index, slow.source_index)
    np.testing.assert_array_equal(fast.ts, slow.ts)
    np.testing.assert_array_equal(fast.numeric, slow.numeric)
    np.testing.assert_array_equal(fast.prediction, slow.prediction)
    np.testing.assert_array_equal(fast.label, slow.label)
    if paths.strict:
        assert fast.invalid == {}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=64) | JSON_VALUES.map(encode), max_size=20))
def test_arbitrary_bytes_and_json_never_raise(messages: list[bytes]) -> None:
    """Arbitrary bytes and arbitrary JSON values never raise; accounting adds up."""
    assert_accounted(decoder().decode(messages), len(messages))


def test_message_size_cap_comes_from_the_schema() -> None:
    """schema.max_message_bytes refuses a larger message unparsed; a smaller one decodes."""
    small = msg(event(id="small"))
    limited = decoder(schema(max_message_bytes=len(small)))
    batch = limited.decode([small, msg(event(id="bigger-than-the-cap"))])
    assert batch.ids == ["small"]
    assert reasons(batch) == {1: "too_large"}
    assert "schema.max_message_bytes" in batch.rejections[0].detail


def test_features_per_event_cap_refuses_the_event_alone() -> None:
    """An event over schema.max_features_per_event is refused with the count in its detail."""
    flooded = with_features(**{f"f{i}": i for i in range(10)})
    batch = decoder(schema(max_features_per_event=8)).decode([msg(event()), msg(flooded)])
    assert reasons(batch) == {1: "too_many_features"}
    assert "14 keys" in batch.rejections[0].detail
    assert "schema.max_features_per_event 8" in batch.rejections[0].detail
    assert batch.ids == ["req-1"]


def test_features_cap_counts_the_event_keys_when_features_are_top_level() -> None:
    """With features at the event's top level, the cap counts the event's own keys."""
    top = schema(features="", segment_by=["model_version"], max_features_per_event=9)
    flat = {"id": "a", "ts": NOW - 1, "model": "m", "income": 1.0, "age": 2}
    flooded = {**flat, **{f"x{i}": 1 for i in range(5)}}
    batch = Decoder(top, NUMERIC, (), now=NOW).decode([msg(flat), msg(flooded)])
    assert reasons(batch) == {1: "too_many_features"}
    np.testing.assert_array_equal(batch.numeric, [[1.0, 2.0]])


def test_feature_objects_are_handed_back_for_accepted_events_only() -> None:
    """keep_feature_objects returns each accepted event's features object, in row order."""
    messages = [
        msg(with_features(income=1.0)),
        msg(event(features=None)),
        msg([with_features(income=2.0), with_features(income=3.0)]),
    ]
    batch = decoder(keep_feature_objects=True).decode(messages)
    assert batch.feature_objects is not None
    assert [f["income"] for f in batch.feature_objects] == [1.0, 2.0, 3.0]
    assert decoder().decode(messages).feature_objects is None


def test_unexpected_names_can_be_left_unreported() -> None:
    """report_unexpected=False does not look for names the decoder does not read."""
    messages = [msg(with_features(brand_new=1.0))]
    assert decoder().decode(messages).unexpected == {"brand_new": 1}
    assert decoder(report_unexpected=False).decode(messages).unexpected == {}


def test_unexpected_names_are_cut_to_the_configured_length() -> None:
    """An unexpected name longer than schema.max_name_length is reported cut to it."""
    long_name = "n" * 50
    batch = decoder(schema(max_name_length=10)).decode([msg(with_features(**{long_name: 1}))])
    assert batch.unexpected == {"n" * 10: 1}
