"""The checkpoint format: exact round trips, and refusal of anything damaged or foreign."""

from __future__ import annotations

import enum
import struct
from typing import Any

import numpy as np
import pytest

from monitor.errors import (
    CheckpointCorruptError,
    CheckpointEncodeError,
    CheckpointError,
    CheckpointIncompatibleError,
)
from monitor.state import FORMAT_VERSION, MAGIC, codec, decode, encode, peek
from tests.monitor.checkpoint.helpers import assert_same, body, frame, header

OFFSETS = {("inference", 0): 1200, ("inference", 11): 0, ("labels", 3): 2**40}


def rich_state() -> dict[str, Any]:
    """A tree with every kind of value the format promises to keep exactly."""
    rng = np.random.default_rng(7)
    nan_payload = np.array([0x7FF8_0000_DEAD_BEEF], np.uint64).view(np.float64)
    return {
        "floats": [0.1, -0.0, 0.0, float("inf"), float("-inf"), float("nan"), 5e-324, 1e308],
        "ints": [0, -1, 2**63 - 1, -(2**63), 2**64, -(2**200), 10**40],
        "bools": [True, False],
        "none": None,
        "text": ["", "plain", "ünïcødé ✓", "tab\tnew\nline", "\x00nul"],
        "empty": {"dict": {}, "list": [], "nested": [[], [{}], [[[]]]]},
        "counts": rng.integers(0, 5000, (20, 5, 21)),
        "sparse": np.zeros((10, 50, 201), np.int64),
        "negative": np.array([-(2**63), -1, 0, 2**63 - 1]),
        "boundaries": np.array([-129, -128, 127, 128, 255, 256, 65535, 65536]),
        "uint64": np.array([0, 2**64 - 1], np.uint64),
        "floats64": rng.normal(size=(3, 4)),
        "special": np.array([np.nan, -0.0, np.inf, -np.inf, 5e-324]),
        "payload": nan_payload,
        "float32": np.arange(6, dtype=np.float32).reshape(2, 3) / 3,
        "float16": np.array([1.5, -2.25], np.float16),
        "complex": np.array([1 + 2j, -0.0 - 1j]),
        "mask": rng.random((4, 4)) > 0.5,
        "empty_arrays": [np.zeros((0,)), np.zeros((3, 0, 2), np.int64), np.zeros(0, bool)],
        "zero_d": np.array(3.25),
        "big_endian": np.array([1, -2, 300], ">i4"),
        "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        "strided": np.arange(40, dtype=np.int64)[::3],
        "scalars": [np.float64(0.5), np.int64(-3), np.bool_(True), np.uint8(255), np.float32(1.5)],
        "deep": {"a": [{"b": [[{"c": np.arange(3)}]]}]},
        "int8": np.array([-128, 127], np.int8),
    }


def roundtrip(state: dict[str, Any]) -> dict[str, Any]:
    """Encode and decode ``state``; return the decoded tree."""
    blob = encode(state, OFFSETS, state_version=3, fingerprint="cfg:1")
    return decode(blob, location="test").state


def test_rich_tree_round_trips_exactly() -> None:
    """Every value kind (NaN, -0.0, big ints, odd arrays, numpy scalars) comes back exact."""
    state = rich_state()
    assert_same(state, roundtrip(state))


def test_strict_json_tree_round_trips_exactly() -> None:
    """A tree without NaN, infinities or huge ints (the fast JSON path) round-trips exactly."""
    state = {
        "floats": [0.1, -0.0, 1e-300, 123456.789],
        "ints": [2**63, 2**64 - 1, -(2**63)],
        "x": [{"k": np.arange(5)}],
    }
    assert_same(state, roundtrip(state))


def test_header_fields_round_trip() -> None:
    """Offsets, state version, fingerprint and creation time come back as given."""
    blob = encode({}, OFFSETS, state_version=9, fingerprint="cfg:é", created_at=1234.5)
    checkpoint = decode(blob, location="x")
    assert checkpoint.offsets == OFFSETS
    assert (checkpoint.state_version, checkpoint.fingerprint) == (9, "cfg:é")
    assert checkpoint.created_at == 1234.5
    info = peek(blob, location="x")
    assert (info.offsets, info.state_version, info.format_version) == (OFFSETS, 9, FORMAT_VERSION)
    assert info.size == len(blob)


def test_created_at_defaults_to_now() -> None:
    """Without created_at the checkpoint is stamped with the current time."""
    import time

    before = time.time()
    checkpoint = decode(encode({}, {}, state_version=1, fingerprint=""), location="x")
    assert before <= checkpoint.created_at <= time.time()


def test_decoded_arrays_are_writable_and_independent() -> None:
    """Decoded arrays are writable copies that share no memory with each other."""
    state = {"a": np.arange(10), "b": np.ones((2, 2)), "c": np.array([True])}
    state["d"] = np.array([1], np.int8)
    blob = encode(state, {}, state_version=1, fingerprint="")
    first = decode(blob, location="x").state
    for array in first.values():
        assert array.flags.writeable
        array[...] = 0
    second = decode(blob, location="x").state
    assert_same(state, second)
    assert not np.shares_memory(first["a"], second["a"])


def test_sparse_int64_counts_are_stored_small() -> None:
    """Mostly-zero int64 sketch counts take a tiny fraction of their in-memory size."""
    counts = np.zeros((1000, 50, 201), np.int64)
    rng = np.random.default_rng(1)
    counts[rng.integers(0, 1000, 5000), rng.integers(0, 50, 5000), rng.integers(0, 201, 5000)] = 7
    blob = encode({"counts": counts}, {}, state_version=1, fingerprint="")
    assert len(blob) < counts.nbytes / 100
    assert_same({"counts": counts}, decode(blob, location="x").state)


def test_zlib_fallback_round_trips_and_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without zstd the body is zlib; such checkpoints decode with or without zstd."""
    state = rich_state()
    monkeypatch.setattr(codec, "_zstd", lambda: None)
    blob = encode(state, OFFSETS, state_version=1, fingerprint="")
    assert b'"compression":"zlib"' in blob[:400]
    assert_same(state, decode(blob, location="x").state)
    monkeypatch.undo()
    assert_same(state, decode(blob, location="x").state)


def test_zstd_checkpoint_without_zstd_is_incompatible(monkeypatch: pytest.MonkeyPatch) -> None:
    """A zstd body read by a build without zstd is refused as incompatible, naming the codec."""
    blob = encode({"a": 1}, {}, state_version=1, fingerprint="")
    assert b'"compression":"zstd"' in blob[:400]
    monkeypatch.setattr(codec, "_zstd", lambda: None)
    with pytest.raises(CheckpointIncompatibleError) as caught:
        decode(blob, location="x")
    assert (caught.value.what, caught.value.found) == ("compression", "zstd")


# ------------------------------------------------------------------------- refusals


@pytest.fixture(scope="module")
def small_blob() -> bytes:
    """A small checkpoint with arrays and plain values."""
    state = {"n": [1, 2.5, None, "x"], "a": np.arange(6).reshape(2, 3), "m": np.array([True])}
    return encode(state, {("t", 0): 5}, state_version=2, fingerprint="fp")


def test_every_truncation_is_refused(small_blob: bytes) -> None:
    """Every proper prefix of a checkpoint raises CheckpointCorruptError."""
    for size in range(len(small_blob)):
        with pytest.raises(CheckpointCorruptError):
            decode(small_blob[:size], location="x")


def test_trailing_garbage_is_refused(small_blob: bytes) -> None:
    """Bytes after the checksum are refused."""
    with pytest.raises(CheckpointCorruptError, match="framing"):
        decode(small_blob + b"\x00", location="x")


def test_every_bit_flip_is_refused(small_blob: bytes) -> None:
    """Flipping any single bit raises a CheckpointError (format version bits: incompatible)."""
    data = bytearray(small_blob)
    for byte in range(len(data)):
        for bit in range(8):
            data[byte] ^= 1 << bit
            expected = CheckpointIncompatibleError if byte in (8, 9) else CheckpointCorruptError
            with pytest.raises(expected):
                decode(bytes(data), location="x")
            data[byte] ^= 1 << bit


def test_bit_flip_in_body_is_a_checksum_error(small_blob: bytes) -> None:
    """Damage inside the compressed body is reported as a checksum mismatch."""
    data = bytearray(small_blob)
    data[-40] ^= 0x10
    with pytest.raises(CheckpointCorruptError) as caught:
        decode(bytes(data), location="/var/lib/driftd/checkpoint.ckpt")
    assert caught.value.reason == "checksum"
    assert caught.value.location == "/var/lib/driftd/checkpoint.ckpt"
    assert "/var/lib/driftd/checkpoint.ckpt" in str(caught.value)


def test_wrong_magic_is_refused(small_blob: bytes) -> None:
    """A file that does not start with the magic bytes is not a driftd checkpoint."""
    for data in (b"PK\x03\x04" + small_blob[4:], b"\x80\x04\x95" + b"\x00" * 40, b"{}"):
        with pytest.raises(CheckpointCorruptError) as caught:
            decode(data, location="x")
        assert caught.value.reason in {"bad_magic", "truncated"}
    with pytest.raises(CheckpointCorruptError) as caught:
        decode(b"NOTDRIFT" + small_blob[8:], location="x")
    assert caught.value.reason == "bad_magic"


def test_unknown_format_version_is_incompatible(small_blob: bytes) -> None:
    """A format version this build does not know is refused, naming both versions."""
    data = small_blob[:8] + struct.pack(">H", FORMAT_VERSION + 1) + small_blob[10:]
    with pytest.raises(CheckpointIncompatibleError) as caught:
        decode(data, location="x")
    error = caught.value
    assert (error.what, error.expected, error.found) == ("format_version", 1, 2)


def test_state_version_mismatch_names_expected_and_found(small_blob: bytes) -> None:
    """A checkpoint of another state version is refused with expected and found values."""
    with pytest.raises(CheckpointIncompatibleError) as caught:
        decode(small_blob, location="x", expect_state_version=3)
    error = caught.value
    assert (error.what, error.expected, error.found) == ("state_version", 3, 2)
    assert "expected 3" in str(error) and "found 2" in str(error)
    decode(small_blob, location="x", expect_state_version=2, expect_fingerprint="fp")


def test_fingerprint_mismatch_names_expected_and_found(small_blob: bytes) -> None:
    """A checkpoint made under another configuration fingerprint is refused."""
    with pytest.raises(CheckpointIncompatibleError) as caught:
        decode(small_blob, location="x", expect_fingerprint="other")
    error = caught.value
    assert (error.what, error.expected, error.found) == ("fingerprint", "other", "fp")


def test_peek_checks_without_inflating(small_blob: bytes) -> None:
    """peek returns the header of a sound checkpoint and refuses a damaged one."""
    info = peek(small_blob, location="x")
    assert (info.offsets, info.fingerprint) == ({("t", 0): 5}, "fp")
    with pytest.raises(CheckpointCorruptError):
        peek(small_blob[:-1] + bytes([small_blob[-1] ^ 1]), location="x")


ARRAY_REF = {"p": ["a"], "d": "<i8", "s": "<i8", "sh": [2], "n": 16, "k": 0}
TWO_INT64 = np.array([1, 2], np.int64).reshape(-1).view(np.uint8).reshape(-1, 8).T.tobytes()


def test_hand_made_checkpoint_decodes() -> None:
    """A checkpoint built from the documented layout decodes (the helper is faithful)."""
    data = frame(header(), body({"tree": {"a": None}, "refs": [ARRAY_REF]}, TWO_INT64))
    assert_same({"a": np.array([1, 2])}, decode(data, location="x").state)


@pytest.mark.parametrize(
    ("ref", "reason"),
    [
        ({**ARRAY_REF, "d": "|O", "s": "|O", "n": 16}, "unsupported_dtype"),
        ({**ARRAY_REF, "d": "<U2", "s": "<U2"}, "unsupported_dtype"),
        ({**ARRAY_REF, "d": "[('x', '<i8')]", "s": "<i8"}, "unsupported_dtype"),
        ({**ARRAY_REF, "d": "nonsense", "s": "<i8"}, "unsupported_dtype"),
        ({**ARRAY_REF, "d": ">i8", "s": ">i8"}, "unsupported_dtype"),
        ({**ARRAY_REF, "d": "<i8", "s": "<f8"}, "malformed"),
        ({**ARRAY_REF, "d": "<i2", "s": "<i8"}, "malformed"),
        ({**ARRAY_REF, "n": 8}, "malformed"),
        ({**ARRAY_REF, "sh": [3]}, "malformed"),
        ({**ARRAY_REF, "sh": [-2]}, "malformed"),
        ({**ARRAY_REF, "sh": "2"}, "malformed"),
        ({**ARRAY_REF, "p": ["missing"]}, "malformed"),
        ({**ARRAY_REF, "p": []}, "malformed"),
        ({**ARRAY_REF, "p": ["a", 0]}, "malformed"),
        ({**ARRAY_REF, "k": 1}, "malformed"),
        ({**ARRAY_REF, "n": True}, "malformed"),
    ],
)
def test_bad_array_ref_is_refused(ref: dict[str, Any], reason: str) -> None:
    """A checksummed checkpoint whose array refs are unsound (object dtype...) is refused."""
    data = frame(header(), body({"tree": {"a": None}, "refs": [ref]}, TWO_INT64))
    with pytest.raises(CheckpointCorruptError) as caught:
        decode(data, location="x")
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    "raw",
    [
        body(b"{not json"),
        body({"tree": [], "refs": []}),
        body({"tree": {}}),
        body([1, 2]),
        body({"tree": {}, "refs": [5]}),
        body({"tree": {}, "refs": []}, b"extra"),
        body({"tree": {}, "refs": []}, flavour=7),
        body(b"[" * 100_000 + b"]" * 100_000, flavour=0),
        body(b"[" * 100_000 + b"]" * 100_000, flavour=1),
        body({"tree": {}, "refs": []})[:-1],
        b"\x00\x00",
        struct.pack(">QB", 2**40, 0),
    ],
)
def test_bad_body_is_refused(raw: bytes) -> None:
    """A checksummed checkpoint with a malformed body raises CheckpointCorruptError."""
    with pytest.raises(CheckpointCorruptError) as caught:
        decode(frame(header(), raw), location="x")
    assert caught.value.reason == "malformed"


@pytest.mark.parametrize(
    "fields",
    [
        {"state_version": "1"},
        {"state_version": True},
        {"fingerprint": None},
        {"created_at": "now"},
        {"offsets": {"t/x": 1}},
        {"offsets": {"t/0": -1}},
        {"offsets": {"/0": 1}},
        {"offsets": {"t/0": 1.5}},
        {"offsets": []},
        {"compression": "lzma"},
        {"raw_size": -1},
    ],
)
def test_bad_header_is_refused(fields: dict[str, Any]) -> None:
    """A checksummed checkpoint whose header fields are missing or mistyped is refused."""
    data = frame(header(**fields), body({"tree": {}, "refs": []}))
    with pytest.raises(CheckpointCorruptError) as caught:
        decode(data, location="x")
    assert caught.value.reason == "malformed"


def test_header_not_json_is_refused() -> None:
    """A header that is not a JSON object is refused."""
    for text in (b"\xff\xfe", b"[1]"):
        prefix = struct.pack(">8sHI", MAGIC, 1, len(text)) + text
        framed = prefix + struct.pack(">Q", 0)
        import hashlib

        with pytest.raises(CheckpointCorruptError):
            decode(framed + hashlib.sha256(framed).digest(), location="x")


def test_body_of_wrong_size_is_refused() -> None:
    """A body that inflates to another size than the header says is refused."""
    raw = body({"tree": {}, "refs": []})
    for size in (len(raw) - 1, len(raw) + 1):
        with pytest.raises(CheckpointCorruptError):
            decode(frame(header(raw_size=size), raw), location="x")
    with pytest.raises(CheckpointCorruptError):
        decode(frame(header(), raw, compress=False), location="x")
    for compression in ("zstd", "zlib"):
        with pytest.raises(CheckpointCorruptError):
            decode(frame(header(compression=compression), b"x" * 50, compress=False), location="x")


def test_hand_made_bool_bytes_are_normalised() -> None:
    """Bool array bytes other than 0/1 decode to plain True, never to invalid bools."""
    ref = {"p": ["m"], "d": "|b1", "s": "|b1", "sh": [3], "n": 3, "k": 0}
    data = frame(header(), body({"tree": {"m": None}, "refs": [ref]}, b"\x00\x02\xff"))
    mask = decode(data, location="x").state["m"]
    assert mask.tolist() == [False, True, True]
    assert mask.view(np.uint8).tolist() == [0, 1, 1]


# --------------------------------------------------------------------------- encode


class Colour(enum.IntEnum):
    """An int subclass the format refuses (it would come back as a plain int)."""

    RED = 1


class Node:
    """An arbitrary object."""


@pytest.mark.parametrize(
    ("state", "path"),
    [
        ({"a": (1, 2)}, "state['a']"),
        ({"a": {1, 2}}, "state['a']"),
        ({"a": {1: "x"}}, "state['a']"),
        ({"a": [Node()]}, "state['a'][0]"),
        ({"a": [Colour.RED]}, "state['a'][0]"),
        ({"a": b"bytes"}, "state['a']"),
        ({"a": np.array([Node()], dtype=object)}, "state['a']"),
        ({"a": np.array(["x"])}, "state['a']"),
        ({"a": np.zeros(2, dtype=[("x", "<i8")])}, "state['a']"),
        ({"a": np.datetime64("2026-01-01")}, "state['a']"),
        ({"a": [{"b": [np.array([None])]}]}, "state['a'][0]['b'][0]"),
    ],
)
def test_unstorable_values_are_named(state: dict[str, Any], path: str) -> None:
    """encode raises CheckpointEncodeError naming the path of the first unstorable value."""
    with pytest.raises(CheckpointEncodeError) as caught:
        encode(state, {}, state_version=1, fingerprint="")
    assert caught.value.path == path
    assert path in str(caught.value)


def test_cycles_and_deep_nesting_are_refused() -> None:
    """A cyclic or too deeply nested tree is refused instead of recursing forever."""
    cyclic: dict[str, Any] = {"a": []}
    cyclic["a"].append(cyclic)
    deep: Any = []
    for _ in range(codec.MAX_DEPTH + 5):
        deep = [deep]
    for state in (cyclic, {"d": deep}):
        with pytest.raises(CheckpointEncodeError, match="deeper"):
            encode(state, {}, state_version=1, fingerprint="")


def test_int_too_long_for_text_is_refused() -> None:
    """An int with more digits than Python converts to text is refused cleanly."""
    with pytest.raises(CheckpointEncodeError):
        encode({"a": 10**5000}, {}, state_version=1, fingerprint="")


@pytest.mark.parametrize(
    ("offsets", "kwargs"),
    [
        ({("t", 0): -1}, {}),
        ({("t", -1): 1}, {}),
        ({("t", True): 1}, {}),
        ({("", 0): 1}, {}),
        ({("t", 0): 1.0}, {}),
        ({"t/0": 1}, {}),
        ({}, {"state_version": "1"}),
        ({}, {"fingerprint": 3}),
        ({}, {"created_at": float("nan")}),
    ],
)
def test_bad_offsets_and_header_values_are_refused(
    offsets: dict[Any, Any], kwargs: dict[str, Any]
) -> None:
    """Invalid offsets, state version, fingerprint or time raise CheckpointEncodeError."""
    arguments: dict[str, Any] = {"state_version": 1, "fingerprint": "", **kwargs}
    with pytest.raises(CheckpointEncodeError):
        encode({}, offsets, **arguments)


def test_state_must_be_a_dict() -> None:
    """The root of the state tree must be a dict."""
    with pytest.raises(CheckpointEncodeError):
        encode([1], {}, state_version=1, fingerprint="")  # type: ignore[arg-type]


def test_dict_subclasses_are_stored_as_dicts() -> None:
    """A Counter or defaultdict is accepted and comes back as a plain dict with equal items."""
    from collections import Counter, defaultdict

    counter = Counter({"a": 2})
    default: defaultdict[str, list[int]] = defaultdict(list, {"x": [1]})
    state = roundtrip({"c": counter, "d": default})
    assert state == {"c": {"a": 2}, "d": {"x": [1]}}
    assert type(state["c"]) is dict


def test_errors_share_the_checkpoint_base() -> None:
    """Every refusal is a CheckpointError, so one handler covers them all."""
    for cls in (CheckpointCorruptError, CheckpointIncompatibleError, CheckpointEncodeError):
        assert issubclass(cls, CheckpointError)
