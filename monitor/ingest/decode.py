"""Bytes to columns: one parse of a poll batch (msgspec, orjson), then numpy per column.

A message is one JSON object, or a JSON array of objects. Anything that cannot be
decoded or validated is rejected with a reason and kept (with its index in the
batch) so the caller can count it and dead-letter the original bytes. A bad
message never takes its batch-mates down with it; an array message is
all-or-nothing.

The work is columnar. All messages are parsed first: each by msgspec into a struct
made for the schema where every value it holds is one driftd reads as it is, any other
by orjson into dicts (``monitor.ingest.typed_rows``: the structs hold exactly the values
orjson would give, so the results are the same either way, only cheaper). Then each
field is pulled out of every event with one ``map`` pass and converted with one numpy
call. Type checks are a ``set(map(type, column))`` per column; only a
column that holds a wrong type is walked row by row. A row's reason is the first
failing check in this order: model, id, timestamp, features object (missing, or
more keys than ``schema.max_features_per_event``: ``too_many_features``), numeric
features (in order), prediction, label, categorical features (in order), vector
features (in order), segment paths (in order).

Limits. A message over ``schema.max_message_bytes`` is refused unparsed; the decoder
reads only the configured feature names, so a huge features object costs its parse and
nothing more (and is refused past the per-event cap).

Parsing. What is accepted is what orjson accepts: msgspec reads only messages that
orjson would read to the same values, and leaves the rest to it. A message orjson
refuses that holds the text ``NaN`` or ``Infinity`` is parsed again, alone, by the
stdlib ``json`` module, which also accepts the ``NaN``, ``Infinity`` and ``-Infinity``
literals Python's ``json.dumps`` writes for float NaN and infinities, and nothing else
orjson refuses (numbers beyond float64, lone surrogates and invalid UTF-8 stay
``invalid_json``). Its nesting limit is the interpreter's recursion limit (some 900
levels), below orjson's 1024.

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

Vectors. ``Decoder(vector_features={name: dim})`` also reads each named feature as an
array of ``dim`` numbers, into ``DecodedBatch.vectors[name]`` (``(events, dim)``, NaN
rows where there is none); a vector that is no array of numbers (``wrong_type``), has
another length (``wrong_length``) or holds a non-finite number (``not_finite``) becomes
missing and is counted like a bad value (``monitor.ingest.vectors``).

Model. With ``Decoder(model=...)`` an event whose model is present (not null) and
names another model is refused as ``other_model``; a null or absent model is taken
to be the configured one. Without it, a null or absent model is empty text.

Ids. A string or an integer (as text) of at most ``MAX_ID_LENGTH`` characters. With
``Decoder(require_id=False)`` (labels off: nothing joins by id) a missing or bad id
is the empty string and the event is kept.

Segments. The segment key joins the segment paths' values as text with ``,``; a
null or absent value is ``MISSING_SEGMENT`` (``monitor.ingest.segment_keys``).

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

Where it lives. This module holds the ``Decoder`` (the order of the checks, and what
becomes of a refused event) and what it hands on; its parts, by role, are modules of
``monitor.ingest``: ``typed_rows`` (bytes to structs, the fast path), ``json_parse``
(bytes to events, the exact path with its lenient fallback),
``columns`` (one field of every event as a typed column, bad values counted),
``timestamps`` (event times and the window), ``feature_objects`` (the features object,
its key cap, unexpected names), ``segment_keys`` and ``values`` (one value read as a
number or shown in a refusal).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.config import SchemaConfig
from monitor.ingest.columns import (
    InvalidValues,
    Problems,
    as_text,
    categories,
    id_texts,
    numbers,
    path_values,
    values_of,
)
from monitor.ingest.feature_objects import FeatureObjects
from monitor.ingest.segment_keys import segment_keys
from monitor.ingest.timestamps import EventTimes
from monitor.ingest.typed_rows import TypedReader
from monitor.ingest.values import show
from monitor.ingest.vectors import vector_rows

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
"""The default of ``schema.max_message_bytes``."""
MAX_ID_LENGTH = 256

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

INVALID_REASONS = ("wrong_type", "not_a_number", "not_finite", "wrong_length")
"""Why a value of an accepted event became missing (the reasons in ``DecodedBatch.invalid``)."""


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
    ``schema.max_name_length`` characters (both in ``monitor.ingest.feature_objects``).
    Empty with ``Decoder(report_unexpected=False)``."""
    feature_objects: list[dict[str, Any]] | None = None
    """The features object of each accepted event, with ``Decoder(keep_feature_objects=True)``
    (what warm-up discovery reads); None otherwise."""
    vectors: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)
    """Per vector feature (``Decoder(vector_features=...)``), its ``(events, dim)`` rows:
    NaN where the event has none or its vector was refused (counted in ``invalid``)."""

    def __len__(self) -> int:
        return len(self.ids)


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
        vector_features: Mapping[str, int] | None = None,
    ) -> None:
        self.schema = schema
        self.vector_features = dict(vector_features or {})
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
        self._prediction = schema.prediction.split(".")
        self._label = schema.label.split(".")
        self._segment_paths = [p.split(".") for p in schema.segment_by]
        self._strict = schema.strict
        self._times = EventTimes(schema)
        self._now = now
        self._feature_objects = FeatureObjects(
            schema, (*self.numeric_features, *self.categorical_features, *self.vector_features)
        )
        # A warm-up hands the features objects on, so it reads every event as a dict.
        self._reader = TypedReader(
            schema,
            self.numeric_features,
            self.categorical_features,
            self._feature_objects.known,
            enabled=not keep_feature_objects,
            report_unexpected=report_unexpected,
            vectors=self.vector_features,
        )
        features = schema.features.split(".") if schema.features else []
        reader = self._reader
        self._of_numeric = [reader.getter([*features, n]) for n in self.numeric_features]
        self._of_categorical = [reader.getter([*features, n]) for n in self.categorical_features]
        self._of_vector = [reader.getter([*features, n]) for n in self.vector_features]
        self._numeric_row = (
            reader.feature_getter(self.numeric_features)
            if reader.enabled and len(self.numeric_features) > 1
            else None
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
        rows = self._reader.read(messages, self.schema.max_message_bytes)
        rejections = [Rejection(*refusal) for refusal in rows.refusals]
        n = rows.n
        source_index = (
            np.arange(n, dtype=np.int64)
            if isinstance(rows.owners, range)
            else np.array(rows.owners, dtype=np.int64)
        )
        problems: Problems = {}
        invalid: InvalidValues = []
        strict = self._strict
        lenient = rows.lenient
        reader = self._reader

        def column(path: list[str]) -> list[Any]:
            return rows.gather(reader.getter(path), path_values(rows.dicts, path))

        models = self._models(column(self._model), problems)
        ids = id_texts(
            column(self._id),
            self.schema.id,
            problems,
            required=self.require_id,
            longest=MAX_ID_LENGTH,
        )
        ts = self._times.read(
            rows.dicts if rows.typed is None else rows.typed,
            source_index,
            kafka_ts,
            len(messages),
            problems,
            clock,
            check_wall_clock=self.check_wall_clock,
            column=None if rows.typed is None else lambda: column(self._ts),
        )
        # Only rows read as dicts can lack a features object or hold too many keys.
        found: Problems = {}
        dict_features = self._feature_objects.find(rows.dicts, found)
        for row, problem in found.items():
            problems.setdefault(rows.dict_rows[row], problem)
        features = rows.gather(reader.features_getter, dict_features)
        unexpected = self._feature_objects.unexpected(features) if self.report_unexpected else {}
        if self._numeric_row is not None and rows.typed is not None and not rows.dicts:
            # Every row is a struct, every numeric value an int, a float or None (NaN): one
            # pass, with no list of rows in between.
            width = len(self.numeric_features)
            flat = chain.from_iterable(map(self._numeric_row, features))
            numeric = np.fromiter(flat, dtype=np.float64, count=n * width).reshape(n, width)
        else:
            numeric = np.empty((n, len(self.numeric_features)), dtype=np.float64)
            for j, name in enumerate(self.numeric_features):
                values = rows.gather(self._of_numeric[j], values_of(dict_features, name))
                numeric[:, j] = numbers(
                    values, name, problems, invalid, strict=strict, lenient=lenient
                )
        schema = self.schema
        prediction = numbers(
            column(self._prediction),
            schema.prediction,
            problems,
            invalid,
            strict=strict,
            lenient=lenient,
        )
        label = numbers(
            column(self._label),
            schema.label,
            problems,
            invalid,
            strict=strict,
            lenient=lenient,
        )
        categorical = {
            name: categories(
                rows.gather(getter, values_of(dict_features, name)),
                name,
                problems,
                invalid,
                strict=strict,
            )
            for name, getter in zip(self.categorical_features, self._of_categorical, strict=True)
        }
        # A struct's vector is an array of numbers of the right length, or None.
        vectors = {
            name: vector_rows(
                rows.gather(getter, values_of(dict_features, name)),
                name,
                dim,
                problems,
                invalid,
                strict=strict,
                checked=rows.typed is not None and not rows.dicts,
            )
            for (name, dim), getter in zip(
                self.vector_features.items(), self._of_vector, strict=True
            )
        }
        keys = segment_keys(
            [
                (
                    ".".join(path),
                    rows.gather(
                        reader.getter(path),
                        self._feature_objects.path_values(rows.dicts, dict_features, path),
                    ),
                )
                for path in self._segment_paths
            ],
            n,
            problems,
        )

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
            vectors = {k: v[keep_rows] for k, v in vectors.items()}
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
            vectors=vectors,
        )

    # --- per-column checks, in the documented order ----------------------------------

    def _models(self, values: list[Any], problems: Problems) -> list[str]:
        expected = self.model
        models = as_text(values, self.schema.model, problems, expected or "")
        if expected is not None and set(models) != {expected}:
            for row, text in enumerate(models):
                if text != expected:
                    detail = (
                        f"{self.schema.model} is {show(text)}; this driftd monitors {expected!r}"
                    )
                    problems.setdefault(row, ("other_model", detail))
        return models
