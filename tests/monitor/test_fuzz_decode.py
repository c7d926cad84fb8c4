"""Fuzzing the decoder: hostile bytes never raise, are refused once by reason, spare batch-mates.

Every batch mixes valid events with garbage: arbitrary bytes and structured mutations
of valid events (truncation, byte flips, invalid UTF-8, deep nesting, out-of-range
numbers, NaN/Infinity literals, numeric strings, wrong types in single fields,
duplicate keys, oversized and empty messages, timestamps out of the window). Whatever
comes in, ``decode`` returns; each message is accepted or refused exactly once, with a
reason from ``REASONS``, its bad values (if accepted) counted by field in ``invalid``;
and each message comes out exactly as it does when decoded alone, counts included, so
one bad message can never change or drop another.

NaN and infinity: JSON has no such numbers, but Python's ``json.dumps`` writes the
``NaN`` / ``Infinity`` / ``-Infinity`` literals. They are accepted as missing values
(counted ``not_finite`` for their field); any other number beyond float64 (``1e999``,
a 400-digit integer) is still ``invalid_json``. An accepted number is always finite:
NaN in a column means null, absent or a bad value, never a number.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.config import SchemaConfig
from monitor.ingest.decode import (
    INVALID_REASONS,
    MAX_ID_LENGTH,
    MAX_MESSAGE_BYTES,
    REASONS,
    DecodedBatch,
    Decoder,
)
from monitor.ingest.discovery import CANDIDATES_PER_FEATURE, FeatureDiscovery
from monitor.ingest.values import MAX_TEXT_DEPTH

NOW = 1_795_000_000.0
SCHEMA = SchemaConfig(segment_by=["model_version", "features.region"])
STRICT = SchemaConfig(segment_by=["model_version", "features.region"], strict=True)
PAST, FUTURE = 30 * 86_400.0, 3_600.0  # the schema's wall-clock window
NUMERIC = ("income", "age")
CATEGORICAL = ("employment_type", "region")
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

Message = bytes | None
ANY = "any"  # expectation: no particular outcome, only the general properties
OK = "ok"  # expectation: accepted


Make = Callable[[], Decoder]


def decoder() -> Decoder:
    """The decoder under test, as the pipeline builds it, with a fixed clock."""
    return Decoder(SCHEMA, NUMERIC, CATEGORICAL, now=NOW)


def strict_decoder() -> Decoder:
    """A strict decoder that also knows its model, so that every reason can occur."""
    return Decoder(STRICT, NUMERIC, CATEGORICAL, now=NOW, model="credit-risk")


def event(**overrides: Any) -> dict[str, Any]:
    """A valid event; ``overrides`` replace top-level keys (``...`` drops one)."""
    base: dict[str, Any] = {
        "id": "req-1",
        "ts": NOW - 10,
        "model": "credit-risk",
        "model_version": "v3",
        "features": {"income": 50_000.0, "age": 41, "employment_type": "salaried", "region": "w"},
        "prediction": 0.25,
        "label": 1,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


def feature(**overrides: Any) -> dict[str, Any]:
    """A valid event with some feature values replaced."""
    return event(features={**event()["features"], **overrides})


SLOT = "\x00slot"


def with_token(obj: dict[str, Any], token: bytes) -> bytes:
    """``obj`` as JSON with the value ``SLOT`` (wherever it sits) replaced by raw ``token``."""
    text = orjson.dumps(obj)
    marker = orjson.dumps(SLOT)
    assert text.count(marker) == 1
    return text.replace(marker, token)


def nested(depth: int, inner: bytes = b"1") -> bytes:
    """``inner`` inside ``depth`` JSON arrays."""
    return b"[" * depth + inner + b"]" * depth


# --- what must hold for every batch ---------------------------------------------------


def reasons(batch: DecodedBatch) -> dict[int, str]:
    """Message index -> rejection reason."""
    return {r.index: r.reason for r in batch.rejections}


def rows_of(batch: DecodedBatch, index: int) -> dict[str, Any]:
    """Everything the batch holds for message ``index``, as plain comparable values."""
    keep = np.flatnonzero(batch.source_index == index).tolist()
    return {
        "ids": [batch.ids[i] for i in keep],
        "ts": batch.ts[keep].tolist(),
        "models": [batch.models[i] for i in keep],
        "keys": [batch.segment_keys[i] for i in keep],
        # repr keeps NaN comparable (nan != nan) and tells 0.0 from -0.0.
        "numeric": repr(batch.numeric[keep].tolist()),
        "categorical": {k: [v[i] for i in keep] for k, v in batch.categorical.items()},
        "prediction": repr(batch.prediction[keep].tolist()),
        "label": repr(batch.label[keep].tolist()),
    }


def assert_accounted(batch: DecodedBatch, n_messages: int) -> None:
    """Each message is accepted or refused exactly once, by a known reason; columns line up."""
    accepted = set(batch.source_index.tolist())
    rejected = [r.index for r in batch.rejections]
    assert len(rejected) == len(set(rejected))
    assert all(0 <= i < n_messages for i in rejected)
    assert accepted.isdisjoint(rejected)
    assert accepted | set(rejected) == set(range(n_messages))
    assert all(r.reason in REASONS for r in batch.rejections)
    assert all(isinstance(r.detail, str) and r.detail for r in batch.rejections)
    fields = {*NUMERIC, *CATEGORICAL, SCHEMA.prediction, SCHEMA.label}
    assert all(f in fields and r in INVALID_REASONS for f, r in batch.invalid)
    # At most one bad value per field and accepted event.
    assert all(0 < count <= len(batch) for count in batch.invalid.values())
    n = len(batch)
    assert len(batch.ts) == len(batch.models) == len(batch.segment_keys) == n
    assert batch.numeric.shape == (n, len(NUMERIC))
    assert len(batch.prediction) == len(batch.label) == len(batch.source_index) == n
    assert all(len(col) == n for col in batch.categorical.values())
    assert list(batch.source_index) == sorted(batch.source_index)


def assert_numbers_sane(batch: DecodedBatch) -> None:
    """No accepted number is infinite, and every accepted timestamp is finite."""
    assert np.isfinite(batch.ts).all()
    for column in (batch.numeric, batch.prediction, batch.label):
        assert not np.isinf(column).any()


def assert_batch_independent(messages: list[Message], batch: DecodedBatch, make: Make) -> None:
    """Each message fares in the batch exactly as it does decoded alone; its counts add up."""
    refused = {r.index: r for r in batch.rejections}
    counts: dict[tuple[str, str], int] = {}
    for index, message in enumerate(messages):
        alone = make().decode([message])
        if alone.rejections:
            (solo,) = alone.rejections
            assert index in refused, f"message {index} refused alone but accepted in a batch"
            assert (refused[index].reason, refused[index].detail) == (solo.reason, solo.detail)
            assert alone.invalid == {}
        else:
            assert index not in refused, f"message {index} accepted alone, refused in a batch"
            assert rows_of(batch, index) == rows_of(alone, 0)
            for key, count in alone.invalid.items():
                counts[key] = counts.get(key, 0) + count
    assert batch.invalid == counts


def check(messages: list[Message], expected: list[str], make: Make = decoder) -> DecodedBatch:
    """Decode the batch and check every property, and each message's expected outcome."""
    batch = make().decode(messages)
    assert_accounted(batch, len(messages))
    assert_numbers_sane(batch)
    assert_batch_independent(messages, batch, make)
    got = reasons(batch)
    for index, want in enumerate(expected):
        if want == OK:
            assert index not in got, (index, messages[index], got.get(index))
        elif want != ANY:
            assert got.get(index) == want, (index, messages[index])
    return batch


# --- strategies -----------------------------------------------------------------------

FINITE = st.floats(allow_nan=False, allow_infinity=False)
NUMBERS = FINITE | st.integers(-(2**63), 2**64 - 1) | st.none()
INT64 = st.integers(-(2**63), 2**63 - 1)
SEGMENT_VALUES = st.sampled_from(["v3", "v4"]) | st.text(max_size=12) | INT64 | st.none()


# Strategies are built once, here, not inside the composites: one built there is built
# and validated again on every draw, which was most of this module's time.
VALID_TIMES = (
    st.floats(NOW - PAST, NOW + FUTURE)
    | st.integers(int(NOW - PAST) + 1, int(NOW))
    | st.integers(int(NOW - PAST) + 1, int(NOW)).map(lambda t: t * 1_000)
    | st.integers(int(NOW - PAST) + 1, int(NOW)).map(str)
)
CATEGORY_VALUES = st.text(max_size=8) | INT64 | st.booleans() | st.none()
IDS = st.text(max_size=20) | st.integers(-(2**63), 2**64 - 1)
MODELS = st.sampled_from(["credit-risk", "fraud"]) | st.text(max_size=8)


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    """An event the decoder must accept: every value of the right type and in range."""
    ts: Any = draw(VALID_TIMES)
    features = {
        "income": draw(NUMBERS),
        "age": draw(NUMBERS),
        "employment_type": draw(CATEGORY_VALUES),
        "region": draw(SEGMENT_VALUES),
    }
    out = {
        "id": draw(IDS),
        "ts": ts,
        "model": draw(MODELS),
        "model_version": draw(SEGMENT_VALUES),
        "features": {k: v for k, v in features.items() if draw(st.booleans()) or v is not None},
        "prediction": draw(NUMBERS),
        "label": draw(st.sampled_from([0, 1, None])),
    }
    return {k: v for k, v in out.items() if v is not None or draw(st.booleans())}


VALID = valid_events().map(orjson.dumps)
DEEP = nested(1_000)  # parses (orjson allows 1024 levels); str() of it would overflow the stack
HUGE = b'{"id":"x","pad":"' + b"a" * MAX_MESSAGE_BYTES + b'"}'
INVALID_UTF8 = [b"\xff", b"\x80", b"\xc0\x80", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xc3"]
FIELD_SLOTS: list[tuple[str, Callable[[Any], dict[str, Any]]]] = [
    ("id", lambda v: event(id=v)),
    ("ts", lambda v: event(ts=v)),
    ("model", lambda v: event(model=v)),
    ("model_version", lambda v: event(model_version=v)),
    ("features", lambda v: event(features=v)),
    ("income", lambda v: feature(income=v)),
    ("age", lambda v: feature(age=v)),
    ("employment_type", lambda v: feature(employment_type=v)),
    ("region", lambda v: feature(region=v)),
    ("prediction", lambda v: event(prediction=v)),
    ("label", lambda v: event(label=v)),
]
# Raw JSON tokens to put where a field's value goes, with the outcome when it is certain.
TOKENS: list[tuple[bytes, str]] = [
    (b"1e999", "invalid_json"),
    (b"-1e400", "invalid_json"),
    (b"9" * 400, "invalid_json"),
    (b"NaN", ANY),  # missing where a number belongs; elsewhere as the field's checks say
    (b"Infinity", ANY),
    (b"-Infinity", ANY),
    (b"NaN,", "invalid_json"),  # a literal does not mend broken JSON
    (b"Infinity 1", "invalid_json"),
    (b'NaN, "x": "\\ud800"', "invalid_json"),
    (b'NaN, "x": 1e999', "invalid_json"),
    (b"-NaN", "invalid_json"),
    (b"+Infinity", "invalid_json"),
    (b"nan", "invalid_json"),
    (b"inf", "invalid_json"),
    (b'"\\ud800"', "invalid_json"),
    (str(2**200).encode(), ANY),
    (str(-(2**70)).encode(), ANY),
    (b"1e-400", ANY),
    (b"-0", ANY),
    (b'"12.5"', ANY),
    (b'"NaN"', ANY),
    (b'" 1e3 "', ANY),
    (b'"1795000000"', ANY),
    (b'"abc"', ANY),
    (b"true", ANY),
    (b"null", ANY),
    (b"{}", ANY),
    (b"[]", ANY),
    (nested(900), ANY),
    (b'"' + b"x" * (MAX_ID_LENGTH + 1) + b'"', ANY),
    (b'"\xe2\x80\xae\xf0\x9f\x92\xa3"', ANY),  # RTL override + emoji: valid UTF-8
]


DUPLICATE_VALUES = st.none() | st.text(max_size=5) | FINITE | st.booleans()
NUMERIC_STRINGS = st.sampled_from(["12638.0", "-1e3", " 7 ", "NaN", "1e999"]) | NUMBERS
BAD_VALUES = st.booleans() | st.text(max_size=5) | st.just({"a": 1}) | st.just([1])
FAR_TIMES = (
    st.sampled_from([NOW + 10 * 365 * 86_400, -1.0, 0, (NOW + 86_400) * 1000, 1e300])
    | st.sampled_from([(NOW - 40 * 86_400) * 1e6, str(int(NOW) - 40 * 86_400)])
    | st.sampled_from(["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[Message, str]:
    """A valid event broken in one structured way, with the outcome when it is certain."""
    good = draw(VALID)
    kind = draw(
        st.sampled_from(
            [
                "truncate",
                "flip",
                "utf8",
                "wrap",
                "token",
                "dup",
                "empty",
                "huge",
                "non_object",
                "timestamp",
                "literal",
                "numeric_string",
                "bad_value",
            ]
        )
    )
    if kind == "truncate":
        cut = draw(st.integers(0, len(good) - 1))
        return good[:cut], "empty" if cut == 0 else "invalid_json"
    if kind == "flip":
        at = draw(st.integers(0, len(good) - 1))
        mask = draw(st.integers(1, 255))
        flipped = bytearray(good)
        flipped[at] ^= mask
        return bytes(flipped), ANY
    if kind == "utf8":
        at = draw(st.integers(0, len(good)))
        return good[:at] + draw(st.sampled_from(INVALID_UTF8)) + good[at:], "invalid_json"
    if kind == "wrap":
        depth = draw(st.sampled_from([1, 2, 3, 100, 1_030, 10_000]))
        expected = OK if depth == 1 else "not_an_object" if depth < 1_000 else "invalid_json"
        return nested(depth, good), expected
    if kind == "token":
        _, build = draw(st.sampled_from(FIELD_SLOTS))
        token, expected = draw(st.sampled_from(TOKENS))
        return with_token(build(SLOT), token), expected
    if kind == "dup":
        key = draw(st.sampled_from(["id", "ts", "features", "prediction"]))
        value = draw(DUPLICATE_VALUES)
        # The later duplicate wins, exactly as if the object held only that value.
        return good[:-1] + b"," + orjson.dumps(key) + b":" + orjson.dumps(value) + b"}", ANY
    if kind == "empty":
        return draw(st.sampled_from([b"", None])), "empty"
    if kind == "huge":
        return HUGE, "too_large"
    if kind == "non_object":
        return draw(
            st.sampled_from([b"42", b'"text"', b"true", b"null", b"[]", b"[1]", b"[{}, 2]"])
        ), "not_an_object"
    doc = orjson.loads(good)
    features = doc.setdefault("features", {})
    if kind in ("literal", "numeric_string", "bad_value"):
        # One value of a numeric or categorical field replaced: the event is kept.
        name = draw(st.sampled_from([*NUMERIC, *CATEGORICAL, "prediction", "label"]))
        bad: Any
        if kind == "literal":
            bad = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
        elif kind == "numeric_string":
            bad = draw(NUMERIC_STRINGS)
            bad = bad if isinstance(bad, str) else str(bad)
        else:
            bad = draw(BAD_VALUES)
        (doc if name in ("prediction", "label") else features)[name] = bad
        return json.dumps(doc).encode(), OK
    far = draw(FAR_TIMES)
    doc["ts"] = far
    return orjson.dumps(doc), "timestamp_out_of_range"


ARBITRARY = st.binary(max_size=64).map(lambda b: (b, ANY))
BATCHES = st.lists(
    st.one_of(VALID.map(lambda b: (b, OK)), mutated(), ARBITRARY),
    max_size=10,
)


# --- properties -----------------------------------------------------------------------


@FUZZ
@given(BATCHES)
def test_mixed_batches_never_raise_and_lose_nothing(batch: list[tuple[Message, str]]) -> None:
    """Valid events mixed with mutated ones and random bytes: every property holds."""
    messages = [m for m, _ in batch]
    check(messages, [e for _, e in batch])


@FUZZ
@given(BATCHES)
def test_strict_batches_keep_every_property(batch: list[tuple[Message, str]]) -> None:
    """Strict and knowing its model: every property holds; bad values refuse, never count."""
    decoded = check([m for m, _ in batch], [], strict_decoder)
    assert decoded.invalid == {}


LITERALS = st.sampled_from([math.nan, math.inf, -math.inf])


@FUZZ
@given(st.lists(valid_events(), min_size=1, max_size=6), st.data())
def test_literals_are_missing_and_counted_per_field(
    events: list[dict[str, Any]], data: Any
) -> None:
    """NaN/Infinity literals are missing for their field alone, counted; the rest is intact."""
    expected: dict[tuple[str, str], int] = {}
    messages: list[Message] = []
    replaced: list[set[str]] = []
    for e in events:
        names = data.draw(st.sets(st.sampled_from([*NUMERIC, "prediction", "label"])))
        for name in names:
            target = e if name in ("prediction", "label") else e["features"]
            target[name] = data.draw(LITERALS)
            expected[name, "not_finite"] = expected.get((name, "not_finite"), 0) + 1
        messages.append(json.dumps(e).encode())
        replaced.append(names)
    batch = check(messages, [OK] * len(messages))
    assert batch.invalid == expected
    for row, (e, names) in enumerate(zip(events, replaced, strict=True)):
        for j, name in enumerate(NUMERIC):
            value = None if name in names else e["features"].get(name)
            got = batch.numeric[row, j]
            assert math.isnan(got) if value is None else got == float(value)


@FUZZ
@given(st.lists(st.binary(max_size=200) | st.none(), max_size=12))
def test_arbitrary_bytes_never_raise(messages: list[Message]) -> None:
    """Arbitrary bytes (and tombstones) are each accounted for, whatever they hold."""
    check(messages, [])


@FUZZ
@given(st.lists(valid_events(), min_size=1, max_size=8), st.data())
def test_valid_events_decode_to_their_values(events: list[dict[str, Any]], data: Any) -> None:
    """Valid events among garbage come out with exactly their own values; NaN only where null."""
    garbage = data.draw(st.lists(mutated().map(lambda m: m[0]) | st.binary(max_size=32)))
    slots = data.draw(st.permutations(range(len(events) + len(garbage))))
    messages: list[Message] = [None] * len(slots)
    for i, slot in enumerate(slots):
        messages[slot] = orjson.dumps(events[i]) if i < len(events) else garbage[i - len(events)]
    batch = check(messages, [])
    for i, e in enumerate(events):
        rows = np.flatnonzero(batch.source_index == slots[i])
        assert len(rows) == 1, "a valid event was lost"
        row = int(rows[0])
        assert batch.ids[row] == str(e["id"])
        for j, name in enumerate(NUMERIC):
            value = e.get("features", {}).get(name)
            got = batch.numeric[row, j]
            assert math.isnan(got) if value is None else got == float(value)
        for name, column in (("prediction", batch.prediction), ("label", batch.label)):
            value = e.get(name)
            assert math.isnan(column[row]) if value is None else column[row] == float(value)


@settings(max_examples=60, deadline=None)
@given(st.lists(VALID, min_size=1, max_size=5), st.integers(0, 5))
def test_array_messages_are_all_or_nothing(events: list[bytes], bad_at: int) -> None:
    """An array message with one hostile object is refused whole; its neighbours are untouched."""
    hostile = with_token(event(model_version=SLOT), DEEP)
    parts = [*events[:bad_at], hostile, *events[bad_at:]]
    array = b"[" + b",".join(parts) + b"]"
    messages: list[Message] = [events[0], array, events[-1]]
    batch = check(messages, [OK, "wrong_type", OK])
    assert 1 not in batch.source_index.tolist()


# --- one named case per hostile input -------------------------------------------------

CASES: list[tuple[str, Message, str]] = [
    ("arbitrary bytes", b"\x00\x01\x02garbage", "invalid_json"),
    ("truncated event", orjson.dumps(event())[:25], "invalid_json"),
    ("truncated to one byte", b"{", "invalid_json"),
    ("first byte flipped", b"z" + orjson.dumps(event())[1:], "invalid_json"),
    ("invalid UTF-8 in a string", with_token(event(model=SLOT), b'"cr\xffedit"'), "invalid_json"),
    ("invalid UTF-8 between tokens", orjson.dumps(event()) + b"\xc3", "invalid_json"),
    ("overlong UTF-8 encoding", with_token(event(id=SLOT), b'"\xc0\xaf"'), "invalid_json"),
    ("UTF-8 encoded surrogate", with_token(event(id=SLOT), b'"\xed\xa0\x80"'), "invalid_json"),
    ("lone surrogate escape", with_token(event(id=SLOT), b'"\\udc00"'), "invalid_json"),
    ("10,000 levels of [", b"[" * 10_000, "invalid_json"),
    ("10,000 balanced levels", nested(10_000, orjson.dumps(event())), "invalid_json"),
    ("event wrapped twice", nested(2, orjson.dumps(event())), "not_an_object"),
    ("deep array as model", with_token(event(model=SLOT), DEEP), "wrong_type"),
    ("deep array as segment", with_token(event(model_version=SLOT), DEEP), "wrong_type"),
    ("deep array as feature segment", with_token(feature(region=SLOT), DEEP), "wrong_type"),
    ("deep array as id", with_token(event(id=SLOT), DEEP), "missing_id"),
    ("deep array as timestamp", with_token(event(ts=SLOT), DEEP), "bad_timestamp"),
    ("deep array as features", with_token(event(features=SLOT), DEEP), "missing_features"),
    ("deep array as numeric feature", with_token(feature(income=SLOT), DEEP), OK),
    ("deep array as category", with_token(feature(employment_type=SLOT), DEEP), OK),
    ("1e999 as a feature", with_token(feature(income=SLOT), b"1e999"), "invalid_json"),
    ("-1e400 as prediction", with_token(event(prediction=SLOT), b"-1e400"), "invalid_json"),
    ("400-digit integer", with_token(feature(age=SLOT), b"9" * 400), "invalid_json"),
    ("2**200 as a feature", with_token(feature(age=SLOT), str(2**200).encode()), OK),
    (
        "2**200 as timestamp",
        with_token(event(ts=SLOT), str(2**200).encode()),
        "timestamp_out_of_range",
    ),
    ("2**200 as id", with_token(event(id=SLOT), str(2**200).encode()), "missing_id"),
    ("2**64 as id", with_token(event(id=SLOT), str(2**64).encode()), "missing_id"),
    ("1e-400 underflows to 0", with_token(feature(income=SLOT), b"1e-400"), OK),
    ("string as numeric feature", orjson.dumps(feature(income="50000")), OK),
    ("string as prediction", orjson.dumps(event(prediction="0.8")), OK),
    ("string as label", orjson.dumps(event(label="1")), OK),
    ("word as numeric feature", orjson.dumps(feature(income="lots")), OK),
    ("digits string as timestamp", orjson.dumps(event(ts=str(int(NOW)))), OK),
    ("digits string as timestamp in ms", orjson.dumps(event(ts=str(int(NOW) * 1000))), OK),
    ("NaN string as timestamp", orjson.dumps(event(ts="NaN")), "bad_timestamp"),
    ("boolean as numeric feature", orjson.dumps(feature(age=True)), OK),
    ("NaN literal", with_token(feature(income=SLOT), b"NaN"), OK),
    ("Infinity literal", with_token(event(prediction=SLOT), b"Infinity"), OK),
    ("-Infinity literal", with_token(event(label=SLOT), b"-Infinity"), OK),
    ("NaN literal as category", with_token(feature(employment_type=SLOT), b"NaN"), OK),
    ("NaN literal as segment", with_token(event(model_version=SLOT), b"NaN"), OK),
    ("NaN literal as timestamp", with_token(event(ts=SLOT), b"NaN"), "bad_timestamp"),
    ("Infinity literal as id", with_token(event(id=SLOT), b"Infinity"), "missing_id"),
    ("NaN literal as features", with_token(event(features=SLOT), b"NaN"), "missing_features"),
    ("NaN literal as the document", b"NaN", "not_an_object"),
    ("NaN literal and a syntax error", with_token(feature(income=SLOT), b"NaN,"), "invalid_json"),
    (
        "NaN literal and a lone surrogate",
        with_token(feature(income=SLOT), b'NaN, "x": "\\udfff"'),
        "invalid_json",
    ),
    ("NaN literal and 1e999", with_token(feature(income=SLOT), b'NaN, "x": 1e999'), "invalid_json"),
    (
        "NaN literal nested too deeply",
        with_token(feature(income=SLOT), nested(1_100, b"NaN")),
        "invalid_json",
    ),
    (
        "NaN literal and invalid UTF-8",
        with_token(feature(income=SLOT), b'NaN, "\xff": 1'),
        "invalid_json",
    ),
    ('"NaN" string as a feature', orjson.dumps(feature(income="NaN")), OK),
    ("duplicate id, null last", orjson.dumps(event())[:-1] + b',"id":null}', "missing_id"),
    ("duplicate id, valid last", b'{"id":null,' + orjson.dumps(event())[1:], OK),
    ("duplicate ts, bad last", orjson.dumps(event())[:-1] + b',"ts":"x"}', "bad_timestamp"),
    ("bigger than the size limit", HUGE, "too_large"),
    ("spaces beyond the size limit", b" " * (MAX_MESSAGE_BYTES + 1), "too_large"),
    ("empty message", b"", "empty"),
    ("tombstone", None, "empty"),
    ("unknown segment value", orjson.dumps(event(model_version="v999-never-seen")), OK),
    ("segment value with commas", orjson.dumps(feature(region="a,b,c")), OK),
    ("object as segment value", orjson.dumps(event(model_version={"a": [1]})), OK),
    (
        "segment nested to the limit",
        with_token(event(model_version=SLOT), nested(MAX_TEXT_DEPTH)),
        OK,
    ),
    (
        "segment nested past the limit",
        with_token(event(model_version=SLOT), nested(MAX_TEXT_DEPTH + 1)),
        "wrong_type",
    ),
    (
        "timestamp 10 years ahead",
        orjson.dumps(event(ts=NOW + 10 * 365 * 86_400)),
        "timestamp_out_of_range",
    ),
    ("timestamp at the epoch", orjson.dumps(event(ts=0)), "timestamp_out_of_range"),
    ("negative timestamp", orjson.dumps(event(ts=-1e300)), "timestamp_out_of_range"),
    ("timestamp in milliseconds", orjson.dumps(event(ts=int(NOW * 1000))), OK),
    ("timestamp in microseconds", orjson.dumps(event(ts=NOW * 1e6)), OK),
    ("timestamp in nanoseconds", orjson.dumps(event(ts=int(NOW) * 10**9)), OK),
    (
        "timestamp in milliseconds, a day ahead",
        orjson.dumps(event(ts=int(NOW + 86_400) * 1000)),
        "timestamp_out_of_range",
    ),
    ("ISO year 1", orjson.dumps(event(ts="0001-01-01T00:00:00+14:00")), "timestamp_out_of_range"),
    (
        "ISO year 9999",
        orjson.dumps(event(ts="9999-12-31T23:59:59-14:00")),
        "timestamp_out_of_range",
    ),
    ("ISO garbage", orjson.dumps(event(ts="2026-13-45T99:99:99Z")), "bad_timestamp"),
    ("number as JSON", b"42", "not_an_object"),
    ("string as JSON", b'"event"', "not_an_object"),
    ("true as JSON", b"true", "not_an_object"),
    ("null as JSON", b"null", "not_an_object"),
    ("empty array", b"[]", "not_an_object"),
    ("array with a number", b"[" + orjson.dumps(event()) + b", 1]", "not_an_object"),
    ("null id", orjson.dumps(event(id=None)), "missing_id"),
    ("absent id", orjson.dumps(event(id=...)), "missing_id"),
    ("boolean id", orjson.dumps(event(id=False)), "missing_id"),
    ("id too long", orjson.dumps(event(id="i" * (MAX_ID_LENGTH + 1))), "bad_id"),
    ("null features", orjson.dumps(event(features=None)), "missing_features"),
    ("features as a list", orjson.dumps(event(features=[1, 2])), "missing_features"),
    (
        "feature-name flood (20,000 names)",
        orjson.dumps(feature(**{f"junk_{i:05d}": i for i in range(20_000)})),
        "too_many_features",
    ),
    (
        "feature-name flood inside an array",
        orjson.dumps([event(), feature(**{f"j{i}": "x" for i in range(1_001)})]),
        "too_many_features",
    ),
    ("features at the cap", orjson.dumps(feature(**{f"j{i}": 1 for i in range(996)})), OK),
]
# For a strict decoder that knows its model ("credit-risk").
STRICT_CASES: list[tuple[str, Message, str]] = [
    ("another model", orjson.dumps(event(model="fraud")), "other_model"),
    ("a model as a number", orjson.dumps(event(model=7)), "other_model"),
    ("an empty model", orjson.dumps(event(model="")), "other_model"),
    ("another model, no id", orjson.dumps(event(model="fraud", id=None)), "other_model"),
    ("null model", orjson.dumps(event(model=None)), OK),
    ("absent model", orjson.dumps(event(model=...)), OK),
    ("string as numeric feature", orjson.dumps(feature(income="50000")), "wrong_type"),
    ("word as prediction", orjson.dumps(event(prediction="high")), "wrong_type"),
    ("boolean as numeric feature", orjson.dumps(feature(age=True)), "wrong_type"),
    ("NaN literal", with_token(feature(income=SLOT), b"NaN"), "wrong_type"),
    ("-Infinity literal as label", with_token(event(label=SLOT), b"-Infinity"), "wrong_type"),
    ("number as category", orjson.dumps(feature(employment_type=1.5)), "wrong_type"),
    ("deep array as numeric feature", with_token(feature(income=SLOT), DEEP), "wrong_type"),
    ("NaN literal as segment", with_token(event(model_version=SLOT), b"NaN"), OK),
]


@pytest.mark.parametrize(
    ("reason", "bad"), [(r, m) for _, m, r in CASES], ids=[n for n, _, _ in CASES]
)
def test_hostile_input_gets_its_reason_and_spares_its_neighbours(reason: str, bad: Message) -> None:
    """Each hostile input gets its exact reason (or is accepted); its neighbours decode intact."""
    neighbours = [orjson.dumps(event(id=f"n{i}")) for i in range(3)]
    messages = [neighbours[0], bad, neighbours[1], bad, neighbours[2]]
    batch = check(messages, [OK, reason, OK, reason, OK])
    assert [i for i in batch.ids if i.startswith("n")] == ["n0", "n1", "n2"]


@pytest.mark.parametrize(
    ("reason", "bad"), [(r, m) for _, m, r in STRICT_CASES], ids=[n for n, _, _ in STRICT_CASES]
)
def test_strict_decoder_refuses_bad_values_and_other_models(reason: str, bad: Message) -> None:
    """Strict and knowing its model, the decoder refuses bad values and other models, alone."""
    neighbours = [orjson.dumps(event(id=f"n{i}")) for i in range(3)]
    messages = [neighbours[0], bad, neighbours[1], bad, neighbours[2]]
    batch = check(messages, [OK, reason, OK, reason, OK], strict_decoder)
    assert [i for i in batch.ids if i.startswith("n")] == ["n0", "n1", "n2"]
    assert batch.invalid == {}


def test_every_reason_has_a_named_case() -> None:
    """The named cases reach every rejection reason the decoder has."""
    named = {reason for _, _, reason in CASES + STRICT_CASES}
    # ahead_of_watermark is refused by the windows, not the decoder (see REASONS).
    assert named - {OK} == set(REASONS) - {"ahead_of_watermark"}


def test_tolerated_values_are_counted_by_field_and_reason() -> None:
    """Each tolerated bad value is counted once for its field, by reason."""
    messages: list[Message] = [
        orjson.dumps(feature(income="lots")),
        with_token(feature(age=SLOT), b"NaN"),
        orjson.dumps(feature(employment_type=[1])),
        orjson.dumps(event(prediction=True)),
        orjson.dumps(event(label="1e999")),
        orjson.dumps(feature(income="50000")),
    ]
    batch = check(messages, [OK] * len(messages))
    assert batch.invalid == {
        ("income", "not_a_number"): 1,
        ("age", "not_finite"): 1,
        ("employment_type", "wrong_type"): 1,
        ("prediction", "wrong_type"): 1,
        ("label", "not_finite"): 1,
    }


def test_millisecond_epoch_detail_hints_at_the_unit() -> None:
    """With epochs set to seconds, one in milliseconds is refused with a hint at the unit."""
    seconds = Decoder(SCHEMA.model_copy(update={"ts_unit": "s"}), NUMERIC, CATEGORICAL, now=NOW)
    batch = seconds.decode([orjson.dumps(event(ts=int(NOW * 1000)))])
    assert "milliseconds" in batch.rejections[0].detail


def test_deep_segment_value_detail_names_the_path() -> None:
    """A segment value nested too deeply to be text is refused, naming its path."""
    plain = Decoder(SCHEMA, NUMERIC, ("employment_type",), now=NOW)  # region only a segment
    batch = plain.decode([with_token(feature(region=SLOT), DEEP), orjson.dumps(event())])
    (rejection,) = batch.rejections
    assert rejection.reason == "wrong_type"
    assert "features.region" in rejection.detail


def test_stdlib_json_with_nan_is_a_missing_value_not_a_number() -> None:
    """``json.dumps`` writes NaN for a float NaN; it is a missing value, counted, never a number."""
    message = json.dumps(feature(income=float("nan"))).encode()
    batch = decoder().decode([message, orjson.dumps(event())])
    assert batch.rejections == []
    assert np.isnan(batch.numeric[0, 0]) and batch.numeric[0, 1] == 41
    assert not np.isnan(batch.numeric[1]).any()
    assert batch.invalid == {("income", "not_finite"): 1}


# --- warm-up discovery under adversarial shapes ---------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | FINITE | INT64 | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)


@FUZZ
@given(
    # Junk names as numbers (an event's own prefix makes each name new to the table):
    # what matters is how many distinct ones an event carries, and numbers draw far
    # faster than text.
    st.lists(st.lists(st.integers(0, 60), max_size=40), min_size=20, max_size=60),
    st.integers(1, 5),
)
def test_a_feature_name_flood_never_grows_the_table_nor_becomes_a_feature(
    junk: list[list[int]], max_features: int
) -> None:
    """Each event carrying its own junk names: the table stays bounded, only real names win."""
    discovery = FeatureDiscovery(SchemaConfig(max_features=max_features, min_feature_share=0.5))
    widest = 2 + max(len(set(names)) for names in junk)
    bound = 2 * max(CANDIDATES_PER_FEATURE * max_features, math.ceil(2 * widest / 0.5))
    for i, names in enumerate(junk):
        flood = {f"junk-{i}-{name}": 1.0 for name in names}
        discovery.observe([{**flood, "income": 1.0, "plan": "a"}])
        assert len(discovery) <= bound
    found = discovery.result()
    monitored = [*found.numeric, *found.categorical]
    assert set(monitored) <= {"income", "plan"}
    assert len(monitored) == min(2, max_features)


@FUZZ
@given(JSON_VALUES, JSON_VALUES, st.integers(2, 40))
def test_a_type_flip_in_the_first_event_decides_nothing(
    first_number: Any, first_word: Any, rest: int
) -> None:
    """Whatever the first event holds, the majority of the warm-up decides each type."""
    discovery = FeatureDiscovery(SchemaConfig())
    discovery.observe([{"income": first_number, "plan": first_word}])
    discovery.observe([{"income": float(i), "plan": "ab"[i % 2]} for i in range(rest)])
    found = discovery.result()
    assert found.numeric == ["income"]
    assert found.categorical == ["plan"]


@FUZZ
@given(st.lists(JSON_VALUES, min_size=1, max_size=8))
def test_discovered_features_decode_every_warm_up_value_without_a_refusal(
    values: list[Any],
) -> None:
    """A learned feature's odd values (any JSON) are invalid values, never refused events."""
    events = [feature(income=float(i), wild=v) for i, v in enumerate(values)]
    events += [feature(income=1.0, wild=2.5)] * (len(values) + 1)
    discovery = FeatureDiscovery(SchemaConfig())
    discovery.observe(e["features"] for e in events)
    found = discovery.result()
    learned = Decoder(SCHEMA, found.numeric, found.categorical, now=NOW)
    batch = learned.decode([orjson.dumps(e) for e in events])
    assert "wild" in found.numeric
    assert batch.rejections == []
    assert sum(batch.invalid.values()) <= len(values)
