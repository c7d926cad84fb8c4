"""Reference build: CSV, Parquet and JSONL give the same profile; errors; load and tamper checks."""

from __future__ import annotations

import argparse
import ast
import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
import pyarrow.parquet as pq  # type: ignore[import-untyped, unused-ignore]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.profile import CategoricalProfile, NumericProfile, ReferenceProfile
from monitor.cli import main
from monitor.cli_reference import add_reference_parser
from monitor.config import SchemaConfig
from monitor.engine.reference.build import build_reference
from monitor.engine.reference.checks import suspect_column
from monitor.engine.reference.profile_file import load_reference
from monitor.errors import ReferenceProfileError
from monitor.ingest.decode import Decoder

SCHEMA = SchemaConfig(segment_by=["model_version", "features.region"])
N = 400
NOW = 1_795_000_000.0

Rows = list[dict[str, Any]]


def training_rows(n: int = N) -> Rows:
    """Flat training rows: floats and ints with gaps, text with gaps, zip codes, a flag."""
    rng = np.random.default_rng(3)
    rows = []
    for i in range(n):
        income = float(np.round(rng.lognormal(10.8, 0.5), 2))
        rows.append(
            {
                "id": f"req-{i}",
                "ts": NOW + i,
                "model": "credit-risk",
                "model_version": "v3",
                "income": None if i % 17 == 0 else income,
                "age": int(rng.integers(18, 80)),
                "employment_type": None
                if i % 23 == 0
                else str(rng.choice(["salaried", "contract"])),
                "region": str(rng.choice(["north", "south", "west"])),
                "zip": str(rng.choice(["02139", "10001", "94110"])),
                "is_new": bool(rng.random() < 0.3),
                "prediction": float(np.round(rng.random(), 6)),
                "label": int(rng.random() < 0.2),
            }
        )
    return rows


def write_csv(rows: Rows, path: Path) -> Path:
    """Rows as CSV, None as an empty field (as pandas and the csv module write it)."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    return path


def write_parquet(rows: Rows, path: Path) -> Path:
    """Rows as a typed Parquet file (nulls as nulls)."""
    types = {
        "id": pa.string(),
        "ts": pa.float64(),
        "income": pa.float64(),
        "age": pa.int64(),
        "is_new": pa.bool_(),
        "prediction": pa.float64(),
        "label": pa.int8(),
    }
    columns = {k: pa.array([r[k] for r in rows], type=types.get(k, pa.string())) for k in rows[0]}
    pq.write_table(pa.table(columns), path)
    return path


def write_jsonl_flat(rows: Rows, path: Path) -> Path:
    """Rows as flat JSON objects; missing values alternate between null and an absent key."""
    with path.open("wb") as f:
        for i, row in enumerate(rows):
            obj = {k: v for k, v in row.items() if v is not None or i % 2}
            f.write(orjson.dumps(obj) + b"\n")
    return path


def as_event(row: dict[str, Any]) -> dict[str, Any]:
    """A flat row as an inference event in the documented contract."""
    top = ("id", "ts", "model", "model_version", "prediction", "label")
    event = {k: row[k] for k in top}
    event["features"] = {k: v for k, v in row.items() if k not in top}
    return event


def write_jsonl_events(rows: Rows, path: Path) -> Path:
    """Rows as nested inference events, one per line (with a blank line thrown in)."""
    lines = [orjson.dumps(as_event(row)) for row in rows]
    lines.insert(len(lines) // 2, b"   ")
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def build(path: Path, tmp_path: Path, **kwargs: Any) -> ReferenceProfile:
    """Build a profile of ``path`` into the temp dir with the test schema."""
    out = tmp_path / f"{path.name}.reference.json"
    return build_reference(path, out, schema=kwargs.pop("schema", SCHEMA), **kwargs)


WRITERS = {
    "train.csv": write_csv,
    "train.parquet": write_parquet,
    "train.pq": write_parquet,
    "train.jsonl": write_jsonl_flat,
    "events.ndjson": write_jsonl_events,
}


def test_every_format_gives_the_same_profile(tmp_path: Path) -> None:
    """CSV, Parquet, flat and event JSONL give one profile; the segment feature is left out."""
    rows = training_rows()
    profiles = {
        name: build(write(rows, tmp_path / name), tmp_path, categorical=["zip"])
        for name, write in WRITERS.items()
    }
    versions = {name: p.version for name, p in profiles.items()}
    assert len(set(versions.values())) == 1, versions
    profile = profiles["train.csv"]
    # features.region is a segment path: constant within its segment, so not a feature.
    assert profile.names == ("age", "employment_type", "income", "is_new", "zip")
    kinds = {f.name: f.kind for f in profile.features}
    assert kinds == {
        "age": "numeric",
        "employment_type": "categorical",
        "income": "numeric",
        "is_new": "categorical",
        "zip": "categorical",
    }
    assert profile.prediction is not None and profile.prediction.name == "prediction"
    assert profile.label is not None and profile.label.name == "label"


def test_missing_values_are_counted_not_binned(tmp_path: Path) -> None:
    """Nulls, empty strings and absent keys count as missing, per feature."""
    rows = training_rows()
    profile = build(write_jsonl_flat(rows, tmp_path / "t.jsonl"), tmp_path)
    income = profile.feature("income")
    employment = profile.feature("employment_type")
    assert income.n_missing == sum(r["income"] is None for r in rows)
    assert income.n_ref == N - income.n_missing
    assert employment.n_missing == sum(r["employment_type"] is None for r in rows)
    assert profile.feature("age").n_missing == 0


def test_csv_null_markers_only_in_numeric_columns(tmp_path: Path) -> None:
    """In CSV, NA/null/nan are missing in a numeric column but stay values in a text column."""
    path = tmp_path / "t.csv"
    path.write_text("x,country\n1.5,NA\nNA,US\n null ,NA\nnan,\n 2.5 ,US\n3,DE\n", encoding="utf-8")
    profile = build(path, tmp_path)
    x = profile.feature("x")
    assert isinstance(x, NumericProfile)
    assert (x.n_ref, x.n_missing) == (3, 3)
    country = profile.feature("country")
    assert isinstance(country, CategoricalProfile)
    assert set(country.categories) == {"NA", "US", "DE"}
    assert country.n_missing == 1


def test_unnamed_csv_index_column_is_skipped(tmp_path: Path) -> None:
    """A CSV column with an empty header (the index pandas writes) is not a feature."""
    path = tmp_path / "t.csv"
    path.write_text(",x\n0,1.5\n1,2.5\n2,0.5\n", encoding="utf-8")
    assert build(path, tmp_path).names == ("x",)


def test_empty_strings_are_missing_in_every_format(tmp_path: Path) -> None:
    """An empty string is missing in CSV, JSONL and Parquet text columns alike."""
    rows: Rows = [{"x": float(i), "c": "" if i % 3 == 0 else "a"} for i in range(30)]
    csv_path = write_csv(rows, tmp_path / "t.csv")
    for path in (csv_path, write_jsonl_flat(rows, tmp_path / "t.jsonl")):
        assert build(path, tmp_path).feature("c").n_missing == 10
    table = pa.table({"x": [r["x"] for r in rows], "c": [r["c"] for r in rows]})
    pq.write_table(table, tmp_path / "t.parquet")
    assert build(tmp_path / "t.parquet", tmp_path).feature("c").n_missing == 10


def test_non_finite_numbers_are_missing(tmp_path: Path) -> None:
    """NaN and infinities in a Parquet float column are counted as missing."""
    values = [1.0, math.nan, math.inf, -math.inf, 2.0, 3.0]
    pq.write_table(pa.table({"x": values}), tmp_path / "t.parquet")
    x = build(tmp_path / "t.parquet", tmp_path).feature("x")
    assert (x.n_ref, x.n_missing) == (3, 3)


def test_categories_match_what_the_decoder_produces(tmp_path: Path) -> None:
    """Categories are stored as the decoder's text, so decoded events map onto them."""
    rows = training_rows()
    path = write_parquet(rows, tmp_path / "t.parquet")
    profile = build(path, tmp_path, categorical=["age"], top_k=1000)
    messages = [orjson.dumps(as_event(r) | {"ts": NOW}) for r in rows]
    categorical = [f.name for f in profile.features if isinstance(f, CategoricalProfile)]
    numeric = [f.name for f in profile.features if isinstance(f, NumericProfile)]
    decoded = Decoder(SCHEMA, numeric, categorical, now=NOW).decode(messages)
    assert decoded.rejections == []
    for name in categorical:
        feature = profile.feature(name)
        assert isinstance(feature, CategoricalProfile)
        codes = feature.encode(np.asarray(decoded.categorical[name], dtype=object))
        assert not (codes >= feature.other_code).any(), name  # neither rare nor unseen
    age = profile.feature("age")
    assert isinstance(age, CategoricalProfile)
    assert all(isinstance(c, str) for c in age.categories)
    is_new = profile.feature("is_new")
    assert isinstance(is_new, CategoricalProfile)
    assert sorted(map(str, is_new.categories)) == ["False", "True"]


@settings(max_examples=25, deadline=None)
@given(
    levels=st.lists(st.integers(-50, 500), min_size=1, max_size=8, unique=True),
    seed=st.integers(0, 2**16),
    suffix=st.sampled_from(["csv", "parquet", "jsonl"]),
    stored_as_float=st.booleans(),
)
def test_integer_categories_match_events_from_every_format(
    tmp_path_factory: pytest.TempPathFactory,
    levels: list[int],
    seed: int,
    suffix: str,
    stored_as_float: bool,
) -> None:
    """21, 21.0 and "21" are one category: events' ints always find the file's categories."""
    rng = np.random.default_rng(seed)
    values = [int(v) for v in rng.choice(levels, size=60)]
    stored: list[Any] = [float(v) for v in values] if stored_as_float else values
    tmp = tmp_path_factory.mktemp("fmt")
    path = tmp / f"train.{suffix}"
    rows = [{"loan_length": v, "x": float(i)} for i, v in enumerate(stored)]
    if suffix == "csv":
        write_csv(rows, path)
    elif suffix == "parquet":
        kind = pa.float64() if stored_as_float else pa.int64()
        pq.write_table(
            pa.table({"loan_length": pa.array(stored, type=kind), "x": [r["x"] for r in rows]}),
            path,
        )
    else:
        path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    profile = build(path, tmp, categorical=["loan_length"])
    feature = profile.feature("loan_length")
    assert isinstance(feature, CategoricalProfile)
    events = [
        orjson.dumps(
            {
                "id": f"e{i}",
                "ts": NOW,
                "model_version": "v1",
                "features": {"loan_length": v, "x": 1.0},
            }
        )
        for i, v in enumerate(values)
    ]
    decoded = Decoder(SCHEMA, ["x"], ["loan_length"], now=NOW).decode(events)
    assert decoded.rejections == []
    codes = feature.encode(decoded.categorical["loan_length"])
    assert not np.isnan(codes).any()
    assert (codes < feature.other_code).all(), (feature.categories, set(values))


def test_schema_paths_choose_the_role_columns(tmp_path: Path) -> None:
    """Custom schema names pick id, time, prediction and label columns out of a flat table."""
    schema = SchemaConfig(
        id="request", timestamp="when", prediction="score", label="outcome", segment_by=["shard"]
    )
    rows: Rows = [
        {
            "request": str(i),
            "when": i,
            "shard": i % 4,
            "x": i * 0.5,
            "score": i / 100,
            "outcome": i % 2,
        }
        for i in range(50)
    ]
    profile = build(write_csv(rows, tmp_path / "t.csv"), tmp_path, schema=schema)
    assert profile.names == ("x",)
    assert profile.prediction is not None and profile.prediction.name == "score"
    assert profile.label is not None and profile.label.name == "outcome"


def test_schema_categorical_forces_categorical(tmp_path: Path) -> None:
    """Columns named in schema.categorical are profiled as categorical too."""
    schema = SchemaConfig(categorical=["age"])
    rows = training_rows(60)
    profile = build(write_csv(rows, tmp_path / "t.csv"), tmp_path, schema=schema)
    assert profile.feature("age").kind == "categorical"


def test_no_prediction_or_label_columns(tmp_path: Path) -> None:
    """Without prediction and label columns (or with empty ones) the profile has neither."""
    rows: Rows = [{"x": float(i), "label": None} for i in range(20)]
    profile = build(write_jsonl_flat(rows, tmp_path / "t.jsonl"), tmp_path)
    assert profile.prediction is None
    assert profile.label is None
    profile = build(write_csv(rows, tmp_path / "t.csv"), tmp_path)
    assert profile.label is None


def test_output_is_pretty_sorted_and_deterministic(tmp_path: Path) -> None:
    """The profile JSON has sorted keys and indentation, and the same data gives the same bytes."""
    path = write_csv(training_rows(), tmp_path / "t.csv")
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    build_reference(path, first, schema=SCHEMA)
    build_reference(path, second, schema=SCHEMA)
    text = first.read_text()
    assert first.read_bytes() == second.read_bytes()
    assert text.startswith("{\n  ")
    assert text.endswith("}\n")
    data = json.loads(text)
    assert list(data) == sorted(data)
    assert data["version"] == load_reference(first).version


def test_write_replaces_atomically_and_leaves_no_temp_files(tmp_path: Path) -> None:
    """An existing profile is replaced whole, and no temporary file stays behind."""
    out = tmp_path / "reference.json"
    out.write_text("old")
    path = write_csv(training_rows(), tmp_path / "t.csv")
    profile = build_reference(path, out, schema=SCHEMA)
    assert load_reference(out) == profile
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reference.json", "t.csv"]


def test_unwritable_output_is_an_error(tmp_path: Path) -> None:
    """A missing output directory is a ReferenceProfileError naming the output path."""
    path = write_csv(training_rows(50), tmp_path / "t.csv")
    out = tmp_path / "missing-dir" / "reference.json"
    with pytest.raises(ReferenceProfileError, match="cannot write") as info:
        build_reference(path, out, schema=SCHEMA)
    assert info.value.path == str(out)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("train.txt", b"x\n1\n", r"unsupported file suffix \.txt"),
        ("train", b"x\n1\n", r"unsupported file suffix \(none\)"),
        ("train.csv", b"", "is empty"),
        ("train.csv", b"x,y\n", "no rows"),
        ("train.csv", b"x,y\n1,2\n3,4,5\n", "not a readable CSV"),
        ("train.csv", b"x,x\n1,2\n", "duplicate column names"),
        ("train.csv", b"x,c\n1,\xff\xfe\n", "not a readable CSV"),
        ("train.csv", b"id,ts\n1,2\n", "no feature columns"),
        ("train.csv", b"x,y\n,1\n,2\n", "column 'x' has no values"),
        ("train.parquet", b"not parquet at all", "not a readable Parquet"),
        ("train.jsonl", b"", "is empty"),
        ("train.jsonl", b"\n\n", "no rows"),
        ("train.jsonl", b'{"x": 1}\n{"x": \n', "line 2: not valid JSON"),
        ("train.jsonl", b'{"x": 1}\n[1, 2]\n', "line 2: expected a JSON object"),
        ("train.jsonl", b'{"x": {"a": 1}}\n', "column 'x' holds a dict"),
    ],
)
def test_bad_inputs_raise_clear_errors(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    """Bad or empty inputs raise ReferenceProfileError naming the file and the problem."""
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ReferenceProfileError, match=message) as info:
        build(path, tmp_path)
    assert info.value.path == str(path)
    assert not list(tmp_path.glob("*.json"))


def test_missing_input_file(tmp_path: Path) -> None:
    """A missing input file is a ReferenceProfileError saying so."""
    with pytest.raises(ReferenceProfileError, match="no such file"):
        build(tmp_path / "nope.csv", tmp_path)


def test_unknown_categorical_column(tmp_path: Path) -> None:
    """Naming a categorical column that is not in the data is an error listing the columns."""
    path = write_csv(training_rows(20), tmp_path / "t.csv")
    with pytest.raises(ReferenceProfileError, match=r"categorical columns \['nope'\] are not"):
        build(path, tmp_path, categorical=["nope"])


def test_bad_bin_counts_fail_before_reading(tmp_path: Path) -> None:
    """An out-of-range n_fine is refused before the (here missing) input is read."""
    with pytest.raises(ReferenceProfileError, match="n_fine must be between 100 and 200"):
        build(tmp_path / "missing.csv", tmp_path, n_fine=50)


def test_unsupported_parquet_type(tmp_path: Path) -> None:
    """A Parquet column that cannot be profiled (a list) is an error naming it, until excluded."""
    pq.write_table(pa.table({"x": [1.0, 2.0], "tags": [[1], [2]]}), tmp_path / "t.parquet")
    with pytest.raises(ReferenceProfileError, match="column 'tags' has type list"):
        build(tmp_path / "t.parquet", tmp_path)
    assert build(tmp_path / "t.parquet", tmp_path, exclude=["tags"]).names == ("x",)


def test_exclude_leaves_columns_out(tmp_path: Path) -> None:
    """Excluded columns, an all-empty one and the label included, are not profiled."""
    rows: Rows = [{"x": float(i), "empty": None, "y": i % 3, "label": i % 2} for i in range(30)]
    path = write_csv(rows, tmp_path / "t.csv")
    with pytest.raises(ReferenceProfileError, match="column 'empty' has no values"):
        build(path, tmp_path)
    profile = build(path, tmp_path, exclude=["empty", "label"])
    assert profile.names == ("x", "y")
    assert profile.label is None
    with pytest.raises(ReferenceProfileError, match=r"exclude columns \['nope'\] are not"):
        build(path, tmp_path, exclude=["nope"])


def test_dictionary_encoded_parquet_column_is_categorical(tmp_path: Path) -> None:
    """A dictionary-encoded string column profiles like a plain one."""
    plain = pa.array(["a", "b", "a", None])
    table = pa.table({"x": [1.0, 2.0, 3.0, 4.0], "c": plain.dictionary_encode()})
    pq.write_table(table, tmp_path / "t.parquet")
    c = build(tmp_path / "t.parquet", tmp_path).feature("c")
    assert isinstance(c, CategoricalProfile)
    assert c.categories == ("a", "b")
    assert c.n_missing == 1


def test_load_reference_round_trip(tmp_path: Path) -> None:
    """A written profile loads back equal, version included."""
    out = tmp_path / "reference.json"
    profile = build_reference(write_csv(training_rows(), tmp_path / "t.csv"), out, schema=SCHEMA)
    loaded = load_reference(out)
    assert loaded == profile
    assert loaded.version == profile.version


def test_load_reference_detects_tampering(tmp_path: Path) -> None:
    """Editing a count in the profile makes loading fail on the version check."""
    out = tmp_path / "reference.json"
    build_reference(write_csv(training_rows(), tmp_path / "t.csv"), out, schema=SCHEMA)
    data = json.loads(out.read_text())
    data["features"][0]["counts"][0] += 1
    out.write_text(json.dumps(data))
    with pytest.raises(ReferenceProfileError, match="version mismatch") as info:
        load_reference(out)
    assert info.value.path == str(out)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"{", "not valid JSON"),
        (b"[]", "expected a JSON object"),
        (b'{"schema": 99, "version": "x"}', "unsupported reference profile schema"),
        (b'{"schema": 1, "version": "x"}', "missing key 'features'"),
        (b'{"schema": 1, "version": "x", "features": "abc"}', "not a valid reference profile"),
    ],
)
def test_load_reference_errors(tmp_path: Path, content: bytes | None, message: str) -> None:
    """Unreadable or malformed profile files raise ReferenceProfileError with the reason."""
    path = tmp_path / "reference.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ReferenceProfileError, match=message):
        load_reference(path)


def parser() -> argparse.ArgumentParser:
    """A top-level parser with ``reference build`` registered as driftd's CLI does."""
    top = argparse.ArgumentParser(prog="driftd")
    add_reference_parser(top.add_subparsers(dest="command", required=True))
    return top


def test_cli_build_writes_the_profile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``reference build`` writes the profile, prints its version, and exits 0."""
    path = write_csv(training_rows(), tmp_path / "train.csv")
    out = tmp_path / "reference.json"
    args = parser().parse_args(
        [
            *("reference", "build", "--input", str(path), "-o", str(out)),
            *("--categorical", "zip, age", "--exclude", "is_new"),
        ]
    )
    assert args.handler(args) == 0
    profile = load_reference(out)
    assert profile.feature("zip").kind == "categorical"
    assert profile.feature("age").kind == "categorical"
    assert "is_new" not in profile.names
    printed = capsys.readouterr().out
    assert profile.version in printed
    assert f"{N:,} rows" in printed


def test_cli_build_uses_the_config_schema(tmp_path: Path) -> None:
    """``--config`` supplies the schema paths that name the role columns."""
    config = tmp_path / "driftd.yaml"
    config.write_text("schema:\n  prediction: score\n  segment_by: [shard]\n")
    rows: Rows = [{"shard": i % 3, "x": float(i), "score": i / 40} for i in range(40)]
    path = write_csv(rows, tmp_path / "train.csv")
    out = tmp_path / "reference.json"
    args = parser().parse_args(
        ["reference", "build", "-i", str(path), "-o", str(out), "--config", str(config)]
    )
    assert args.handler(args) == 0
    profile = load_reference(out)
    assert profile.names == ("x",)
    assert profile.prediction is not None and profile.prediction.name == "score"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "unsupported file suffix .txt"),
        (["--n-fine", "10"], "n_fine must be between"),
    ],
)
def test_cli_build_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    """A bad input or option exits 2 with the reason on stderr and nothing written."""
    path = tmp_path / "train.txt"
    path.write_text("x\n1\n")
    out = tmp_path / "reference.json"
    args = parser().parse_args(["reference", "build", "-i", str(path), "-o", str(out), *extra])
    assert args.handler(args) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_cli_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A config with an unknown key exits 2 naming the key."""
    config = tmp_path / "driftd.yaml"
    config.write_text("schema:\n  predicton: score\n")
    path = write_csv(training_rows(20), tmp_path / "train.csv")
    args = parser().parse_args(
        ["reference", "build", "-i", str(path), "-o", str(tmp_path / "r.json"), "-c", str(config)]
    )
    assert args.handler(args) == 2
    assert "schema.predicton" in capsys.readouterr().err


def _suspect_rows(n: int) -> Rows:
    """Rows with an id, an ISO time, an epoch time, a counter and two honest features."""
    rng = np.random.default_rng(11)
    order = rng.permutation(n)
    return [
        {
            "user": f"u-{order[i]:06d}",
            "created": f"2025-03-{1 + i % 28:02d}T{i % 24:02d}:00:00Z",
            "updated": 1_760_000_000 + 60 * i + int(rng.integers(0, 60)),
            "seq": float(i) + 0.5,
            "income": float(np.round(rng.lognormal(10, 0.5), 2)),
            "channel": str(rng.choice(["web", "app", "branch"])),
        }
        for i in range(n)
    ]


def test_cli_warns_about_id_and_time_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`reference build` warns on stderr about id- and time-like columns, and only those."""
    path = write_csv(_suspect_rows(2_000), tmp_path / "train.csv")
    assert main(["reference", "build", "-i", str(path), "-o", str(tmp_path / "r.json")]) == 0
    warnings = [
        line
        for line in capsys.readouterr().err.splitlines()
        if line.startswith("driftd reference build: warning: ")
    ]
    flagged = {line.split("'")[1]: line for line in warnings}
    assert set(flagged) == {"user", "created", "updated", "seq"}, warnings
    assert "looks like an id: 2,000 distinct values in 2,000 rows" in flagged["user"]
    assert "looks like a timestamp" in flagged["created"]
    assert "epoch seconds" in flagged["updated"]
    assert "only rises with the row order" in flagged["seq"]
    assert all("--exclude" in line for line in warnings)
    assert not any("reference rows" in line for line in warnings)


def test_cli_warns_about_a_tiny_reference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A reference of a few hundred rows is written, with a warning giving its loose threshold."""
    rows: Rows = [{"x": float((i * 37) % 101), "c": "ab"[i % 2]} for i in range(300)]
    path = write_csv(rows, tmp_path / "train.csv")
    assert main(["reference", "build", "-i", str(path), "-o", str(tmp_path / "r.json")]) == 0
    (warning,) = capsys.readouterr().err.strip().splitlines()
    assert warning.startswith("driftd reference build: warning: only 300 reference rows")
    assert "a 5,000-event window needs a KS distance above 0.1" in warning


def test_cli_config_leaves_out_id_time_label_and_segment_columns(tmp_path: Path) -> None:
    """With -c, id, time, label-event and segment (features.region) columns are no features."""
    config = tmp_path / "driftd.yaml"
    config.write_text(
        "schema:\n  id: request_id\n  timestamp: event_time\n  label: outcome\n"
        "  segment_by: [model_version, features.region]\n"
        "labels:\n  id: label_id\n  timestamp: label_time\n  label: is_default\n"
    )
    rows: Rows = [
        {
            "request_id": f"r{i}",
            "event_time": 1_000 + i,
            "model_version": "v3",
            "region": "nsw"[i % 3],
            "label_id": f"l{i}",
            "label_time": 2_000 + i,
            "is_default": i % 2,
            "x": float((i * 7) % 13),
            "c": "ab"[i % 2],
            "prediction": (i % 10) / 10,
            "outcome": i % 2,
        }
        for i in range(60)
    ]
    path = write_csv(rows, tmp_path / "train.csv")
    out = tmp_path / "reference.json"
    assert main(["reference", "build", "-i", str(path), "-o", str(out), "-c", str(config)]) == 0
    profile = load_reference(out)
    assert profile.names == ("c", "x")
    assert profile.label is not None and profile.label.name == "outcome"
    assert profile.prediction is not None and profile.prediction.name == "prediction"


def test_ordinary_features_are_not_suspects() -> None:
    """Continuous, integer and low-cardinality columns in random order raise no warning."""
    rng = np.random.default_rng(2)
    income = np.round(rng.lognormal(10, 0.5, 5_000), 2)
    age = rng.integers(18, 90, 5_000).astype(np.float64)
    sorted_small = np.sort(rng.normal(size=50))
    categories = np.array([str(v) for v in rng.choice(["a", "b", "c"], 5_000)], dtype=object)
    zips = np.array([f"{v:05d}" for v in rng.integers(0, 900, 5_000)], dtype=object)
    assert suspect_column("income", income, False) is None
    assert suspect_column("age", age, False) is None
    assert suspect_column("few_sorted", sorted_small, False) is None
    assert suspect_column("kind", categories, True) is None
    assert suspect_column("zip", zips, True) is None


def test_the_engine_holds_no_command_line() -> None:
    """No engine module parses arguments or prints; ``reference build`` is top-level."""
    engine = Path(__file__).resolve().parents[2] / "monitor" / "engine"
    modules = sorted(engine.rglob("*.py"))
    assert engine / "reference" / "build.py" in modules
    offenders = []
    for path in modules:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found = any(alias.name == "argparse" for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                found = node.module == "argparse"
            elif isinstance(node, ast.Call):
                found = isinstance(node.func, ast.Name) and node.func.id == "print"
            else:
                continue
            if found:
                offenders.append(f"{path.relative_to(engine)}:{node.lineno}")
    assert not offenders, f"command-line code in the engine: {offenders}"
