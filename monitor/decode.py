"""Bytes to columns: one pass of orjson over a poll batch, then numpy per column.

A message is one JSON object, or a JSON array of objects. Anything that cannot be
decoded or validated is rejected with a reason and kept (with its index in the
batch) so the caller can count it and dead-letter the original bytes. A bad
message never takes its batch-mates down with it; an array message is
all-or-nothing.

The work is columnar. All messages are parsed first; then each field is pulled
out of every event with one ``map(dict.get, ...)`` pass and converted with one
numpy call. Type checks are a ``set(map(type, column))`` per column; only a
column that holds a wrong type is walked row by row, to find and reject the
offending rows. A row's reason is the first failing check in this order: id,
timestamp, features object, numeric features (in order), prediction, label,
categorical features (in order), model, segment paths (in order).

Values: numbers are float64 with null/absent as NaN (booleans and strings are
``wrong_type``); categorical values are text (ints and booleans as ``str``), None
when null or absent; timestamps are epoch seconds or ISO 8601 strings, where a
string without an offset is UTC.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import repeat
from operator import attrgetter
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from monitor.config import SchemaConfig

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
MAX_ID_LENGTH = 256
MAX_TEXT_DEPTH = 32
"""Levels of nesting an array or object may have to be used as a model or segment value."""

REASONS = (
    "empty",
    "too_large",
    "invalid_json",
    "not_an_object",
    "missing_id",
    "bad_id",
    "bad_timestamp",
    "timestamp_out_of_range",
    "missing_features",
    "wrong_type",
)

_NONE = type(None)
_dict_get = dict.get
_tzinfo = attrgetter("tzinfo")
_NUMBER_TYPES = frozenset({float, int, _NONE})
_EPOCH_TYPES = frozenset({float, int})
_ID_TYPES = frozenset({str, int})
_CATEGORY_TYPES = frozenset({str, _NONE})
# Epoch seconds beyond this look like milliseconds (year 5138 in seconds).
_MILLISECONDS_HINT = 1e11

# Per row: the first problem found, as (reason, detail).
_Problems = dict[int, tuple[str, str]]


@dataclass(frozen=True)
class Rejection:
    """Why message ``index`` of the batch was refused."""

    index: int
    reason: str
    detail: str


@dataclass(frozen=True)
class DecodedBatch:
    """Accepted events as columns; ``source_index`` maps each row to its message."""

    ids: list[str]
    ts: npt.NDArray[np.float64]
    models: list[str]
    segment_keys: list[str]
    numeric: npt.NDArray[np.float64]
    categorical: dict[str, list[str | None]]
    prediction: npt.NDArray[np.float64]
    label: npt.NDArray[np.float64]
    source_index: npt.NDArray[np.int64]
    rejections: list[Rejection] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)


def _get(objects: list[dict[str, Any]], key: str) -> list[Any]:
    """``obj.get(key)`` of every object (all must be dicts); ``map`` runs it without bytecode."""
    return list(map(_dict_get, objects, repeat(key)))


def _column(events: list[dict[str, Any]], parts: Sequence[str]) -> list[Any]:
    """The value at a dotted path of every event; None where the path is absent."""
    values = _get(events, parts[0])
    for part in parts[1:]:
        try:
            values = _get(values, part)
        except TypeError:  # some value on the way is not an object
            values = [v.get(part) if type(v) is dict else None for v in values]
    return values


def _parse_iso(value: str) -> float | None:
    """Epoch seconds of an ISO 8601 string; a string without an offset is UTC."""
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    except (ValueError, OverflowError):
        return None


def _timestamp(value: Any) -> float | None:
    """Epoch seconds of a JSON number or ISO 8601 string; None if it is neither."""
    kind = type(value)
    if kind is str:
        return _parse_iso(value)
    if kind is float or kind is int:
        try:
            seconds = float(value)
        except OverflowError:
            return None
        return seconds if math.isfinite(seconds) else None
    return None


def _type_name(value: Any) -> str:
    names = {_NONE: "null", bool: "boolean", str: "string", dict: "object", list: "array"}
    return names.get(type(value), type(value).__name__)


def _nests_deeper(value: Any, limit: int) -> bool:
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


def _strings(values: list[Any], name: str, problems: _Problems) -> list[str]:
    """Values as strings: None becomes "", anything else ``str(value)``.

    An array or object nested more than ``MAX_TEXT_DEPTH`` levels is refused (``str``
    of one deeper than the interpreter's recursion limit would raise; JSON allows 1024).
    """
    types = set(map(type, values))
    if types <= {str}:
        return values
    if list not in types and dict not in types:
        return ["" if v is None else v if type(v) is str else str(v) for v in values]
    out: list[str] = []
    for row, value in enumerate(values):
        kind = type(value)
        if (kind is list or kind is dict) and _nests_deeper(value, MAX_TEXT_DEPTH):
            detail = f"{name}: {_type_name(value)} nested more than {MAX_TEXT_DEPTH} levels deep"
            problems.setdefault(row, ("wrong_type", detail))
            out.append("")
        else:
            out.append("" if value is None else value if kind is str else str(value))
    return out


def _numbers(values: list[Any], name: str, problems: _Problems) -> npt.NDArray[np.float64]:
    """A float64 column: null/missing become NaN; other non-numbers are rejected rows."""
    if set(map(type, values)) <= _NUMBER_TYPES:
        try:
            return np.array(values, dtype=np.float64)
        except OverflowError:
            pass
    out: list[float] = []
    for row, value in enumerate(values):
        kind = type(value)
        if value is None:
            out.append(math.nan)
        elif kind is float or kind is int:
            try:
                out.append(float(value))
            except OverflowError:
                problems.setdefault(row, ("wrong_type", f"{name}: number out of range"))
                out.append(math.nan)
        else:
            detail = f"{name}: {_type_name(value)} where a number belongs"
            problems.setdefault(row, ("wrong_type", detail))
            out.append(math.nan)
    return np.array(out, dtype=np.float64)


def _categories(values: list[Any], name: str, problems: _Problems) -> list[str | None]:
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
            detail = f"{name}: {_type_name(value)} where a category belongs"
            problems.setdefault(row, ("wrong_type", detail))
            out.append(None)
    return out


class Decoder:
    """Decodes JSON messages against the configured schema paths."""

    def __init__(
        self,
        schema: SchemaConfig,
        numeric_features: Sequence[str],
        categorical_features: Sequence[str],
        now: float | None = None,
    ) -> None:
        self.schema = schema
        self.numeric_features = tuple(numeric_features)
        self.categorical_features = tuple(categorical_features)
        self._id = schema.id.split(".")
        self._ts = schema.timestamp.split(".")
        self._model = schema.model.split(".")
        self._features = schema.features.split(".") if schema.features else []
        self._prediction = schema.prediction.split(".")
        self._label = schema.label.split(".")
        self._segment_paths = [p.split(".") for p in schema.segment_by]
        self._now = now

    def decode(self, messages: Sequence[bytes | None], now: float | None = None) -> DecodedBatch:
        """Decode a poll batch; every refused message is listed in ``rejections``."""
        clock = now if now is not None else (self._now if self._now is not None else time.time())
        events, owners, rejections = _parse(messages)
        n = len(events)
        problems: _Problems = {}

        ids = self._ids(_column(events, self._id), problems)
        ts = self._timestamps(_column(events, self._ts), problems, clock)
        features = self._feature_objects(events, problems)
        numeric = np.empty((n, len(self.numeric_features)), dtype=np.float64)
        for j, name in enumerate(self.numeric_features):
            numeric[:, j] = _numbers(_get(features, name), name, problems)
        schema = self.schema
        prediction = _numbers(_column(events, self._prediction), schema.prediction, problems)
        label = _numbers(_column(events, self._label), schema.label, problems)
        categorical = {
            name: _categories(_get(features, name), name, problems)
            for name in self.categorical_features
        }
        models = _strings(_column(events, self._model), schema.model, problems)
        keys = self._segment_keys(events, features, problems)
        source_index = (
            np.arange(n, dtype=np.int64)
            if isinstance(owners, range)
            else np.array(owners, dtype=np.int64)
        )

        if problems:
            # One rejection per message, for its first bad event; an array message is
            # all-or-nothing, so every row of a refused message goes.
            refused: dict[int, tuple[str, str]] = {}
            for row in sorted(problems):
                refused.setdefault(int(source_index[row]), problems[row])
            rejections.extend(
                Rejection(i, reason, detail) for i, (reason, detail) in refused.items()
            )
            bad = np.zeros(len(messages), dtype=np.bool_)
            bad[list(refused)] = True
            keep_rows = np.flatnonzero(~bad[source_index])
            keep = keep_rows.tolist()
            ids = [ids[i] for i in keep]
            ts = ts[keep_rows]
            models = [models[i] for i in keep]
            keys = [keys[i] for i in keep]
            numeric = numeric[keep_rows]
            categorical = {k: [v[i] for i in keep] for k, v in categorical.items()}
            prediction = prediction[keep_rows]
            label = label[keep_rows]
            source_index = source_index[keep_rows]
        if len(rejections) > 1:
            rejections.sort(key=lambda r: r.index)
        return DecodedBatch(
            ids=ids,
            ts=ts,
            models=models,
            segment_keys=keys,
            numeric=numeric,
            categorical=categorical,
            prediction=prediction,
            label=label,
            source_index=source_index,
            rejections=rejections,
        )

    def _ids(self, values: list[Any], problems: _Problems) -> list[str]:
        types = set(map(type, values))
        if types <= {str} and max(map(len, values), default=0) <= MAX_ID_LENGTH:
            return values
        out: list[str] = []
        for row, value in enumerate(values):
            kind = type(value)
            if kind not in _ID_TYPES:
                detail = f"{self.schema.id} is missing or not a string"
                problems.setdefault(row, ("missing_id", detail))
                out.append("")
                continue
            text = value if kind is str else str(value)
            if len(text) > MAX_ID_LENGTH:
                detail = f"id longer than {MAX_ID_LENGTH} characters"
                problems.setdefault(row, ("bad_id", detail))
            out.append(text)
        return out

    def _timestamps(
        self, values: list[Any], problems: _Problems, clock: float
    ) -> npt.NDArray[np.float64]:
        types = set(map(type, values))
        ts: npt.NDArray[np.float64] | None = None
        if types <= _EPOCH_TYPES:
            try:
                ts = np.array(values, dtype=np.float64)
            except OverflowError:
                ts = None
        elif types == {str}:
            ts = _iso_column(values)
        if ts is None:
            parsed = [_timestamp(v) for v in values]
            ts = np.array([math.nan if p is None else p for p in parsed], dtype=np.float64)
            for row in np.flatnonzero(np.isnan(ts)).tolist():
                detail = f"{self.schema.timestamp} is missing or invalid"
                problems.setdefault(row, ("bad_timestamp", detail))
        lo = clock - self.schema.max_past_seconds
        hi = clock + self.schema.max_future_seconds
        with np.errstate(invalid="ignore"):
            outside = ~((ts >= lo) & (ts <= hi))
        if outside.any():
            for row in np.flatnonzero(outside).tolist():
                value = float(ts[row])
                hint = (
                    " (milliseconds? epochs are in seconds)" if value > _MILLISECONDS_HINT else ""
                )
                detail = f"{value:.0f} outside [{lo:.0f}, {hi:.0f}]{hint}"
                problems.setdefault(row, ("timestamp_out_of_range", detail))
        return ts

    def _path_column(
        self, events: list[dict[str, Any]], features: list[Any], path: list[str]
    ) -> list[Any]:
        """A path's column; paths into the features object start from the ones already found
        (a non-object features value became ``{}``, which gives None as the event would)."""
        depth = len(self._features)
        if depth and len(path) > depth and path[:depth] == self._features:
            return _column(features, path[depth:])
        return _column(events, path)

    def _feature_objects(self, events: list[dict[str, Any]], problems: _Problems) -> list[Any]:
        if not self._features:
            return events
        objects = _column(events, self._features)
        if set(map(type, objects)) <= {dict}:
            return objects
        detail = f"{self.schema.features} is not an object"
        for row, value in enumerate(objects):
            if type(value) is not dict:
                problems.setdefault(row, ("missing_features", detail))
                objects[row] = {}
        return objects

    def _segment_keys(
        self, events: list[dict[str, Any]], features: list[Any], problems: _Problems
    ) -> list[str]:
        parts = [
            _strings(self._path_column(events, features, path), ".".join(path), problems)
            for path in self._segment_paths
        ]
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return [""] * len(events)
        return list(map(",".join, zip(*parts, strict=True)))


def _iso_column(values: list[str]) -> npt.NDArray[np.float64] | None:
    """Epoch seconds of ISO strings, or None when some string needs the row-by-row path."""
    try:
        parsed = list(map(datetime.fromisoformat, values))
        if None in set(map(_tzinfo, parsed)):
            # Naive times are UTC; ``timestamp()`` would read them as local time.
            parsed = [p if p.tzinfo is not None else p.replace(tzinfo=UTC) for p in parsed]
        return np.array(list(map(datetime.timestamp, parsed)), dtype=np.float64)
    except (ValueError, OverflowError):
        return None


def _parse(
    messages: Sequence[bytes | None],
) -> tuple[list[dict[str, Any]], list[int] | range, list[Rejection]]:
    """Parse every message: the events, the message index of each, and the refusals."""
    docs: list[Any] | None = None
    try:
        sizes = list(map(len, messages))  # type: ignore[arg-type]
    except TypeError:  # a None (tombstone) message
        sizes = []
    if sizes and min(sizes) > 0 and max(sizes) <= MAX_MESSAGE_BYTES:
        try:
            docs = list(map(orjson.loads, messages))  # type: ignore[arg-type]
        except orjson.JSONDecodeError:
            docs = None
    rejections: list[Rejection] = []
    if docs is None:
        docs = []
        for index, message in enumerate(messages):
            if not message:
                rejections.append(Rejection(index, "empty", "empty message"))
                docs.append(None)
            elif len(message) > MAX_MESSAGE_BYTES:
                rejections.append(Rejection(index, "too_large", f"{len(message)} bytes"))
                docs.append(None)
            else:
                try:
                    docs.append(orjson.loads(message))
                except orjson.JSONDecodeError as exc:
                    rejections.append(Rejection(index, "invalid_json", str(exc)[:200]))
                    docs.append(None)
    if not rejections and set(map(type, docs)) <= {dict}:
        return docs, range(len(docs)), rejections

    refused = {r.index for r in rejections}
    events: list[dict[str, Any]] = []
    owners: list[int] = []
    for index, doc in enumerate(docs):
        if index in refused:
            continue
        if type(doc) is dict:
            events.append(doc)
            owners.append(index)
        elif type(doc) is list and doc and all(type(d) is dict for d in doc):
            events.extend(doc)
            owners.extend([index] * len(doc))
        else:
            detail = _type_name(doc)
            if type(doc) is list:
                detail = "array holding a non-object" if doc else "empty array"
            rejections.append(Rejection(index, "not_an_object", detail))
    rejections.sort(key=lambda r: r.index)
    return events, owners, rejections
