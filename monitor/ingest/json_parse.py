"""Message bytes to parsed JSON events: orjson over the whole batch, a lenient fallback.

orjson parses the batch in one pass. Only when some message fails does it go message
by message, so one bad message costs its batch-mates nothing. A message orjson refuses
that holds the text ``NaN`` or ``Infinity`` is parsed again, alone, by the stdlib
``json`` module, which also accepts the ``NaN``, ``Infinity`` and ``-Infinity``
literals Python's ``json.dumps`` writes, and nothing else orjson refuses (numbers
beyond float64, lone surrogates and invalid UTF-8 stay ``invalid_json``). A message
that is an array of objects gives one event per object; any other array, or a JSON
value that is not an object, is refused whole (``not_an_object``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from operator import itemgetter
from typing import Any, NamedTuple

import orjson

from monitor.ingest.values import type_name

# Where a \u escape of a UTF-16 surrogate may sit (the lenient parser lets lone ones through).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")

Refusal = tuple[int, str, str]
"""A refused message: (its index in the batch, reason, detail)."""


class ParsedMessages(NamedTuple):
    """A parsed poll batch."""

    events: list[dict[str, Any]]
    owners: list[int] | range
    """The message index of each event (a range when every message is one event)."""
    refusals: list[Refusal]
    """The messages refused, in index order."""
    lenient: bool
    """Whether some message needed the lenient parser (its numbers may be NaN or infinite)."""


def parse_messages(messages: Sequence[bytes | None], limit: int) -> ParsedMessages:
    """Parse every message no larger than ``limit`` bytes; refuse the empty, the too
    large, the unparsable and the ones that hold no object."""
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
    refusals: list[Refusal] = []
    if docs is None:
        docs = []
        for index, message in enumerate(messages):
            if not message:
                refusals.append((index, "empty", "empty message"))
                docs.append(None)
            elif len(message) > limit:
                detail = (
                    f"{len(message)} bytes, over the limit of {limit} (schema.max_message_bytes)"
                )
                refusals.append((index, "too_large", detail))
                docs.append(None)
            else:
                try:
                    docs.append(orjson.loads(message))
                except orjson.JSONDecodeError as exc:
                    doc, refusal = _lenient_loads(message, exc)
                    if refusal is not None:
                        refusals.append((index, "invalid_json", refusal))
                    else:
                        lenient = True
                    docs.append(doc)
    if not refusals and set(map(type, docs)) <= {dict}:
        return ParsedMessages(docs, range(len(docs)), refusals, lenient)

    refused = {index for index, _, _ in refusals}
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
            detail = f"JSON {type_name(doc)}, not an object"
            if type(doc) is list:
                detail = "array holding a non-object" if doc else "empty array"
            refusals.append((index, "not_an_object", detail))
    refusals.sort(key=itemgetter(0))
    return ParsedMessages(events, owners, refusals, lenient)


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
