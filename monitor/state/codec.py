"""The checkpoint format: a versioned, checksummed binary encoding of a state tree.

Nothing in a checkpoint can execute code: there is no pickle, only JSON and raw
little-endian array bytes, both checked before use.

Layout of format version 1 (integers big-endian)::

    offset      size  field
    0           8     magic b"DRIFTDCK"
    8           2     format version (uint16, 1)
    10          4     header length H (uint32)
    14          H     header: UTF-8 JSON object (see below), uncompressed
    14+H        8     body length B (uint64)
    22+H        B     body: one zstd frame (level 1), or a zlib stream (level 1)
    22+H+B      32    SHA-256 of every byte before it

The header holds ``created_at`` (epoch seconds), ``state_version`` (int),
``fingerprint`` (str), ``offsets`` (``{"<topic>/<partition>": next_offset}``),
``compression`` (``"zstd"`` or ``"zlib"``) and ``raw_size`` (the body's size
uncompressed). It can be read without inflating the body (``peek``). zstd (from
pyarrow, a dependency already) is about ten times faster than zlib on sketch
counts and compresses them better; zlib is the fallback when pyarrow was built
without it, and both are always read.

The inflated body holds the state tree: a JSON skeleton plus the raw bytes of
its numpy arrays (see ``monitor.state.tree``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import struct
import time
import zlib
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

from monitor.errors import (
    CheckpointCorruptError,
    CheckpointEncodeError,
    CheckpointIncompatibleError,
)
from monitor.state.tree import MAX_DEPTH, pack, unpack

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "MAX_DEPTH",
    "Checkpoint",
    "CheckpointInfo",
    "decode",
    "encode",
    "peek",
]

MAGIC = b"DRIFTDCK"
FORMAT_VERSION = 1
"""The only format version this build writes and reads."""

_PREFIX = struct.Struct(">8sHI")  # magic, format version, header length
_BODY_LEN = struct.Struct(">Q")
_DIGEST_SIZE = hashlib.sha256().digest_size
_MIN_SIZE = _PREFIX.size + _BODY_LEN.size + _DIGEST_SIZE
_MAX_HEADER = 64 * 1024 * 1024
_ZLIB_LEVEL = 1
_ZSTD_LEVEL = 1
_COMPRESSIONS = frozenset({"zstd", "zlib"})

Offsets = dict[tuple[str, int], int]


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint's header says about it (read without inflating the state)."""

    offsets: Offsets
    state_version: int
    fingerprint: str
    created_at: float
    format_version: int
    size: int
    """The checkpoint's size in bytes, as stored."""
    raw_size: int
    """The state's size in bytes once inflated."""


@dataclass(frozen=True)
class Checkpoint:
    """A decoded checkpoint: the state tree and the next offsets it includes events up to."""

    state: dict[str, Any]
    offsets: Offsets
    state_version: int
    fingerprint: str
    created_at: float


# ---------------------------------------------------------------------------- encode


def _header_offsets(offsets: Mapping[tuple[str, int], int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, offset in offsets.items():
        if not (isinstance(key, tuple) and len(key) == 2):
            raise CheckpointEncodeError("offsets", f"key {key!r} is not a (topic, partition) pair")
        topic, partition = key
        if type(topic) is not str or not topic:
            raise CheckpointEncodeError("offsets", f"topic {topic!r} is not a non-empty str")
        if type(partition) is not int or partition < 0:
            raise CheckpointEncodeError("offsets", f"{topic}: partition {partition!r} is invalid")
        if type(offset) is not int or offset < 0:
            raise CheckpointEncodeError(
                "offsets", f"{topic}/{partition}: offset {offset!r} is not an int >= 0"
            )
        out[f"{topic}/{partition}"] = offset
    return out


@functools.cache
def _zstd() -> Any:
    """pyarrow's zstd codec at level 1, or None if this pyarrow lacks it (imported on first use)."""
    try:
        import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]  # noqa: PLC0415
    except ImportError:
        return None
    if not pa.Codec.is_available("zstd"):
        return None
    return pa.Codec("zstd", compression_level=_ZSTD_LEVEL)


def _compress(pieces: list[bytes | memoryview]) -> tuple[str, bytes]:
    """(compression name, compressed concatenation of ``pieces``)."""
    codec = _zstd()
    if codec is not None:
        compressed: bytes = codec.compress(b"".join(pieces), asbytes=True)
        return "zstd", compressed
    compressor = zlib.compressobj(_ZLIB_LEVEL)
    parts = [compressor.compress(piece) for piece in pieces]
    parts.append(compressor.flush())
    return "zlib", b"".join(parts)


def encode(
    state: dict[str, Any],
    offsets: Mapping[tuple[str, int], int],
    *,
    state_version: int,
    fingerprint: str,
    created_at: float | None = None,
) -> bytes:
    """Encode ``state`` and the next ``offsets`` as one checkpoint (see the module doc).

    Raises ``CheckpointEncodeError`` naming the first value that cannot be stored:
    anything but dict (str keys), list, str, int, float, bool, None and numpy
    bool/int/uint/float/complex arrays or scalars.
    """
    if not isinstance(state, dict):
        raise CheckpointEncodeError("state", f"must be a dict, not {type(state).__name__}")
    if type(state_version) is not int:
        raise CheckpointEncodeError("state_version", f"{state_version!r} is not an int")
    if type(fingerprint) is not str:
        raise CheckpointEncodeError("fingerprint", f"{fingerprint!r} is not a str")
    when = time.time() if created_at is None else float(created_at)
    if not math.isfinite(when):
        raise CheckpointEncodeError("created_at", f"{created_at!r} is not a finite time")
    next_offsets = _header_offsets(offsets)

    pieces, raw_size = pack(state)
    compression, body = _compress(pieces)
    header = json.dumps(
        {
            "created_at": when,
            "state_version": state_version,
            "fingerprint": fingerprint,
            "offsets": next_offsets,
            "compression": compression,
            "raw_size": raw_size,
        },
        ensure_ascii=True,
        separators=(",", ":"),
    ).encode("ascii")
    digest = hashlib.sha256()
    prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(header)) + header
    digest.update(prefix)
    body_len = _BODY_LEN.pack(len(body))
    digest.update(body_len)
    digest.update(body)
    return b"".join((prefix, body_len, body, digest.digest()))


# ---------------------------------------------------------------------------- decode


def _corrupt(location: str, reason: str, message: str) -> NoReturn:
    raise CheckpointCorruptError(location, message, reason=reason)


def _strict_int(value: object) -> bool:
    return type(value) is int


def _split(data: bytes, location: str) -> tuple[dict[str, Any], memoryview, int]:
    """Check framing and checksum; return (header, compressed body, format version)."""
    view = memoryview(data)
    if len(view) < _PREFIX.size:
        _corrupt(location, "truncated", f"{len(view)} bytes is too short for a checkpoint")
    magic, version, header_len = _PREFIX.unpack_from(view, 0)
    if magic != MAGIC:
        _corrupt(location, "bad_magic", f"not a driftd checkpoint (starts with {magic!r})")
    if version != FORMAT_VERSION:
        raise CheckpointIncompatibleError(location, "format_version", FORMAT_VERSION, version)
    if header_len > _MAX_HEADER or len(view) < _MIN_SIZE + header_len:
        _corrupt(location, "truncated", f"{len(view)} bytes cannot hold a header of {header_len}")
    body_at = _PREFIX.size + header_len + _BODY_LEN.size
    (body_len,) = _BODY_LEN.unpack_from(view, body_at - _BODY_LEN.size)
    expected = body_at + body_len + _DIGEST_SIZE
    if len(view) != expected:
        reason = "truncated" if len(view) < expected else "malformed"
        _corrupt(location, reason, f"size {len(view)} bytes, the framing says {expected}")
    end = body_at + body_len
    if hashlib.sha256(view[:end]).digest() != view[end:].tobytes():
        _corrupt(location, "checksum", "SHA-256 mismatch: the checkpoint is damaged")
    try:
        header = json.loads(bytes(view[_PREFIX.size : _PREFIX.size + header_len]))
    except ValueError as exc:
        _corrupt(location, "malformed", f"header is not JSON: {exc}")
    if not isinstance(header, dict):
        _corrupt(location, "malformed", "header is not a JSON object")
    return header, view[body_at:end], version


def _info(header: dict[str, Any], location: str, size: int, version: int) -> CheckpointInfo:
    created_at: Any = header.get("created_at")
    state_version: Any = header.get("state_version")
    fingerprint: Any = header.get("fingerprint")
    raw_size: Any = header.get("raw_size")
    raw_offsets: Any = header.get("offsets")
    if not (
        type(created_at) in (int, float)
        and _strict_int(state_version)
        and isinstance(fingerprint, str)
        and _strict_int(raw_size)
        and raw_size >= 0
        and isinstance(raw_offsets, dict)
        and header.get("compression") in _COMPRESSIONS
    ):
        _corrupt(location, "malformed", "header fields missing or of the wrong type")
    offsets: Offsets = {}
    for name, offset in raw_offsets.items():
        topic, _, partition = name.rpartition("/")
        if (
            not topic
            or not (partition.isascii() and partition.isdigit())
            or not _strict_int(offset)
            or offset < 0
        ):
            _corrupt(location, "malformed", f"bad offset entry {name!r}: {offset!r}")
        offsets[(topic, int(partition))] = offset
    return CheckpointInfo(
        offsets=offsets,
        state_version=state_version,
        fingerprint=fingerprint,
        created_at=float(created_at),
        format_version=version,
        size=size,
        raw_size=raw_size,
    )


@contextmanager
def _refusing(location: str) -> Iterator[None]:
    """Turn any stray parsing error into ``CheckpointCorruptError``.

    The checksum matched by then, so only a crafted file can get there; still
    refuse it cleanly rather than leak a ``TypeError`` to the daemon.
    """
    try:
        yield
    except (
        TypeError,
        ValueError,
        KeyError,
        IndexError,
        AttributeError,
        OverflowError,
        RecursionError,
        MemoryError,
        struct.error,
    ) as exc:
        raise CheckpointCorruptError(
            location, f"malformed: {type(exc).__name__}: {exc}", reason="malformed"
        ) from exc


def peek(data: bytes, *, location: str) -> CheckpointInfo:
    """Check a checkpoint's framing and checksum and return its header; the state stays packed.

    Raises ``CheckpointCorruptError`` or ``CheckpointIncompatibleError`` (format version).
    """
    with _refusing(location):
        header, _, version = _split(data, location)
        return _info(header, location, len(data), version)


def _inflate(body: memoryview, compression: str, raw_size: int, location: str) -> bytes:
    if compression == "zstd":
        codec = _zstd()
        if codec is None:
            raise CheckpointIncompatibleError(location, "compression", "zlib", "zstd")
        try:
            raw: bytes = codec.decompress(body, decompressed_size=raw_size, asbytes=True)
        except (OSError, ValueError, MemoryError) as exc:
            _corrupt(location, "malformed", f"body does not inflate to {raw_size} bytes: {exc}")
        return raw
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(body, raw_size)
    except zlib.error as exc:
        _corrupt(location, "malformed", f"body does not inflate: {exc}")
    if len(raw) != raw_size or not inflater.eof or inflater.unconsumed_tail:
        _corrupt(location, "malformed", f"body inflates to a size other than {raw_size} bytes")
    return raw


def decode(
    data: bytes,
    *,
    location: str,
    expect_state_version: int | None = None,
    expect_fingerprint: str | Collection[str] | None = None,
) -> Checkpoint:
    """Check and decode a checkpoint made by ``encode``; ``location`` names it in errors.

    Raises ``CheckpointCorruptError`` (truncated, bit flips, wrong magic, bad
    structure, refused dtype) or ``CheckpointIncompatibleError`` (unknown format
    version; ``state_version`` other than expected, or a ``fingerprint`` not among
    ``expect_fingerprint``), and
    nothing else. Arrays come back as writable arrays that own their memory.
    """
    with _refusing(location):
        header, body, version = _split(data, location)
        info = _info(header, location, len(data), version)
        if expect_state_version is not None and info.state_version != expect_state_version:
            raise CheckpointIncompatibleError(
                location, "state_version", expect_state_version, info.state_version
            )
        accepted = (
            {expect_fingerprint} if isinstance(expect_fingerprint, str) else expect_fingerprint
        )
        if accepted is not None and info.fingerprint not in accepted:
            raise CheckpointIncompatibleError(
                location, "fingerprint", next(iter(accepted)), info.fingerprint
            )
        raw = _inflate(body, header["compression"], info.raw_size, location)
        state = unpack(raw, location)
    return Checkpoint(
        state=state,
        offsets=info.offsets,
        state_version=info.state_version,
        fingerprint=info.fingerprint,
        created_at=info.created_at,
    )
