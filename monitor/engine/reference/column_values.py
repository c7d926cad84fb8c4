"""A training column as profile input, numeric or categorical, as the decoder sees events.

Kinds and values, the same whatever the format:

- Empty strings and nulls are missing; so are NaN and infinities in numeric columns.
- A column is numeric when every present value is a number. CSV has no types, so a
  CSV column is numeric when every present value parses as one; there, and only in a
  column that is otherwise numeric, the usual null markers (``NA``, ``null``, ...) are
  missing too. A string column stays categorical (``NA`` may be Namibia).
- Categorical values are stored as text exactly as the decoder produces them at run
  time: strings as they are, integers and booleans as ``str(value)``. Columns the
  caller forces (``categorical``) are categorical whatever they hold.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
import pyarrow.compute as pc  # type: ignore[import-untyped, unused-ignore]

from detectors.feature_profiles import category_key
from monitor.errors import ReferenceProfileError

# Read as missing in a CSV column that is otherwise numeric (never in a text column).
CSV_NULL_MARKERS = ("NA", "N/A", "n/a", "#N/A", "NULL", "null", "None", "none", "-")

_NONE = type(None)


def profile_values(
    where: str, name: str, column: Any, categorical: bool, from_text: bool
) -> tuple[npt.NDArray[Any], bool]:
    """The column as profile input and whether it is categorical: float64 (numeric) or
    object text/None (categorical). ``column`` is Arrow data or a list of JSON values;
    ``from_text``: a CSV column, whose numbers are still text; ``where`` names the file
    in a ``ReferenceProfileError`` for a column no profile can hold."""
    if isinstance(column, list):
        return _json_values(where, name, column, categorical)
    return _arrow_values(where, name, column, categorical, from_text)


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


def has_values(values: npt.NDArray[Any], is_categorical: bool) -> bool:
    """Whether a profile input column holds any value (not all missing)."""
    if is_categorical:
        return any(v is not None for v in values)
    return bool(np.isfinite(values).any())
