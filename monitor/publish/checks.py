"""What driftd would refuse, caught before an event is buffered.

The publisher packs events into JSON arrays, and driftd accepts or refuses an array
message as a whole, so one event driftd refuses would take its batch-mates with it. The
fields the caller hands over are checked here against the contract (docs/events.md) and
a bad event is dropped alone, as ``invalid``. The checks cost nothing for the defaults (a
generated id, the current time) and microseconds for given values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

MAX_ID_LENGTH = 256
"""driftd refuses longer ids (``bad_id``)."""


def id_problem(event_id: Any) -> str | None:
    """Why driftd would refuse ``event_id``, or None: a string of at most 256 characters,
    or an integer."""
    if isinstance(event_id, str):
        if len(event_id) > MAX_ID_LENGTH:
            return f"id is {len(event_id)} characters long, over {MAX_ID_LENGTH}"
        return None
    if isinstance(event_id, int) and not isinstance(event_id, bool):
        return None
    return f"id must be a string or an integer, got {type(event_id).__name__}"


def ts_problem(ts: Any) -> str | None:
    """Why driftd would refuse the event time ``ts``, or None: a finite epoch number, a
    ``datetime``, or a string holding an epoch or an ISO 8601 time."""
    if isinstance(ts, datetime):
        return None
    if isinstance(ts, int | float) and not isinstance(ts, bool):
        return None if math.isfinite(ts) else f"ts must be finite, got {ts}"
    if isinstance(ts, str):
        try:
            return None if math.isfinite(float(ts)) else f"ts must be finite, got {ts!r}"
        except ValueError:
            pass
        try:
            datetime.fromisoformat(ts)
        except ValueError:
            return f"ts {ts[:64]!r} is neither an epoch nor an ISO 8601 time"
        return None
    return f"ts must be an epoch, an ISO 8601 string or a datetime, got {type(ts).__name__}"


def features_problem(features: Any) -> str | None:
    """Why ``features`` cannot be the features object, or None: it must be a mapping."""
    if isinstance(features, Mapping):
        return None
    return f"features must be a mapping, got {type(features).__name__}"


def label_problem(label: Any) -> str | None:
    """Why driftd would refuse ``label`` whatever the task, or None: a finite number or a
    boolean. (Whether it is 0 or 1 depends on ``labels.task``, which only driftd knows.)"""
    if isinstance(label, bool):
        return None
    if isinstance(label, int | float):
        return None if math.isfinite(label) else f"label must be finite, got {label}"
    return f"label must be a number, got {type(label).__name__}"


def key_problem(key: object) -> str | None:
    """Why ``key`` cannot be a Kafka key, or None: it must be text or bytes."""
    if isinstance(key, str | bytes):
        return None
    return f"key must be text or bytes, got {type(key).__name__}"
