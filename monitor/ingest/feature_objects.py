"""The features object of each event: found, capped, and searched for names nobody reads.

The features object sits at ``schema.features`` (or is the event itself when that is
empty). A missing or non-object one refuses its event (``missing_features``) and so
does one with more keys than ``schema.max_features_per_event`` (``too_many_features``).
A sample of the objects is compared with the configured feature names, so a producer
that renamed a feature is seen rather than read as all-missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from monitor.config import SchemaConfig
from monitor.ingest.columns import Problems, path_values
from monitor.ingest.values import type_name

UNEXPECTED_SAMPLE = 200
"""Events per batch whose feature names are compared with the configured ones."""
UNEXPECTED_NAMES = 50
"""Distinct unexpected feature names reported per batch at most."""


class FeatureObjects:
    """Finds the features objects of a batch for one schema and the features it reads."""

    def __init__(self, schema: SchemaConfig, read: Sequence[str]) -> None:
        self.schema = schema
        self._path = schema.features.split(".") if schema.features else []
        prefix = f"{schema.features}." if schema.features else ""
        # Segment keys read from the features object are expected too.
        segment_features = [
            p.removeprefix(prefix) for p in schema.segment_by if p.startswith(prefix)
        ]
        self.known = frozenset((*read, *segment_features))
        """Names a features object may hold without being reported as unexpected."""

    def find(self, events: list[dict[str, Any]], problems: Problems) -> list[Any]:
        """Each event's features object; a missing one is ``{}`` and refuses its event
        (``missing_features``), and so does one with too many keys (``too_many_features``)."""
        objects = path_values(events, self._path) if self._path else events
        if set(map(type, objects)) <= {dict}:
            self._count_keys(objects, problems)
            return objects
        path = self.schema.features
        for row, value in enumerate(objects):
            if type(value) is not dict:
                detail = (
                    f"{path} is missing or null"
                    if value is None
                    else f"{path} is {type_name(value)}, not an object"
                )
                problems.setdefault(row, ("missing_features", detail))
                objects[row] = {}
        self._count_keys(objects, problems)
        return objects

    def path_values(
        self, events: list[dict[str, Any]], features: list[Any], path: list[str]
    ) -> list[Any]:
        """A path's column; paths into the features object start from the ones already found
        (a non-object features value became ``{}``, which gives None as the event would)."""
        depth = len(self._path)
        if depth and len(path) > depth and path[:depth] == self._path:
            return path_values(features, path[depth:])
        return path_values(events, path)

    def unexpected(self, features: list[Any]) -> dict[str, int]:
        """Names in a sample of feature objects that no configured feature reads."""
        out: dict[str, int] = {}
        known = self.known
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

    def _count_keys(self, objects: list[dict[str, Any]], problems: Problems) -> None:
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
