"""Columns of a batch: one field pulled out of every event, then converted in one call.

A field is read from every event with one ``map(dict.get, ...)`` pass and typed with a
``set(map(type, column))``; only a column that holds a wrong type is walked row by row.
A problem is recorded against its row in ``problems`` (the first one per row wins: the
checks run in the order the decoder documents). A bad value of a numeric or
categorical field becomes missing and is listed in ``invalid`` (tolerant), or refuses
its event as ``wrong_type`` (``strict``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import repeat
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.ingest.values import MAX_TEXT_DEPTH, nests_deeper, number_text, show, type_name

Problems = dict[int, tuple[str, str]]
"""Per row: the first problem found, as (reason, detail)."""
InvalidValues = list[tuple[int, str, str]]
"""Values of accepted events that became missing: (row, field, reason)."""

_dict_get = dict.get
_NUMBER_TYPES = frozenset({float, int, type(None)})
_CATEGORY_TYPES = frozenset({str, type(None)})


def values_of(objects: list[dict[str, Any]], key: str) -> list[Any]:
    """``obj.get(key)`` of every object (all must be dicts); ``map`` runs it without bytecode."""
    return list(map(_dict_get, objects, repeat(key)))


def path_values(events: list[dict[str, Any]], parts: Sequence[str]) -> list[Any]:
    """The value at a dotted path of every event; None where the path is absent."""
    values = values_of(events, parts[0])
    for part in parts[1:]:
        try:
            values = values_of(values, part)
        except TypeError:  # some value on the way is not an object
            values = [v.get(part) if type(v) is dict else None for v in values]
    return values


def as_text(values: list[Any], name: str, problems: Problems, missing: str) -> list[str]:
    """Values as strings: None becomes ``missing``, anything else ``str(value)``.

    An array or object nested more than ``MAX_TEXT_DEPTH`` levels is refused (``str``
    of one deeper than the interpreter's recursion limit would raise; JSON allows 1024).
    """
    types = set(map(type, values))
    if types <= {str}:
        return values
    if list not in types and dict not in types:
        return [missing if v is None else v if type(v) is str else str(v) for v in values]
    out: list[str] = []
    for row, value in enumerate(values):
        kind = type(value)
        if (kind is list or kind is dict) and nests_deeper(value, MAX_TEXT_DEPTH):
            detail = f"{name}: {type_name(value)} nested more than {MAX_TEXT_DEPTH} levels deep"
            problems.setdefault(row, ("wrong_type", detail))
            out.append(missing)
        else:
            out.append(missing if value is None else value if kind is str else str(value))
    return out


def id_texts(
    values: list[Any], path: str, problems: Problems, *, required: bool, longest: int
) -> list[str]:
    """Ids as text: a string, or an integer as text, of at most ``longest`` characters;
    anything else is "" and, when ``required``, refuses its event."""
    types = set(map(type, values))
    if types <= {str} and max(map(len, values), default=0) <= longest:
        return values
    out: list[str] = []
    for row, value in enumerate(values):
        kind = type(value)
        text = value if kind is str else str(value) if kind is int else None
        if text is None:
            if required:
                detail = (
                    f"{path} is missing or null"
                    if value is None
                    else f"{path}: {type_name(value)} where an id (string) belongs"
                )
                problems.setdefault(row, ("missing_id", detail))
            out.append("")
        elif len(text) > longest:
            if required:
                detail = f"{path} is {len(text)} characters long, over {longest}"
                problems.setdefault(row, ("bad_id", detail))
            out.append("")
        else:
            out.append(text)
    return out


def numbers(
    values: list[Any],
    name: str,
    problems: Problems,
    invalid: InvalidValues,
    *,
    strict: bool,
    lenient: bool,
) -> npt.NDArray[np.float64]:
    """A float64 column: null/absent are NaN, and so is every bad value (counted).

    ``lenient``: some message of the batch needed the lenient parser, so a float may be
    NaN or infinite and the fast path must look.
    """
    types = set(map(type, values))
    if types <= _NUMBER_TYPES:
        try:
            column = np.array(values, dtype=np.float64)
        except OverflowError:
            pass
        else:
            # Only the lenient parser makes non-finite floats; None is the only NaN else.
            if not lenient or float not in types:
                return column
            if not np.isinf(column).any() and np.isnan(column).sum() == values.count(None):
                return column
    out: list[float] = []
    for row, value in enumerate(values):
        kind = type(value)
        number: float | None
        if value is None:
            out.append(math.nan)
            continue
        if kind is float or kind is int:
            try:
                number = float(value)
            except OverflowError:
                number = math.inf
        elif kind is str and not strict:
            number = number_text(value)
            if number is None:
                detail = f"{name}: string {show(value)} is not a number"
                _bad_value(row, name, "not_a_number", detail, problems, invalid, strict)
                out.append(math.nan)
                continue
        else:
            detail = f"{name}: {type_name(value)} where a number belongs"
            _bad_value(row, name, "wrong_type", detail, problems, invalid, strict)
            out.append(math.nan)
            continue
        if math.isfinite(number):
            out.append(number)
        else:
            detail = f"{name}: {show(value)} is not a finite number"
            _bad_value(row, name, "not_finite", detail, problems, invalid, strict)
            out.append(math.nan)
    return np.array(out, dtype=np.float64)


def categories(
    values: list[Any], name: str, problems: Problems, invalid: InvalidValues, *, strict: bool
) -> list[str | None]:
    """A categorical column: strings kept, ints and booleans as text, None missing."""
    if set(map(type, values)) <= _CATEGORY_TYPES:
        return values
    out: list[str | None] = []
    for row, value in enumerate(values):
        kind = type(value)
        if value is None or kind is str:
            out.append(value)
        elif kind is int or kind is bool:
            out.append(str(value))
        else:
            detail = f"{name}: {type_name(value)} where a category belongs"
            _bad_value(row, name, "wrong_type", detail, problems, invalid, strict)
            out.append(None)
    return out


def _bad_value(
    row: int,
    name: str,
    reason: str,
    detail: str,
    problems: Problems,
    invalid: InvalidValues,
    strict: bool,
) -> None:
    """A value that is no value: counted (tolerant) or the event's refusal (strict)."""
    if strict:
        problems.setdefault(row, ("wrong_type", detail))
    else:
        invalid.append((row, name, reason))
