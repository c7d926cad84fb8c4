"""The per-event decoder driftd started with, kept as the oracle for the columnar one.

Row by row and obviously correct: every event is validated in one function, in the
documented check order. The fast decoder in ``monitor.decode`` must accept the same
rows and refuse the same messages for the same reasons. One change from the original:
an ISO time without an offset is UTC (the original read it as local time).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

from monitor.config import SchemaConfig
from monitor.decode import MAX_ID_LENGTH, MAX_MESSAGE_BYTES, DecodedBatch, Rejection


def _path(obj: Any, parts: Sequence[str]) -> Any:
    for part in parts:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def _timestamp(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    return None


def _number(value: Any) -> float:
    """A float for numeric JSON values; NaN for null/missing; raise on anything else."""
    if value is None:
        return math.nan
    if isinstance(value, bool):
        raise TypeError("boolean where a number belongs")
    if isinstance(value, int | float):
        return float(value)
    raise TypeError(f"{type(value).__name__} where a number belongs")


class OracleDecoder:
    """Decodes JSON messages one event at a time."""

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
            if len(message) > MAX_MESSAGE_BYTES:
                rejections.append(Rejection(index, "too_large", f"{len(message)} bytes"))
                continue
            try:
                doc = orjson.loads(message)
            except orjson.JSONDecodeError as exc:
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

    def decode(self, messages: Sequence[bytes | None], now: float | None = None) -> DecodedBatch:
        """Decode a poll batch; every refused message is listed in ``rejections``."""
        events, owners, rejections = self._events(messages)
        clock = now if now is not None else (self._now if self._now is not None else time.time())
        lo_ts = clock - self.schema.max_past_seconds
        hi_ts = clock + self.schema.max_future_seconds

        ids: list[str] = []
        ts: list[float] = []
        models: list[str] = []
        keys: list[str] = []
        numeric_rows: list[list[float]] = []
        cat_cols: dict[str, list[str | None]] = {c: [] for c in self.categorical_features}
        preds: list[float] = []
        labels: list[float] = []
        kept: list[int] = []
        rejected: set[int] = set()
        for event, owner in zip(events, owners, strict=True):
            if owner in rejected:
                continue
            problem = self._row(event, lo_ts, hi_ts)
            if isinstance(problem, Rejection):
                rejections.append(Rejection(owner, problem.reason, problem.detail))
                rejected.add(owner)
                continue
            event_id, event_ts, model, key, row, cats, pred, label = problem
            ids.append(event_id)
            ts.append(event_ts)
            models.append(model)
            keys.append(key)
            numeric_rows.append(row)
            for name, value in zip(self.categorical_features, cats, strict=True):
                cat_cols[name].append(value)
            preds.append(pred)
            labels.append(label)
            kept.append(owner)

        # An array message is all-or-nothing: drop rows of messages refused later on.
        if rejected:
            keep = [i for i, owner in enumerate(kept) if owner not in rejected]
            ids = [ids[i] for i in keep]
            ts = [ts[i] for i in keep]
            models = [models[i] for i in keep]
            keys = [keys[i] for i in keep]
            numeric_rows = [numeric_rows[i] for i in keep]
            cat_cols = {k: [v[i] for i in keep] for k, v in cat_cols.items()}
            preds = [preds[i] for i in keep]
            labels = [labels[i] for i in keep]
            kept = [kept[i] for i in keep]
        n_numeric = len(self.numeric_features)
        numeric = (
            np.array(numeric_rows, dtype=np.float64).reshape(len(ids), n_numeric)
            if ids
            else np.zeros((0, n_numeric))
        )
        rejections.sort(key=lambda r: r.index)
        return DecodedBatch(
            ids=ids,
            ts=np.array(ts, dtype=np.float64),
            models=models,
            segment_keys=keys,
            numeric=numeric,
            categorical=cat_cols,
            prediction=np.array(preds, dtype=np.float64),
            label=np.array(labels, dtype=np.float64),
            source_index=np.array(kept, dtype=np.int64),
            rejections=rejections,
        )

    def _row(
        self, event: dict[str, Any], lo_ts: float, hi_ts: float
    ) -> Rejection | tuple[str, float, str, str, list[float], list[str | None], float, float]:
        raw_id = _path(event, self._id)
        if not isinstance(raw_id, str | int) or isinstance(raw_id, bool):
            return Rejection(-1, "missing_id", f"{self.schema.id} is missing or not a string")
        event_id = str(raw_id)
        if len(event_id) > MAX_ID_LENGTH:
            return Rejection(-1, "bad_id", f"id longer than {MAX_ID_LENGTH} characters")
        event_ts = _timestamp(_path(event, self._ts))
        if event_ts is None:
            return Rejection(-1, "bad_timestamp", f"{self.schema.timestamp} is missing or invalid")
        if not lo_ts <= event_ts <= hi_ts:
            return Rejection(-1, "timestamp_out_of_range", f"{event_ts:.0f} outside the window")
        model = _path(event, self._model)
        features = _path(event, self._features) if self._features else event
        if not isinstance(features, dict):
            return Rejection(-1, "missing_features", f"{self.schema.features} is not an object")
        try:
            row = [_number(features.get(name)) for name in self.numeric_features]
            pred = _number(_path(event, self._prediction))
            label = _number(_path(event, self._label))
        except TypeError as exc:
            return Rejection(-1, "wrong_type", str(exc))
        except OverflowError:
            return Rejection(-1, "wrong_type", "number out of range")
        cats: list[str | None] = []
        for name in self.categorical_features:
            value = features.get(name)
            if value is None or isinstance(value, str | int | bool):
                cats.append(None if value is None else str(value))
            else:
                return Rejection(-1, "wrong_type", f"{name} is {type(value).__name__}")
        key_parts = []
        for path in self._segment_paths:
            value = _path(event, path)
            key_parts.append("" if value is None else str(value))
        return (
            event_id,
            event_ts,
            "" if model is None else str(model),
            ",".join(key_parts),
            row,
            cats,
            pred,
            label,
        )
