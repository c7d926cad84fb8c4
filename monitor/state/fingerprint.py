"""Fingerprints of the settings that shape saved state, stable across upgrades.

A fingerprint hashes the keys a user set (values other than their defaults) of the
sections that shape the state. A release that adds a key with a default therefore
keeps every existing checkpoint loadable; changing a shaping key a user set still
refuses one made under the old value.

The first releases hashed every key of those sections, defaults included. That
legacy fingerprint is computed over the keys those releases had
(:data:`LEGACY_KEYS`), and a checkpoint carrying it is accepted as well, so an
upgrade from them restores instead of stopping the daemon.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Final

from pydantic import BaseModel

from monitor.config import Settings

LEGACY_KEYS: Final[Mapping[str, frozenset[str]]] = {
    "schema": frozenset(
        {
            "categorical", "features", "id", "label", "max_future_seconds",
            "max_past_seconds", "model", "prediction", "rename", "segment_by", "strict",
            "timestamp", "timestamp_source", "ts_unit",
        }
    ),
    "segments": frozenset({"max_segments"}),
    "windows": frozenset({"duration_seconds", "min_samples", "mode", "panes", "size_events"}),
    "reference": frozenset({"path", "warmup_events"}),
    "labels": frozenset(
        {
            "adwin_clock", "adwin_delta", "adwin_grace_period", "adwin_hold_windows",
            "adwin_max_buckets", "adwin_min_window_length", "decision_threshold", "enabled",
            "group_by", "id", "label", "max_groups", "max_pending", "min_group_size",
            "regression_error", "task", "timestamp", "ttl_seconds", "window_pairs",
        }
    ),
}  # fmt: skip
"""The keys each shaping section had in the releases with the legacy fingerprint."""


def _digest(shaping: Mapping[str, object]) -> str:
    raw = json.dumps(shaping, sort_keys=True).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def _sections(settings: Settings, names: tuple[str, ...]) -> dict[str, BaseModel]:
    return {name: getattr(settings, "schema_" if name == "schema" else name) for name in names}


def fingerprints(
    settings: Settings, sections: tuple[str, ...], extra: Mapping[str, object]
) -> tuple[str, str]:
    """The current fingerprint of ``sections`` plus ``extra``, and the legacy one."""
    models = _sections(settings, sections)
    current = {
        name: model.model_dump(mode="json", exclude_defaults=True) for name, model in models.items()
    }
    legacy = {
        name: model.model_dump(mode="json", include=set(LEGACY_KEYS[name]))
        for name, model in models.items()
    }
    return _digest({**current, **extra}), _digest({**legacy, **extra})
