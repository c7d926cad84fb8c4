"""``driftd reference build``: training data in, a versioned reference profile out.

Training data is read from CSV, Parquet or JSONL (picked by file suffix). A JSONL line
is either an inference event, whose features sit under the configured ``features``
path, or a flat row. In a flat table (CSV, Parquet, flat JSONL) every column is a
feature except the ones named by the schema's id, timestamp, model, prediction and
label paths and its ``segment_by`` paths. A segment path into the features, like
``features.region``, leaves out the feature ``region`` (in flat rows and events alike):
inside its segment it is constant, so against the whole reference it would always
drift. A column with an empty header, like the index pandas writes, is skipped.
Prediction and label are profiled as such when present; ``leave_out`` drops more
columns when present (the CLI passes the label events' id, timestamp and label paths).

Columns that look like ids or times (near-unique text, numbers that rise with the row
order, epoch numbers, ISO dates) drift by construction; they are reported through
``warn``, as is a reference too small for tight thresholds (``small_reference_warning``).

Kinds and values, the same whatever the format:

- Empty strings and nulls are missing; so are NaN and infinities in numeric columns.
- A column is numeric when every present value is a number. CSV has no types, so a
  CSV column is numeric when every present value parses as one; there, and only in a
  column that is otherwise numeric, the usual null markers (``NA``, ``null``, ...) are
  missing too. A string column stays categorical (``NA`` may be Namibia).
- Categorical values are stored as text exactly as the decoder produces them at run
  time: strings as they are, integers and booleans as ``str(value)``. Columns named
  in ``categorical`` (or ``schema.categorical``) are categorical whatever they hold.
- Features are stored sorted by name, so the same data gives the same profile (and
  version) whatever the format or column order.

The profile is written atomically (temporary file, fsync, rename) as pretty JSON
with sorted keys, so the same data always gives the same bytes.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
import pyarrow.compute as pc  # type: ignore[import-untyped, unused-ignore]
import pyarrow.csv as pcsv  # type: ignore[import-untyped, unused-ignore]
import pyarrow.parquet as pq  # type: ignore[import-untyped, unused-ignore]

from detectors.calibration import ks_critical, n_effective
from detectors.feature_profiles import category_key
from detectors.profile import OTHER, CategoricalProfile, ReferenceProfile, build_profile
from detectors.values import check_int
from monitor.config import SchemaConfig, Settings, load_settings
from monitor.errors import ConfigError, InvalidConfigError, ReferenceProfileError

__all__ = [
    "FORMATS",
    "add_reference_parser",
    "build_reference",
    "load_reference",
    "small_reference_warning",
    "suspect_column",
    "write_reference",
]

EXIT_OK = 0
EXIT_ERROR = 2

FORMATS = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
# Read as missing in a CSV column that is otherwise numeric (never in a text column).
CSV_NULL_MARKERS = ("NA", "N/A", "n/a", "#N/A", "NULL", "null", "None", "none", "-")

_NONE = type(None)

SMALL_REFERENCE_ROWS = 1_000
"""Fewer reference rows than this get a warning: thresholds are loose, tails unseen."""
ID_MIN_DISTINCT = 1_000
ID_DISTINCT_SHARE = 0.9
"""A column with more distinct values than both (share of its present values) is id-like."""
MONOTONIC_MIN_DISTINCT = 100
EPOCH_SECONDS = (946_684_800.0, 4_102_444_800.0)
"""2000-01-01 to 2100-01-01: numbers all in here (or 1,000 times it) look like epoch times."""
_ISO_DATE = re.compile(
    r"\d{4}[-/]\d{2}[-/]\d{2}"  # a date, then maybe a time and a zone
    r"([T ]\d{2}:\d{2}(:\d{2}([.,]\d+)?)?)?\s*(Z|[+-]\d{2}:?\d{2})?"
)
_DATE_SAMPLE = 1_000


@dataclass
class _Table:
    """Training data split into roles; a column is Arrow data or a list of JSON values."""

    features: dict[str, Any] = field(default_factory=dict)
    prediction: Any = None
    label: Any = None
    n_rows: int = 0
    from_text: bool = False  # CSV: every value is a string, numbers must be parsed


def build_reference(
    input_path: Path,
    output_path: Path,
    *,
    schema: SchemaConfig,
    categorical: Sequence[str] = (),
    n_fine: int = 100,
    n_coarse: int = 10,
    top_k: int = 20,
    exclude: Sequence[str] = (),
    leave_out: Sequence[str] = (),
    warn: Callable[[str], None] | None = None,
) -> ReferenceProfile:
    """Profile the training data in ``input_path`` and write it to ``output_path``.

    ``categorical`` names columns to profile as categorical whatever they hold;
    ``exclude`` names columns to leave out (say, an all-empty or a date column), each
    of which must be in the data; ``leave_out`` names feature columns to leave out if
    present. ``warn`` is called with one line per feature that looks like an id or a
    time (see :func:`suspect_column`).

    Raises ``ReferenceProfileError`` (naming the file at fault) when the input is
    missing, unreadable, empty or cannot be profiled, or the output cannot be written.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    where = str(input_path)
    try:
        # The same bounds build_profile enforces, checked before reading a large file.
        check_int("n_fine", n_fine, 100, 200)
        check_int("n_coarse", n_coarse, 2, 50)
        check_int("top_k", top_k, 1, 1000)
    except ValueError as exc:
        raise ReferenceProfileError(where, str(exc)) from None
    table = _read_training_data(input_path, schema)
    if table.n_rows == 0:
        raise ReferenceProfileError(where, "holds no rows")
    roles = {schema.prediction: table.prediction, schema.label: table.label}
    known = set(table.features) | {name for name, col in roles.items() if col is not None}
    for option, names in (("exclude", set(exclude)), ("categorical", set(categorical))):
        unknown = sorted(names - known)
        if unknown:
            raise ReferenceProfileError(
                where,
                f"{option} columns {unknown} are not in the data; "
                f"its columns are {_listing(sorted(known))}",
            )
    for name in exclude:
        table.features.pop(name, None)
        if name in roles:
            roles[name] = None
    for name in leave_out:
        table.features.pop(name, None)
    if not table.features:
        raise ReferenceProfileError(where, "holds no feature columns")
    # schema.categorical may name features of other inputs; only the ones present apply.
    forced = set(categorical) | set(schema.categorical)
    clash = sorted(set(table.features) & {n for n, col in roles.items() if col is not None})
    if clash:
        raise ReferenceProfileError(
            where, f"feature {clash[0]!r} has the name of the prediction or label path"
        )

    columns: dict[str, npt.NDArray[Any]] = {}
    kinds_categorical: list[str] = []
    for name in sorted(table.features):
        values, is_categorical = _values(where, name, table.features[name], name in forced, table)
        if not _has_values(values, is_categorical):
            raise ReferenceProfileError(
                where,
                f"column {name!r} has no values (every row is empty or null); "
                "leave it out with exclude",
            )
        columns[name] = values
        if is_categorical:
            kinds_categorical.append(name)
        suspicion = suspect_column(name, values, is_categorical) if warn is not None else None
        if suspicion is not None and warn is not None:
            warn(suspicion)
    prediction = label = None
    for role, column in roles.items():
        if column is None:
            continue
        values, is_categorical = _values(where, role, column, role in forced, table)
        if _has_values(values, is_categorical):  # an all-empty role column is as good as none
            columns[role] = values
            if is_categorical:
                kinds_categorical.append(role)
            if role == schema.prediction:
                prediction = role
            else:
                label = role
    try:
        profile = build_profile(
            columns,
            categorical=kinds_categorical,
            prediction=prediction,
            label=label,
            n_fine=n_fine,
            n_coarse=n_coarse,
            top_k=top_k,
        )
    except ValueError as exc:
        raise ReferenceProfileError(where, str(exc)) from None
    write_reference(profile, output_path)
    return profile


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


# --- reading ---------------------------------------------------------------------------


def _read_training_data(path: Path, schema: SchemaConfig) -> _Table:
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
    table = _Table(n_rows=arrow.num_rows, from_text=fmt == "csv")
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


def _read_jsonl(path: Path, schema: SchemaConfig) -> _Table:
    where = str(path)
    features_path = schema.features.split(".") if schema.features else []
    prediction_path = schema.prediction.split(".")
    label_path = schema.label.split(".")
    skip = _flat_skip(schema) | {schema.prediction, schema.label}
    segment_features = _segment_features(schema)
    features, roles = _Columns(), _Columns()
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
                row += 1
    except OSError as exc:
        raise ReferenceProfileError(where, f"cannot read: {exc.strerror or exc}") from None
    role_columns = roles.padded(row)
    prediction, label = role_columns.get("prediction"), role_columns.get("label")
    return _Table(
        features=features.padded(row),
        prediction=prediction if prediction and any(v is not None for v in prediction) else None,
        label=label if label and any(v is not None for v in label) else None,
        n_rows=row,
    )


# --- kinds and values ------------------------------------------------------------------


def _listing(names: list[str], limit: int = 20) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def suspect_column(name: str, values: npt.NDArray[Any], is_categorical: bool) -> str | None:
    """Why feature ``name`` looks like an id or a time (one line), or None.

    Such a column drifts by construction: new ids and later times are never in the
    reference. Categorical: more than ``ID_MIN_DISTINCT`` distinct values making up more
    than ``ID_DISTINCT_SHARE`` of the present ones, or text that reads as dates. Numeric:
    epoch times (every value in 2000-2100 as seconds or milliseconds), integers all
    distinct (more than ``ID_MIN_DISTINCT``), or near-unique values that only rise (or
    only fall) in row order.
    """
    leave = f"leave it out with --exclude {name}"
    if is_categorical:
        present = [v for v in values if v is not None]
        distinct = len(set(present))
        if distinct > ID_MIN_DISTINCT and distinct > ID_DISTINCT_SHARE * len(present):
            return (
                f"column {name!r} looks like an id: {distinct:,} distinct values in "
                f"{len(present):,} rows; a window's values are new, so it drifts by "
                f"construction ({leave}, or name it as schema.id)"
            )
        sample = present[:_DATE_SAMPLE]
        dates = sum(_ISO_DATE.fullmatch(v.strip()) is not None for v in sample)
        if sample and dates > ID_DISTINCT_SHARE * len(sample):
            return (
                f"column {name!r} looks like a timestamp (values such as {sample[0]!r}); "
                f"event times move on, so it drifts by construction ({leave}, or name it "
                "as schema.timestamp)"
            )
        return None
    finite = values[np.isfinite(values)]
    if len(finite) < 2:
        return None
    distinct = len(np.unique(finite))
    lo, hi = float(finite.min()), float(finite.max())
    epoch = next(
        (
            unit
            for unit, scale in (("seconds", 1.0), ("milliseconds", 1e3))
            if EPOCH_SECONDS[0] * scale <= lo and hi <= EPOCH_SECONDS[1] * scale
        ),
        None,
    )
    if epoch is not None and distinct > 1:
        return (
            f"column {name!r} looks like a timestamp (every value is a time in epoch {epoch}); "
            f"event times move on, so it drifts by construction ({leave}, or name it as "
            "schema.timestamp)"
        )
    integers = bool(np.all(finite == np.floor(finite)))
    if integers and distinct == len(finite) and distinct > ID_MIN_DISTINCT:
        return (
            f"column {name!r} looks like an id: {distinct:,} integers, every one distinct; "
            f"a window's values are new, so it drifts by construction ({leave}, or name it "
            "as schema.id)"
        )
    steps = np.diff(finite)
    monotonic = bool(np.all(steps >= 0) or np.all(steps <= 0))
    if (
        monotonic
        and distinct >= MONOTONIC_MIN_DISTINCT
        and distinct > ID_DISTINCT_SHARE * len(finite)
    ):
        return (
            f"column {name!r} only {'rises' if steps.sum() > 0 else 'falls'} with the row "
            f"order ({distinct:,} distinct values), like a counter, an id or a time; later "
            f"values are never in the reference, so it drifts by construction ({leave})"
        )
    return None


def small_reference_warning(rows: int, *, window: int, alpha: float) -> str | None:
    """A warning for a reference of fewer than ``SMALL_REFERENCE_ROWS`` rows, or None.

    It says what the calibrated KS threshold of a ``window``-event window then is,
    against that of a 100,000-row reference (``detectors.calibration.ks_critical``).
    """
    if rows >= SMALL_REFERENCE_ROWS:
        return None
    small = float(ks_critical(alpha, n_effective(rows, window)))
    large = float(ks_critical(alpha, n_effective(100_000, window)))
    return (
        f"only {rows:,} reference rows (fewer than {SMALL_REFERENCE_ROWS:,}): calibrated "
        f"thresholds follow the reference's size, so they are loose: a {window:,}-event "
        f"window needs a KS distance above {small:.3f} to breach (about {large:.3f} with "
        "100,000 rows), PSI and chi-square likewise, and rare categories and the tails are "
        "barely represented; profile more training data if you can"
    )


def _has_values(values: npt.NDArray[Any], is_categorical: bool) -> bool:
    if is_categorical:
        return any(v is not None for v in values)
    return bool(np.isfinite(values).any())


def _values(
    where: str, name: str, column: Any, categorical: bool, table: _Table
) -> tuple[npt.NDArray[Any], bool]:
    """The column as profile input: float64 (numeric) or object text/None (categorical)."""
    if isinstance(column, list):
        return _json_values(where, name, column, categorical)
    return _arrow_values(where, name, column, categorical, table.from_text)


def _json_values(
    where: str, name: str, values: list[Any], categorical: bool
) -> tuple[npt.NDArray[Any], bool]:
    values = [None if type(v) is str and v == "" else v for v in values]
    present = set(map(type, values)) - {_NONE}
    if not categorical and present and present <= {int, float}:
        try:
            return np.array(values, dtype=np.float64), False
        except OverflowError:
            raise ReferenceProfileError(
                where, f"column {name!r}: a number is out of range"
            ) from None
    return _categories(where, name, values), True


def _arrow_values(
    where: str, name: str, column: Any, categorical: bool, from_text: bool
) -> tuple[npt.NDArray[Any], bool]:
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = pa.chunked_array(
            [chunk.dictionary_decode() for chunk in column.chunks], type=kind.value_type
        )
        kind = kind.value_type
    number = pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
    text = pa.types.is_string(kind) or pa.types.is_large_string(kind)
    if not (number or text or pa.types.is_boolean(kind) or pa.types.is_null(kind)):
        raise ReferenceProfileError(
            where,
            f"column {name!r} has type {kind}, which a reference profile cannot hold; "
            "leave it out with exclude",
        )
    if not categorical and number:
        floats = pc.cast(column, pa.float64(), safe=False)
        return np.asarray(floats.to_numpy(), dtype=np.float64), False
    if not categorical and text and from_text:
        parsed = _parse_numbers(column)
        if parsed is not None:
            return parsed, False
    return _categories(where, name, column.to_pylist()), True


def _parse_numbers(column: Any) -> npt.NDArray[np.float64] | None:
    """A CSV text column as numbers (null markers missing), or None if it holds text."""
    trimmed = pc.utf8_trim_whitespace(column)
    markers = pa.array(CSV_NULL_MARKERS, type=pa.string())
    null = pa.scalar(None, type=pa.string())
    cleaned = pc.if_else(pc.is_in(trimmed, value_set=markers), null, trimmed)
    cleaned = pc.if_else(pc.equal(cleaned, ""), null, cleaned)
    try:
        floats = pc.cast(cleaned, pa.float64())
    except pa.ArrowInvalid:
        return None
    values = np.asarray(floats.to_numpy(), dtype=np.float64)
    # A column of nothing but null markers is not evidence of numbers.
    return values if np.isfinite(values).any() or column.null_count == len(column) else None


def _categories(where: str, name: str, values: list[Any]) -> npt.NDArray[Any]:
    """Category text as the profile matches it: text kept, numbers by ``category_key`` (21,
    21.0 and "21" are one category), booleans as "True"/"False" (which match true/false/1/0
    in events); None, "" and non-finite numbers missing."""
    out: list[str | None] = []
    for value in values:
        kind = type(value)
        if value is None or (kind is str and value == ""):
            out.append(None)
        elif kind is str:
            out.append(value)
        elif kind is bool:
            out.append(str(value))
        elif kind is int:
            out.append(category_key(value))
        elif kind is float:
            out.append(category_key(value) if np.isfinite(value) else None)
        else:
            raise ReferenceProfileError(
                where,
                f"column {name!r} holds a {type(value).__name__} ({str(value)[:40]}); "
                "feature values must be numbers, strings or booleans",
            )
    array = np.empty(len(out), dtype=object)
    array[:] = out
    return array


# --- command line ----------------------------------------------------------------------


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _leave_out(settings: Settings) -> list[str]:
    """The label events' id, timestamp and label paths: never features of the model.

    The schema's own id, timestamp and segment paths are left out by ``build_reference``;
    its label (and prediction) path is profiled as the label.
    """
    labels, schema = settings.labels, settings.schema_
    roles = {schema.prediction, schema.label}
    return sorted({labels.id, labels.timestamp, labels.label} - roles)


def _warn(message: str) -> None:
    print(f"driftd reference build: warning: {message}", file=sys.stderr)


def _describe(profile: ReferenceProfile) -> str:
    first = profile.features[0]
    rows = first.n_ref + first.n_missing
    lines = [
        f"reference version {profile.version}: {rows:,} rows, {len(profile.features)} features"
    ]
    parts = list(profile.features)
    for role, prof in (("prediction", profile.prediction), ("label", profile.label)):
        if prof is None:
            lines.append(f"  ({role}: none in the data)")
        else:
            parts.append(prof)
    for prof in parts:
        detail = (
            f"{len(prof.categories)} categories + {OTHER}"
            if isinstance(prof, CategoricalProfile)
            else f"{prof.n_bins} fine / {prof.n_coarse} coarse bins"
        )
        lines.append(
            f"  {prof.name:<24} {prof.kind:<11} {detail:<28} missing {prof.missing_rate:.1%}"
        )
    return "\n".join(lines)


def _build_command(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
        profile = build_reference(
            args.input,
            args.output,
            schema=settings.schema_,
            categorical=args.categorical,
            n_fine=args.n_fine,
            n_coarse=args.n_coarse,
            top_k=args.top_k,
            exclude=args.exclude,
            leave_out=_leave_out(settings),
            warn=_warn,
        )
    except ReferenceProfileError as exc:
        option = {str(args.input): "--input ", str(args.output): "--output "}.get(exc.path, "")
        print(f"driftd reference build: {option}{exc}", file=sys.stderr)
        return EXIT_ERROR
    except InvalidConfigError as exc:
        for error in exc.errors:
            print(f"driftd reference build: config {error}", file=sys.stderr)
        return EXIT_ERROR
    except ConfigError as exc:
        print(f"driftd reference build: config {exc}", file=sys.stderr)
        return EXIT_ERROR
    first = profile.features[0]
    windows = settings.windows
    small = small_reference_warning(
        first.n_ref + first.n_missing,
        window=windows.size_events or windows.min_samples,
        alpha=settings.detectors.alpha,
    )
    if small is not None:
        _warn(small)
    print(f"wrote {args.output}")
    print(_describe(profile))
    return EXIT_OK


def add_reference_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``reference build`` on a sub-command set; its ``handler`` returns an exit
    code (0 written, 2 on a bad input, output or config, with the reason on stderr)."""
    reference = subparsers.add_parser("reference", help="build reference profiles")
    commands = reference.add_subparsers(dest="reference_command", required=True)
    build: argparse.ArgumentParser = commands.add_parser(
        "build",
        help="profile training data (CSV, Parquet or JSONL) into a reference JSON",
        description=(
            "Profile training data into a versioned reference profile. The format follows "
            f"the input's suffix ({', '.join(FORMATS)}). Every column is a feature except "
            "the schema's id, timestamp, model, prediction, label and segment_by columns "
            "(a segment path into the features, like features.region, leaves out region) "
            "and the labels section's id, timestamp and label columns; the prediction and "
            "label columns are profiled as such. JSONL lines may also be inference events, "
            "whose features are read from the schema's features path. Columns that look "
            f"like ids or times, and references of fewer than {SMALL_REFERENCE_ROWS:,} rows, "
            "are warned about on stderr."
        ),
    )
    build.add_argument("-i", "--input", type=Path, required=True, help="training data file")
    build.add_argument("-o", "--output", type=Path, required=True, help="profile JSON to write")
    build.add_argument(
        "--categorical",
        type=_names,
        default=[],
        metavar="A,B",
        help="comma-separated columns to profile as categorical whatever they hold",
    )
    build.add_argument(
        "--exclude",
        type=_names,
        default=[],
        metavar="A,B",
        help="comma-separated columns to leave out of the profile",
    )
    build.add_argument(
        "--n-fine", type=int, default=100, help="fine (KS) bins, 100-200 (default: %(default)s)"
    )
    build.add_argument(
        "--n-coarse", type=int, default=10, help="coarse (PSI) bins, 2-50 (default: %(default)s)"
    )
    build.add_argument(
        "--top-k", type=int, default=20, help="categories kept, 1-1000 (default: %(default)s)"
    )
    build.add_argument(
        "-c",
        "--config",
        type=Path,
        default=None,
        help="driftd YAML config whose schema and labels paths name the columns (without "
        "it: built-in defaults plus DRIFTD_ environment overrides)",
    )
    build.set_defaults(handler=_build_command)
    return build
