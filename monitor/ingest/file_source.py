"""Replay JSON Lines from a file or from stdin.

Each non-empty line is one ``Record``: topic ``file:<file name>`` (or ``stdin``),
partition 0, and the line's 1-based line number as its offset, so an offset
names the line an editor shows (blank lines are skipped but still counted).
A last line without a trailing newline is a record too. ``poll`` honours its
timeout on a pipe: stdin is read with ``select`` and non-blocking chunks, so a
quiet producer never keeps the daemon from handling SIGTERM.

Nothing is committed (``commit`` is a no-op), ``lag`` is ``{}``, and the source
is ``exhausted`` once end of file has been read and every line handed out.

Dead letters go to ``<input path>.dead-letter.jsonl`` beside the input, one
JSON object per refused record: ``reason``, ``detail``, ``source``,
``offset`` (the line number) and ``value_b64`` (the original bytes, base64).
The file is opened lazily in append mode, so a run that refuses nothing
leaves no file, and a replay of the same input adds to it rather than
overwriting the earlier run's entries. stdin has no place for such a file, and
stdout/stderr are for logs, so for stdin refused records are only counted
(``dead_letter_counts``) and summarised in the log. If the file cannot be
written (read-only directory), that is logged once and records are only counted:
a replay is never stopped by its dead letters.
"""

from __future__ import annotations

import base64
import os
import select
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

import orjson
import structlog

from monitor.errors import SourceError
from monitor.ingest.source import Record, TopicPartition, UngroupedSource

__all__ = ["DEAD_LETTER_SUFFIX", "FileSource", "dead_letter_path"]

log = structlog.get_logger()

DEAD_LETTER_SUFFIX = ".dead-letter.jsonl"
_CHUNK_BYTES = 1 << 20


def dead_letter_path(path: Path) -> Path:
    """Where the refused lines of ``path`` are written: ``<path>.dead-letter.jsonl``."""
    return path.with_name(path.name + DEAD_LETTER_SUFFIX)


class FileSource(UngroupedSource):
    """JSON Lines from ``path``, or from stdin when ``path`` is None (see module doc).

    ``SourceError`` if ``path`` cannot be opened (missing, a directory, unreadable).
    """

    def __init__(self, path: Path | None, batch_size: int) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.path = path
        self.batch_size = batch_size
        self.name = "stdin" if path is None else f"file:{path.name}"
        self._topic = self.name
        self._stream: BinaryIO
        self._owns_stream = path is not None
        if path is None:
            self._stream = sys.stdin.buffer
            self._is_pipe = True
        else:
            try:
                self._stream = path.open("rb")
            except FileNotFoundError:
                raise SourceError(self.name, f"{path}: no such file") from None
            except OSError as exc:  # a directory, no permission
                raise SourceError(self.name, f"{path}: cannot open: {exc.strerror}") from None
            self._is_pipe = False
        self._buffer = b""
        self._pos = 0
        self._line = 0
        self._eof = False
        self._closed = False
        self._dead_letter_file: BinaryIO | None = None
        self._dead_letter_broken = False
        self.dead_letter_counts: Counter[str] = Counter()
        """Records handed to ``dead_letter``, by reason."""
        self.dead_letter_written = 0
        """Records written to the dead-letter file."""

    # ------------------------------------------------------------------ poll

    def poll(self, timeout_s: float) -> list[Record]:
        """Up to ``batch_size`` records; [] once exhausted, or if stdin had nothing in time."""
        records = self._next_batch(timeout_s)
        self.last_successful_poll = time.monotonic()
        return records

    def _next_batch(self, timeout_s: float) -> list[Record]:
        records: list[Record] = []
        if self._closed:
            return records
        self._take_lines(records)
        wait = timeout_s
        while len(records) < self.batch_size and not self._eof:
            if not self._read(wait):
                break
            wait = 0.0
            self._take_lines(records)
        return records

    def _read(self, timeout_s: float) -> bool:
        """Read one chunk into the buffer (False if a pipe had nothing within ``timeout_s``)."""
        if self._is_pipe:
            fd = self._stream.fileno()
            ready, _, _ = select.select([fd], [], [], max(0.0, timeout_s))
            if not ready:
                return False
            chunk = os.read(fd, _CHUNK_BYTES)
        else:
            chunk = self._stream.read(_CHUNK_BYTES)
        if chunk:
            self._buffer = self._buffer[self._pos :] + chunk
            self._pos = 0
        else:
            self._eof = True
        return True

    def _take_lines(self, records: list[Record]) -> None:
        """Move complete lines (and, at EOF, the unterminated last one) into ``records``."""
        buffer, pos, end = self._buffer, self._pos, len(self._buffer)
        topic, limit = self._topic, self.batch_size
        while len(records) < limit and pos < end:
            newline = buffer.find(b"\n", pos)
            if newline < 0:
                if not self._eof:
                    break
                newline = end
            line = buffer[pos:newline].rstrip(b"\r")
            pos = newline + 1
            self._line += 1
            if line.strip():
                records.append(Record(line, topic, 0, self._line))
        self._pos = min(pos, end)

    @property
    def exhausted(self) -> bool:
        """True once end of input has been read and every line handed out."""
        return self._closed or (self._eof and self._pos >= len(self._buffer))

    # ----------------------------------------------------------- no-op parts

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Nothing to commit: a replay always starts at the first line."""

    def lag(self) -> dict[TopicPartition, int]:
        """No lag is known for a file or a pipe."""
        return {}

    def dead_letters_written_to(self) -> str | None:
        """The file beside the input that the refused lines went to, once one was."""
        if self.dead_letter_written and self.path is not None:
            return str(dead_letter_path(self.path))
        return None

    # ----------------------------------------------------------- dead letter

    def dead_letter(self, records: Sequence[tuple[Record, str, str]]) -> None:
        """Append refused records to ``<path>.dead-letter.jsonl``; for stdin only count them."""
        if not records:
            return
        reasons = Counter(reason for _, reason, _ in records)
        self.dead_letter_counts.update(reasons)
        sink = self._dead_letter_sink()
        if sink is None:
            log.warning(
                "dead_letter_discarded",
                source=self.name,
                count=len(records),
                reasons=dict(reasons),
            )
            return
        lines = b"".join(
            orjson.dumps(
                {
                    "reason": reason,
                    "detail": detail,
                    "source": record.topic,
                    "offset": record.offset,
                    "value_b64": base64.b64encode(record.value).decode("ascii"),
                },
                option=orjson.OPT_APPEND_NEWLINE,
            )
            for record, reason, detail in records
        )
        try:
            sink.write(lines)
            sink.flush()
        except OSError as exc:
            self._dead_letter_unwritable(exc)
            return
        self.dead_letter_written += len(records)
        log.warning(
            "dead_lettered",
            source=self.name,
            path=str(sink.name),
            count=len(records),
            reasons=dict(reasons),
        )

    def _dead_letter_sink(self) -> BinaryIO | None:
        if self.path is None or self._dead_letter_broken:
            return None
        if self._dead_letter_file is None:
            target = dead_letter_path(self.path)
            try:
                self._dead_letter_file = target.open("ab")
            except OSError as exc:
                self._dead_letter_unwritable(exc)
                return None
        return self._dead_letter_file

    def _dead_letter_unwritable(self, exc: OSError) -> None:
        self._dead_letter_broken = True
        target = dead_letter_path(self.path) if self.path is not None else None
        log.error("dead_letter_file_unwritable", path=str(target), error=str(exc))

    # ----------------------------------------------------------------- close

    def close(self) -> None:
        """Close the input (never stdin itself) and the dead-letter file."""
        if self._closed:
            return
        self._closed = True
        if self._owns_stream:
            self._stream.close()
        if self._dead_letter_file is not None:
            self._dead_letter_file.close()
            self._dead_letter_file = None
