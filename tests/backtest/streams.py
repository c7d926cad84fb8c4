"""Recorded streams for backtest tests: the demo's events and labels, written to files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
import pyarrow.csv as pcsv  # type: ignore[import-untyped, unused-ignore]
import pyarrow.parquet as pq  # type: ignore[import-untyped, unused-ignore]
import yaml

from monitor.ingest.demo_source import DEMO_LABELS_TOPIC, DemoSource
from monitor.ingest.demo_stream import DemoStream

START_TS = 1_795_000_000.0


def write_demo_source(
    directory: Path, events: int, *, start_ts: float = START_TS, labels: bool = True
) -> tuple[Path, Path]:
    """The records ``driftd demo`` would consume (seed 7), as events.jsonl and labels.jsonl."""
    source = DemoSource(2_000, total_events=events, labels=labels, start_ts=start_ts)
    events_path, labels_path = directory / "events.jsonl", directory / "labels.jsonl"
    with events_path.open("wb") as ev, labels_path.open("wb") as lb:
        while not source.exhausted:
            for record in source.poll(0.0):
                (lb if record.topic == DEMO_LABELS_TOPIC else ev).write(record.value + b"\n")
    return events_path, labels_path


def write_stream(
    directory: Path,
    events: int,
    *,
    feature_shift_at: int = 10**9,
    label_delay_s: float = 2.0,
) -> tuple[Path, Path]:
    """A demo stream with its shift points moved (no shift by default) and every label
    ``label_delay_s`` after its prediction, in arrival order."""
    stream = DemoStream(
        feature_shift_at=feature_shift_at,
        prediction_shift_at=10**9,
        concept_shift_at=10**9,
        start_ts=START_TS,
    )
    batch = stream.next_batch(events)
    events_path, labels_path = directory / "events.jsonl", directory / "labels.jsonl"
    events_path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in batch.events()))
    labels = [{**label, "ts": label["ts"] + label_delay_s} for label in batch.labels()]
    labels_path.write_bytes(b"".join(orjson.dumps(label) + b"\n" for label in labels))
    return events_path, labels_path


def flatten_events(events_jsonl: Path) -> pa.Table:
    """The events as a DataFrame-shaped table: one column per feature, plus id, ts,
    model, prediction (the features' object flattened)."""
    rows = []
    for line in events_jsonl.read_bytes().splitlines():
        event = orjson.loads(line)
        features = event.pop("features")
        event.pop("model_version", None)
        rows.append({**event, **features})
    return pa.Table.from_pylist(rows)


def write_table(table: pa.Table, path: Path) -> Path:
    """``table`` as CSV or Parquet, by ``path``'s suffix."""
    if path.suffix == ".csv":
        pcsv.write_csv(table, path)
    else:
        pq.write_table(table, path)
    return path


def write_config(path: Path, settings: Mapping[str, Any]) -> Path:
    """``settings`` as a YAML config file."""
    path.write_text(yaml.safe_dump(dict(settings)), encoding="utf-8")
    return path


SMALL: dict[str, Any] = {
    "model": "credit-risk",
    "source": {"batch_size": 1_000},
    "labels": {"window_pairs": 300, "group_by": "features.employment_type"},
    "detectors": {"fairness": {"threshold": 0.6, "clear": 0.4}},
    "schema": {"segment_by": ["features.region"], "categorical": []},
    "reference": {"warmup_events": 3_000},
    "windows": {"size_events": 1_000, "min_samples": 200},
}
"""Demo-like settings sized for a few thousand events."""
