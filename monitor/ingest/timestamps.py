"""Event times: epoch numbers in any unit, ISO 8601 strings, or the Kafka record's time.

An epoch number, a string holding one (``"1733400000"``), or an ISO 8601 string (one
without an offset is UTC); a string that is a decimal number is always an epoch, never
a compact ISO date. Epochs are in ``schema.ts_unit``; ``auto`` reads magnitudes below
1e11 as seconds, below 1e14 as milliseconds, below 1e17 as microseconds and the rest
as nanoseconds. A time outside the wall-clock window is refused with a hint when its
magnitude suggests another unit. The contract is the ``monitor.ingest.decode`` docstring.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from operator import attrgetter, itemgetter
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.config import SchemaConfig
from monitor.ingest.columns import Problems, path_values
from monitor.ingest.values import is_number_text, number_text, show, type_name

TS_UNITS = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}
"""Epoch units, as the divisor that makes seconds."""

_UNIT_NAMES = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}
# ts_unit auto: an epoch whose magnitude is below the bound is in the unit.
_AUTO_UNITS = ((1e11, "s"), (1e14, "ms"), (1e17, "us"))
# Whatever the window, a time must be one a datetime can show.
_MIN_TS = datetime(1, 1, 1, tzinfo=UTC).timestamp()
_MAX_TS = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()

_tzinfo = attrgetter("tzinfo")
_fifth = itemgetter(4)
_EPOCH_TYPES = frozenset({float, int})


class EventTimes:
    """Reads the event time of every row of a batch for one schema."""

    def __init__(self, schema: SchemaConfig) -> None:
        self.schema = schema
        self._path = schema.timestamp.split(".")
        self._unit = schema.ts_unit
        self._kafka_time = schema.timestamp_source == "kafka"

    def read(
        self,
        events: list[dict[str, Any]],
        source_index: npt.NDArray[np.int64],
        kafka_ts: Sequence[float | None] | None,
        n_messages: int,
        problems: Problems,
        clock: float,
        *,
        check_wall_clock: bool,
        column: Callable[[], list[Any]] | None = None,
    ) -> npt.NDArray[np.float64]:
        """Epoch seconds of every row (NaN where refused), checked against the window.

        ``column``: gives the timestamp field of every row, where ``events`` are not
        (all) dicts; called only when some row has no Kafka time to use."""
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
            values = path_values(events, self._path) if column is None else column()
            own: Problems = {}
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
        if check_wall_clock and past is not None:
            lo = max(lo, clock - past)
        if check_wall_clock and future is not None:
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

    def _event_times(self, values: list[Any], problems: Problems) -> npt.NDArray[np.float64]:
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
            number = number_text(value)
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
            if number_text(value) is not None:
                return f"{path}: {show(value)} is not a finite number"
            return f"{path}: {show(value)} is neither an epoch number nor an ISO 8601 time"
        if kind is float or kind is int:
            return f"{path}: {show(value)} is not a finite number"
        return f"{path}: {type_name(value)} where a time belongs (epoch number or ISO 8601)"

    def _range_detail(self, raw: Any, seconds: float, lo: float, hi: float) -> str:
        """Why a time is outside the window: what was seen, how it was read, and a unit hint."""
        window = f"outside [{_when(lo)}, {_when(hi)}]"
        if raw is None:
            return f"Kafka timestamp {_when(seconds)} is {window}"
        path = self.schema.timestamp
        number = number_text(raw) if type(raw) is str else raw
        if type(number) is not float and type(number) is not int:
            return f"{path} {show(raw)} ({_when(seconds)}) is {window}"
        unit = _unit_of(float(number), self._unit)
        detail = f"{path} {show(raw)} read as {_UNIT_NAMES[unit]} ({_when(seconds)}) is {window}"
        guess = _unit_of(float(number), "auto")
        if guess != unit:
            detail += f"; it looks like {_UNIT_NAMES[guess]}, set schema.ts_unit to {guess} or auto"
        return detail


def _parse_iso(value: str) -> float | None:
    """Epoch seconds of an ISO 8601 string; a string without an offset is UTC."""
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    except (ValueError, OverflowError):
        return None


def _iso_column(values: list[str]) -> npt.NDArray[np.float64] | None:
    """Epoch seconds of ISO strings, or None when some string needs the row-by-row path."""
    try:
        parsed = list(map(datetime.fromisoformat, values))
        # A string that is a number is an epoch, even one fromisoformat reads as a
        # compact date ("20261118"). An ISO string with "-" after its 4-digit year
        # cannot be one (a number has "-" only first or after an exponent's "e").
        if set(map(_fifth, values)) != {"-"} and any(
            is_number_text(v) for v in values if v[4] != "-"
        ):
            return None
        if None in set(map(_tzinfo, parsed)):
            # Naive times are UTC; ``timestamp()`` would read them as local time.
            parsed = [p if p.tzinfo is not None else p.replace(tzinfo=UTC) for p in parsed]
        return np.array(list(map(datetime.timestamp, parsed)), dtype=np.float64)
    except (ValueError, OverflowError, IndexError):
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


def _when(seconds: float) -> str:
    """Epoch seconds as an ISO 8601 UTC time when a datetime can show them."""
    try:
        return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, ValueError, OSError):
        return f"{seconds:.6g} s from the epoch"
