"""Property tests of the checkpoint format: any storable tree round-trips, any damage is refused."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from monitor.errors import CheckpointError
from monitor.state import codec, decode, encode
from tests.monitor.checkpoint.helpers import assert_same

DTYPES = st.sampled_from(
    [
        *("<i8", "<i4", "<i2", "|i1", "<u8", "<u4", "<u2", "|u1"),
        *("<f8", "<f4", "<f2", "|b1", "<c16", ">i8", ">f8"),
    ]
)
ARRAYS = DTYPES.flatmap(
    lambda dtype: hnp.arrays(
        np.dtype(dtype), hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)
    )
)
SCALARS = ARRAYS.filter(lambda a: a.size > 0).map(lambda a: a.reshape(-1)[0])
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | ARRAYS
    | SCALARS
)
TREES = st.recursive(
    LEAVES,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)
STATES = st.dictionaries(st.text(max_size=6), TREES, max_size=5)


@pytest.fixture(params=["zstd", "zlib"])
def compression(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run under both body compressions."""
    if request.param == "zlib":
        monkeypatch.setattr(codec, "_zstd", lambda: None)
    return str(request.param)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(state=STATES)
def test_any_storable_tree_round_trips_exactly(compression: str, state: dict[str, Any]) -> None:
    """Every tree of dicts, lists, plain values and numeric numpy values comes back exact."""
    blob = encode(state, {("t", 1): 2}, state_version=1, fingerprint=compression)
    assert_same(state, decode(blob, location="prop").state)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_damage_raises_only_checkpoint_errors(data: st.DataObject) -> None:
    """Random overwrites, cuts and insertions raise CheckpointError subclasses, nothing else."""
    state = {"a": np.arange(30).reshape(5, 6), "b": [1.5, "x", None, {"c": np.ones(3) > 0}]}
    original = encode(state, {("t", 0): 1}, state_version=1, fingerprint="f", created_at=1.0)
    blob = bytearray(original)
    for _ in range(data.draw(st.integers(1, 4))):
        where = data.draw(st.integers(0, len(blob) - 1))
        action = data.draw(st.sampled_from(["set", "cut", "insert"]))
        if action == "set":
            blob[where] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del blob[where : where + data.draw(st.integers(1, 16))]
        else:
            blob[where:where] = data.draw(st.binary(min_size=1, max_size=16))
    assume(bytes(blob) != original)
    with pytest.raises(CheckpointError):
        decode(bytes(blob), location="fuzz")
