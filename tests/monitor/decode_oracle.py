"""The per-event decoder driftd started with, kept as the oracle for the columnar one.

Row by row and obviously correct: every event is validated in one function, in the
documented check order. The fast decoder in ``monitor.ingest.decode`` must accept the same
rows, refuse the same messages for the same reasons and count the same bad values.
Changes from the original: an ISO time without an offset is UTC (the original read
it as local time); the NaN/Infinity literals, tolerant values, optional ids, the
configured model, ``__missing__`` segments, timestamp units, Kafka timestamps and the
optional wall-clock window, each written here the plain way.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

from monitor.config import SchemaConfig
from monitor.ingest.decode import MAX_ID_LENGTH, DecodedBatch, Rejection
from monitor.ingest.segment_keys import MISSING_SEGMENT
from monitor.ingest.values import MAX_TEXT_DEPTH

FIRST_TIME = datetime(1, 1, 1, tzinfo=UTC).timestamp()
LAST_TIME = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()
DIVISORS = {"s": 1.0, "ms": 1_000.0, "us": 1_000_000.0, "ns": 1_000_000_000.0}
NUMERIC_TEXT = re.compile(
    r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|[+-]?(nan|inf|infinity)", re.ASCII | re.IGNORECASE
)
ASCII_SPACE = " \t\n\r\f\v"


class _RefusedError(Exception):
    """A row's refusal: reason and detail."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class _Literal:
    """A NaN/Infinity literal, told apart from a number that overflowed."""

    def __init__(self, text: str) -> None:
        self.value = float(text)


def _path(obj: Any, parts: Sequence[str]) -> Any:
    for part in parts:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def _depth(value: Any) -> int:
    """Levels of arrays and objects nested in ``value`` (a scalar: 0)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, level + 1) for child in children)
    return deepest


def _numeric_text(value: str) -> float | None:
    """The number a string holds, or None."""
    text = value.strip(ASCII_SPACE)
    return float(text) if NUMERIC_TEXT.fullmatch(text) else None


def _unit(number: float, configured: str) -> str:
    if configured != "auto":
        return configured
    if abs(number) < 1e11:
        return "s"
    if abs(number) < 1e14:
        return "ms"
    if abs(number) < 1e17:
        return "us"
    return "ns"


def _scalar(value: Any) -> Any:
    """A leniently parsed scalar as orjson would give it; raises ValueError where it refuses."""
    if isinstance(value, _Literal):
        return value.value
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value <= 2**64 - 1 else _scalar(float(value))
    if isinstance(value, float) and math.isinf(value):
        raise ValueError("number out of range")
    if isinstance(value, str) and any("\ud800" <= c <= "\udfff" for c in value):
        raise ValueError("lone surrogate")
    return value


def _clean(doc: Any) -> Any:
    """Every scalar of a leniently parsed document through ``_scalar``, in place (no recursion,
    so that depth limits stay the parser's)."""
    if not isinstance(doc, dict | list):
        return _scalar(doc)
    stack: list[Any] = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in list(node.items()):
                _scalar(key)
                if isinstance(value, dict | list):
                    stack.append(value)
                else:
                    node[key] = _scalar(value)
        else:
            for i, value in enumerate(node):
                if isinstance(value, dict | list):
                    stack.append(value)
                else:
                    node[i] = _scalar(value)
    return doc


def _lenient(message: bytes) -> Any:
    """Parse with the NaN/Infinity literals allowed; raise ValueError for anything else."""
    if b"NaN" not in message and b"Infinity" not in message:
        raise ValueError("no literal")
    try:
        doc = json.loads(message.decode("utf-8"), parse_constant=_Literal)
        return _clean(doc)
    except (RecursionError, OverflowError) as exc:
        raise ValueError(str(exc)) from exc


class OracleDecoder:
    """Decodes JSON messages one event at a time."""

    def __init__(
        self,
        schema: SchemaConfig,
        numeric_features: Sequence[str],
        categorical_features: Sequence[str],
        now: float | None = None,
        *,
        require_id: bool = True,
        model: str | None = None,
        check_wall_clock: bool = True,
    ) -> None:
        self.schema = schema
        self.numeric_features = tuple(numeric_features)
        self.categorical_features = tuple(categorical_features)
        self.require_id = require_id
        self.model = model
        self.check_wall_clock = check_wall_clock
        self._id = schema.id.split(".")
        self._ts = schema.timestamp.split(".")
        self._model = schema.model.split(".")
        self._features = schema.features.split(".") if schema.features else []
        self._prediction = schema.prediction.split(".")
        self._label = schema.label.split(".")
        self._segment_paths = [p.split(".") for p in schema.segment_by]
        self._now = now

    def _events(
        self, messages: Sequence[bytes | None]
    ) -> tuple[list[Any], list[int], list[Rejection]]:
        events: list[Any] = []
        owners: list[int] = []
        rejections: list[Rejection] = []
        for index, message in enumerate(messages):
            if not message:
                rejections.append(Rejection(index, "empty", "empty message"))
                continue
            if len(message) > self.schema.max_message_bytes:
                rejections.append(Rejection(index, "too_large", f"{len(message)} bytes"))
                continue
            try:
                doc = orjson.loads(message)
            except orjson.JSONDecodeError as exc:
                try:
                    doc = _lenient(message)
                except ValueError:
                    rejections.append(Rejection(index, "invalid_json", str(exc)[:200]))
                    continue
            if isinstance(doc, dict):
                events.append(doc)
                owners.append(index)
            elif isinstance(doc, list) and doc and all(isinstance(d, dict) for d in doc):
                events.extend(doc)
                owners.extend([index] * len(doc))
            else:
                rejections.append(Rejection(index, "not_an_object", type(doc).__name__))
        return events, owners, rejections

    def decode(
        self,
        messages: Sequence[bytes | None],
        now: float | None = None,
        kafka_ts: Sequence[float | None] | None = None,
    ) -> DecodedBatch:
        """Decode a poll batch; every refused message is listed in ``rejections``."""
        events, owners, rejections = self._events(messages)
        clock = now if now is not None else (self._now if self._now is not None else time.time())
        lo_ts, hi_ts = FIRST_TIME, LAST_TIME
        if self.check_wall_clock and self.schema.max_past_seconds is not None:
            lo_ts = max(lo_ts, clock - self.schema.max_past_seconds)
        if self.check_wall_clock and self.schema.max_future_seconds is not None:
            hi_ts = min(hi_ts, clock + self.schema.max_future_seconds)
        use_kafka = self.schema.timestamp_source == "kafka" and kafka_ts is not None

        rows: list[tuple[Any, ...]] = []
        invalid_of: list[list[tuple[str, str]]] = []
        kept: list[int] = []
        rejected: set[int] = set()
        for event, owner in zip(events, owners, strict=True):
            if owner in rejected:
                continue
            kafka_time = None
            if use_kafka:
                assert kafka_ts is not None
                given = kafka_ts[owner]
                if given is not None and math.isfinite(given) and given >= 0:
                    kafka_time = float(given)
            bad: list[tuple[str, str]] = []
            try:
                rows.append(self._row(event, kafka_time, lo_ts, hi_ts, bad))
            except _RefusedError as exc:
                rejections.append(Rejection(owner, exc.reason, str(exc)))
                rejected.add(owner)
                continue
            invalid_of.append(bad)
            kept.append(owner)

        # An array message is all-or-nothing: drop rows of messages refused later on.
        keep = [i for i, owner in enumerate(kept) if owner not in rejected]
        rows = [rows[i] for i in keep]
        kept = [kept[i] for i in keep]
        invalid: dict[tuple[str, str], int] = {}
        for i in keep:
            for key in invalid_of[i]:
                invalid[key] = invalid.get(key, 0) + 1
        n_numeric = len(self.numeric_features)
        numeric = np.array([r[4] for r in rows], dtype=np.float64).reshape(len(rows), n_numeric)
        rejections.sort(key=lambda r: r.index)
        return DecodedBatch(
            ids=[r[0] for r in rows],
            ts=np.array([r[1] for r in rows], dtype=np.float64),
            models=[r[2] for r in rows],
            segment_keys=[r[3] for r in rows],
            numeric=numeric,
            categorical={
                name: [r[5][j] for r in rows] for j, name in enumerate(self.categorical_features)
            },
            prediction=np.array([r[6] for r in rows], dtype=np.float64),
            label=np.array([r[7] for r in rows], dtype=np.float64),
            source_index=np.array(kept, dtype=np.int64),
            rejections=rejections,
            invalid=invalid,
        )

    def _row(
        self,
        event: dict[str, Any],
        kafka_time: float | None,
        lo_ts: float,
        hi_ts: float,
        bad: list[tuple[str, str]],
    ) -> tuple[str, float, str, str, list[float], list[str | None], float, float]:
        """One event's values in the documented check order; raises ``_RefusedError``."""
        model = self._text(_path(event, self._model), self.model or "", self.schema.model)
        if self.model is not None and model != self.model:
            raise _RefusedError("other_model", f"{model!r} is not {self.model!r}")

        event_id = ""
        raw_id = _path(event, self._id)
        if isinstance(raw_id, str) or (isinstance(raw_id, int) and not isinstance(raw_id, bool)):
            event_id = str(raw_id)
            if len(event_id) > MAX_ID_LENGTH:
                if self.require_id:
                    raise _RefusedError("bad_id", "too long")
                event_id = ""
        elif self.require_id:
            raise _RefusedError("missing_id", "missing or not a string")

        event_ts = kafka_time
        if event_ts is None:
            event_ts = self._timestamp(_path(event, self._ts))
            if event_ts is None:
                raise _RefusedError("bad_timestamp", "missing or invalid")
        if not lo_ts <= event_ts <= hi_ts:
            raise _RefusedError("timestamp_out_of_range", f"{event_ts} outside the window")

        features = _path(event, self._features) if self._features else event
        if not isinstance(features, dict):
            raise _RefusedError("missing_features", "not an object")
        if len(features) > self.schema.max_features_per_event:
            raise _RefusedError("too_many_features", "too many keys")
        row = [self._number(features.get(n), n, bad) for n in self.numeric_features]
        pred = self._number(_path(event, self._prediction), self.schema.prediction, bad)
        label = self._number(_path(event, self._label), self.schema.label, bad)
        cats: list[str | None] = []
        for name in self.categorical_features:
            value = features.get(name)
            if value is None or isinstance(value, str):
                cats.append(value)
            elif isinstance(value, int):  # booleans too
                cats.append(str(value))
            else:
                self._bad(name, "wrong_type", bad)
                cats.append(None)
        key_parts = []
        joined = len(self._segment_paths) > 1
        for path in self._segment_paths:
            value = _path(event, path)
            text = self._text(value, MISSING_SEGMENT, ".".join(path))
            if value is not None:
                # A user's text never reads as the marker, nor as another split of the key.
                text = text.replace("\\", "\\\\")
                if joined:
                    text = text.replace(",", "\\,")
                if text == MISSING_SEGMENT:
                    text = "\\" + text
            key_parts.append(text)
        return (event_id, event_ts, model, ",".join(key_parts), row, cats, pred, label)

    def _text(self, value: Any, missing: str, name: str) -> str:
        if value is None:
            return missing
        if _depth(value) > MAX_TEXT_DEPTH:
            raise _RefusedError("wrong_type", f"{name} nested too deeply")
        return str(value)

    def _bad(self, name: str, reason: str, bad: list[tuple[str, str]]) -> None:
        if self.schema.strict:
            raise _RefusedError("wrong_type", f"{name}: {reason}")
        bad.append((name, reason))

    def _number(self, value: Any, name: str, bad: list[tuple[str, str]]) -> float:
        """A float for numeric JSON values; NaN for null/absent and for bad values (counted)."""
        if value is None:
            return math.nan
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            self._bad(name, "wrong_type", bad)
            return math.nan
        if isinstance(value, str):
            if self.schema.strict:
                self._bad(name, "wrong_type", bad)
            number = _numeric_text(value)
            if number is None:
                self._bad(name, "not_a_number", bad)
                return math.nan
        else:
            try:
                number = float(value)
            except OverflowError:
                number = math.inf
        if not math.isfinite(number):
            self._bad(name, "not_finite", bad)
            return math.nan
        return number

    def _timestamp(self, value: Any) -> float | None:
        number: float | None = None
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float):
            number = float(value)
        elif isinstance(value, str):
            number = _numeric_text(value)
            if number is None:
                try:
                    parsed = datetime.fromisoformat(value)
                except ValueError:
                    return None
                if parsed.tzinfo is None:
                    parsed = parsed.replace(tzinfo=UTC)
                try:
                    return parsed.timestamp()
                except OverflowError:
                    return None
        if number is None or not math.isfinite(number):
            return None
        seconds = number / DIVISORS[_unit(number, self.schema.ts_unit)]
        return seconds if math.isfinite(seconds) else None
