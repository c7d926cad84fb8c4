"""The state tree inside a checkpoint body: a JSON skeleton plus raw array bytes.

``pack`` walks a state tree once, checking every value, and returns the pieces
of the inflated body: a uint64 skeleton length, a uint8 JSON flavour, the
skeleton (UTF-8 JSON), then the array bytes back to back. ``unpack`` reverses
it, checking everything, and raises only ``CheckpointCorruptError``.

The skeleton is ``{"tree": ..., "refs": [...]}``: the state tree with every numpy
array or numpy scalar replaced by ``null``, and one ref per such value, in blob
order::

    {"p": [path...], "d": "<i8", "s": "<u2", "sh": [1000, 50, 201], "n": bytes, "k": 0|1}

``p`` is the list of dict keys and list indices leading to the value, ``d`` its
dtype, ``s`` the dtype its bytes are stored in (integer arrays are narrowed to
the smallest integer type that holds their values: sketch counts are small), ``sh``
its shape, ``n`` the stored byte count and ``k`` 1 for a numpy scalar. Arrays of
a multi-byte storage type are byte-shuffled (all first bytes of the elements,
then all second bytes...), which compresses small counts and floats better.

Flavour 0 is strict JSON (written and read with orjson); flavour 1 is Python's
JSON dialect, used only when the tree holds NaN or infinities, ints beyond 64
bits or lone surrogates, all of which it keeps exactly. Floats are written in
their shortest exact form (``-0.0`` included), ints of any size are exact.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any, NoReturn

import numpy as np
import orjson

from monitor.errors import CheckpointCorruptError, CheckpointEncodeError

__all__ = ["MAX_DEPTH", "pack", "unpack"]

MAX_DEPTH = 128
"""Deepest nesting of dicts and lists a state tree may have."""

_SKELETON_LEN = struct.Struct(">QB")  # skeleton length, JSON flavour
_STRICT_JSON = 0
_PYTHON_JSON = 1
_MAX_NDIM = 32

_PLAIN = frozenset({str, int, float, bool, type(None)})
_KINDS = frozenset("biufc")
_NARROW: tuple[np.dtype[Any], ...] = tuple(
    np.dtype(name) for name in ("|u1", "|i1", "<u2", "<i2", "<u4", "<i4")
)


# ------------------------------------------------------------------------------ pack


def _show(path: list[str | int]) -> str:
    """``state['a'][3]`` for the path ['a', 3]."""
    return "state" + "".join(f"[{step!r}]" for step in path)


class _Collector:
    """Walks a state tree once: checks every value and collects the numpy values by path."""

    def __init__(self) -> None:
        self.refs: list[dict[str, Any]] = []
        self.blobs: list[np.ndarray[Any, Any]] = []
        self.blob_bytes = 0
        self.strict_json = True
        """False once a NaN or an infinity was seen: strict JSON cannot hold those."""

    def walk(self, value: Any, path: list[str | int]) -> None:
        if len(path) > MAX_DEPTH:
            raise CheckpointEncodeError(_show(path), f"nested deeper than {MAX_DEPTH} levels")
        kind = type(value)
        if isinstance(value, dict):
            for key, item in value.items():
                if type(key) is not str:
                    raise CheckpointEncodeError(
                        _show(path), f"dict key {key!r} is a {type(key).__name__}, not a str"
                    )
                item_kind = type(item)
                if item_kind is float:
                    if item - item:  # NaN or an infinity
                        self.strict_json = False
                elif item_kind not in _PLAIN:
                    path.append(key)
                    self.walk(item, path)
                    path.pop()
        elif kind is list:
            for index, item in enumerate(value):
                item_kind = type(item)
                if item_kind is float:
                    if item - item:
                        self.strict_json = False
                elif item_kind not in _PLAIN:
                    path.append(index)
                    self.walk(item, path)
                    path.pop()
        elif isinstance(value, np.ndarray):
            self._numpy(value, path, scalar=False)
        elif isinstance(value, np.generic):
            self._numpy(np.asarray(value), path, scalar=True)
        elif kind is float:
            if value - value:
                self.strict_json = False
        elif kind not in _PLAIN:
            hint = " (use a list)" if kind is tuple else ""
            raise CheckpointEncodeError(_show(path), f"unsupported type {kind.__name__}{hint}")

    def _numpy(self, array: np.ndarray[Any, Any], path: list[str | int], *, scalar: bool) -> None:
        dtype = array.dtype
        if dtype.kind not in _KINDS or dtype.fields is not None or dtype.subdtype is not None:
            raise CheckpointEncodeError(
                _show(path), f"unsupported dtype {dtype.str} (bool, int, uint, float, complex only)"
            )
        canonical = dtype.newbyteorder("<") if dtype.itemsize > 1 else dtype
        stored = _narrowed(array, canonical)
        data = _shuffled(np.ascontiguousarray(array, dtype=stored).reshape(-1))
        self.refs.append(
            {
                "p": list(path),
                "d": canonical.str,
                "s": stored.str,
                "sh": list(array.shape),
                "n": data.size,
                "k": int(scalar),
            }
        )
        self.blobs.append(data)
        self.blob_bytes += data.size


def _shuffled(flat: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The bytes of a 1-d contiguous array, byte-shuffled when its items are wider than 1."""
    raw = flat.view(np.uint8)
    width = flat.dtype.itemsize
    if width == 1:
        return raw
    return np.ascontiguousarray(raw.reshape(-1, width).T).reshape(-1)


def _unshuffled(raw: memoryview, dtype: np.dtype[Any], count: int) -> np.ndarray[Any, Any]:
    """Inverse of ``_shuffled``: ``count`` items of ``dtype`` (a new, writable array)."""
    width = dtype.itemsize
    data = np.frombuffer(raw, np.uint8, count * width)
    if width == 1:
        return data.view(dtype).copy()
    return np.ascontiguousarray(data.reshape(width, count).T).reshape(-1).view(dtype)


def _narrowed(array: np.ndarray[Any, Any], dtype: np.dtype[Any]) -> np.dtype[Any]:
    """The smallest integer dtype that holds every value of ``array`` (``dtype`` if none)."""
    if dtype.kind not in "iu" or dtype.itemsize == 1 or array.size == 0:
        return dtype
    low, high = int(array.min()), int(array.max())
    for candidate in _NARROW:
        if candidate.itemsize >= dtype.itemsize:
            break
        info = np.iinfo(candidate)
        if info.min <= low and high <= info.max:
            return candidate
    return dtype


def _null(value: object) -> None:
    """JSON writer hook: numpy values are written as null (their refs hold them)."""
    if isinstance(value, np.ndarray | np.generic):
        return None
    raise TypeError(f"unexpected {type(value).__name__}")  # unreachable after the walk


def pack(state: dict[str, Any]) -> tuple[list[bytes | memoryview], int]:
    """The pieces of the inflated body for ``state`` and their total size.

    Raises ``CheckpointEncodeError`` naming the first value that cannot be stored.
    """
    collector = _Collector()
    collector.walk(state, [])
    document = {"tree": state, "refs": collector.refs}
    skeleton: bytes | None = None
    flavour = _STRICT_JSON
    if collector.strict_json:
        try:
            skeleton = orjson.dumps(document, default=_null)
        except TypeError:  # an int beyond 64 bits or a lone surrogate: Python's JSON keeps them
            skeleton = None
    if skeleton is None:
        flavour = _PYTHON_JSON
        try:
            skeleton = json.dumps(
                document,
                default=_null,
                ensure_ascii=True,
                separators=(",", ":"),
                check_circular=False,  # the walk bounds the depth, so a cycle cannot get here
            ).encode("ascii")
        except ValueError as exc:  # an int of more digits than Python converts to text
            raise CheckpointEncodeError("state", str(exc)) from exc

    pieces: list[bytes | memoryview] = [_SKELETON_LEN.pack(len(skeleton), flavour), skeleton]
    pieces.extend(blob.data for blob in collector.blobs)
    return pieces, _SKELETON_LEN.size + len(skeleton) + collector.blob_bytes


# ---------------------------------------------------------------------------- unpack


def _corrupt(location: str, reason: str, message: str) -> NoReturn:
    raise CheckpointCorruptError(location, message, reason=reason)


def _strict_int(value: object) -> bool:
    return type(value) is int


def _dtype(text: object, location: str) -> np.dtype[Any]:
    try:
        dtype = np.dtype(str(text))
    except TypeError:
        _corrupt(location, "unsupported_dtype", f"unknown dtype {text!r}")
    if dtype.kind not in _KINDS or dtype.fields is not None or dtype.subdtype is not None:
        _corrupt(location, "unsupported_dtype", f"refused dtype {dtype.str}")
    if dtype.str != text or dtype.str[0] not in "<|":  # only little-endian is ever written
        _corrupt(location, "unsupported_dtype", f"refused dtype spelling {text!r}")
    return dtype


def _array(ref: dict[str, Any], raw: memoryview, location: str) -> Any:
    dtype, stored = _dtype(ref.get("d"), location), _dtype(ref.get("s"), location)
    shape, nbytes = ref.get("sh"), ref.get("n")
    if not (
        isinstance(shape, list)
        and len(shape) <= _MAX_NDIM
        and all(_strict_int(n) and n >= 0 for n in shape)
        and _strict_int(nbytes)
    ):
        _corrupt(location, "malformed", f"bad array ref {ref!r}")
    count = math.prod(shape)
    if count * stored.itemsize != nbytes or nbytes > len(raw):
        _corrupt(location, "malformed", f"array of shape {shape} does not fit {nbytes} bytes")
    if stored != dtype and not (
        stored.kind in "iu" and dtype.kind in "iu" and stored.itemsize < dtype.itemsize
    ):
        _corrupt(location, "malformed", f"{dtype.str} cannot be stored as {stored.str}")
    if dtype.kind == "b":  # any nonzero byte is True, so no invalid bool can come out
        array = np.frombuffer(raw, np.uint8, count).astype(np.bool_)
    else:
        array = _unshuffled(raw, stored, count).astype(dtype.newbyteorder("="), copy=False)
    array = array.reshape(shape)
    if ref.get("k") == 1:
        if shape:
            _corrupt(location, "malformed", f"a scalar with shape {shape}")
        return array[()]
    return array


def _place(tree: dict[str, Any], path: object, value: Any, location: str) -> None:
    if not isinstance(path, list) or not path:
        _corrupt(location, "malformed", f"bad ref path {path!r}")
    node: Any = tree
    for depth, step in enumerate(path):
        in_dict = isinstance(node, dict) and isinstance(step, str) and step in node
        in_list = isinstance(node, list) and _strict_int(step) and 0 <= step < len(node)
        if not (in_dict or in_list):
            _corrupt(location, "malformed", f"ref path {path!r} does not exist in the tree")
        if depth == len(path) - 1:
            node[step] = value
        else:
            node = node[step]


def unpack(raw: bytes, location: str) -> dict[str, Any]:
    """The state tree ``pack`` made ``raw`` from; raises ``CheckpointCorruptError`` if unsound."""
    view = memoryview(raw)
    if len(view) < _SKELETON_LEN.size:
        _corrupt(location, "malformed", "body too short")
    skeleton_len, flavour = _SKELETON_LEN.unpack_from(view, 0)
    blobs_at = _SKELETON_LEN.size + skeleton_len
    if blobs_at > len(view):
        _corrupt(location, "malformed", "skeleton runs past the body")
    try:
        text = view[_SKELETON_LEN.size : blobs_at]
        if flavour == _STRICT_JSON:
            skeleton = orjson.loads(text)
        elif flavour == _PYTHON_JSON:
            skeleton = json.loads(bytes(text))
        else:
            _corrupt(location, "malformed", f"unknown JSON flavour {flavour}")
    except (ValueError, RecursionError) as exc:
        _corrupt(location, "malformed", f"skeleton is not JSON: {exc!r}")
    if not isinstance(skeleton, dict):
        _corrupt(location, "malformed", "skeleton is not a JSON object")
    tree, refs = skeleton.get("tree"), skeleton.get("refs")
    if not isinstance(tree, dict) or not isinstance(refs, list):
        _corrupt(location, "malformed", "skeleton has no tree or no refs")
    at = blobs_at
    for ref in refs:
        if not isinstance(ref, dict):
            _corrupt(location, "malformed", f"bad ref {ref!r}")
        value = _array(ref, view[at:], location)
        at += ref["n"]
        _place(tree, ref.get("p"), value, location)
    if at != len(view):
        _corrupt(location, "malformed", f"{len(view) - at} unreferenced bytes after the arrays")
    return tree
