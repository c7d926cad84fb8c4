"""Vector features: an event's ``features.<name>: [floats]`` as one row of a float matrix.

A vector feature (an embedding of 64 to 1,024 floats, say) is read from every event of
a batch into an ``(events, dim)`` float64 matrix, ``dim`` being the length the
reference's embedding model was fitted on. A row is all NaN where the event has no
vector (absent or null) or where its vector is refused; a refused vector is counted
against its feature by reason, like every other bad value, and its event is kept
(with ``schema.strict`` it refuses the event as ``wrong_type`` instead):

- ``wrong_type``: not an array, or an array holding anything but numbers (a boolean,
  a string, an object, a nested array, null);
- ``wrong_length``: an array of numbers of another length than ``dim``;
- ``not_finite``: an array of numbers holding a NaN or an infinity (only the lenient
  parser makes those).

The common batch (every vector an array of ``dim`` JSON numbers) is checked with one
``set(map(type, ...))`` over its elements and converted with one numpy call; only a
batch holding a bad vector is walked vector by vector. Where msgspec read every event
(``typed_rows``: its structs take a vector only as an array of ``dim`` numbers), that
check is done already (``checked``) and only the conversion and the finiteness remain.
"""

from __future__ import annotations

from itertools import chain
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from monitor.ingest.columns import InvalidValues, Problems
from monitor.ingest.values import type_name

VECTOR_REASONS: Final = ("wrong_type", "wrong_length", "not_finite")
"""Why a vector of an accepted event became missing."""
_NUMBERS = frozenset({float, int})


def vector_rows(
    values: list[Any],
    name: str,
    dim: int,
    problems: Problems,
    invalid: InvalidValues,
    *,
    strict: bool,
    checked: bool = False,
) -> npt.NDArray[np.float64]:
    """The ``(len(values), dim)`` matrix of one vector feature (see the module docstring);
    bad vectors are listed in ``invalid`` as ``(row, name, reason)`` (or, ``strict``, in
    ``problems``). ``checked``: every present value is known to be a list of ``dim``
    numbers."""
    out = np.full((len(values), dim), np.nan)
    rows = [i for i, v in enumerate(values) if v is not None]
    if not rows:
        return out
    present = [values[i] for i in rows]
    if checked or (
        set(map(type, present)) == {list}
        and all(len(v) == dim for v in present)
        and set(map(type, chain.from_iterable(present))) <= _NUMBERS
    ):
        try:
            matrix = np.array(present, dtype=np.float64)
        except OverflowError:  # an integer beyond float64: walk the rows
            pass
        else:
            if np.isfinite(matrix).all():
                out[rows] = matrix
                return out
    for row, value in zip(rows, present, strict=True):
        vector, reason, detail = _one(value, name, dim)
        if vector is not None:
            out[row] = vector
        elif strict:
            problems.setdefault(row, ("wrong_type", detail))
        else:
            invalid.append((row, name, reason))
    return out


def _one(value: Any, name: str, dim: int) -> tuple[npt.NDArray[np.float64] | None, str, str]:
    """One vector checked: the row, or None with the reason and a detail."""
    if type(value) is not list:
        return None, "wrong_type", f"{name}: {type_name(value)} where an array of numbers belongs"
    kinds = set(map(type, value))
    if not kinds <= _NUMBERS:
        wrong = next(v for v in value if type(v) not in _NUMBERS)
        return None, "wrong_type", f"{name}: the array holds {type_name(wrong)}, not only numbers"
    if len(value) != dim:
        return None, "wrong_length", f"{name}: {len(value)} numbers where {dim} belong"
    try:
        vector = np.array(value, dtype=np.float64)
    except OverflowError:
        return None, "not_finite", f"{name}: the array holds a number beyond float64"
    if not np.isfinite(vector).all():
        return None, "not_finite", f"{name}: the array holds a NaN or an infinity"
    return vector, "", ""
