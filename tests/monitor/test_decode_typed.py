"""The typed fast path (msgspec structs) against the exact path (orjson, dicts).

The decoder reads a message with a msgspec struct built for the schema where it can,
and hands every other message to the exact path. Whatever a batch holds, the result
must be the exact path's: the same columns, the same refusals (reasons and details),
the same counts of bad values and unexpected names. A decoder built with
``keep_feature_objects=True`` (a warm-up's) reads every message the exact way; it is the
reference here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.config import SchemaConfig
from monitor.ingest.decode import DecodedBatch, Decoder
from monitor.ingest.feature_objects import FeatureObjects
from monitor.ingest.typed_rows import GIVE_UP_AFTER, TypedReader

NOW = 1_795_000_000.0
SCHEMA = SchemaConfig(segment_by=["model_version", "features.region"])
STRICT = SchemaConfig(segment_by=["model_version", "features.region"], strict=True)
NUMERIC = ("income", "age")
CATEGORICAL = ("employment_type", "region")
SLOT = "\x00slot{}"


def typed_decoder(schema: SchemaConfig = SCHEMA) -> Decoder:
    """The decoder as the pipeline builds it: msgspec first."""
    return Decoder(schema, NUMERIC, CATEGORICAL, now=NOW, model="credit-risk")


def exact_decoder(schema: SchemaConfig = SCHEMA) -> Decoder:
    """A decoder that reads every message with orjson (a warm-up's keeps the dicts)."""
    return Decoder(
        schema, NUMERIC, CATEGORICAL, now=NOW, model="credit-risk", keep_feature_objects=True
    )


def reader(schema: SchemaConfig = SCHEMA, numeric: tuple[str, ...] = NUMERIC) -> TypedReader:
    """The typed reader the decoder builds for ``schema``."""
    known = FeatureObjects(schema, (*numeric, *CATEGORICAL)).known
    return TypedReader(schema, numeric, CATEGORICAL, known)


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
    """A valid event with some feature values replaced (``...`` drops one)."""
    features = {**event()["features"], **overrides}
    return event(features={k: v for k, v in features.items() if v is not ...})


def with_tokens(obj: dict[str, Any], tokens: list[bytes]) -> bytes:
    """``obj`` as JSON with the values ``SLOT.format(i)`` replaced by raw ``tokens[i]``."""
    text = orjson.dumps(obj)
    for i, token in enumerate(tokens):
        marker = orjson.dumps(SLOT.format(i))
        assert text.count(marker) == 1
        text = text.replace(marker, token)
    return text


def comparable(batch: DecodedBatch) -> dict[str, Any]:
    """Everything a batch holds but the features objects, as plain comparable values."""
    return {
        "ids": batch.ids,
        # repr keeps NaN comparable (nan != nan) and tells 0.0 from -0.0.
        "ts": repr(batch.ts.tolist()),
        "models": batch.models,
        "keys": batch.segment_keys,
        "numeric": repr(batch.numeric.tolist()),
        "shape": batch.numeric.shape,
        "categorical": batch.categorical,
        "prediction": repr(batch.prediction.tolist()),
        "label": repr(batch.label.tolist()),
        "source_index": batch.source_index.tolist(),
        "rejections": batch.rejections,
        "invalid": batch.invalid,
        "unexpected": batch.unexpected,
    }


def assert_same_as_exact(messages: Sequence[bytes | None], schema: SchemaConfig = SCHEMA) -> None:
    """The typed decoder's batch is the exact decoder's, message for message."""
    fast = typed_decoder(schema).decode(messages)
    assert comparable(fast) == comparable(exact_decoder(schema).decode(messages))


def test_plain_events_are_read_as_structs() -> None:
    """A batch of plain events is read by msgspec alone, so the fast path is what runs."""
    rows = reader().read([orjson.dumps(event(id=f"r{i}")) for i in range(50)], 1 << 20)
    assert rows.typed is not None and len(rows.typed) == rows.n == 50
    assert rows.dicts == [] and rows.refusals == []
    assert [r.k0 for r in rows.typed][:2] == ["r0", "r1"]  # the id, the first path read


@pytest.mark.parametrize(
    ("schema", "numeric"),
    [
        # The features object is the event: it would hold id, ts... (unexpected names).
        (SchemaConfig(features=""), NUMERIC),
        # A key both a value (the segment) and an object (the features).
        (SchemaConfig(segment_by=["features"]), NUMERIC),
        # More features than an event may carry.
        (SchemaConfig(max_features_per_event=3), NUMERIC),
        # The prediction inside the features object would be an unexpected name.
        (SchemaConfig(prediction="features.score"), NUMERIC),
    ],
)
def test_the_typed_path_is_off_where_a_struct_cannot_stand_for_the_event(
    schema: SchemaConfig, numeric: tuple[str, ...]
) -> None:
    """Schemas whose events a struct cannot read the exact way are read by orjson only."""
    assert not reader(schema, numeric).enabled
    assert reader().enabled
    messages = [orjson.dumps(event()), orjson.dumps(feature(income="12")), b"{"]
    assert_same_as_exact(messages, schema)


BAD_NUMBERS = [
    b'"12638.0"',
    b'"abc"',
    b"null",
    b"NaN",
    b"Infinity",
    b"true",
    b"false",
    b'{"nested": [1, 2]}',
    b"[1.5]",
    b"18446744073709551615",
    b"18446744073709551616",
    b"9223372036854775808",
    b"-9223372036854775809",
    b"1" * 400,
    b"1e999",
    b"1.7976931348623157e308",
    b"5e-324",
    b"-0",
    b"-0.0",
]


def test_a_batch_mixing_good_and_bad_numbers_agrees_with_the_exact_path() -> None:
    """Bad numbers, nulls, NaN, booleans, objects, huge ints among good rows: as the exact path."""
    messages: list[bytes | None] = []
    for i, token in enumerate(BAD_NUMBERS):
        messages.append(orjson.dumps(event(id=f"good-{i}")))
        messages.append(with_tokens(feature(income=SLOT.format(0)), [token]))
        messages.append(with_tokens(event(prediction=SLOT.format(0)), [token]))
    messages += [
        orjson.dumps(feature(unknown_feature=1.0)),  # a name nobody reads
        orjson.dumps(event(extra={"a": 1})),  # a top-level key nobody reads
        orjson.dumps([event(id="a1"), event(id="a2")]),  # an array of events
        orjson.dumps([event(id="b1"), feature(age="x")]),
        b'{"id": "u", "extra": "\xff"}',  # invalid UTF-8 where nothing is read
        with_tokens(event(extra=SLOT.format(0)), [b"1e999"]),  # beyond float64, unread
        with_tokens(event(extra=SLOT.format(0)), [b"9" * 400]),
        orjson.dumps(event(features=None)),
        orjson.dumps(event(features=...)),
        orjson.dumps(event(ts=1_794_999_990)),  # an integer time
        orjson.dumps(event(ts=10)),  # an integer time out of the window: its detail
        orjson.dumps(event(id=2**63)),  # an id past int64 that orjson reads as an int
        b"",
        None,
        b"[]",
        b'{"id": "d", "id": 5, "features": {"age": 1, "age": "x"}}',  # duplicate keys
    ]
    rows = reader().read(messages, 1 << 20)
    assert rows.typed is not None and 0 < len(rows.dicts) < rows.n  # both paths ran
    assert_same_as_exact(messages)
    assert_same_as_exact(messages, STRICT)


def test_most_messages_needing_the_exact_path_stop_msgspec_being_tried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Events all carrying an unread object: msgspec is tried a few times, the batch is exact."""
    calls = []
    real = msgspec.json.Decoder

    class CountingDecoder:
        def __init__(self, root: type) -> None:
            self._decoder: Any = real(root)

        def decode(self, message: bytes) -> Any:
            calls.append(message)
            return self._decoder.decode(message)

    monkeypatch.setattr(msgspec.json, "Decoder", CountingDecoder)
    # An object under a key nobody reads: never learned (only scalars are), never typed.
    messages: list[bytes | None] = [orjson.dumps(event(trace={"span": i})) for i in range(500)]
    fast = typed_decoder().decode(messages)
    assert len(calls) <= 2 * GIVE_UP_AFTER + 4
    monkeypatch.undo()
    assert len(fast) == 500
    assert comparable(fast) == comparable(exact_decoder().decode(messages))


def test_keys_nobody_reads_are_learned_and_still_validated() -> None:
    """Unread scalar keys are learned; what else they hold still gets the exact verdict."""
    decoder = typed_decoder()
    first = [orjson.dumps(event(id=f"r{i}", trace=f"t{i}", hop=i)) for i in range(20)]
    assert len(decoder.decode(first)) == 20
    later = [orjson.dumps(event(id=f"s{i}", trace=f"t{i}", hop=2.5)) for i in range(20)]
    rows = reader().read(later, 1 << 20)
    assert rows.typed is not None and len(rows.dicts) == 20  # a fresh reader has not learned
    bad_tokens = [b"1e999", b"9" * 400, b"18446744073709551616", b'{"a": 1}', b"[1]", b"NaN"]
    for token in bad_tokens:
        later.append(with_tokens(event(trace=SLOT.format(0)), [token]))
    later.append(with_tokens(event(trace=SLOT.format(0)), [b'"\xff"']))  # not UTF-8
    later.append(orjson.dumps(event(trace=None, hop=True)))
    later.append(orjson.dumps(feature(unread=1.0)))  # an unexpected name is never learned
    fast = decoder.decode(later)
    assert comparable(fast) == comparable(exact_decoder().decode(later))
    assert fast.unexpected == {"unread": 1}
    assert reasons_of(fast) == {20: "invalid_json", 21: "invalid_json", 26: "invalid_json"}
    again = reader()
    again.read(first, 1 << 20)  # learns
    rows = again.read(later, 1 << 20)
    # Only the five accepted messages holding a non-scalar or an unexpected name are dicts.
    assert rows.typed is not None and len(rows.dicts) == 5


def reasons_of(batch: DecodedBatch) -> dict[int, str]:
    """Message index -> rejection reason."""
    return {r.index: r.reason for r in batch.rejections}


# --- property: any mix of values at any field -------------------------------------------

TOKENS = st.sampled_from(
    [
        *BAD_NUMBERS,
        b'"x"',
        b'""',
        b'"NaN"',
        b'"1e999"',
        b'"\\ud800"',
        b'"caf\xc3\xa9"',
        b'"\xff"',
        b"{}",
        b"[]",
        b"0.1",
        b"1e5",
        b"1E-5",
        b"9007199254740993",
        b"1794999990",
        b"1794999990000",
        b"1794999990000000000",
        b'"1794999990"',
        b'"2026-11-18T10:00:00Z"',
        b'"2026-11-18T10:00:00"',
        b"-Infinity",
    ]
) | st.one_of(
    st.integers(-(2**70), 2**70).map(lambda i: str(i).encode()),
    st.floats(allow_nan=False, allow_infinity=False).map(orjson.dumps),
    st.floats(1.79e9, 1.795e9).map(orjson.dumps),
    st.text(max_size=5).map(orjson.dumps),
)
FIELDS = ("id", "ts", "model", "model_version", "prediction", "label", "extra")
FEATURES = (*NUMERIC, *CATEGORICAL, "unread")


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    """A valid event with some fields dropped or set to arbitrary JSON tokens."""
    obj = event()
    features = dict(obj["features"])
    tokens: list[bytes] = []
    for container, names in ((obj, FIELDS), (features, FEATURES)):
        for name in names:
            choice = draw(st.sampled_from(["keep", "keep", "drop", "token"]))
            if choice == "drop" or (choice == "keep" and name in ("unread", "extra")):
                container.pop(name, None)
            elif choice == "token":
                container[name] = SLOT.format(len(tokens))
                tokens.append(draw(TOKENS))
    obj["features"] = features
    return with_tokens(obj, tokens)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(messages(), min_size=1, max_size=12), st.booleans())
def test_any_values_at_any_field_decode_as_the_exact_path_decodes_them(
    batch: list[bytes], strict: bool
) -> None:
    """Arbitrary tokens in every field: typed and exact agree, before and after learning."""
    schema = STRICT if strict else SCHEMA
    exact = comparable(exact_decoder(schema).decode(batch))
    decoder = typed_decoder(schema)
    assert comparable(decoder.decode(batch)) == exact
    assert comparable(decoder.decode(batch)) == exact  # with the unread keys learned


def test_values_read_by_msgspec_are_the_values_orjson_reads() -> None:
    """The int/float split and the float rounding are orjson's, digit for digit."""
    tokens = [b"1", b"-0", b"1.0", b"1e5", b"9007199254740993", b"0.1", b"2.5e-308", b"123.456e7"]
    for token in tokens:
        message = with_tokens(feature(income=SLOT.format(0)), [token])
        (struct,) = reader().read([message], 1 << 20).typed or [None]
        value = reader().feature_getter(["income", "age"])(reader().features_getter(struct))[0]
        expected = orjson.loads(message)["features"]["income"]
        assert type(value) is type(expected) and repr(value) == repr(expected), token
        assert not (isinstance(value, float) and math.isnan(value))
