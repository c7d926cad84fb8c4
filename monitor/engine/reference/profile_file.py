"""A reference profile on disk: loaded and validated, written atomically.

The profile is written as pretty JSON with sorted keys (temporary file, fsync,
rename, fsync of the directory), so the same data always gives the same bytes and a
crash never leaves half a profile. Loading refuses a file whose content does not
match its version (``detectors.profile.ReferenceProfile.from_dict`` checks it).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import orjson

from detectors.profile import ReferenceProfile
from monitor.errors import ReferenceProfileError


def load_reference(path: Path) -> ReferenceProfile:
    """Read and validate a reference profile; a content/version mismatch is refused."""
    path = Path(path)
    where = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ReferenceProfileError(where, "no such file") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise ReferenceProfileError(
            where, f"cannot read: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ReferenceProfileError(where, f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ReferenceProfileError(where, "not a reference profile: expected a JSON object")
    try:
        return ReferenceProfile.from_dict(data)
    except KeyError as exc:
        raise ReferenceProfileError(
            where, f"not a valid reference profile: missing key {exc.args[0]!r}"
        ) from None
    except (ValueError, TypeError, AttributeError) as exc:
        raise ReferenceProfileError(where, f"not a valid reference profile: {exc}") from None


def write_reference(profile: ReferenceProfile, path: Path) -> None:
    """Write ``profile`` as pretty, key-sorted JSON: temp file, fsync, rename, fsync dir."""
    path = Path(path)
    data = orjson.dumps(
        profile.to_dict(),
        option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE,
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ReferenceProfileError(str(path), f"cannot write: {exc.strerror or exc}") from None
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(dir_fd)
    except OSError:  # pragma: no cover - file systems that refuse to fsync a directory
        pass
    finally:
        os.close(dir_fd)
