"""Shared helpers for the checkpoint tests: exact tree comparison and hand-made checkpoints."""

from __future__ import annotations

import hashlib
import json
import math
import struct
import zlib
from typing import Any

import numpy as np

from monitor.state import MAGIC


def assert_same(left: Any, right: Any, path: str = "state") -> None:
    """Exact equality: same types, same float bits (NaN, -0.0), same array dtype and bytes."""
    if isinstance(left, np.ndarray):
        assert isinstance(right, np.ndarray), f"{path}: {type(right).__name__} is not an array"
        assert left.shape == right.shape, f"{path}: shape {right.shape} != {left.shape}"
        assert left.dtype.kind == right.dtype.kind, f"{path}: dtype {right.dtype} != {left.dtype}"
        assert left.dtype.itemsize == right.dtype.itemsize, f"{path}: dtype {right.dtype}"
        native = left.astype(left.dtype.newbyteorder("="))
        assert native.tobytes() == right.tobytes(), f"{path}: array bytes differ"
        return
    assert type(left) is type(right), f"{path}: {type(right).__name__} != {type(left).__name__}"
    if isinstance(left, dict):
        assert list(left) == list(right), f"{path}: keys {list(right)} != {list(left)}"
        for key in left:
            assert_same(left[key], right[key], f"{path}[{key!r}]")
    elif isinstance(left, list):
        assert len(left) == len(right), f"{path}: length {len(right)} != {len(left)}"
        for i, (a, b) in enumerate(zip(left, right, strict=True)):
            assert_same(a, b, f"{path}[{i}]")
    elif isinstance(left, float):
        if math.isnan(left):
            assert math.isnan(right), f"{path}: {right!r} is not NaN"
        else:
            assert left == right, f"{path}: {right!r} != {left!r}"
            assert math.copysign(1.0, left) == math.copysign(1.0, right), f"{path}: sign of zero"
    elif isinstance(left, np.generic):
        assert left.dtype == right.dtype, f"{path}: dtype {right.dtype} != {left.dtype}"
        assert left.tobytes() == right.tobytes(), f"{path}: {right!r} != {left!r}"
    else:
        assert left == right, f"{path}: {right!r} != {left!r}"


def frame(
    header: dict[str, Any],
    body: bytes,
    *,
    version: int = 1,
    compress: bool = True,
    digest: bytes | None = None,
) -> bytes:
    """A checkpoint built from the documented layout, for inputs ``encode`` never makes.

    ``body`` is the inflated body; it is zlib-compressed unless ``compress`` is
    False. ``raw_size`` and ``compression`` are filled in unless ``header`` has them.
    """
    header = {"compression": "zlib", "raw_size": len(body), **header}
    packed = zlib.compress(body, 1) if compress else body
    text = json.dumps(header).encode()
    prefix = struct.pack(">8sHI", MAGIC, version, len(text)) + text
    framed = prefix + struct.pack(">Q", len(packed)) + packed
    return framed + (digest if digest is not None else hashlib.sha256(framed).digest())


def header(**fields: Any) -> dict[str, Any]:
    """A valid header, with ``fields`` replaced."""
    return {
        "created_at": 1.0,
        "state_version": 1,
        "fingerprint": "fp",
        "offsets": {"t/0": 5},
        **fields,
    }


def body(skeleton: Any, blobs: bytes = b"", *, flavour: int = 0) -> bytes:
    """An inflated body: skeleton length, JSON flavour, skeleton JSON, array bytes."""
    text = skeleton if isinstance(skeleton, bytes) else json.dumps(skeleton).encode()
    return struct.pack(">QB", len(text), flavour) + text + blobs
