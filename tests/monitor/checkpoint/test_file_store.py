"""FileCheckpointStore: durable, atomic replacement that never loses the last good checkpoint."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from monitor.errors import CheckpointCorruptError, CheckpointStorageError
from monitor.state import FileCheckpointStore, decode, encode


def blob(value: int) -> bytes:
    """A real checkpoint whose state holds ``value``."""
    state = {"value": value, "counts": np.full((4, 3), value, np.int64)}
    return encode(state, {("t", 0): value}, state_version=1, fingerprint="fp", created_at=1.0)


def leftovers(directory: Path) -> list[str]:
    """Files other than the checkpoint and its predecessor."""
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith("checkpoint.ckpt"))


def failing(
    original: Callable[..., Any], error: int, *, when: Callable[..., bool] = lambda *a: True
) -> Callable[..., Any]:
    """Wrap ``original`` so that calls for which ``when`` holds raise OSError(``error``)."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if when(*args):
            raise OSError(error, os.strerror(error))
        return original(*args, **kwargs)

    return wrapper


@pytest.fixture
def store(tmp_path: Path) -> FileCheckpointStore:
    """A store in a fresh directory."""
    return FileCheckpointStore(tmp_path / "state")


def test_save_then_load_round_trips(store: FileCheckpointStore) -> None:
    """What was saved is loaded back byte for byte, at <directory>/<name>.ckpt."""
    assert store.load() is None
    store.save(blob(1))
    assert store.load() == blob(1)
    assert store.path.name == "checkpoint.ckpt"
    assert store.path.read_bytes() == blob(1)
    assert decode(store.load() or b"", location=str(store.path)).state["value"] == 1


def test_directory_is_created(tmp_path: Path) -> None:
    """A missing directory (several levels deep) is created."""
    store = FileCheckpointStore(tmp_path / "a" / "b" / "c", name="model-x")
    store.save(b"data")
    assert (tmp_path / "a" / "b" / "c" / "model-x.ckpt").read_bytes() == b"data"


def test_directory_that_cannot_be_created_is_an_error(tmp_path: Path) -> None:
    """A directory path below a regular file raises CheckpointStorageError with its errno."""
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointStorageError) as caught:
        FileCheckpointStore(tmp_path / "file" / "state")
    assert caught.value.errno == errno.ENOTDIR
    assert "file" in caught.value.location


def test_previous_checkpoint_is_kept(store: FileCheckpointStore) -> None:
    """Each save keeps the checkpoint it replaces as <name>.ckpt.prev."""
    assert store.load_previous() is None
    store.save(blob(1))
    assert store.load_previous() is None
    store.save(blob(2))
    store.save(blob(3))
    assert (store.load(), store.load_previous()) == (blob(3), blob(2))
    assert store.previous_path.name == "checkpoint.ckpt.prev"
    assert leftovers(store.path.parent) == []


def test_previous_is_a_copy_when_hard_links_are_refused(
    store: FileCheckpointStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a file system without hard links the previous checkpoint is copied instead."""
    monkeypatch.setattr(os, "link", failing(os.link, errno.EPERM))
    store.save(blob(1))
    store.save(blob(2))
    assert (store.load(), store.load_previous()) == (blob(2), blob(1))
    assert leftovers(store.path.parent) == []


@pytest.mark.parametrize(
    ("function", "error", "when"),
    [
        ("replace", errno.ENOSPC, lambda src, dst, *a: str(dst).endswith(".ckpt")),
        ("replace", errno.EIO, lambda src, dst, *a: str(dst).endswith(".prev")),
        ("fsync", errno.ENOSPC, lambda *a: True),
        ("link", errno.ENOSPC, lambda *a: True),
        ("open", errno.EACCES, lambda path, *a: str(path).endswith(".tmp")),
        ("open", errno.EROFS, lambda path, *a: str(path).endswith(".tmp")),
    ],
)
def test_failed_save_keeps_last_good_checkpoint(
    store: FileCheckpointStore,
    monkeypatch: pytest.MonkeyPatch,
    function: str,
    error: int,
    when: Callable[..., bool],
) -> None:
    """A save failing midway raises with path and errno; the old checkpoint and prev stay."""
    store.save(blob(1))
    store.save(blob(2))
    monkeypatch.setattr(os, function, failing(getattr(os, function), error, when=when))
    with pytest.raises(CheckpointStorageError) as caught:
        store.save(blob(3))
    monkeypatch.undo()
    assert caught.value.errno == error
    assert str(store.path.parent) in caught.value.location
    assert os.strerror(error) in str(caught.value)
    assert store.load() == blob(2)
    assert store.load_previous() in (blob(1), blob(2))
    assert leftovers(store.path.parent) == []
    store.save(blob(4))
    assert (store.load(), store.load_previous()) == (blob(4), blob(2))


def test_failed_directory_fsync_is_reported(
    store: FileCheckpointStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the rename cannot be made durable the save fails (so offsets are not committed)."""
    store.save(blob(1))
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EIO, "I/O error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(CheckpointStorageError) as caught:
        store.save(blob(2))
    assert caught.value.errno == errno.EIO
    monkeypatch.undo()
    assert store.load() in (blob(1), blob(2))
    assert leftovers(store.path.parent) == []


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A directory made read-only (permissions restored afterwards)."""
    directory = tmp_path / "ro"
    directory.mkdir()
    directory.chmod(0o500)
    yield directory
    directory.chmod(0o700)


def test_read_only_directory_fails_cleanly(tmp_path: Path, read_only: Path) -> None:
    """In a read-only directory save raises EACCES and leaves the existing checkpoint."""
    read_only.chmod(0o700)
    store = FileCheckpointStore(read_only)
    store.save(blob(1))
    read_only.chmod(0o500)
    probe = read_only / ".probe"
    try:
        probe.write_bytes(b"")
    except PermissionError:
        pass
    else:
        probe.unlink()
        pytest.skip("running as root: directory permissions do not block writes")
    with pytest.raises(CheckpointStorageError) as caught:
        store.save(blob(2))
    assert caught.value.errno == errno.EACCES
    assert store.load() == blob(1)


def test_corruption_on_disk_is_detected(store: FileCheckpointStore) -> None:
    """A damaged checkpoint file is refused by decode; the previous one is still sound."""
    store.save(blob(1))
    store.save(blob(2))
    data = bytearray(store.path.read_bytes())
    data[len(data) // 2] ^= 0x01
    store.path.write_bytes(bytes(data))
    with pytest.raises(CheckpointCorruptError) as caught:
        decode(store.load() or b"", location=str(store.path))
    assert caught.value.location == str(store.path)
    previous = decode(store.load_previous() or b"", location=str(store.previous_path))
    assert previous.state["value"] == 1


def test_truncated_file_is_detected(store: FileCheckpointStore) -> None:
    """A checkpoint cut short (a torn write by something else) is refused by decode."""
    store.save(blob(5))
    store.path.write_bytes(store.path.read_bytes()[:-10])
    with pytest.raises(CheckpointCorruptError):
        decode(store.load() or b"", location=str(store.path))


def test_remove_deletes_checkpoint_and_previous(store: FileCheckpointStore) -> None:
    """remove() starts fresh: both files go, and removing nothing is not an error."""
    store.remove()
    store.save(blob(1))
    store.save(blob(2))
    store.remove()
    assert (store.load(), store.load_previous()) == (None, None)
    store.remove()


def test_stale_temporary_files_are_removed(tmp_path: Path) -> None:
    """Temporary files left by a process that died mid-save are cleaned up on start."""
    hex32 = "0123456789abcdef" * 2
    ours, theirs = f".checkpoint.{hex32}.tmp", f".checkpoint.b.{hex32}.tmp"
    for name in (ours, theirs, f".other.{hex32}.tmp", ".checkpoint.x.tmp"):
        (tmp_path / name).write_bytes(b"half")
    FileCheckpointStore(tmp_path)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([theirs, f".other.{hex32}.tmp", ".checkpoint.x.tmp"])


def test_unreadable_checkpoint_is_a_storage_error(store: FileCheckpointStore) -> None:
    """A checkpoint path that cannot be read (here: a directory) raises with its errno."""
    store.path.mkdir()
    with pytest.raises(CheckpointStorageError) as caught:
        store.load()
    assert caught.value.errno == errno.EISDIR


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "../up", "nul\0"])
def test_name_must_be_a_plain_file_name(tmp_path: Path, name: str) -> None:
    """A name that is empty, hidden or holds a path separator is refused."""
    with pytest.raises(ValueError):
        FileCheckpointStore(tmp_path, name=name)


def test_checkpoint_file_is_private(store: FileCheckpointStore) -> None:
    """The checkpoint (segment values are user data) is readable by its owner only."""
    store.save(b"x")
    assert store.path.stat().st_mode & 0o077 == 0


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask of 0, so that a file created without an explicit mode is world-writable."""
    previous = os.umask(0)
    yield
    os.umask(previous)


@pytest.mark.parametrize("hard_links", [True, False])
def test_every_checkpoint_file_is_created_private(
    store: FileCheckpointStore,
    monkeypatch: pytest.MonkeyPatch,
    open_umask: None,
    hard_links: bool,
) -> None:
    """The checkpoint and its predecessor (hard-linked or copied) are 0600 whatever the umask."""
    if not hard_links:
        monkeypatch.setattr(os, "link", failing(os.link, errno.EXDEV))
    store.save(blob(1))
    store.save(blob(2))
    assert store.load_previous() == blob(1)
    for path in (store.path, store.previous_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
