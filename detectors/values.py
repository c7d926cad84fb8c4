"""Raw values: missing-value detection, factorizing categories, integer argument checks."""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from detectors.base import BoolArray, IntArray

Category: TypeAlias = str | int | float


def check_int(name: str, value: object, lo: int, hi: int | None = None) -> int:
    """``value`` as an int if it is an integer in [lo, hi]; else a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if hi is None and value < lo:
        raise ValueError(f"{name} must be >= {lo}, got {value}")
    if hi is not None and not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, got {value}")
    return int(value)


def missing_mask(values: npt.NDArray[Any]) -> BoolArray:
    """True where a value is missing: None, NaN or infinite."""
    if values.dtype.kind == "f":
        return np.asarray(~np.isfinite(values), dtype=np.bool_)
    if values.dtype.kind == "O":
        # Elementwise comparisons keep this vectorized and never sort mixed-type values;
        # NaN is the one value not equal to itself.
        out = np.not_equal(values, values)
        for marker in (None, np.inf, -np.inf):
            out |= np.equal(values, np.array(marker, dtype=object))
        return np.asarray(out, dtype=np.bool_)
    return np.zeros(values.shape, dtype=np.bool_)


def _python_scalar(value: object) -> Category:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode()
    if not isinstance(value, str | int | float):
        raise ValueError(f"category values must be strings or numbers, got {value!r}")
    return value


def factorize(values: npt.ArrayLike) -> tuple[list[Category], IntArray, BoolArray]:
    """Distinct non-missing values (sorted, numbers before strings), the index into them of
    each non-missing row, and the missing mask. One pass of ``np.unique``; only object
    columns mixing strings and numbers take a per-value type check first.
    """
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"a column must be one-dimensional, got shape {arr.shape}")
    missing = missing_mask(arr)
    present = arr[~missing]
    try:
        uniques, inverse = np.unique(present, return_inverse=True)
    except TypeError:
        # Strings and numbers cannot be sorted together: factorize each kind on its own.
        is_str = np.frompyfunc(lambda v: isinstance(v, str), 1, 1)(present).astype(np.bool_)
        u_str, i_str = np.unique(present[is_str], return_inverse=True)
        u_num, i_num = np.unique(present[~is_str], return_inverse=True)
        uniques = np.concatenate([u_num, u_str])
        inverse = np.empty(present.size, dtype=np.int64)
        inverse[~is_str] = i_num
        inverse[is_str] = i_str + u_num.size
    return [_python_scalar(u) for u in uniques], inverse.astype(np.int64), missing


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def is_numeric_column(values: npt.NDArray[Any]) -> bool:
    """Numbers are numeric; so is an object column whose present values are all numbers
    (as decoded JSON with nulls is). Runs once per column at build time."""
    if values.dtype.kind in "iuf":
        return True
    if values.dtype.kind != "O":
        return False
    present = values[~missing_mask(values)]
    return bool(present.size) and bool(np.frompyfunc(_is_number, 1, 1)(present).all())
