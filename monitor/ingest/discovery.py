"""Which features a warm-up reference monitors, and as what type, learned from traffic.

A built reference names its features and their types. A warm-up reference learns
them from the warm-up events, over the whole warm-up and by majority, so that no
single early event decides anything:

- a name is monitored when at least ``schema.min_feature_share`` of the warm-up events
  carry it with a value (not null); names listed in ``schema.numeric`` or
  ``schema.categorical`` always are, with the listed type;
- its type is the majority of its values: numbers vote numeric, other strings and
  booleans vote categorical, and a tie is numeric. A string holding a number
  (``"1.5"``) votes for neither, so one such string cannot flip a numeric feature; a
  name whose values are all such strings is categorical (codes like ``"007"``). An
  object or array is an invalid value, not a vote;
- at most ``schema.max_features`` names are monitored (the most frequent); the rest are
  refused as ``over_max_features``, and a name longer than ``schema.max_name_length``
  is refused as ``name_too_long`` without being stored.

The candidate names are counted in a table of bounded size (the Misra-Gries
"frequent items" summary, with its decrements batched): a flood of distinct junk
names evicts junk. A count can be short by at most the total decrement, ``slack``,
which is at most the name occurrences seen divided by ``capacity + 1``. So that a
flood cannot push a real feature out, ``capacity`` is at least ``2 / min_feature_share``
times the most names one event carried (itself capped by
``schema.max_features_per_event``), and at least ``CANDIDATES_PER_FEATURE *
schema.max_features``; the table never holds more than ``2 * capacity`` names. Then
``slack`` stays under half the threshold, and a name is taken when its count plus
``slack`` reaches the threshold: every name carried by ``min_feature_share`` of the
events is monitored, and a name carried by less than half that share never is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from monitor.config import SchemaConfig
from monitor.ingest.values import is_number_text

CANDIDATES_PER_FEATURE = 8
"""Candidate names the counting table keeps for each feature ``schema.max_features`` allows."""
EXAMPLES = 10
"""Names shown, at most, in the log line of the names left unmonitored."""

# A candidate's counters, by index in its list.
_EVENTS, _NUMBERS, _WORDS, _NUMBER_WORDS = 0, 1, 2, 3


@dataclass(frozen=True)
class DiscoveredFeatures:
    """The outcome of a warm-up's discovery: what is monitored, and what was left out."""

    numeric: list[str]
    categorical: list[str]
    events: int
    """Warm-up events whose features were counted."""
    refused: dict[str, int] = field(default_factory=dict)
    """Names refused by a cap, by reason: ``name_too_long`` (occurrences) and
    ``over_max_features`` (distinct names)."""
    left_out: dict[str, str] = field(default_factory=dict)
    """Some names seen but not monitored (at most ``EXAMPLES``), and why: ``rare``,
    ``no_values`` (only objects or arrays) or ``over_max_features``."""
    rare: int = 0
    """Distinct names still counted at the end that fall below ``min_feature_share``."""


class FeatureDiscovery:
    """Counts feature names and their value types over the warm-up, in bounded memory."""

    def __init__(
        self,
        schema: SchemaConfig,
        numeric: Iterable[str] = (),
        categorical: Iterable[str] = (),
        ignored: Iterable[str] = (),
    ) -> None:
        """``numeric``/``categorical``: names monitored with that type whatever is seen;
        ``ignored``: names never taken for features (the event's own fields, when the
        features are the event's top level)."""
        self.min_share = schema.min_feature_share
        self.max_features = schema.max_features
        self.max_name_length = schema.max_name_length
        self.numeric = list(dict.fromkeys(numeric))
        self.categorical = [n for n in dict.fromkeys(categorical) if n not in self.numeric]
        self._fixed = frozenset((*self.numeric, *self.categorical, *ignored))
        self.capacity = CANDIDATES_PER_FEATURE * schema.max_features
        self.widest = 0
        """The most names one counted event carried."""
        self.events = 0
        self.long_names = 0
        self.slack = 0
        """Total decrement so far: any count may be short by at most this much."""
        self._table: dict[str, list[int]] = {}

    def __len__(self) -> int:
        """Candidate names counted now."""
        return len(self._table)

    def observe(self, objects: Iterable[Mapping[str, Any]]) -> int:
        """Count the names of each features object; the number of names refused as too long."""
        table = self._table
        fixed = self._fixed
        longest = self.max_name_length
        long_names = 0
        for obj in objects:
            self.events += 1
            if len(obj) > self.widest:
                self._widen(len(obj))
            limit = 2 * self.capacity
            for name, value in obj.items():
                if value is None or name in fixed:
                    continue
                if len(name) > longest:
                    long_names += 1
                    continue
                entry = table.get(name)
                if entry is None:
                    entry = table[name] = [0, 0, 0, 0]
                entry[_EVENTS] += 1
                kind = type(value)
                if kind is float or kind is int:
                    entry[_NUMBERS] += 1
                elif kind is str:
                    entry[_NUMBER_WORDS if is_number_text(value) else _WORDS] += 1
                elif kind is bool:
                    entry[_WORDS] += 1
                if len(table) > limit:
                    self._prune()
        self.long_names += long_names
        return long_names

    def _widen(self, names: int) -> None:
        """An event with more names than any before: keep slack under half the threshold."""
        self.widest = names
        self.capacity = max(self.capacity, math.ceil(2 * names / self.min_share))

    def _prune(self) -> None:
        """Take the (capacity+1)-th largest count off every name and drop those left at zero.

        At least capacity+1 names lose that much, so the total decrement stays within the
        occurrences seen divided by capacity+1 (the Misra-Gries bound).
        """
        counts = sorted((entry[_EVENTS] for entry in self._table.values()), reverse=True)
        cut = counts[self.capacity]
        self.slack += cut
        for name in [n for n, entry in self._table.items() if entry[_EVENTS] <= cut]:
            del self._table[name]
        for entry in self._table.values():
            entry[_EVENTS] -= cut

    def result(self) -> DiscoveredFeatures:
        """The monitored names, numeric and categorical, and what was left out."""
        threshold = self.min_share * self.events
        frequent = sorted(
            (
                (entry[_EVENTS], name)
                for name, entry in self._table.items()
                if entry[_EVENTS] + self.slack >= threshold and entry[_EVENTS] > 0
            ),
            key=lambda item: (-item[0], item[1]),
        )
        room = self.max_features - len(self.numeric) - len(self.categorical)
        numeric, categorical = list(self.numeric), list(self.categorical)
        left_out: dict[str, str] = {}
        over = 0
        for _, name in frequent:
            votes = self._table[name]
            if votes[_NUMBERS] + votes[_WORDS] + votes[_NUMBER_WORDS] == 0:
                self._note(left_out, name, "no_values")
            elif room <= 0:
                over += 1
                self._note(left_out, name, "over_max_features")
            else:
                room -= 1
                if votes[_NUMBERS] >= votes[_WORDS] and votes[_NUMBERS] > 0:
                    numeric.append(name)
                else:
                    categorical.append(name)
        rare = [
            name for name, entry in self._table.items() if entry[_EVENTS] + self.slack < threshold
        ]
        for name in sorted(rare)[:EXAMPLES]:
            self._note(left_out, name, "rare")
        refused = {"name_too_long": self.long_names, "over_max_features": over}
        return DiscoveredFeatures(
            sorted(numeric),
            sorted(categorical),
            self.events,
            {reason: n for reason, n in refused.items() if n},
            left_out,
            len(rare),
        )

    @staticmethod
    def _note(left_out: dict[str, str], name: str, why: str) -> None:
        if len(left_out) < EXAMPLES:
            left_out[name] = why
