"""Vector features in the decoder: rows of a float matrix, bad vectors counted, events kept."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config import SchemaConfig
from monitor.ingest.decode import INVALID_REASONS, Decoder
from monitor.ingest.feature_objects import FeatureObjects
from monitor.ingest.typed_rows import TypedReader

DIM = 4
NOW = 1_700_000_000.0

finite = st.floats(-1e6, 1e6, allow_nan=False)
vectors = st.one_of(
    st.lists(finite, min_size=DIM, max_size=DIM),  # good
    st.lists(st.integers(-1000, 1000), min_size=DIM, max_size=DIM),  # good: ints are numbers
    st.lists(finite, min_size=0, max_size=DIM + 3).filter(lambda v: len(v) != DIM),
    st.lists(
        st.one_of(finite, st.booleans(), st.text(max_size=3), st.none()), min_size=DIM, max_size=DIM
    ),
    st.one_of(st.none(), finite, st.text(max_size=5), st.just({"a": 1.0})),
    st.just("absent"),
)


def expected(value: Any) -> tuple[list[float] | None, str | None]:
    """The row and the counted reason of one vector, the plain way."""
    if value is None or value == "absent":
        return None, None
    if not isinstance(value, list):
        return None, "wrong_type"
    if any(type(x) not in (int, float) for x in value):
        return None, "wrong_type"
    if len(value) != DIM:
        return None, "wrong_length"
    return [float(x) for x in value], None


def decoder(strict: bool = False) -> Decoder:
    """A decoder of numeric x and the vector embedding."""
    return Decoder(
        SchemaConfig(strict=strict),
        ["x"],
        [],
        now=NOW,
        require_id=False,
        vector_features={"embedding": DIM},
    )


def message(i: int, vector: Any) -> bytes:
    """Event ``i`` with x = i and the vector (left out when 'absent')."""
    features: dict[str, Any] = {"x": float(i)}
    if vector != "absent":
        features["embedding"] = vector
    return orjson.dumps({"id": f"e{i}", "ts": NOW, "features": features})


@settings(max_examples=25, deadline=None)
@given(st.lists(vectors, min_size=1, max_size=12))
def test_vectors_decode_like_the_plain_oracle(values: list[Any]) -> None:
    """Every event is kept; good vectors are rows, bad ones NaN and counted by reason."""
    batch = decoder().decode([message(i, v) for i, v in enumerate(values)])
    assert len(batch) == len(values) and not batch.rejections
    assert batch.numeric[:, 0].tolist() == [float(i) for i in range(len(values))]
    rows = batch.vectors["embedding"]
    assert rows.shape == (len(values), DIM)
    counts: dict[tuple[str, str], int] = {}
    for i, value in enumerate(values):
        row, reason = expected(value)
        if row is None:
            assert np.isnan(rows[i]).all()
        else:
            assert rows[i].tolist() == row
        if reason is not None:
            counts["embedding", reason] = counts.get(("embedding", reason), 0) + 1
    assert batch.invalid == counts
    assert all(r in INVALID_REASONS for _, r in batch.invalid)
    assert "embedding" not in batch.unexpected


def test_strict_refuses_the_event_and_spares_its_batch_mates() -> None:
    """With schema.strict a bad vector refuses its event alone, as wrong_type."""
    good = [0.5] * DIM
    batch = decoder(strict=True).decode([message(0, good), message(1, [1.0]), message(2, good)])
    assert [r.index for r in batch.rejections] == [1]
    assert batch.rejections[0].reason == "wrong_type"
    assert batch.vectors["embedding"].tolist() == [good, good]


def test_lenient_non_finite_numbers_are_counted() -> None:
    """A NaN literal in a vector (the lenient parser) refuses that vector as not_finite."""
    text = b'{"id": "a", "ts": 1700000000, "features": {"x": 1, "embedding": [1, NaN, 2, 3]}}'
    batch = decoder().decode([text, message(1, [1, 2, 3, 4])])
    assert batch.invalid == {("embedding", "not_finite"): 1}
    assert math.isnan(batch.vectors["embedding"][0, 0])
    assert batch.vectors["embedding"][1].tolist() == [1.0, 2.0, 3.0, 4.0]


TOKENS = [
    b"[1, 2.5, -0.0, 1e308]",
    b"[9223372036854775807, -9223372036854775808, 0, 1]",
    b"[9223372036854775808, 1, 2, 3]",  # beyond int64: the exact path judges
    b"[1e999, 1, 2, 3]",
    b"[true, 1, 2, 3]",
    b"[1, 2, 3]",
    b"[[1], 2, 3, 4]",
    b'["1", 2, 3, 4]',
    b"null",
    b"[1, 2, 3, 4, 5]",
]


def test_struct_read_vectors_equal_the_exact_path_token_by_token() -> None:
    """Vectors msgspec reads give the exact path's rows and counts, alone or mixed."""
    exact = Decoder(
        SchemaConfig(),
        ["x"],
        [],
        now=NOW,
        require_id=False,
        vector_features={"embedding": DIM},
        keep_feature_objects=True,
    )
    template = b'{"id": "e%d", "ts": 1700000000, "features": {"x": 1, "embedding": %s}}'
    messages = [template % (i, token) for i, token in enumerate(TOKENS)]
    for batch in ([m] for m in messages[:3]), [messages]:
        for part in batch:
            typed, plain = decoder().decode(part), exact.decode(part)
            assert repr(typed.vectors["embedding"].tolist()) == repr(
                plain.vectors["embedding"].tolist()
            )
            assert typed.invalid == plain.invalid and typed.rejections == plain.rejections
    known = FeatureObjects(SchemaConfig(), ("x", "embedding")).known
    reader = TypedReader(SchemaConfig(), ["x"], [], known, vectors={"embedding": DIM})
    rows = reader.read(messages[:2], 1 << 20)
    assert rows.typed is not None and rows.dicts == []  # read as structs, not as dicts
