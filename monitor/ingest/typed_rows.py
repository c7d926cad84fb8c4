"""Bytes to rows the fast way: msgspec reads each message into a struct made for the schema.

The decoder reads a few paths of each event (id, timestamp, model, prediction, label,
segment paths) and the configured features. From those paths this module builds msgspec
struct types whose every field is typed, and whose objects allow no other keys
(``forbid_unknown_fields``). A message that such a struct reads holds nothing but the
fields driftd uses, each of a type the columns take as they are; msgspec hands back the
very values orjson would (the same ints, the same correctly rounded floats, the same
strings) without building a dict per event, at about twice orjson's speed.

Every other message goes to the exact path (``monitor.ingest.json_parse``, orjson and
the lenient fallback), which decides: malformed, non-UTF-8, too deep, a number beyond
float64, a NaN literal, a boolean or a string where a number belongs, a missing features
object, a key the structs do not know, an array of events. msgspec only ever reads the
messages whose every byte it validated; what it refuses, it does not judge. So the
columns, the refusals and the counts of bad values are the exact path's, and the typed
path only makes the common message cheaper.

What the typed path takes at each leaf (anything else goes to the exact path): numbers
(integers within int64, floats) or null for a numeric feature, the prediction and the
label; text or an integer or null for a categorical feature, the id and a segment path;
text or null for the model; a number, text or null for the timestamp; for a vector
feature, an array of exactly its length of numbers (integers within int64, floats), or
null. A key that two
roles read takes what both take. Intermediate objects (the features object too) must be
present. The typed path is off (every message takes the exact path) when the paths
conflict (a key both a value and an object, or a key JSON can only write with escapes),
when the features object would hold a key that is not a feature or segment name while
the decoder reports unexpected names (a struct cannot tell which it saw), or when it
would hold more keys than ``schema.max_features_per_event``; and for a warm-up, which
hands the features objects on as dicts.

Keys driftd does not read. Events often carry more than the schema's paths (a model
version nobody segments by, a trace id). The reader learns them from the events the
exact path read: a key that held a scalar there becomes a field of the structs that takes
any scalar and nothing else (text, an int64, a float within range, a boolean, null), so
msgspec still validates every byte of a message it reads (it is lax only about content it
skips, which the structs never let it skip). At most ``LEARN_KEYS`` keys, looked for in
the first ``LEARN_FROM`` exactly read events of a batch. Keys of the features object are
not learned when the decoder reports unexpected feature names (a struct cannot).

When most messages need the exact path anyway, trying msgspec first only costs; so once
more than ``GIVE_UP_AFTER`` messages of a batch, and more than half of those tried,
needed the exact path, the rest of the batch goes there untried.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Annotated, Any, Union

import msgspec

from monitor.config import SchemaConfig
from monitor.ingest.json_parse import Refusal, parse_messages

GIVE_UP_AFTER = 16
"""Messages of a batch that may need the exact path before msgspec stops being tried."""

LEARN_KEYS = 64
"""Keys nobody reads that the structs take in, at most."""
LEARN_FROM = 32
"""Events of a batch looked at for such keys."""

_INT64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
_TYPES: dict[str, Any] = {"int": _INT64, "float": float, "str": str, "bool": bool}
_SCALARS = (str, int, float, bool, type(None))
_VECTOR = "vector:"
_UNNAMEABLE = re.compile(r'[\x00-\x1f"\\]')
SCALAR = frozenset({"str", "int", "float", "bool"})
NUMBER = frozenset({"int", "float"})
TEXT_OR_INT = frozenset({"str", "int"})
TEXT = frozenset({"str"})
TIME = frozenset({"int", "float", "str"})

_Tree = dict[str, Any]
"""A key -> a frozenset of leaf types, or a nested tree (an object)."""


@dataclass
class EventRows:
    """The events of a poll batch: rows read by msgspec (structs) and rows read as dicts.

    ``typed`` has one struct per row (a blank one where the row is a dict), or is None
    when no row was read by msgspec; ``dict_rows`` are the rows read as dicts and
    ``dicts`` their events, in row order.
    """

    n: int
    owners: list[int] | range
    refusals: list[Refusal]
    lenient: bool
    typed: list[Any] | None
    dict_rows: list[int] | range
    dicts: list[dict[str, Any]]

    def gather(self, getter: Callable[[Any], Any], dict_values: list[Any]) -> list[Any]:
        """A column: ``getter`` of each struct, with ``dict_values`` (one per dict row) put in."""
        if self.typed is None:
            return dict_values
        values = list(map(getter, self.typed))
        for row, value in zip(self.dict_rows, dict_values, strict=True):
            values[row] = value
        return values


class TypedReader:
    """Reads poll batches with msgspec structs built for one schema and feature list."""

    def __init__(
        self,
        schema: SchemaConfig,
        numeric: Sequence[str],
        categorical: Sequence[str],
        known_features: frozenset[str],
        *,
        enabled: bool = True,
        report_unexpected: bool = True,
        vectors: Mapping[str, int] | None = None,
    ) -> None:
        self.schema = schema
        self._decode: Callable[[bytes], Any] | None = None
        self._attrs: dict[str, Any] = {}
        self.features_getter: Callable[[Any], Any] = _identity
        self._learned = 0
        if not enabled:
            return
        features = schema.features.split(".") if schema.features else []
        # Unread keys of the features object would be unexpected names, which a struct
        # cannot report; where nobody asks for them, it may learn such keys too.
        self._learn_in_features = not report_unexpected
        leaves: list[tuple[list[str], frozenset[str]]] = [
            (schema.id.split("."), TEXT_OR_INT),
            (schema.timestamp.split("."), TIME),
            (schema.model.split("."), TEXT),
            (schema.prediction.split("."), NUMBER),
            (schema.label.split("."), NUMBER),
            *((p.split("."), TEXT_OR_INT) for p in schema.segment_by),
            *(([*features, name], NUMBER) for name in numeric),
            *(([*features, name], TEXT_OR_INT) for name in categorical),
            *(
                ([*features, name], frozenset({_vector(dim)}))
                for name, dim in (vectors or {}).items()
            ),
        ]
        tree: _Tree = {}
        if not all(_add(tree, path, types) for path, types in leaves):
            return  # a key both a value and an object: no struct reads such events
        holder = _subtree(tree, features)
        if holder is None:
            return
        if len(holder) > schema.max_features_per_event:
            return
        if report_unexpected and not set(holder) <= known_features:
            return
        self._tree, self._holder = tree, holder
        self._build()
        self.features_getter = self.getter(features)

    def _build(self) -> None:
        """(Re)make the structs from the tree; a learned key comes after the others in
        its object, so the attribute names of the keys read never change."""
        self._root, self._blank = _struct(self._tree, "Event")
        self._decode = msgspec.json.Decoder(self._root).decode
        self._attrs = _attribute_names(self._tree)

    def _learn(self, events: list[dict[str, Any]]) -> None:
        """Take keys nobody reads, holding a scalar, into the structs (``LEARN_KEYS`` at most)."""
        learned = False
        for event in events[:LEARN_FROM]:
            stack: list[tuple[_Tree, Any]] = [(self._tree, event)]
            while stack:
                node, obj = stack.pop()
                if type(obj) is not dict:
                    continue
                in_features = node is self._holder
                if in_features and not self._learn_in_features:
                    continue
                for key, value in obj.items():
                    held = node.get(key)
                    if isinstance(held, dict):
                        stack.append((held, value))
                    elif (
                        held is None
                        and _nameable(key)
                        and type(value) in _SCALARS
                        and self._learned < LEARN_KEYS
                        and not (in_features and len(node) >= self.schema.max_features_per_event)
                    ):
                        node[key] = SCALAR
                        self._learned += 1
                        learned = True
        if learned:
            self._build()

    @property
    def enabled(self) -> bool:
        """Whether the schema's events can be read by msgspec at all."""
        return self._decode is not None

    def getter(self, path: Sequence[str]) -> Callable[[Any], Any]:
        """The value at ``path`` of a struct (the struct itself for the empty path); with
        the typed path off, never called on anything, so any function does."""
        if not path or self._decode is None:
            return _identity
        node: Any = self._attrs
        names = []
        for key in path:
            name, node = node[key]
            names.append(name)
        return attrgetter(".".join(names))

    def feature_getter(self, names: Sequence[str]) -> Callable[[Any], Any]:
        """The values of features ``names`` of a features struct (a tuple for several)."""
        holder: Any = self._attrs
        for key in self.schema.features.split(".") if self.schema.features else []:
            holder = holder[key][1]
        return attrgetter(*(holder[name][0] for name in names))

    def read(self, messages: Sequence[bytes | None], limit: int) -> EventRows:
        """Every message as a struct where msgspec can read it, else as the exact path reads it."""
        decode = self._decode
        if decode is None:
            return _exact(messages, limit)
        try:
            if max(map(len, messages)) <= limit:  # type: ignore[arg-type]
                typed = list(map(decode, messages))  # type: ignore[arg-type]
                n = len(typed)
                return EventRows(n, range(n), [], False, typed, [], [])
        except Exception:  # whatever msgspec refuses, the exact path judges
            pass
        typed = []
        exact: list[int] = []
        blank = self._blank
        for index, message in enumerate(messages):
            if len(exact) > GIVE_UP_AFTER and 2 * len(exact) > index:
                exact.extend(range(index, len(messages)))
                typed.extend([blank] * (len(messages) - index))
                break
            try:
                if not message or len(message) > limit:
                    raise ValueError(index)
                typed.append(decode(message))
            except Exception:  # the exact path judges
                typed.append(blank)
                exact.append(index)
        parsed = parse_messages([messages[i] for i in exact], limit)
        rows = _merge(typed, exact, parsed, blank)
        if self._learned < LEARN_KEYS and parsed.events:
            self._learn(parsed.events)
        return rows


def _exact(messages: Sequence[bytes | None], limit: int) -> EventRows:
    parsed = parse_messages(messages, limit)
    n = len(parsed.events)
    return EventRows(
        n, parsed.owners, parsed.refusals, parsed.lenient, None, range(n), parsed.events
    )


def _merge(typed: list[Any], exact: list[int], parsed: Any, blank: Any) -> EventRows:
    """Rows in message order from the structs and the exactly parsed messages ``exact``."""
    refusals = [(exact[i], reason, detail) for i, reason, detail in parsed.refusals]
    if not refusals and isinstance(parsed.owners, range):  # one event per exact message
        n = len(typed)
        return EventRows(n, range(n), refusals, parsed.lenient, typed, exact, parsed.events)
    refused = {index for index, _, _ in refusals}
    events_of: dict[int, list[dict[str, Any]]] = {}
    for owner, event in zip(parsed.owners, parsed.events, strict=True):
        events_of.setdefault(exact[owner], []).append(event)
    exact_set = set(exact)
    owners: list[int] = []
    rows: list[Any] = []
    dict_rows: list[int] = []
    for index, struct in enumerate(typed):
        if index not in exact_set:
            owners.append(index)
            rows.append(struct)
        elif index not in refused:
            for _ in events_of[index]:
                dict_rows.append(len(rows))
                owners.append(index)
                rows.append(blank)
    dicts = [event for index in exact if index in events_of for event in events_of[index]]
    return EventRows(len(rows), owners, refusals, parsed.lenient, rows, dict_rows, dicts)


def _identity(value: Any) -> Any:
    return value


def _nameable(key: Any) -> bool:
    """Whether msgspec can match a key: one written without escapes in JSON."""
    return type(key) is str and not _UNNAMEABLE.search(key)


def _add(tree: _Tree, path: list[str], types: frozenset[str]) -> bool:
    """Put a leaf in the tree (a key read by two roles takes what both take); False
    where a key would be both a value and an object, or cannot be a struct's field."""
    if not all(map(_nameable, path)):
        return False
    node = _subtree(tree, path[:-1])
    leaf = path[-1]
    held = None if node is None else node.get(leaf)
    if node is None or isinstance(held, dict):
        return False
    node[leaf] = types if held is None else held & types
    return True


def _subtree(tree: _Tree, path: list[str]) -> _Tree | None:
    """The object at ``path``, made where missing; None where a value is in the way."""
    node = tree
    for key in path:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            return None
        node = child
    return node


def _struct(tree: _Tree, name: str) -> tuple[type, Any]:
    """A struct type for an object of the tree, and a blank instance of it."""
    fields: list[tuple[str, Any, Any]] = []
    blanks: dict[str, Any] = {}
    for i, (key, node) in enumerate(tree.items()):
        attr = f"k{i}"
        if isinstance(node, dict):
            child, blanks[attr] = _struct(node, f"{name}_{i}")
            fields.append((attr, child, msgspec.field(name=key)))
        else:
            kinds = tuple(_type_of(t) for t in sorted(node))
            fields.append((attr, Union[(*kinds, None)], msgspec.field(default=None, name=key)))
    # gc=False: a struct holds scalars and structs only, so it can be in no cycle, and a
    # poll batch of tracked structs would set off collections (~1 us per event).
    struct = msgspec.defstruct(name, fields, kw_only=True, forbid_unknown_fields=True, gc=False)
    return struct, struct(**blanks)


def _vector(dim: int) -> str:
    """The leaf type name of a vector of ``dim`` numbers."""
    return f"{_VECTOR}{dim}"


def _type_of(name: str) -> Any:
    """The msgspec type of a leaf type name."""
    if name.startswith(_VECTOR):
        dim = int(name.removeprefix(_VECTOR))
        return Annotated[list[_INT64 | float], msgspec.Meta(min_length=dim, max_length=dim)]
    return _TYPES[name]


def _attribute_names(tree: _Tree) -> dict[str, Any]:
    """Key -> (attribute name, nested names of an object) the way ``_struct`` names them."""
    return {
        key: (f"k{i}", _attribute_names(node) if isinstance(node, dict) else None)
        for i, (key, node) in enumerate(tree.items())
    }
