"""Input files to events: DataFrame-shaped rows mapped through the schema, times read."""

from __future__ import annotations

import math
from pathlib import Path

import orjson
import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
import pytest

from monitor.backtest.inputs import events_input, labels_input
from monitor.backtest.run import backtest_settings
from monitor.config import LabelsConfig, SchemaConfig, Settings
from monitor.errors import SourceError
from tests.backtest.streams import write_table

SCHEMA = SchemaConfig(segment_by=["features.region", "model_version"])


def _events(path: Path, schema: SchemaConfig = SCHEMA, **kwargs: object) -> list[dict[str, object]]:
    return [orjson.loads(item.value) for item in events_input(path, schema, **kwargs).items]  # type: ignore[arg-type]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_rows_become_events_with_roles_at_their_paths(tmp_path: Path, suffix: str) -> None:
    """id, ts, prediction and segment columns fill their paths; the rest become features."""
    table = pa.table(
        {
            "id": ["a", "b"],
            "ts": ["2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z"],
            "model_version": ["v1", "v2"],
            "region": ["north", None],
            "income": [1.5, None],
            "prediction": [0.25, 0.75],
        }
    )
    events = _events(write_table(table, tmp_path / f"t{suffix}"))
    assert events[0] == {
        "id": "a",
        "ts": "2026-01-01T00:00:00Z",
        "model_version": "v1",
        "features": {"region": "north", "income": 1.5},
        "prediction": 0.25,
    }
    assert events[1]["features"] == {}  # missing values are left out, as absent keys


def test_csv_numbers_are_numbers_unless_categorical(tmp_path: Path) -> None:
    """A CSV column of numbers is sent as numbers (NA missing); a categorical one as text."""
    path = tmp_path / "t.csv"
    path.write_text("id,ts,zip,income,name\na,1,02139,12.5,x\nb,2,10001,NA,y\n")
    schema = SchemaConfig(categorical=["zip"], segment_by=[])
    events = _events(path, schema)
    assert [e["features"] for e in events] == [
        {"zip": "02139", "income": 12.5, "name": "x"},
        {"zip": "10001", "name": "y"},
    ]
    assert [e["ts"] for e in events] == ["1", "2"]


def test_event_times_are_read_by_the_schema_rules(tmp_path: Path) -> None:
    """Each item carries its event time (ISO or epoch); an unreadable one is NaN."""
    path = tmp_path / "e.jsonl"
    path.write_text(
        '{"ts": "2026-01-01T00:00:00Z"}\n\n{"ts": 1767225601}\n{"ts": "soon"}\nnot json\n'
    )
    items = list(events_input(path, SCHEMA).items)
    assert [i.offset for i in items] == [1, 3, 4, 5]  # line numbers, blank lines skipped
    assert items[0].ts == 1_767_225_600.0 and items[1].ts == 1_767_225_601.0
    assert math.isnan(items[2].ts) and math.isnan(items[3].ts)
    assert items[3].value == b"not json"  # handed on unchanged, for the decoder to refuse


def test_label_tables_map_the_labels_paths(tmp_path: Path) -> None:
    """A label table fills labels.id, labels.timestamp and labels.label; other columns go."""
    table = pa.table({"request": ["a"], "when": [5.0], "truth": [1], "note": ["x"]})
    cfg = LabelsConfig(id="request", timestamp="when", label="outcome.truth")
    items = list(labels_input(write_table(table, tmp_path / "l.parquet"), cfg, SCHEMA).items)
    assert [orjson.loads(i.value) for i in items] == [
        {"request": "a", "when": 5.0, "outcome": {"truth": 1}}
    ]
    assert items[0].ts == 5.0


def test_a_label_table_without_its_label_column_is_refused(tmp_path: Path) -> None:
    """A label table lacking the labels.label column raises, naming the key."""
    path = write_table(pa.table({"id": ["a"], "ts": [1.0]}), tmp_path / "l.csv")
    with pytest.raises(SourceError, match=r"labels\.label"):
        labels_input(path, LabelsConfig(), SCHEMA)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("e.txt", b"{}", "unsupported file suffix"),
        ("missing.jsonl", None, "no such file"),
        ("e.parquet", b"garbage", "not a readable Parquet file"),
        ("e.csv", b"", "is empty"),
    ],
)
def test_unreadable_inputs_raise_source_errors(
    tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    """A wrong suffix, a missing file or a broken table raises SourceError with its path."""
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SourceError, match=message) as raised:
        events_input(path, SCHEMA)
    assert raised.value.source == str(path)


def test_a_backtest_never_writes_the_relabel_queue(tmp_path: Path) -> None:
    """The production relabel queue is switched off for a replay, with a note saying so."""
    queue = tmp_path / "queue.jsonl"
    settings = Settings(
        model="m",
        labels={"enabled": True, "relabel": {"enabled": True, "path": queue}},  # type: ignore[arg-type]
    )
    replay, notes = backtest_settings(settings, labels=True)
    assert settings.labels.relabel.enabled and not replay.labels.relabel.enabled
    assert any("labels.relabel" in note for note in notes)
