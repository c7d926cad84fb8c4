"""A checkpoint store on the local file system: one blob, replaced atomically.

``save`` writes ``<name>.ckpt`` so that a crash at any moment leaves either the
old or the new checkpoint in place, whole:

1. the blob goes to a temporary file in the same directory, which is flushed,
   fsynced and closed;
2. the current ``<name>.ckpt`` (if any) is hard-linked to a temporary name that
   then replaces ``<name>.ckpt.prev``, so the previous checkpoint stays
   available and ``<name>.ckpt`` is never missing (on a file system without hard
   links the file is copied instead);
3. the temporary file replaces ``<name>.ckpt`` (``os.replace``), and the
   directory is fsynced so the rename itself is durable.

Any ``OSError`` raises ``CheckpointStorageError`` carrying the path and the
``errno``; the temporary files are removed and the last good checkpoint is left
as it was. Every file is created owner-only (0600) by ``os.open``, never chmod'ed
afterwards, so no other user can read a checkpoint at any moment. The store
checks nothing inside the blob: ``codec.decode`` does.

One store per checkpoint file: nothing stops two processes given the same
directory and name from replacing each other's checkpoints.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import structlog

from monitor.errors import CheckpointStorageError

__all__ = ["FileCheckpointStore"]

log = structlog.get_logger()

_T = TypeVar("_T")
_PRIVATE = 0o600
"""Checkpoints hold model inputs' statistics and offsets: owner only, from creation on."""
_NO_HARD_LINKS = frozenset(
    {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK}
)


class FileCheckpointStore:
    """Keeps ``<directory>/<name>.ckpt`` and the one before it, ``<name>.ckpt.prev``."""

    def __init__(self, directory: Path, name: str = "checkpoint") -> None:
        separators = {os.sep, os.altsep or os.sep, "\0"}
        if not name or name.startswith(".") or any(c in name for c in separators):
            raise ValueError(f"checkpoint name {name!r} must be a plain file name")
        self._directory = Path(directory)
        self._name = name
        self._path = self._directory / f"{name}.ckpt"
        self._prev = self._directory / f"{name}.ckpt.prev"
        self._temporary = re.compile(re.escape(f".{name}.") + r"[0-9a-f]{32}\.tmp")
        self._io(str(self._directory), "create directory", self._make_directory)
        self._remove_stale_temporaries()

    @property
    def path(self) -> Path:
        """The current checkpoint file (it may not exist yet)."""
        return self._path

    @property
    def previous_path(self) -> Path:
        """The checkpoint the last successful ``save`` replaced (it may not exist)."""
        return self._prev

    # ------------------------------------------------------------------ save

    def save(self, data: bytes) -> None:
        """Write ``data`` as the new checkpoint, durably and atomically (see module doc).

        Raises ``CheckpointStorageError`` (with ``errno``) and leaves the last good
        checkpoint in place when anything fails. Only when the final directory fsync
        fails is the new checkpoint already in place, but perhaps not durable; the
        error is raised all the same, so that no offsets are committed on it.
        """
        temporary = self._io(str(self._directory), "write", lambda: self._write_temporary(data))
        try:
            if self._path.exists():
                self._io(str(self._prev), "keep previous", self._keep_previous)
            self._io(str(self._path), "replace", lambda: os.replace(temporary, self._path))
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)
            raise
        self._io(str(self._directory), "fsync directory", self._sync_directory)
        log.debug("checkpoint_saved", path=str(self._path), size=len(data))

    def _staging_name(self) -> Path:
        return self._directory / f".{self._name}.{uuid.uuid4().hex}.tmp"

    def _write_temporary(self, data: bytes) -> Path:
        """Write ``data`` to a new temporary file, flushed and fsynced; removed if that fails."""
        path = self._staging_name()
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _PRIVATE)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
            raise
        return path

    def _keep_previous(self) -> None:
        """Make ``<name>.ckpt.prev`` a copy of the current checkpoint; ``<name>.ckpt`` stays."""
        staging = self._staging_name()
        try:
            try:
                os.link(self._path, staging)
            except OSError as exc:
                if exc.errno not in _NO_HARD_LINKS:
                    raise
                self._copy_private(self._path, staging)
            os.replace(staging, self._prev)
        except BaseException:
            with contextlib.suppress(OSError):
                staging.unlink(missing_ok=True)
            raise

    @staticmethod
    def _copy_private(source: Path, target: Path) -> None:
        """Copy ``source`` to a new ``target`` created 0600 (a copy made by ``shutil``
        would be world-readable under the usual umask until chmod'ed), fsynced."""
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _PRIVATE)
        with os.fdopen(descriptor, "wb") as out, source.open("rb") as original:
            shutil.copyfileobj(original, out)
            out.flush()
            os.fsync(out.fileno())

    def _sync_directory(self) -> None:
        descriptor = os.open(self._directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    # ------------------------------------------------------------------ load

    def load(self) -> bytes | None:
        """The current checkpoint's bytes, or None when there is none."""
        return self._read(self._path)

    def load_previous(self) -> bytes | None:
        """The checkpoint before the current one (a fallback when it is corrupt), or None."""
        return self._read(self._prev)

    def _read(self, path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._error(str(path), "read", exc) from exc

    # ---------------------------------------------------------------- remove

    def remove(self) -> None:
        """Delete the checkpoint and the previous one (to start fresh); no error if absent."""
        for path in (self._path, self._prev):
            self._io(str(path), "remove", partial(path.unlink, missing_ok=True))
        self._io(str(self._directory), "fsync directory", self._sync_directory)
        log.info("checkpoint_removed", path=str(self._path))

    def set_aside(self) -> str:
        """Rename the checkpoint to ``<name>.ckpt.refused-<unix time>`` (never deleted: it
        may be needed for forensics); where it went."""
        aside = self._path.with_name(f"{self._path.name}.refused-{int(time.time())}")
        self._io(str(self._path), "set aside", partial(self._path.rename, aside))
        return str(aside)

    def probe(self) -> None:
        """Nothing to ask: ``monitor.state.storage_checks`` checked the directory at start."""

    def close(self) -> None:
        """Nothing held open between saves."""

    # --------------------------------------------------------------- helpers

    def _make_directory(self) -> None:
        self._directory.mkdir(parents=True, exist_ok=True)
        if not self._directory.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(self._directory))

    def _remove_stale_temporaries(self) -> None:
        """Temporary files left by a process that died mid-save are garbage."""
        try:
            for stale in self._directory.iterdir():
                if self._temporary.fullmatch(stale.name):
                    stale.unlink()
                    log.info("checkpoint_stale_temporary_removed", path=str(stale))
        except OSError as exc:
            log.warning("checkpoint_stale_temporaries_kept", error=str(exc))

    @staticmethod
    def _error(location: str, action: str, exc: OSError) -> CheckpointStorageError:
        reason = exc.strerror or str(exc)
        return CheckpointStorageError(location, f"{action} failed: {reason}", errno=exc.errno)

    def _io(self, location: str, action: str, operation: Callable[[], _T]) -> _T:
        try:
            return operation()
        except OSError as exc:
            log.error("checkpoint_io_failed", path=location, action=action, error=str(exc))
            raise self._error(location, action, exc) from exc
