"""Training data in: CSV, Parquet or JSON Lines (picked by file suffix), split into roles.

A JSONL line is either an inference event, whose features sit under the configured
``features`` path, or a flat row. In a flat table (CSV, Parquet, flat JSONL) every
column is a feature except the ones named by the schema's id, timestamp, model,
prediction and label paths and its ``segment_by`` paths. A segment path into the
features, like ``features.region``, leaves out the feature ``region`` (in flat rows and
events alike): inside its segment it is constant, so against the whole reference it
would always drift. A column with an empty header, like the index pandas writes, is
skipped. CSV is read as text, every column: type inference would turn the zip code
"02139" into 2139 (``column_values`` decides what is a number). The segment paths'
values are kept aside (``TrainingTable.segments``) for the reference's segment mix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
import pyarrow.csv as pcsv  # type: ignore[import-untyped, unused-ignore]
import pyarrow.parquet as pq  # type: ignore[import-untyped, unused-ignore]

from monitor.config import SchemaConfig
from monitor.errors import ReferenceProfileError

FORMATS = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
"""File suffix to format."""


@dataclass
class TrainingTable:
    """Training data split into roles; a column is Arrow data or a list of JSON values."""

    features: dict[str, Any] = field(default_factory=dict)
    prediction: Any = None
    label: Any = None
    n_rows: int = 0
    from_text: bool = False
    """CSV: every value is a string, numbers must be parsed."""
    segments: list[tuple[str, list[Any]]] = field(default_factory=list)
    """Each ``schema.segment_by`` path the data holds, with its value per row (None where
    absent), in ``segment_by`` order; empty unless every path has a value somewhere."""


def read_training_data(path: Path, schema: SchemaConfig) -> TrainingTable:
    """The training data of ``path`` split into features, prediction and label columns."""
    where = str(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        suffix = path.suffix or "(none)"
        raise ReferenceProfileError(
            where,
            f"unsupported file suffix {suffix}; use one of {', '.join(FORMATS)}",
        )
    if not path.exists():
        raise ReferenceProfileError(where, "no such file")
    if path.is_dir():
        raise ReferenceProfileError(where, "is a directory, not a file")
    if path.stat().st_size == 0:
        raise ReferenceProfileError(where, "is empty")
    if fmt == "jsonl":
        return _read_jsonl(path, schema)
    arrow = _read_csv(path) if fmt == "csv" else _read_parquet(path)
    names = list(arrow.column_names)
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ReferenceProfileError(where, f"duplicate column names {duplicates}")
    table = TrainingTable(n_rows=arrow.num_rows, from_text=fmt == "csv")
    columns = {p: _flat_segment_column(schema, p, names) for p in schema.segment_by}
    table.segments = _complete(
        [(p, [] if c is None else arrow.column(c).to_pylist()) for p, c in columns.items()]
    )
    skip = _flat_skip(schema)
    for name in names:
        if name == schema.prediction:
            table.prediction = arrow.column(name)
        elif name == schema.label:
            table.label = arrow.column(name)
        elif name not in skip and name.strip():  # an unnamed column is an index, not data
            table.features[name] = arrow.column(name)
    return table


def _flat_skip(schema: SchemaConfig) -> set[str]:
    return {
        schema.id,
        schema.timestamp,
        schema.model,
        *schema.segment_by,
        *_segment_features(schema),
    }


def _segment_features(schema: SchemaConfig) -> set[str]:
    """Segment paths into the features (``features.region``) as feature names (``region``)."""
    prefix = f"{schema.features}." if schema.features else ""
    return {
        path.removeprefix(prefix)
        for path in schema.segment_by
        if prefix and path.startswith(prefix)
    }


def _flat_segment_column(schema: SchemaConfig, path: str, names: list[str]) -> str | None:
    """The flat table's column of a segment path: the path itself, or for a path into the
    features (``features.region``) the feature's name."""
    prefix = f"{schema.features}." if schema.features else ""
    for name in (path, path.removeprefix(prefix) if prefix else path):
        if name in names:
            return name
    return None


def _complete(columns: list[tuple[str, list[Any]]]) -> list[tuple[str, list[Any]]]:
    """The segment columns if every path has a value in some row, else none: a key built
    without one of its parts would never match the daemon's keys."""
    if columns and all(any(v is not None for v in values) for _, values in columns):
        return columns
    return []


def _segment_value(obj: dict[str, Any], path: str, parts: Sequence[str], feature: str) -> Any:
    """A row's segment value: at its path (an event), or under the path or the feature
    name as a flat column."""
    value = _path(obj, parts)
    if value is None:
        value = obj.get(path)
    if value is None and feature:
        value = obj.get(feature)
    return value


def _read_csv(path: Path) -> Any:
    where = str(path)
    try:
        # Every column is read as text: type inference would turn "02139" into 2139.
        with pcsv.open_csv(path) as reader:
            names = list(reader.schema.names)
        options = pcsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        )
        return pcsv.read_csv(path, convert_options=options)
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        raise ReferenceProfileError(where, f"not a readable CSV file: {exc}") from None


def _read_parquet(path: Path) -> Any:
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise ReferenceProfileError(str(path), f"not a readable Parquet file: {exc}") from None


def _path(obj: Any, parts: Sequence[str]) -> Any:
    for part in parts:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


class _Columns:
    """Rows of JSON values gathered into columns; absent keys are None."""

    def __init__(self) -> None:
        self.columns: dict[str, list[Any]] = {}

    def put(self, name: str, row: int, value: Any) -> None:
        column = self.columns.get(name)
        if column is None:
            column = self.columns[name] = []
        if len(column) < row:
            column.extend([None] * (row - len(column)))
        column.append(value)

    def padded(self, n_rows: int) -> dict[str, list[Any]]:
        for column in self.columns.values():
            column.extend([None] * (n_rows - len(column)))
        return self.columns


def _read_jsonl(path: Path, schema: SchemaConfig) -> TrainingTable:
    where = str(path)
    features_path = schema.features.split(".") if schema.features else []
    prediction_path = schema.prediction.split(".")
    label_path = schema.label.split(".")
    skip = _flat_skip(schema) | {schema.prediction, schema.label}
    segment_features = _segment_features(schema)
    prefix = f"{schema.features}." if schema.features else ""
    segment_paths = [
        (p, p.split("."), p.removeprefix(prefix) if prefix and p.startswith(prefix) else "")
        for p in schema.segment_by
    ]
    features, roles, segments = _Columns(), _Columns(), _Columns()
    row = 0
    try:
        with path.open("rb") as lines:
            for lineno, raw in enumerate(lines, start=1):
                line = raw[3:] if lineno == 1 and raw.startswith(b"\xef\xbb\xbf") else raw
                if not line.strip():
                    continue
                try:
                    obj = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise ReferenceProfileError(
                        where, f"line {lineno}: not valid JSON: {exc}"
                    ) from None
                if not isinstance(obj, dict):
                    raise ReferenceProfileError(
                        where, f"line {lineno}: expected a JSON object, got {type(obj).__name__}"
                    )
                nested = _path(obj, features_path) if features_path else None
                if isinstance(nested, dict):  # an inference event
                    for name, value in nested.items():
                        if name not in segment_features:
                            features.put(name, row, value)
                    roles.put("prediction", row, _path(obj, prediction_path))
                    roles.put("label", row, _path(obj, label_path))
                else:  # a flat row
                    for name, value in obj.items():
                        if name not in skip:
                            features.put(name, row, value)
                    roles.put("prediction", row, obj.get(schema.prediction))
                    roles.put("label", row, obj.get(schema.label))
                for name, parts, feature in segment_paths:
                    segments.put(name, row, _segment_value(obj, name, parts, feature))
                row += 1
    except OSError as exc:
        raise ReferenceProfileError(where, f"cannot read: {exc.strerror or exc}") from None
    role_columns = roles.padded(row)
    segment_columns = segments.padded(row)
    prediction, label = role_columns.get("prediction"), role_columns.get("label")
    return TrainingTable(
        features=features.padded(row),
        prediction=prediction if prediction and any(v is not None for v in prediction) else None,
        label=label if label and any(v is not None for v in label) else None,
        n_rows=row,
        segments=_complete([(p, segment_columns.get(p, [])) for p, _, _ in segment_paths]),
    )
