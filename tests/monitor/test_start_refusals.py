"""Refusals at start: a checkpoint directory or journal driftd cannot write stops `run` (exit 3).

Paths are made unwritable in ways that hold for root too (CI often runs as root, where
permission bits block nothing): a path through a regular file, or a read-only bind
mount in a private mount namespace (``unshare --mount``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from monitor.state.kafka_store import KafkaCheckpointStore
from tests.monitor.cli_helpers import driftd_lines, write_config

ROOT = Path(__file__).resolve().parents[2]
SH_READ_ONLY_BIND = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'


def _env() -> dict[str, str]:
    """This environment without DRIFTD_ variables, running the code of this checkout."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("DRIFTD_")}
    return env | {"PYTHONPATH": str(ROOT)}


def _driftd(*args: str, prefix: list[str] | None = None, timeout: float = 60) -> Any:
    """Run ``python -m monitor.cli`` (behind ``prefix``, if any); the completed process."""
    command = [*(prefix or []), sys.executable, "-m", "monitor.cli", *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, check=False, env=_env()
    )


@cache
def _can_bind_read_only() -> bool:
    """Whether this process may make a private read-only bind mount (root with CAP_SYS_ADMIN)."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--mount", "sh", "-c", SH_READ_ONLY_BIND, "/", "true"],
        capture_output=True,
        check=False,
        timeout=30,
    )
    return probe.returncode == 0


def _read_only(directory: Path) -> list[str]:
    """Make ``directory`` unwritable for the command run behind the returned prefix."""
    directory.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        directory.chmod(0o555)
        return []
    if not _can_bind_read_only():
        pytest.skip("root without the right to mount: no way to make a directory unwritable")
    return ["unshare", "--mount", "sh", "-c", SH_READ_ONLY_BIND, str(directory)]


def _config(tmp_path: Path, **sections: Any) -> Path:
    """A Kafka config (no broker is needed: the refusal comes first) with ``sections``."""
    config: dict[str, Any] = {
        "model": "credit-risk",
        "kafka": {
            "bootstrap_servers": ["127.0.0.1:9"],
            "topics": ["events"],
            "dead_letter_topic": None,
        },
        "reference": {"warmup_events": 100},
        "checkpoint": {"directory": str(tmp_path / "state")},
        "metrics": {"host": "127.0.0.1", "port": 0},
        "logging": {"level": "error", "format": "json"},
    }
    config.update(sections)
    return write_config(tmp_path, config)


def test_read_only_checkpoint_directory_refuses_the_start(tmp_path: Path) -> None:
    """An existing checkpoint directory that takes no file: exit 3 naming the key, no blind run."""
    state = tmp_path / "state"
    prefix = _read_only(state)
    proc = _driftd("run", "-c", str(_config(tmp_path)), prefix=prefix)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    (line,) = driftd_lines(proc.stderr)
    assert line.startswith(f"driftd: refusing to start: checkpoint.directory: {state}: ")
    assert "cannot create files in" in line
    assert not list(state.iterdir())  # the probe file did not stay behind


def test_checkpoint_directory_through_a_file_refuses_naming_the_key(tmp_path: Path) -> None:
    """A checkpoint directory below a regular file: exit 3, one line naming the key and path."""
    (tmp_path / "file").write_text("x")
    state = tmp_path / "file" / "state"
    proc = _driftd("run", "-c", str(_config(tmp_path, checkpoint={"directory": str(state)})))
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert driftd_lines(proc.stderr) == [
        f"driftd: refusing to start: checkpoint.directory: {state}: "
        "cannot create the directory: Not a directory"
    ]


@pytest.mark.parametrize("where", ["through_a_file", "read_only", "a_directory"])
def test_unwritable_journal_refuses_the_start(tmp_path: Path, where: str) -> None:
    """A journal.path that cannot be appended to: exit 3 naming the key, before any event."""
    events = tmp_path / "events.jsonl"
    events.write_text('{"ts": 1, "features": {"x": 1.0}}\n')
    prefix: list[str] = []
    if where == "through_a_file":
        (tmp_path / "file").write_text("x")
        journal = tmp_path / "file" / "journal.jsonl"
    elif where == "read_only":
        journal = tmp_path / "ro" / "journal.jsonl"
        prefix = _read_only(journal.parent)
    else:
        journal = tmp_path / "journal.jsonl"
        journal.mkdir()
    config = _config(
        tmp_path,
        source={"type": "file", "path": str(events)},
        checkpoint={"store": "none"},
        journal={"path": str(journal)},
    )
    proc = _driftd("run", "-c", str(config), prefix=prefix)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    (line,) = driftd_lines(proc.stderr)
    assert line.startswith(f"driftd: refusing to start: journal.path: {journal}: ")
    assert "events read" not in proc.stderr  # nothing was consumed


def test_check_config_tests_the_paths_and_exits_like_run(tmp_path: Path) -> None:
    """check-config names each unwritable path by key: exit 3, or 2 when the config is bad too."""
    (tmp_path / "file").write_text("x")
    blocked = tmp_path / "file"
    sections: dict[str, Any] = {
        "checkpoint": {"directory": str(blocked / "state")},
        "journal": {"path": str(blocked / "journal.jsonl")},
    }
    proc = _driftd("check-config", "-c", str(_config(tmp_path, **sections)))
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == ""
    assert driftd_lines(proc.stderr) == [
        f"driftd: storage error: checkpoint.directory: {blocked / 'state'}: "
        f"{blocked} is not a directory",
        f"driftd: storage error: journal.path: {blocked / 'journal.jsonl'}: "
        f"{blocked} is not a directory",
    ]
    sections["reference"] = {"path": str(tmp_path / "reference.json")}
    proc = _driftd("check-config", "-c", str(_config(tmp_path, **sections)))
    assert proc.returncode == 2, proc.stderr
    assert f"driftd: config error: reference.path: {tmp_path / 'reference.json'}: no such file" in (
        driftd_lines(proc.stderr)
    )
    assert len(driftd_lines(proc.stderr)) == 3


def test_check_config_creates_nothing(tmp_path: Path) -> None:
    """A missing but creatable checkpoint directory and journal pass check-config, uncreated."""
    state = tmp_path / "a" / "state"
    journal = tmp_path / "b" / "journal.jsonl"
    config = _config(tmp_path, checkpoint={"directory": str(state)}, journal={"path": str(journal)})
    proc = _driftd("check-config", "-c", str(config))
    assert proc.returncode == 0, proc.stderr
    assert "driftd: config ok" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["driftd.yaml"]


def test_check_config_finds_a_read_only_checkpoint_directory(tmp_path: Path) -> None:
    """A checkpoint directory on a read-only mount fails check-config too, naming the key."""
    state = tmp_path / "state"
    proc = _driftd("check-config", "-c", str(_config(tmp_path)), prefix=_read_only(state))
    assert proc.returncode == 3, proc.stderr
    (line,) = driftd_lines(proc.stderr)
    assert line.startswith(f"driftd: storage error: checkpoint.directory: {state}: ")


def test_checkpoint_topic_probe_waits_out_an_unreachable_broker() -> None:
    """No broker answering at start is an outage to wait out, not a refusal: probe says False."""
    store = KafkaCheckpointStore(["127.0.0.1:9"], "driftd-checkpoints", "group", timeout_s=2)
    try:
        assert store.probe() is False
    finally:
        store.close()


@pytest.mark.parametrize("topic", ["bad topic!", "..", "x" * 250])
def test_checkpoint_topic_kafka_cannot_name_is_a_config_error(tmp_path: Path, topic: str) -> None:
    """A checkpoint.topic Kafka would refuse as a name fails check-config: exit 2 naming it."""
    config = _config(tmp_path, checkpoint={"store": "kafka", "topic": topic})
    proc = _driftd("check-config", "-c", str(config))
    assert proc.returncode == 2, proc.stderr
    (line,) = driftd_lines(proc.stderr)
    assert line.startswith("driftd: config error: checkpoint") and "topic" in line
