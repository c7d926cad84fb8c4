"""One JSON value, read and shown: numbers sent as text, type names, values in log lines.

The decoder reads whole columns at once (``monitor.ingest.columns``); these are the
row-by-row pieces it falls back to for a column holding something unusual, and the
words its refusals use to name what it saw.
"""

from __future__ import annotations

import math
import re
from typing import Any

MAX_TEXT_DEPTH = 32
"""Levels of nesting an array or object may have to be used as a model or segment value."""

# A string holding a decimal number (what ``float`` reads, underscores aside).
_NUMBER_TEXT = re.compile(
    r"\s*[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|(?i:nan|inf|infinity))\s*", re.ASCII
)

_TYPE_NAMES = {
    type(None): "null",
    bool: "boolean",
    str: "string",
    dict: "object",
    list: "array",
    int: "integer",
    float: "number",
}


def is_number_text(value: str) -> bool:
    """Whether a string holds a decimal number (``"1.5"``, ``" 1e3"``, ``"NaN"``)."""
    return _NUMBER_TEXT.fullmatch(value) is not None


def number_text(value: str) -> float | None:
    """The number a string holds (``"12638.0"``, ``" 1e3"``, ``"NaN"``), or None."""
    return float(value) if _NUMBER_TEXT.fullmatch(value) else None


def type_name(value: Any) -> str:
    """The JSON name of a parsed value's type (``null``, ``object``, ``number``, ...)."""
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def show(value: Any) -> str:
    """A value for a log line: short, quoted when text, control characters escaped."""
    if type(value) is str:
        return repr(value[:40] + "...") if len(value) > 40 else repr(value)
    if type(value) is float or type(value) is int:
        return repr(value) if type(value) is int or math.isfinite(value) else _literal(value)
    return type_name(value)


def _literal(value: float) -> str:
    """The JSON literal of a non-finite float."""
    return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"


def nests_deeper(value: Any, limit: int) -> bool:
    """Whether a JSON array or object nests more than ``limit`` levels (walked iteratively)."""
    level = [value]
    for _ in range(limit):
        level = [
            child
            for node in level
            for child in (node.values() if type(node) is dict else node)
            if type(child) is dict or type(child) is list
        ]
        if not level:
            return False
    return True
