"""Shared inputs of the reliability tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from detectors.profile import build_profile
from monitor.ingest.demo_stream import NUMERIC_FEATURES, DemoStream


def write_reference(path: Path) -> None:
    """A fixed reference from a separate demo sample (a warm-up would depend on interleaving)."""
    batch = DemoStream(seed=99).next_batch(60_000)
    columns: dict[str, Any] = {name: batch.numeric[name] for name in NUMERIC_FEATURES}
    columns.update({k: v.astype(object) for k, v in batch.categorical.items()})
    columns["prediction"] = batch.prediction
    profile = build_profile(columns, categorical=list(batch.categorical), prediction="prediction")
    path.write_bytes(orjson.dumps(profile.to_dict()))
