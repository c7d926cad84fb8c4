"""Start-time checks of the local paths driftd writes: refuse to start rather than run blind.

A daemon whose checkpoint directory cannot be written would consume, report ready and
never commit; one whose journal cannot be opened would crash on its first window. So
``driftd run`` checks both before anything starts and exits 3 naming the key and the
path, and ``driftd check-config`` runs the same checks without creating anything.

A directory is proven writable by creating (and removing) a hidden probe file in it:
permission bits alone say nothing about a read-only mount, and nothing at all for root.
The journal file itself is never created here, so that its own code creates it with
the mode it wants.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

from monitor.config import Settings
from monitor.errors import StorageUnusableError

__all__ = ["local_storage_errors"]

_PROBE_PREFIX = ".driftd-write-probe-"


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _nearest_existing(path: Path) -> Path:
    """Absolute ``path`` or its closest ancestor that exists (the root always does)."""
    path = path.absolute()
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(path.anchor)


def _probe_directory(directory: Path) -> None:
    """Create and remove a file in ``directory``; ``OSError`` if that is not possible."""
    probe = directory / f"{_PROBE_PREFIX}{uuid.uuid4().hex}"
    descriptor = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(descriptor)
    with contextlib.suppress(FileNotFoundError):
        probe.unlink()


def directory_problem(directory: Path, *, create: bool) -> str | None:
    """Why files cannot be created in ``directory``, or None when they can.

    ``create`` makes the directory (and its parents) first, as the daemon would;
    without it a missing directory is judged by the closest ancestor that exists,
    which must be a directory where one can be created.
    """
    try:
        if create:
            directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create the directory: {_reason(exc)}"
    except ValueError as exc:  # a NUL byte in the path
        return str(exc)
    existing = _nearest_existing(directory)
    if not existing.is_dir():
        return f"{existing} is not a directory"
    try:
        _probe_directory(existing)
    except OSError as exc:
        return f"cannot create files in {existing}: {_reason(exc)}"
    return None


def file_problem(path: Path, *, create_parent: bool) -> str | None:
    """Why ``path`` cannot be opened for appending (or created), or None when it can."""
    try:
        if path.is_dir():
            return "is a directory, not a file"
        if path.exists():
            # Opening for append changes nothing in the file.
            with path.open("ab"):
                pass
            return None
    except OSError as exc:
        return f"cannot open for appending: {_reason(exc)}"
    except ValueError as exc:
        return str(exc)
    return directory_problem(path.parent, create=create_parent)


def local_storage_errors(settings: Settings, *, create: bool) -> list[StorageUnusableError]:
    """The local paths the daemon writes that it could not write, each by its key.

    The checkpoint directory matters only to a Kafka source with ``checkpoint.store:
    file`` (file, stdin and demo runs keep no checkpoint). ``create`` makes missing
    directories (``run``); ``check-config`` leaves the file system as it found it.
    """
    errors: list[StorageUnusableError] = []
    checkpoint = settings.checkpoint
    if settings.source.type == "kafka" and checkpoint.store == "file":
        problem = directory_problem(checkpoint.directory, create=create)
        if problem is not None:
            errors.append(
                StorageUnusableError("checkpoint.directory", str(checkpoint.directory), problem)
            )
    journal = settings.journal.path
    if journal is not None:
        problem = file_problem(journal, create_parent=create)
        if problem is not None:
            errors.append(StorageUnusableError("journal.path", str(journal), problem))
    return errors
