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

from monitor.config import SchemaConfig
from monitor.decode import MAX_ID_LENGTH, MAX_MESSAGE_BYTES, REASONS, DecodedBatch, Decoder
from monitor.demo_stream import CATEGORICAL_FEATURES, NUMERIC_FEATURES, DemoStream
from tests.monitor.decode_oracle import OracleDecoder

NOW = 1_795_000_000.0
SCHEMA = SchemaConfig(segment_by=["model_version", "features.region"])
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


def decoder(schema: SchemaConfig = SCHEMA) -> Decoder:
    """The decoder under test, with a fixed clock."""
    return Decoder(schema, NUMERIC, CATEGORICAL, now=NOW)


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
    ("invalid_json", b'{"x": NaN}'),
    ("invalid_json", b'{"x": 1e400}'),
    ("not_an_object", b"42"),
    ("not_an_object", b'"text"'),
    ("not_an_object", b"null"),
    ("not_an_object", b"[]"),
    ("not_an_object", b"[1, 2]"),
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
    ("timestamp_out_of_range", msg(event(ts=NOW * 1000))),
    ("timestamp_out_of_range", msg(event(ts="2000-01-01T00:00:00Z"))),
    ("missing_features", msg(event(features=...))),
    ("missing_features", msg(event(features=None))),
    ("missing_features", msg(event(features=[1, 2]))),
    ("missing_features", msg(event(features="income=3"))),
    ("wrong_type", msg(with_features(income="50000"))),
    ("wrong_type", msg(with_features(income=True))),
    ("wrong_type", msg(with_features(age={"years": 41}))),
    ("wrong_type", msg(event(prediction="high"))),
    ("wrong_type", msg(event(label="yes"))),
    ("wrong_type", msg(with_features(employment_type=1.5))),
    ("wrong_type", msg(with_features(employment_type=["a"]))),
]


@pytest.mark.parametrize(("reason", "bad"), BAD_MESSAGES)
def test_a_bad_message_is_rejected_alone_with_its_reason(reason: str, bad: bytes | None) -> None:
    """A bad message is refused with its reason; its batch-mates decode, mapped back by index."""
    good = [msg(event(id=f"req-{i}")) for i in range(4)]
    batch = decoder().decode([good[0], good[1], bad, good[2], good[3]])
    assert reason in REASONS
    assert reasons(batch) == {2: reason}
    assert batch.ids == ["req-0", "req-1", "req-2", "req-3"]
    np.testing.assert_array_equal(batch.source_index, [0, 1, 3, 4])
    assert len(batch.ts) == len(batch.prediction) == len(batch.segment_keys) == 4
    assert batch.numeric.shape == (4, 2)
    assert all(len(v) == 4 for v in batch.categorical.values())


def test_every_reason_is_covered_by_the_bad_message_table() -> None:
    """The table above exercises every rejection reason the decoder has."""
    assert {reason for reason, _ in BAD_MESSAGES} == set(REASONS)


def test_wrong_type_detail_names_the_field() -> None:
    """A wrong-type rejection says which field held the wrong type."""
    batch = decoder().decode([msg(with_features(age="41")), msg(event(prediction=False))])
    assert "age" in batch.rejections[0].detail
    assert "string" in batch.rejections[0].detail
    assert "prediction" in batch.rejections[1].detail
    assert "boolean" in batch.rejections[1].detail


def test_first_failing_check_gives_the_reason() -> None:
    """A message with several problems is refused once, for the first check it fails."""
    bad = msg(event(id=None, ts="nope", features=None))
    batch = decoder().decode([bad, msg(event(ts="nope", prediction="x"))])
    assert [(r.index, r.reason) for r in batch.rejections] == [
        (0, "missing_id"),
        (1, "bad_timestamp"),
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
    batch = decoder().decode([msg(event(id="x")), array, msg(event(id="y"))])
    assert batch.ids == ["x", "y"]
    np.testing.assert_array_equal(batch.source_index, [0, 2])
    assert [(r.index, r.reason) for r in batch.rejections] == [(1, "wrong_type")]


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
    ],
)
def test_timestamps_iso_and_epoch(ts: Any, expected: float) -> None:
    """ISO times (Z, offsets, none meaning UTC) and epoch seconds decode to epoch seconds."""
    batch = decoder().decode([msg(event(ts=ts))])
    assert batch.rejections == []
    assert batch.ts[0] == expected


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
    past, future = NOW - SCHEMA.max_past_seconds, NOW + SCHEMA.max_future_seconds
    messages = [msg(event(ts=t)) for t in (past, future, past - 0.5, future + 0.5)]
    batch = decoder().decode(messages)
    assert reasons(batch) == {2: "timestamp_out_of_range", 3: "timestamp_out_of_range"}


def test_millisecond_epochs_get_a_hint() -> None:
    """An epoch in milliseconds is out of range, and the detail says so."""
    batch = decoder().decode([msg(event(ts=NOW * 1000))])
    assert "milliseconds" in batch.rejections[0].detail


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
    """The segment key joins the configured paths' values; absent parts are empty."""
    batch = decoder().decode(
        [
            msg(event()),
            msg(event(model_version=...)),
            msg(event(model_version=4)),
            msg(with_features(region=None)),
        ]
    )
    assert batch.segment_keys == ["v3,west", ",west", "4,west", "v3,"]


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
    batch = decoder().decode(messages)
    assert [(r.index, r.reason) for r in batch.rejections] == [
        (0, "missing_id"),
        (1, "empty"),
        (2, "wrong_type"),
        (3, "invalid_json"),
    ]


# --- properties --------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


NUMBERS = st.floats(-1e12, 1e12, allow_nan=False) | st.integers(-(2**70), 2**70) | st.none()
CATEGORIES = st.sampled_from(["salaried", "contract", "west", "north", ""]) | st.none()
ISO_TIMES = st.builds(
    lambda d, tz: d.replace(tzinfo=tz).isoformat(),
    st.datetimes(min_value=datetime(2026, 10, 15), max_value=datetime(2026, 11, 18, 14)),
    st.sampled_from([UTC, timezone(timedelta(hours=-5)), None]),
)
FIELDS = ("id", "ts", "model", "model_version", "features", "prediction", "label")
MISSING = object()


@st.composite
def event_like(draw: st.DrawFn) -> Any:
    """An event that is valid half of the time, with one or two broken fields otherwise."""
    broken = draw(st.just(set()) | st.sets(st.sampled_from([*FIELDS, *NUMERIC, "cat"]), max_size=2))

    def value(name: str, good: st.SearchStrategy[Any]) -> Any:
        if name in broken:
            return draw(st.just(MISSING) | JSON_VALUES)
        return draw(good)

    features = {
        "income": value("income", NUMBERS),
        "age": value("age", NUMBERS),
        "employment_type": value("cat", CATEGORIES | st.integers() | st.booleans()),
        "region": draw(CATEGORIES | st.just(MISSING)),
    }
    out = {
        "id": value(
            "id", st.text(max_size=10) | st.integers() | st.sampled_from(["i" * 256, "i" * 257])
        ),
        "ts": value("ts", st.floats(NOW - 32 * 86_400, NOW + 2 * 3600) | ISO_TIMES),
        "model": value("model", st.sampled_from(["m1", "m2"])),
        "model_version": value("model_version", st.sampled_from(["v1", "v2"])),
        "features": value(
            "features", st.just({k: v for k, v in features.items() if v is not MISSING})
        ),
        "prediction": value("prediction", st.floats(0, 1)),
        "label": value("label", st.integers(0, 1) | st.none()),
    }
    return {k: v for k, v in out.items() if v is not MISSING}


def encode(value: Any) -> bytes:
    """JSON text by the stdlib (so big integers survive and NaN makes invalid JSON)."""
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


def assert_accounted(batch: DecodedBatch, n_messages: int) -> None:
    """Each message is either accepted (rows) or rejected once, and the columns line up."""
    accepted = set(batch.source_index.tolist())
    rejected = [r.index for r in batch.rejections]
    assert len(rejected) == len(set(rejected))
    assert accepted.isdisjoint(rejected)
    assert len(accepted) + len(rejected) == n_messages
    assert all(r.reason in REASONS for r in batch.rejections)
    n = len(batch)
    assert len(batch.ts) == len(batch.models) == len(batch.segment_keys) == n
    assert batch.numeric.shape[0] == n
    assert len(batch.prediction) == len(batch.label) == len(batch.source_index) == n
    assert all(len(col) == n for col in batch.categorical.values())


@settings(max_examples=300, deadline=None)
@given(MESSAGES)
def test_agrees_with_the_per_event_oracle(messages: list[bytes | None]) -> None:
    """Same rows and same refusals (by reason) as the per-event oracle; accounting adds up."""
    cats = (*CATEGORICAL, "region")
    fast = Decoder(SCHEMA, NUMERIC, cats, now=NOW).decode(messages)
    slow = OracleDecoder(SCHEMA, NUMERIC, cats, now=NOW).decode(messages)
    assert_accounted(fast, len(messages))
    assert reasons(fast) == reasons(slow)
    assert fast.ids == slow.ids
    assert fast.models == slow.models
    assert fast.segment_keys == slow.segment_keys
    assert fast.categorical == slow.categorical
    np.testing.assert_array_equal(fast.source_index, slow.source_index)
    np.testing.assert_array_equal(fast.ts, slow.ts)
    np.testing.assert_array_equal(fast.numeric, slow.numeric)
    np.testing.assert_array_equal(fast.prediction, slow.prediction)
    np.testing.assert_array_equal(fast.label, slow.label)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=64) | JSON_VALUES.map(encode), max_size=20))
def test_arbitrary_bytes_and_json_never_raise(messages: list[bytes]) -> None:
    """Arbitrary bytes and arbitrary JSON values never raise; accounting adds up."""
    assert_accounted(decoder().decode(messages), len(messages))
