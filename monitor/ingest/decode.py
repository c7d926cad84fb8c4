"""Bytes to columns: one pass of orjson over a poll batch, then numpy per column.

A message is one JSON object, or a JSON array of objects. Anything that cannot be
decoded or validated is rejected with a reason and kept (with its index in the
batch) so the caller can count it and dead-letter the original bytes. A bad
message never takes its batch-mates down with it; an array message is
all-or-nothing.

The work is columnar. All messages are parsed first; then each field is pulled
out of every event with one ``map(dict.get, ...)`` pass and converted with one
numpy call. Type checks are a ``set(map(type, column))`` per column; only a
column that holds a wrong type is walked row by row. A row's reason is the first
failing check in this order: model, id, timestamp, features object (missing, or
more keys than ``schema.max_features_per_event``: ``too_many_features``), numeric
features (in order), prediction, label, categorical features (in order), segment
paths (in order).

Limits. A message over ``schema.max_message_bytes`` is refused unparsed; the decoder
reads only the configured feature names, so a huge features object costs its parse and
nothing more (and is refused past the per-event cap).

Parsing. orjson parses the batch. A message orjson refuses that holds the text
``NaN`` or ``Infinity`` is parsed again, alone, by the stdlib ``json`` module, which
also accepts the ``NaN``, ``Infinity`` and ``-Infinity`` literals Python's
``json.dumps`` writes for float NaN and infinities, and nothing else orjson refuses
(numbers beyond float64, lone surrogates and invalid UTF-8 stay ``invalid_json``). Its
nesting limit is the interpreter's recursion limit (some 900 levels), below orjson's 1024.

Values. Numbers are float64 with null/absent as NaN; categorical values are text
(ints and booleans as ``str``), None when null or absent. A bad value in a numeric
feature, the prediction, the label or a categorical feature becomes missing for that
field alone and the event is kept; ``DecodedBatch.invalid`` counts such values by
(field, reason) over the accepted events, the reasons being ``INVALID_REASONS``:

- ``wrong_type``: a boolean, object or array where a number belongs; a number,
  object or array where a category belongs;
- ``not_a_number``: a string that is not a decimal number where a number belongs
  (a string that is one, ``"12638.0"``, is that number and counts as nothing);
- ``not_finite``: a ``NaN``/``Infinity`` literal, or a string like ``"NaN"``,
  ``"inf"`` or ``"1e999"``, where a number belongs.

With ``schema.strict`` each of these refuses the whole event as ``wrong_type``
instead, and a numeric string is a wrong type too.

Model. With ``Decoder(model=...)`` an event whose model is present (not null) and
names another model is refused as ``other_model``; a null or absent model is taken
to be the configured one. Without it, a null or absent model is empty text.

Ids. A string or an integer (as text) of at most ``MAX_ID_LENGTH`` characters. With
``Decoder(require_id=False)`` (labels off: nothing joins by id) a missing or bad id
is the empty string and the event is kept.

Segments. The segment key joins the segment paths' values as text with ``,``; a
null or absent value is ``MISSING_SEGMENT``.

Timestamps. An epoch number, a string holding one (``"1733400000"``), or an ISO 8601
string (one without an offset is UTC); a string that is a decimal number is always
an epoch, never a compact ISO date. Epochs are in ``schema.ts_unit``: ``auto`` reads
magnitudes below 1e11 as seconds, below 1e14 as milliseconds, below 1e17 as
microseconds and the rest as nanoseconds. With ``schema.timestamp_source: kafka``
the time of each message passed to ``decode(kafka_ts=...)`` (seconds) is used, the
event's field only for a message without one. A time must fall within the
wall-clock window (``schema.max_past_seconds`` behind to ``max_future_seconds``
ahead of ``now``; None is no limit; ``Decoder(check_wall_clock=False)`` drops the
window) and, whatever the window, within the years 1 to 9999.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import repeat
from operator import attrgetter, itemgetter
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from monitor.config import SchemaConfig

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
"""The default of ``schema.max_message_bytes``."""
UNEXPECTED_SAMPLE = 200
"""Events per batch whose feature names are compared with the configured ones."""
UNEXPECTED_NAMES = 50
"""Distinct unexpected feature names reported per batch at most."""
MAX_ID_LENGTH = 256
MAX_TEXT_DEPTH = 32
"""Levels of nesting an array or object may have to be used as a model or segment value."""
MISSING_SEGMENT = "__missing__"
"""The segment key component of an event whose segment path is null or absent."""

REASONS = (
    "empty",
    "too_large",
    "invalid_json",
    "not_an_object",
    "other_model",
    "missing_id",
    "bad_id",
    "bad_timestamp",
    "timestamp_out_of_range",
    "ahead_of_watermark",  # refused by the windows (monitor.engine.windows), not the decoder
    "missing_features",
    "too_many_features",
    "wrong_type",
)
"""Why a message was refused (``Rejection.reason``)."""

INVALID_REASONS = ("wrong_type", "not_a_number", "not_finite")
"""Why a value of an accepted event became missing (the reasons in ``DecodedBatch.invalid``)."""

TS_UNITS = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}
"""Epoch units, as the divisor that makes seconds."""

_UNIT_NAMES = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}
# ts_unit auto: an epoch whose magnitude is below the bound is in the unit.
_AUTO_UNITS = ((1e11, "s"), (1e14, "ms"), (1e17, "us"))
# Whatever the window, a time must be one a datetime can show.
_MIN_TS = datetime(1, 1, 1, tzinfo=UTC).timestamp()
_MAX_TS = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()

_NONE = type(None)
_dict_get = dict.get
_tzinfo = attrgetter("tzinfo")
_fifth = itemgetter(4)
_NUMBER_TYPES = frozenset({float, int, _NONE})
_EPOCH_TYPES = frozenset({float, int})
_CATEGORY_TYPES = frozenset({str, _NONE})
# A string holding a decimal number (what ``float`` reads, underscores aside).
_NUMBER_TEXT = re.compile(
    r"\s*[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|(?i:nan|inf|infinity))\s*", re.ASCII
)
# Where a \u escape of a UTF-16 surrogate may sit (the lenient parser lets lone ones through).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")

# Per row: the first problem found, as (reason, detail).
_Problems = dict[int, tuple[str, str]]
# Values of accepted events that became missing: (row, field, reason).
_Invalid = list[tuple[int, str, str]]


@dataclass(frozen=True)
class Rejection:
    """Why message ``index`` of the batch was refused."""

    index: int
    reason: str
    detail: str


@dataclass(frozen=True)
class DecodedBatch:
    """Accepted events as columns; ``source_index`` maps each row to its message.

    ``invalid`` counts, over the accepted events, the values that became missing:
    (field, reason) -> count, the field being a feature name or the prediction or
    label path, the reason one of ``INVALID_REASONS``.
    """

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
    invalid: dict[tuple[str, str], int] = field(default_factory=dict)
    unexpected: dict[str, int] = field(default_factory=dict)
    """Feature names the events carry that the decoder does not read (not in the
    reference), with how many events of a sample carry them: at most
    ``UNEXPECTED_SAMPLE`` events per batch, ``UNEXPECTED_NAMES`` names cut to
    ``schema.max_name_length`` characters. Empty with ``Decoder(report_unexpected=False)``."""
    feature_objects: list[dict[str, Any]] | None = None
    """The features object of each accepted event, with ``Decoder(keep_feature_objects=True)``
    (what warm-up discovery reads); None otherwise."""

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


def is_number_text(value: str) -> bool:
    """Whether a string holds a decimal number (``"1.5"``, ``" 1e3"``, ``"NaN"``)."""
    return _NUMBER_TEXT.fullmatch(value) is not None


def _number_text(value: str) -> float | None:
    """The number a string holds (``"12638.0"``, ``" 1e3"``, ``"NaN"``), or None."""
    return float(value) if _NUMBER_TEXT.fullmatch(value) else None


def _parse_iso(value: str) -> float | None:
    """Epoch seconds of an ISO 8601 string; a string without an offset is UTC."""
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    except (ValueError, OverflowError):
        return None


def _unit_of(value: float, unit: str) -> str:
    """The unit an epoch number is read in: ``unit``, or by magnitude when it is ``auto``."""
    if unit != "auto":
        return unit
    size = abs(value)
    for bound, name in _AUTO_UNITS:
        if size < bound:
            return name
    return "ns"


def _scale(raw: npt.NDArray[np.float64], unit: str) -> npt.NDArray[np.float64]:
    """Epoch numbers to seconds, exactly as ``_unit_of`` and a division do one by one."""
    if unit == "s":
        return raw
    if unit != "auto":
        return raw / TS_UNITS[unit]
    size = np.abs(raw)
    if size.max(initial=0.0) < _AUTO_UNITS[0][0]:  # all seconds (NaN fails the test)
        return raw
    divisor = np.select([size < bound for bound, _ in _AUTO_UNITS], [1.0, 1e3, 1e6], 1e9)
    seconds: npt.NDArray[np.float64] = raw / divisor
    return seconds


def _type_name(value: Any) -> str:
    names = {
        _NONE: "null",
        bool: "boolean",
        str: "string",
        dict: "object",
        list: "array",
        int: "integer",
        float: "number",
    }
    return names.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    """A value for a log line: short, quoted when text, control characters escaped."""
    if type(value) is str:
        return repr(value[:40] + "...") if len(value) > 40 else repr(value)
    if type(value) is float or type(value) is int:
        return repr(value) if type(value) is int or math.isfinite(value) else _literal(value)
    return _type_name(value)


def _literal(value: float) -> str:
    """The JSON literal of a non-finite float."""
    return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"


def _when(seconds: float) -> str:
    """Epoch seconds as an ISO 8601 UTC time when a datetime can show them."""
    try:
        return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, ValueError, OSError):
        return f"{seconds:.6g} s from the epoch"


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


def _strings(values: list[Any], name: str, problems: _Problems, missing: str) -> list[str]:
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
        if (kind is list or kind is dict) and _nests_deeper(value, MAX_TEXT_DEPTH):
            detail = f"{name}: {_type_name(value)} nested more than {MAX_TEXT_DEPTH} levels deep"
            problems.setdefault(row, ("wrong_type", detail))
            out.append(missing)
        else:
            out.append(missing if value is None else value if kind is str else str(value))
    return out


class Decoder:
    """Decodes JSON messages against the configured schema paths.

    ``now`` fixes the wall clock (tests, replays); ``require_id=False`` keeps events
    without a usable id (the id is then ""); ``model`` refuses events naming another
    model (``other_model``); ``check_wall_clock=False`` drops the wall-clock window
    (a replay of historical data); ``report_unexpected=False`` does not look for feature
    names it does not read (a warm-up still learning them); ``keep_feature_objects``
    hands each accepted event's features object back (``DecodedBatch.feature_objects``).
    """

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
        report_unexpected: bool = True,
        keep_feature_objects: bool = False,
    ) -> None:
        self.schema = schema
        self.numeric_features = tuple(numeric_features)
        self.categorical_features = tuple(categorical_features)
        self.require_id = require_id
        self.model = model
        self.check_wall_clock = check_wall_clock
        self.report_unexpected = report_unexpected
        self.keep_feature_objects = keep_feature_objects
        self._id = schema.id.split(".")
        self._ts = schema.timestamp.split(".")
        self._model = schema.model.split(".")
        self._features = schema.features.split(".") if schema.features else []
        self._prediction = schema.prediction.split(".")
        self._label = schema.label.split(".")
        self._segment_paths = [p.split(".") for p in schema.segment_by]
        self._strict = schema.strict
        self._unit = schema.ts_unit
        self._kafka_time = schema.timestamp_source == "kafka"
        self._now = now
        prefix = f"{schema.features}." if schema.features else ""
        # Segment keys read from the features object are expected too.
        segment_features = [
            p.removeprefix(prefix) for p in schema.segment_by if p.startswith(prefix)
        ]
        self._known = frozenset(
            (*self.numeric_features, *self.categorical_features, *segment_features)
        )

    def decode(
        self,
        messages: Sequence[bytes | None],
        now: float | None = None,
        kafka_ts: Sequence[float | None] | None = None,
    ) -> DecodedBatch:
        """Decode a poll batch; every refused message is listed in ``rejections``.

        ``kafka_ts``: each message's Kafka timestamp in epoch seconds (None, NaN or a
        negative value: the record has none), used with ``schema.timestamp_source:
        kafka`` and ignored otherwise.
        """
        clock = now if now is not None else (self._now if self._now is not None else time.time())
        events, owners, rejections, lenient = _parse(messages, self.schema.max_message_bytes)
        n = len(events)
        source_index = (
            np.arange(n, dtype=np.int64)
            if isinstance(owners, range)
            else np.array(owners, dtype=np.int64)
        )
        problems: _Problems = {}
        invalid: _Invalid = []

        models = self._models(_column(events, self._model), problems)
        ids = self._ids(_column(events, self._id), problems)
        ts = self._timestamps(events, source_index, kafka_ts, len(messages), problems, clock)
        features = self._feature_objects(events, problems)
        unexpected = self._unexpected(features) if self.report_unexpected else {}
        numeric = np.empty((n, len(self.numeric_features)), dtype=np.float64)
        for j, name in enumerate(self.numeric_features):
            numeric[:, j] = self._numbers(_get(features, name), name, problems, invalid, lenient)
        schema = self.schema
        prediction = self._numbers(
            _column(events, self._prediction), schema.prediction, problems, invalid, lenient
        )
        label = self._numbers(
            _column(events, self._label), schema.label, problems, invalid, lenient
        )
        categorical = {
            name: self._categories(_get(features, name), name, problems, invalid)
            for name in self.categorical_features
        }
        keys = self._segment_keys(events, features, problems)

        kept: npt.NDArray[np.bool_] | None = None
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
            kept = ~bad[source_index]
            keep_rows = np.flatnonzero(kept)
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
            if self.keep_feature_objects:
                features = [features[i] for i in keep]
        counts: dict[tuple[str, str], int] = {}
        for row, name, reason in invalid:
            if kept is None or kept[row]:
                counts[name, reason] = counts.get((name, reason), 0) + 1
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
            invalid=counts,
            unexpected=unexpected,
            feature_objects=features if self.keep_feature_objects else None,
        )

    def _unexpected(self, features: list[Any]) -> dict[str, int]:
        """Names in a sample of feature objects that no configured feature reads."""
        out: dict[str, int] = {}
        known = self._known
        longest = self.schema.max_name_length
        step = max(1, len(features) // UNEXPECTED_SAMPLE)
        for obj in features[::step]:
            # An object over max_features_per_event is refused, and not worth a scan.
            if type(obj) is not dict or len(obj) > self.schema.max_features_per_event:
                continue
            for key in obj.keys() - known:
                if type(key) is not str:
                    continue
                name = key[:longest]
                if name in out or len(out) < UNEXPECTED_NAMES:
                    out[name] = out.get(name, 0) + 1
        return out

    # --- per-column checks, in the documented order ----------------------------------

    def _models(self, values: list[Any], problems: _Problems) -> list[str]:
        expected = self.model
        models = _strings(values, self.schema.model, problems, expected or "")
        if expected is not None and set(models) != {expected}:
            for row, text in enumerate(models):
                if text != expected:
                    detail = (
                        f"{self.schema.model} is {_show(text)}; this driftd monitors {expected!r}"
                    )
                    problems.setdefault(row, ("other_model", detail))
        return models

    def _ids(self, values: list[Any], problems: _Problems) -> list[str]:
        types = set(map(type, values))
        if types <= {str} and max(map(len, values), default=0) <= MAX_ID_LENGTH:
            return values
        required = self.require_id
        path = self.schema.id
        out: list[str] = []
        for row, value in enumerate(values):
            kind = type(value)
            text = value if kind is str else str(value) if kind is int else None
            if text is None:
                if required:
                    detail = (
                        f"{path} is missing or null"
                        if value is None
                        else f"{path}: {_type_name(value)} where an id (string) belongs"
                    )
                    problems.setdefault(row, ("missing_id", detail))
                out.append("")
            elif len(text) > MAX_ID_LENGTH:
                if required:
                    detail = f"{path} is {len(text)} characters long, over {MAX_ID_LENGTH}"
                    problems.setdefault(row, ("bad_id", detail))
                out.append("")
            else:
                out.append(text)
        return out

    def _timestamps(
        self,
        events: list[dict[str, Any]],
        source_index: npt.NDArray[np.int64],
        kafka_ts: Sequence[float | None] | None,
        n_messages: int,
        problems: _Problems,
        clock: float,
    ) -> npt.NDArray[np.float64]:
        """Epoch seconds of every row (NaN where refused), checked against the window."""
        n = len(events)
        from_kafka: npt.NDArray[np.bool_] | None = None
        ts = np.full(n, math.nan)
        if self._kafka_time and kafka_ts is not None:
            if len(kafka_ts) != n_messages:
                raise ValueError(f"{len(kafka_ts)} Kafka timestamps for {n_messages} messages")
            per_message = np.array(
                [math.nan if v is None else v for v in kafka_ts], dtype=np.float64
            ).reshape(n_messages)
            with np.errstate(invalid="ignore"):
                per_message[~(np.isfinite(per_message) & (per_message >= 0))] = math.nan
            ts = per_message[source_index]
            from_kafka = ~np.isnan(ts)
        values: list[Any] = []
        if from_kafka is None or not from_kafka.all():
            values = _column(events, self._ts)
            own: _Problems = {}
            event_ts = self._event_times(values, own)
            if from_kafka is None:
                ts = event_ts
                problems.update((row, own[row]) for row in own if row not in problems)
            else:
                fallback = ~from_kafka
                ts[fallback] = event_ts[fallback]
                for row, problem in own.items():
                    if fallback[row]:
                        problems.setdefault(row, problem)

        lo, hi = _MIN_TS, _MAX_TS
        past, future = self.schema.max_past_seconds, self.schema.max_future_seconds
        if self.check_wall_clock and past is not None:
            lo = max(lo, clock - past)
        if self.check_wall_clock and future is not None:
            hi = min(hi, clock + future)
        with np.errstate(invalid="ignore"):
            outside = ~((ts >= lo) & (ts <= hi))
        if outside.any():
            for row in np.flatnonzero(outside).tolist():
                if row in problems:
                    continue
                kafka = from_kafka is not None and bool(from_kafka[row])
                detail = self._range_detail(None if kafka else values[row], float(ts[row]), lo, hi)
                problems[row] = ("timestamp_out_of_range", detail)
        return ts

    def _event_times(self, values: list[Any], problems: _Problems) -> npt.NDArray[np.float64]:
        """Epoch seconds of the timestamp fields; NaN and a problem where there is none."""
        types = set(map(type, values))
        ts: npt.NDArray[np.float64] | None = None
        if types <= _EPOCH_TYPES:
            try:
                ts = _scale(np.array(values, dtype=np.float64), self._unit)
            except OverflowError:
                ts = None
        elif types == {str}:
            ts = _iso_column(values)
        if ts is None:
            ts = np.array(list(map(self._time, values)), dtype=np.float64)
        bad = ~np.isfinite(ts)
        if bad.any():
            for row in np.flatnonzero(bad).tolist():
                problems[row] = ("bad_timestamp", self._bad_time_detail(values[row]))
            ts[bad] = math.nan
        return ts

    def _time(self, value: Any) -> float:
        """Epoch seconds of one timestamp field; NaN if it holds no time (or an infinite one)."""
        kind = type(value)
        number: float | None
        if kind is str:
            number = _number_text(value)
            if number is None:
                seconds = _parse_iso(value)
                return math.nan if seconds is None else seconds
        elif kind is float or kind is int:
            try:
                number = float(value)
            except OverflowError:
                return math.nan
        else:
            return math.nan
        return number / TS_UNITS[_unit_of(number, self._unit)]

    def _bad_time_detail(self, value: Any) -> str:
        path = self.schema.timestamp
        kind = type(value)
        if value is None:
            return f"{path} is missing or null"
        if kind is str:
            if _number_text(value) is not None:
                return f"{path}: {_show(value)} is not a finite number"
            return f"{path}: {_show(value)} is neither an epoch number nor an ISO 8601 time"
        if kind is float or kind is int:
            return f"{path}: {_show(value)} is not a finite number"
        return f"{path}: {_type_name(value)} where a time belongs (epoch number or ISO 8601)"

    def _range_detail(self, raw: Any, seconds: float, lo: float, hi: float) -> str:
        """Why a time is outside the window: what was seen, how it was read, and a unit hint."""
        window = f"outside [{_when(lo)}, {_when(hi)}]"
        if raw is None:
            return f"Kafka timestamp {_when(seconds)} is {window}"
        path = self.schema.timestamp
        number = _number_text(raw) if type(raw) is str else raw
        if type(number) is not float and type(number) is not int:
            return f"{path} {_show(raw)} ({_when(seconds)}) is {window}"
        unit = _unit_of(float(number), self._unit)
        detail = f"{path} {_show(raw)} read as {_UNIT_NAMES[unit]} ({_when(seconds)}) is {window}"
        guess = _unit_of(float(number), "auto")
        if guess != unit:
            detail += f"; it looks like {_UNIT_NAMES[guess]}, set schema.ts_unit to {guess} or auto"
        return detail

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
        """Each event's features object; a missing one is ``{}`` and refuses its event
        (``missing_features``), and so does one with too many keys (``too_many_features``)."""
        objects = _column(events, self._features) if self._features else events
        if set(map(type, objects)) <= {dict}:
            self._count_keys(objects, problems)
            return objects
        path = self.schema.features
        for row, value in enumerate(objects):
            if type(value) is not dict:
                detail = (
                    f"{path} is missing or null"
                    if value is None
                    else f"{path} is {_type_name(value)}, not an object"
                )
                problems.setdefault(row, ("missing_features", detail))
                objects[row] = {}
        self._count_keys(objects, problems)
        return objects

    def _count_keys(self, objects: list[dict[str, Any]], problems: _Problems) -> None:
        """Refuse each event whose features object has more keys than the cap."""
        cap = self.schema.max_features_per_event
        if max(map(len, objects), default=0) <= cap:
            return
        where = self.schema.features or "the event"
        for row, obj in enumerate(objects):
            if len(obj) > cap:
                detail = (
                    f"{where} has {len(obj):,} keys, over schema.max_features_per_event {cap:,}"
                )
                problems.setdefault(row, ("too_many_features", detail))

    def _bad_value(
        self,
        row: int,
        name: str,
        reason: str,
        detail: str,
        problems: _Problems,
        invalid: _Invalid,
    ) -> None:
        """A value that is no value: counted (tolerant) or the event's refusal (strict)."""
        if self._strict:
            problems.setdefault(row, ("wrong_type", detail))
        else:
            invalid.append((row, name, reason))

    def _numbers(
        self,
        values: list[Any],
        name: str,
        problems: _Problems,
        invalid: _Invalid,
        lenient: bool,
    ) -> npt.NDArray[np.float64]:
        """A float64 column: null/absent are NaN, and so is every bad value (counted)."""
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
        strict = self._strict
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
                number = _number_text(value)
                if number is None:
                    detail = f"{name}: string {_show(value)} is not a number"
                    self._bad_value(row, name, "not_a_number", detail, problems, invalid)
                    out.append(math.nan)
                    continue
            else:
                detail = f"{name}: {_type_name(value)} where a number belongs"
                self._bad_value(row, name, "wrong_type", detail, problems, invalid)
                out.append(math.nan)
                continue
            if math.isfinite(number):
                out.append(number)
            else:
                detail = f"{name}: {_show(value)} is not a finite number"
                self._bad_value(row, name, "not_finite", detail, problems, invalid)
                out.append(math.nan)
        return np.array(out, dtype=np.float64)

    def _categories(
        self, values: list[Any], name: str, problems: _Problems, invalid: _Invalid
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
                detail = f"{name}: {_type_name(value)} where a category belongs"
                self._bad_value(row, name, "wrong_type", detail, problems, invalid)
                out.append(None)
        return out

    def _segment_keys(
        self, events: list[dict[str, Any]], features: list[Any], problems: _Problems
    ) -> list[str]:
        joined = len(self._segment_paths) > 1
        parts = []
        for path in self._segment_paths:
            raw = self._path_column(events, features, path)
            texts = _strings(raw, ".".join(path), problems, MISSING_SEGMENT)
            parts.append(_key_parts(raw, texts, joined))
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return [""] * len(events)
        return list(map(",".join, zip(*parts, strict=True)))


def _key_parts(raw: list[Any], texts: list[str], joined: bool) -> list[str]:
    """Segment key parts that cannot be mistaken for the missing marker, or for another
    split of a key joined from several paths.

    A user's backslash is doubled and a user value ``__missing__`` gets a leading
    backslash; with several paths a user's comma becomes ``\\,``. Only an absent or
    null value is the bare marker.
    """
    marked = ("\\", ",") if joined else ("\\",)
    # The distinct values are few (segments), so the check is cheap on every batch.
    if not any(t == MISSING_SEGMENT or any(m in t for m in marked) for t in set(texts)):
        return texts
    out: list[str] = []
    for value, text in zip(raw, texts, strict=True):
        if value is None:
            out.append(text)
            continue
        escaped = text.replace("\\", "\\\\")
        if joined:
            escaped = escaped.replace(",", "\\,")
        out.append("\\" + escaped if escaped == MISSING_SEGMENT else escaped)
    return out


def _iso_column(values: list[str]) -> npt.NDArray[np.float64] | None:
    """Epoch seconds of ISO strings, or None when some string needs the row-by-row path."""
    try:
        parsed = list(map(datetime.fromisoformat, values))
        # A string that is a number is an epoch, even one fromisoformat reads as a
        # compact date ("20261118"). An ISO string with "-" after its 4-digit year
        # cannot be one (a number has "-" only first or after an exponent's "e").
        if set(map(_fifth, values)) != {"-"} and any(
            _NUMBER_TEXT.fullmatch(v) for v in values if v[4] != "-"
        ):
            return None
        if None in set(map(_tzinfo, parsed)):
            # Naive times are UTC; ``timestamp()`` would read them as local time.
            parsed = [p if p.tzinfo is not None else p.replace(tzinfo=UTC) for p in parsed]
        return np.array(list(map(datetime.timestamp, parsed)), dtype=np.float64)
    except (ValueError, OverflowError, IndexError):
        return None


# --- parsing --------------------------------------------------------------------------


def _finite_float(text: str) -> float:
    """A JSON number as orjson reads it: a float, refused when beyond float64."""
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number out of range: {text[:40]}")
    return value


def _json_int(text: str) -> int | float:
    """A JSON integer as orjson reads it: an int within 64 bits (signed or not), else a float."""
    if len(text) <= 21:
        value = int(text)
        if -(2**63) <= value <= 2**64 - 1:
            return value
    return _finite_float(text)


def _has_lone_surrogate(doc: Any) -> bool:
    """Whether some string (or key) of a parsed document holds an unpaired UTF-16 surrogate."""
    stack = [doc]
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is dict:
            stack.extend(node)
            stack.extend(node.values())
        elif kind is list:
            stack.extend(node)
        elif kind is str and not node.isascii():
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                return True
    return False


def _lenient_loads(message: bytes, error: orjson.JSONDecodeError) -> tuple[Any, str | None]:
    """Parse a message orjson refused, allowing the NaN/Infinity literals; (doc, refusal)."""
    raw = bytes(message)
    if b"NaN" not in raw and b"Infinity" not in raw:
        return None, str(error)[:200]
    try:
        doc = json.loads(
            raw.decode("utf-8"),
            parse_float=_finite_float,
            parse_int=_json_int,
            parse_constant=float,
        )
    except UnicodeDecodeError:
        return None, str(error)[:200]
    except RecursionError:
        return None, "nested too deeply"
    except ValueError as exc:
        return None, str(exc)[:200]
    if _SURROGATE_ESCAPE.search(raw) and _has_lone_surrogate(doc):
        return None, "a string holds an unpaired surrogate escape (not valid Unicode)"
    return doc, None


def _parse(
    messages: Sequence[bytes | None], limit: int = MAX_MESSAGE_BYTES
) -> tuple[list[dict[str, Any]], list[int] | range, list[Rejection], bool]:
    """Parse every message no larger than ``limit`` bytes: the events, the message index of
    each, the refusals, and whether some message needed the lenient parser (its numbers may
    be NaN or infinite)."""
    docs: list[Any] | None = None
    lenient = False
    try:
        sizes = list(map(len, messages))  # type: ignore[arg-type]
    except TypeError:  # a None (tombstone) message
        sizes = []
    if sizes and min(sizes) > 0 and max(sizes) <= limit:
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
            elif len(message) > limit:
                detail = (
                    f"{len(message)} bytes, over the limit of {limit} (schema.max_message_bytes)"
                )
                rejections.append(Rejection(index, "too_large", detail))
                docs.append(None)
            else:
                try:
                    docs.append(orjson.loads(message))
                except orjson.JSONDecodeError as exc:
                    doc, refusal = _lenient_loads(message, exc)
                    if refusal is not None:
                        rejections.append(Rejection(index, "invalid_json", refusal))
                    else:
                        lenient = True
                    docs.append(doc)
    if not rejections and set(map(type, docs)) <= {dict}:
        return docs, range(len(docs)), rejections, lenient

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
            detail = f"JSON {_type_name(doc)}, not an object"
            if type(doc) is list:
                detail = "array holding a non-object" if doc else "empty array"
            rejections.append(Rejection(index, "not_an_object", detail))
    rejections.sort(key=lambda r: r.index)
    return events, owners, rejections, lenient
