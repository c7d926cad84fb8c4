"""The files a backtest replays, as :class:`ReplayItem` streams in the events' contract.

Formats go by suffix, as for ``driftd reference build``: ``.jsonl``/``.ndjson``,
``.csv``, ``.parquet``/``.pq``.

- JSON Lines are events (or label events) in the documented contract, one per line,
  handed to the decoder unchanged; a line that is not a valid event is refused there,
  with its reason, exactly as ``driftd run`` would refuse it. They are read as a stream.
- CSV and Parquet are tables, one row per event and one column per feature. A column
  named by a schema path (``schema.id``, ``schema.timestamp``, ``schema.model``,
  ``schema.prediction``, each ``schema.segment_by`` path), by its full text or its last
  part, fills that path; ``schema.label`` is left out (labels come from ``--labels``);
  every other column becomes a feature under ``schema.features``. A label table maps
  its columns onto ``labels.id``, ``labels.timestamp`` and ``labels.label`` the same way
  and ignores the others. CSV has no types: a column whose every present value is a
  number (``NA`` and the like read as missing there) is sent as numbers, unless
  ``schema.categorical`` or the reference profile names it categorical; other
  columns are sent as text, as the decoder would read them from JSON.

Each item carries its event time, read with the daemon's own timestamp rules, so the
two files can be merged in time order (``monitor.ingest.replay_source``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from monitor.config import LabelsConfig, SchemaConfig
from monitor.engine.reference.column_values import CSV_NULL_MARKERS
from monitor.engine.reference.training_data import FORMATS, read_training_data
from monitor.errors import ReferenceProfileError, SourceError
from monitor.ingest.replay_source import ReplayItem
from monitor.ingest.timestamps import EventTimes
from monitor.ingest.values import number_text

__all__ = ["ReplayInput", "events_input", "labels_input"]

_CHUNK_LINES = 4_096
_NO_COLUMN = "\x00driftd-backtest-no-column"
"""A role name no real column has: every column of the table stays in ``features``."""
_NULL_MARKERS = frozenset(CSV_NULL_MARKERS)
_DUMP_OPTIONS = orjson.OPT_NAIVE_UTC | orjson.OPT_SERIALIZE_NUMPY


@dataclass
class ReplayInput:
    """One input file: its items (lazily read for JSON Lines), how many (None: unknown
    until read), and its format."""

    path: Path
    format: str
    items: Iterator[ReplayItem]
    total: int | None


def events_input(
    path: Path, schema: SchemaConfig, *, categorical: Sequence[str] = (), with_times: bool = True
) -> ReplayInput:
    """The inference events of ``path``. ``categorical``: columns a CSV keeps as text
    (the reference profile's categorical features); ``with_times=False`` skips reading
    the event times (no labels to merge with). Raises ``SourceError``."""
    fmt = _format(path)
    times = EventTimes(schema) if with_times else None
    if fmt == "jsonl":
        return _jsonl(path, fmt, times)
    roles = _role_paths(
        [schema.id, schema.timestamp, schema.model, schema.prediction, *schema.segment_by]
    )
    feature_root = tuple(schema.features.split(".")) if schema.features else ()
    keep_text = {*schema.categorical, *categorical, schema.id, schema.timestamp}
    columns, n_rows, from_text = _table(path, schema)
    columns.pop(schema.label, None)
    events = _rows(columns, n_rows, from_text, keep_text, roles, feature_root)
    return ReplayInput(path, fmt, _table_items(events, times), n_rows)


def labels_input(path: Path, labels: LabelsConfig, schema: SchemaConfig) -> ReplayInput:
    """The label events of ``path`` (times read at ``labels.timestamp``). Raises
    ``SourceError``."""
    fmt = _format(path)
    times = EventTimes(schema.model_copy(update={"timestamp": labels.timestamp}))
    if fmt == "jsonl":
        return _jsonl(path, fmt, times)
    roles = _role_paths([labels.id, labels.timestamp, labels.label])
    columns, n_rows, from_text = _table(path, schema)
    columns = {name: values for name, values in columns.items() if name in roles}
    missing = [
        p
        for p in (labels.id, labels.label)
        if not any(roles[c] == tuple(p.split(".")) for c in columns)
    ]
    if missing:
        raise SourceError(
            str(path), f"no column for {', '.join(missing)} (labels.id, labels.label)"
        )
    keep_text = {labels.id, labels.timestamp}
    events = _rows(columns, n_rows, from_text, keep_text, roles, ())
    return ReplayInput(path, fmt, _table_items(events, times), n_rows)


def _format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise SourceError(
            str(path),
            f"unsupported file suffix {path.suffix or '(none)'}; use one of {', '.join(FORMATS)}",
        )
    if not path.exists():
        raise SourceError(str(path), "no such file")
    if path.is_dir():
        raise SourceError(str(path), "is a directory, not a file")
    return fmt


def _count_lines(path: Path) -> int:
    """Lines of a JSON Lines file (a last one without a newline counts), for progress."""
    count, last = 0, b"\n"
    try:
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                count += chunk.count(b"\n")
                last = chunk[-1:]
    except OSError as exc:
        raise SourceError(str(path), f"cannot read: {exc.strerror or exc}") from None
    return count + (last != b"\n")


def _jsonl(path: Path, fmt: str, times: EventTimes | None) -> ReplayInput:
    """A JSON Lines input: counted now (which also proves it readable), read lazily."""
    total = _count_lines(path)
    return ReplayInput(path, fmt, _jsonl_lines(path, times), total)


def _jsonl_lines(path: Path, times: EventTimes | None) -> Iterator[ReplayItem]:
    """Non-empty lines with their 1-based line numbers as offsets, times read per chunk."""
    with path.open("rb") as stream:
        chunk: list[tuple[bytes, int]] = []
        for lineno, raw in enumerate(stream, start=1):
            line = raw.rstrip(b"\r\n")
            if lineno == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            if line.strip():
                chunk.append((line, lineno))
            if len(chunk) >= _CHUNK_LINES:
                yield from _timed(chunk, times)
                chunk = []
        yield from _timed(chunk, times)


def _timed(chunk: list[tuple[bytes, int]], times: EventTimes | None) -> Iterator[ReplayItem]:
    if times is None:
        for value, offset in chunk:
            yield ReplayItem(value, math.nan, offset)
        return
    parsed: list[dict[str, Any]] = []
    for value, _ in chunk:
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError:
            doc = None
        parsed.append(doc if isinstance(doc, dict) else {})
    ts = _event_times(times, parsed)
    for (value, offset), t in zip(chunk, ts.tolist(), strict=True):
        yield ReplayItem(value, t, offset)


def _event_times(times: EventTimes, events: list[dict[str, Any]]) -> Any:
    """Epoch seconds of each event by the schema's rules (NaN where unreadable), with no
    wall-clock window: a backtest replays history."""
    n = len(events)
    if not n:
        return np.zeros(0)
    return times.read(events, np.arange(n), None, n, {}, clock=0.0, check_wall_clock=False)


def _table(path: Path, schema: SchemaConfig) -> tuple[dict[str, list[Any]], int, bool]:
    """Every column of a CSV or Parquet file as a list of Python values."""
    # Roles that match no column: the reader leaves every column among the features.
    everything = SchemaConfig.model_construct(
        id=_NO_COLUMN,
        timestamp=_NO_COLUMN,
        model=_NO_COLUMN,
        prediction=_NO_COLUMN,
        label=_NO_COLUMN,
        segment_by=[],
        features=schema.features,
    )
    try:
        table = read_training_data(path, everything)
    except ReferenceProfileError as exc:
        raise SourceError(str(path), exc.message) from None
    columns = {
        name: column if isinstance(column, list) else column.to_pylist()
        for name, column in table.features.items()
    }
    return columns, table.n_rows, table.from_text


def _role_paths(paths: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Column name to the path it fills: each path by its full text, then its last part."""
    out: dict[str, tuple[str, ...]] = {}
    for path in paths:
        out.setdefault(path, tuple(path.split(".")))
    for path in paths:
        parts = tuple(path.split("."))
        out.setdefault(parts[-1], parts)
    return out


def _numbers(values: list[Any]) -> list[Any] | None:
    """A CSV column as numbers, if every present value is one (null markers missing)."""
    out: list[Any] = []
    for value in values:
        if value is None or value in _NULL_MARKERS:
            out.append(None)
            continue
        number = number_text(value)
        if number is None:
            return None
        out.append(number if math.isfinite(number) else None)
    return out


def _rows(
    columns: dict[str, list[Any]],
    n_rows: int,
    from_text: bool,
    keep_text: set[str],
    roles: dict[str, tuple[str, ...]],
    feature_root: tuple[str, ...],
) -> Iterator[dict[str, Any]]:
    """Each row of the table as an event: role columns at their paths, features under
    ``feature_root``."""
    if from_text:
        for name, values in columns.items():
            if name not in keep_text and roles.get(name, (name,))[-1] not in keep_text:
                numbers = _numbers(values)
                if numbers is not None:
                    columns[name] = numbers
    placed = [(roles.get(name, (*feature_root, name)), values) for name, values in columns.items()]
    for row in range(n_rows):
        event: dict[str, Any] = {}
        for path, values in placed:
            value = values[row]
            if value is None:
                continue
            target = event
            for part in path[:-1]:
                inner = target.get(part)
                if not isinstance(inner, dict):
                    inner = target[part] = {}
                target = inner
            target[path[-1]] = value
        if feature_root and not _get(event, feature_root):
            _put(event, feature_root, {})  # an event with no feature value is still one
        yield event


def _get(event: dict[str, Any], path: tuple[str, ...]) -> Any:
    obj: Any = event
    for part in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def _put(event: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    target = event
    for part in path[:-1]:
        target = target.setdefault(part, {})
    target[path[-1]] = value


def _table_items(
    events: Iterator[dict[str, Any]], times: EventTimes | None
) -> Iterator[ReplayItem]:
    """Rows as serialised events, with their 1-based row numbers as offsets."""
    chunk: list[dict[str, Any]] = []
    offset = 0
    for event in events:
        chunk.append(event)
        if len(chunk) >= _CHUNK_LINES:
            yield from _serialised(chunk, offset, times)
            offset += len(chunk)
            chunk = []
    yield from _serialised(chunk, offset, times)


def _serialised(
    chunk: list[dict[str, Any]], offset: int, times: EventTimes | None
) -> Iterator[ReplayItem]:
    ts = _event_times(times, chunk).tolist() if times is not None else [math.nan] * len(chunk)
    for i, (event, t) in enumerate(zip(chunk, ts, strict=True)):
        value = orjson.dumps(event, default=str, option=_DUMP_OPTIONS)
        yield ReplayItem(value, t, offset + i + 1)
