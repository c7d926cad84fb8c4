"""An append-only JSON-lines journal of closed windows and alert transitions.

For audits and offline analysis ("what did driftd see on Tuesday?"), and for the
crash tests, which compare a killed-and-restarted run against an uninterrupted one.
Each line is written and flushed after its batch has been processed.

**Private.** The file is created with mode 0600 in the ``open`` call itself, so it is
never readable by others, not even for a moment; an existing file keeps its mode.

**Exact after a crash.** After a crash the batches since the last checkpoint are read
again and close the same windows, with the same scores, and make the same transitions.
Each line carries an ``id``: a hash of the model and everything else the line records
(kind, segment, window end, rows, scores; or dedup key, state, time, score), never the
wall-clock time, so a replayed line has the id of its first writing. On open, the
ids of the last :data:`REPLAY_TAIL_BYTES` of the file are read as a multiset, and a
line whose id is still in it is consumed from it instead of being written again. Two
distinct lines recording exactly the same thing are both kept (a count, not a set).
A line a kill cut short is removed on open (its batch was never checkpointed, so it
is written again whole).
"""

from __future__ import annotations

import hashlib
import math
import os
from collections import Counter
from pathlib import Path
from typing import IO, Any, Final

import orjson
import structlog

from monitor.engine.outcome import BatchOutcome
from monitor.engine.results import WindowResults

__all__ = ["FILE_MODE", "REPLAY_TAIL_BYTES", "Journal", "line_id", "window_lines"]

FILE_MODE: Final = 0o600
"""Mode of a journal file driftd creates: the owner's alone."""
REPLAY_TAIL_BYTES: Final = 32 * 1024 * 1024
"""How much of an existing journal's end is read for ids on open. Lines written since
the checkpoint a restart restores must fit in it for the replay to add nothing (ten
seconds of windows, at the default checkpoint interval, take far less)."""

_log = structlog.get_logger()


def _number(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 9)


def line_id(model: str, line: dict[str, Any]) -> str:
    """The stable id of a journal ``line`` of ``model`` (its ``id`` key aside)."""
    content = {k: v for k, v in line.items() if k != "id"}
    canonical = orjson.dumps([model, content], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:32]


def window_lines(kind: str, results: WindowResults) -> list[dict[str, Any]]:
    """One JSON-safe dict per closed window in ``results``."""
    out = []
    for row, segment in enumerate(results.segments):
        scores = {
            method: {
                column: _number(float(values[row, j]))
                for j, column in enumerate(results.columns)
                if not math.isnan(float(values[row, j]))
            }
            for method, values in results.scores.items()
        }
        out.append(
            {
                "kind": kind,
                "segment": segment,
                "window_end_ts": float(results.window_end_ts[row]),
                "rows": int(results.rows[row]),
                "scores": scores,
            }
        )
    return out


class Journal:
    """The ``on_batch`` callback that appends a batch's windows and transitions."""

    def __init__(self, path: Path, model: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.model = model
        self.path = path
        self.skipped = 0
        """Lines not written again because the journal already held them (a replay)."""
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        fd = os.open(path, flags, FILE_MODE)
        try:
            self._written = self._existing_ids(fd)
            self._file: IO[bytes] = os.fdopen(fd, "ab")
        except BaseException:
            os.close(fd)
            raise
        _log.info("journal_opened", path=str(path), known_lines=self._written.total())

    def _existing_ids(self, fd: int) -> Counter[str]:
        """The ids of the lines at the end of the file; drop a line a kill cut short."""
        size = os.fstat(fd).st_size
        start = max(0, size - REPLAY_TAIL_BYTES)
        tail = os.pread(fd, size - start, start)
        complete = tail.rfind(b"\n") + 1
        if complete < len(tail):
            os.ftruncate(fd, start + complete)
            _log.warning(
                "journal_torn_line_dropped", path=str(self.path), bytes=len(tail) - complete
            )
        lines = tail[:complete].split(b"\n")
        if start > 0:
            lines = lines[1:]  # the first line may begin before the tail
        ids: Counter[str] = Counter()
        for raw in lines:
            try:
                line = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue  # the empty string after the last newline, or a foreign line
            if isinstance(line, dict):
                known = line.get("id")
                ids[known if isinstance(known, str) else line_id(self.model, line)] += 1
        return ids

    def __call__(self, outcome: BatchOutcome) -> None:
        """Append what ``outcome`` closed and decided, unless the journal holds it already."""
        lines: list[dict[str, Any]] = []
        if outcome.results is not None:
            lines += window_lines("window", outcome.results)
        if outcome.labels is not None:
            for extra in outcome.labels.results:
                lines += window_lines("label_window", extra)
        for t in outcome.transitions:
            lines.append(
                {
                    "kind": "transition",
                    "dedup_key": t.dedup_key,
                    "to": t.current,
                    "window_end_ts": t.window_end_ts,
                    "score": _number(t.score),
                }
            )
        out: list[bytes] = []
        for line in lines:
            identity = line_id(self.model, line)
            if self._written[identity] > 0:
                self._written[identity] -= 1
                self.skipped += 1
                continue
            out.append(orjson.dumps({"id": identity, **line}) + b"\n")
        skipped = len(lines) - len(out)
        if skipped:
            # Said once at info (a replay is under way), then per batch at debug.
            log = _log.info if self.skipped == skipped else _log.debug
            log("journal_replay_skipped", lines=skipped, total=self.skipped)
        if out:
            self._file.write(b"".join(out))
            self._file.flush()

    def close(self) -> None:
        """Close the file."""
        self._file.close()
        if self.skipped:
            _log.info("journal_closed", path=str(self.path), replayed_lines_skipped=self.skipped)
