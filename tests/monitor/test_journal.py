"""The journal file: created 0600, one stable id per line, nothing written twice on replay."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest

from monitor.emit import journal as journal_module
from monitor.emit.journal import Journal, line_id
from monitor.engine.decision import Transition
from monitor.engine.outcome import BatchOutcome
from monitor.engine.results import WindowResults


def _transition(ts: float) -> Transition:
    return Transition(
        model="m",
        segment="eu",
        column="age",
        method="psi",
        previous="ok",
        current="firing",
        score=0.3,
        threshold=0.1,
        clear=0.05,
        p_value=0.0,
        n=500,
        window_end_ts=ts,
        dedup_key="driftd/m/eu/age/psi",
        consecutive=1,
    )


def _windows(*ends: float) -> WindowResults:
    k = len(ends)
    return WindowResults(
        model="m",
        segments=("eu",) * k,
        columns=("age",),
        window_end_ts=np.array(ends, dtype=np.float64),
        rows=np.full(k, 500),
        n=np.full((k, 1), 500),
        missing_rate=np.zeros((k, 1)),
        scores={"psi": np.full((k, 1), 0.25)},
        p_values={},
    )


def _outcome(results: WindowResults | None = None, *transitions: Transition) -> BatchOutcome:
    return BatchOutcome(0, 0, [], results, list(transitions))


def _read(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that would let anyone read a file created with the default mode."""
    old = os.umask(0)
    yield
    os.umask(old)


def test_journal_is_created_0600_even_under_umask_0(tmp_path: Path, open_umask: None) -> None:
    """A new journal is the owner's alone, whatever the umask."""
    path = tmp_path / "sub" / "journal.jsonl"
    Journal(path, "m").close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_existing_journal_keeps_its_mode(tmp_path: Path) -> None:
    """An operator's choice of mode for an existing journal is left alone."""
    path = tmp_path / "journal.jsonl"
    path.touch()
    path.chmod(0o640)
    Journal(path, "m").close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_line_id_is_the_hash_of_model_and_content_without_wall_clock(tmp_path: Path) -> None:
    """Each line's id is line_id(model, line); equal content gives equal ids across runs."""
    path = tmp_path / "journal.jsonl"
    journal = Journal(path, "m")
    journal(_outcome(_windows(10.0), _transition(10.0)))
    journal.close()
    lines = _read(path)
    assert [line["kind"] for line in lines] == ["window", "transition"]
    for line in lines:
        assert line["id"] == line_id("m", line)
    assert line_id("m", lines[0]) != line_id("other-model", lines[0])
    assert len({line["id"] for line in lines}) == 2


def test_replay_writes_nothing_twice_and_then_goes_on(tmp_path: Path) -> None:
    """A re-run of the same batches adds nothing; the batches after them are appended."""
    path = tmp_path / "journal.jsonl"
    first = Journal(path, "m")
    first(_outcome(_windows(10.0, 20.0)))
    first(_outcome(_windows(30.0), _transition(30.0)))
    first.close()
    before = path.read_bytes()

    again = Journal(path, "m")
    again(_outcome(_windows(10.0, 20.0)))
    again(_outcome(_windows(30.0), _transition(30.0)))
    assert path.read_bytes() == before and again.skipped == 4
    again(_outcome(_windows(40.0)))
    again.close()
    assert [line["window_end_ts"] for line in _read(path)] == [10.0, 20.0, 30.0, 30.0, 40.0]


def test_identical_lines_are_counted_not_collapsed(tmp_path: Path) -> None:
    """Two windows recording the same thing are two lines; a replay of both adds none."""
    path = tmp_path / "journal.jsonl"
    first = Journal(path, "m")
    first(_outcome(_windows(10.0, 10.0)))
    first.close()
    again = Journal(path, "m")
    again(_outcome(_windows(10.0, 10.0, 10.0)))
    again.close()
    assert len(_read(path)) == 3


def test_a_line_cut_short_by_a_kill_is_dropped_and_written_whole(tmp_path: Path) -> None:
    """A torn last line is truncated on open, so the replay's line is not glued to it."""
    path = tmp_path / "journal.jsonl"
    first = Journal(path, "m")
    first(_outcome(_windows(10.0, 20.0)))
    first.close()
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) - 25])  # the kill hit mid-write of the second line
    again = Journal(path, "m")
    again(_outcome(_windows(10.0, 20.0)))
    again.close()
    assert path.read_bytes() == whole


def test_only_the_tail_is_read_for_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ids are read from the last REPLAY_TAIL_BYTES only: memory is bounded by that."""
    path = tmp_path / "journal.jsonl"
    first = Journal(path, "m")
    first(_outcome(_windows(*[float(t) for t in range(1, 101)])))
    first.close()
    line_bytes = len(path.read_bytes()) // 100
    monkeypatch.setattr(journal_module, "REPLAY_TAIL_BYTES", 10 * line_bytes + line_bytes // 2)
    again = Journal(path, "m")
    # The partial first line of the tail is not taken for an id: 10 known lines.
    assert again.skipped == 0
    again(_outcome(_windows(*[float(t) for t in range(1, 101)])))
    again.close()
    assert again.skipped == 10
    assert len(_read(path)) == 190
