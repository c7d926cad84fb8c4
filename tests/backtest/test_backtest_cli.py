"""`driftd backtest` end to end on small recorded streams: labels, JSON, exit codes, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped, unused-ignore]
import orjson
import pytest

from monitor.cli import main
from tests.backtest.streams import SMALL, write_config, write_stream

EVENTS = 12_000
SHIFT_AT = 4_000

FLOAT = {"type": "number"}
OPT_FLOAT = {"type": ["number", "null"]}
COUNTS_BY = {"type": "object", "additionalProperties": {"type": "integer"}}
NESTED_COUNTS = {"type": "object", "additionalProperties": COUNTS_BY}


def _by_method(values: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": {"type": "object", "additionalProperties": values},
    }


SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [
        "model",
        "reference_version",
        "config",
        "counts",
        "windows",
        "performance",
        "transitions",
        "alerts",
        "quality",
        "distributions",
    ],
    "properties": {
        "model": {"type": "string"},
        "reference_version": {"type": ["string", "null"]},
        "config": {
            "type": "object",
            "required": ["window_size_events"],
            "properties": {"window_size_events": {"type": ["integer", "null"]}},
        },
        "counts": {
            "type": "object",
            "required": [
                "events_read",
                "events_accepted",
                "rejected",
                "labels_read",
                "labels_joined",
                "windows",
            ],
            "properties": {
                "events_read": {"type": "integer"},
                "events_accepted": {"type": "integer"},
                "rejected": COUNTS_BY,
                "labels_read": {"type": "integer"},
                "labels_joined": {"type": "integer"},
                "windows": {"type": "integer"},
            },
        },
        "windows": {
            "type": "array",
            "items": {
                "type": "object",
                "required": [
                    "kind",
                    "segment",
                    "index",
                    "window_end_ts",
                    "rows",
                    "scores",
                    "thresholds",
                    "verdicts",
                    "missing_rate",
                ],
                "properties": {
                    "kind": {"enum": ["window", "label_window"]},
                    "segment": {"type": "string"},
                    "index": {"type": "integer"},
                    "window_end_ts": FLOAT,
                    "rows": {"type": "integer"},
                    "scores": _by_method(OPT_FLOAT),
                    "thresholds": _by_method(OPT_FLOAT),
                    "verdicts": _by_method({"enum": ["skip", "clear", "band", "breach", "severe"]}),
                    "missing_rate": {"type": "object", "additionalProperties": OPT_FLOAT},
                },
            },
        },
        "performance": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["segment", "window_end_ts", "metric", "value"],
                "properties": {
                    "segment": {"type": "string"},
                    "window_end_ts": FLOAT,
                    "metric": {"type": "string"},
                    "value": OPT_FLOAT,
                },
            },
        },
        "transitions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": [
                    "dedup_key",
                    "segment",
                    "column",
                    "method",
                    "to",
                    "window_end_ts",
                    "score",
                    "threshold",
                ],
                "properties": {
                    "dedup_key": {"type": "string"},
                    "to": {"enum": ["firing", "resolved"]},
                    "window_end_ts": FLOAT,
                    "score": OPT_FLOAT,
                    "threshold": OPT_FLOAT,
                },
            },
        },
        "alerts": {
            "type": "array",
            "items": {
                "type": "object",
                "required": [
                    "dedup_key",
                    "segment",
                    "column",
                    "method",
                    "fired_at_ts",
                    "resolved_at_ts",
                    "duration_s",
                    "peak_score",
                ],
                "properties": {
                    "fired_at_ts": FLOAT,
                    "resolved_at_ts": OPT_FLOAT,
                    "duration_s": OPT_FLOAT,
                    "peak_score": OPT_FLOAT,
                },
            },
        },
        "quality": {
            "type": "object",
            "required": ["missing", "invalid", "unseen", "rejected"],
            "properties": {
                "missing": NESTED_COUNTS,
                "invalid": NESTED_COUNTS,
                "unseen": NESTED_COUNTS,
                "rejected": COUNTS_BY,
            },
        },
        "distributions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": [
                    "segment",
                    "column",
                    "method",
                    "window_end_ts",
                    "kind",
                    "reference",
                    "current",
                ],
                "properties": {
                    "kind": {"enum": ["numeric", "categorical"]},
                    "edges": {"type": "array", "items": FLOAT},
                    "categories": {"type": "array", "items": {"type": "string"}},
                    "reference": {"type": "array", "items": FLOAT},
                    "current": {"type": "array", "items": FLOAT},
                },
                "oneOf": [{"required": ["edges"]}, {"required": ["categories"]}],
            },
        },
    },
}


def _backtest(tmp_path: Path, *extra: str, shift_at: int = SHIFT_AT, **overrides: Any) -> int:
    events, labels = write_stream(tmp_path, EVENTS, feature_shift_at=shift_at)
    config = write_config(tmp_path / "driftd.yaml", {**SMALL, **overrides})
    args = ["backtest", "-c", str(config), "--events", str(events), "--progress-every", "0"]
    if "--no-labels" not in extra:
        args += ["--labels", str(labels)]
    return main(args + [e for e in extra if e != "--no-labels"])


def test_json_has_the_documented_structure(tmp_path: Path) -> None:
    """--json writes strict JSON that validates against the documented structure."""
    out = tmp_path / "windows.json"
    assert _backtest(tmp_path, "--json", str(out)) == 0
    data = json.loads(out.read_text(), parse_constant=pytest.fail)
    jsonschema.validate(data, SCHEMA)
    assert data["counts"]["events_read"] == EVENTS
    assert data["counts"]["windows"] == sum(w["part"] == "features" for w in data["windows"])
    fired = {t["dedup_key"]: t for t in data["transitions"] if t["to"] == "firing"}
    assert data["alerts"] and {a["dedup_key"] for a in data["alerts"]} == set(fired)
    for alert in data["alerts"]:
        start, end = alert["fired_at_ts"], alert["resolved_at_ts"] or float("inf")
        assert start == fired[alert["dedup_key"]]["window_end_ts"]
        scores = [
            w["scores"][alert["method"]][alert["column"]]
            for w in data["windows"]
            if w["segment"] == alert["segment"]
            and start <= w["window_end_ts"] <= end
            and alert["column"] in w["scores"].get(alert["method"], {})
        ]
        assert alert["peak_score"] == max(scores)
        if alert["resolved_at_ts"] is not None:
            assert alert["duration_s"] == pytest.approx(alert["resolved_at_ts"] - start)
    drifting = {d["column"] for d in data["distributions"]}
    assert {"income", "utilization"} <= drifting
    for d in data["distributions"]:
        assert sum(d["reference"]) == pytest.approx(1.0, abs=1e-4)
        assert sum(d["current"]) == pytest.approx(1.0, abs=1e-4)
        bins = len(d["edges"]) + 1 if d["kind"] == "numeric" else len(d["categories"])
        assert len(d["reference"]) == len(d["current"]) == bins


def test_labels_from_a_file_make_label_windows_and_performance(tmp_path: Path) -> None:
    """Labels replayed from a file are joined: label windows, accuracy and fairness gaps."""
    out = tmp_path / "windows.json"
    assert _backtest(tmp_path, "--json", str(out), shift_at=10**9) == 0
    data = json.loads(out.read_text())
    assert data["counts"]["labels_read"] == EVENTS
    assert data["counts"]["labels_joined"] == EVENTS
    label_windows = [w for w in data["windows"] if w["kind"] == "label_window"]
    pairs = SMALL["labels"]["window_pairs"]
    performance = [w for w in label_windows if w["part"] == "performance"]
    per_segment: dict[str, int] = {}
    for w in performance:
        per_segment[w["segment"]] = per_segment.get(w["segment"], 0) + 1
    assert set(per_segment) == {"north", "south", "west"}
    # Each segment gets about a third of the pairs, in windows of window_pairs.
    assert all(
        EVENTS // 3 // pairs - 2 <= n <= EVENTS // 3 // pairs + 1 for n in per_segment.values()
    )
    metrics = {p["metric"] for p in data["performance"]}
    assert {"accuracy", "fairness_gap:demographic_parity_difference"} <= metrics
    accuracy = [p["value"] for p in data["performance"] if p["metric"] == "accuracy"]
    assert all(0.5 < a <= 1.0 for a in accuracy)


def test_fail_on_alert_exits_4_when_something_would_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --fail-on-alert a drifting stream exits 4, and the summary lists its pages."""
    assert _backtest(tmp_path, "--fail-on-alert") == 4
    captured = capsys.readouterr()
    assert "driftd/credit-risk/west/income/psi" in captured.out
    assert "--fail-on-alert: exit 4" in captured.err


def test_fail_on_alert_exits_0_when_nothing_would_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --fail-on-alert a stationary stream exits 0 and says nothing would have paged."""
    assert _backtest(tmp_path, "--fail-on-alert", shift_at=10**9) == 0
    assert "Would have paged: nothing." in capsys.readouterr().out


def test_without_fail_on_alert_a_page_still_exits_0(tmp_path: Path) -> None:
    """Without --fail-on-alert, pages are reported but the exit code stays 0."""
    assert _backtest(tmp_path) == 0


def test_old_events_pass_whatever_the_wall_clock_limits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """schema.max_past_seconds set in the config does not refuse recorded events."""
    schema = {**SMALL["schema"], "max_past_seconds": 60, "max_future_seconds": 60}
    out = tmp_path / "windows.json"
    assert _backtest(tmp_path, "--json", str(out), schema=schema) == 0
    data = json.loads(out.read_text())
    assert data["counts"]["events_accepted"] == EVENTS
    assert "not checked against the wall clock" in capsys.readouterr().err


def test_refused_lines_are_counted_by_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad lines in the events file are counted by reason, with an example, not fatal."""
    events, _ = write_stream(tmp_path, 5_000)
    lines = events.read_bytes().splitlines()
    broken = [b"{not json", orjson.dumps({"id": "x", "features": {}}), *lines]
    events.write_bytes(b"\n".join(broken) + b"\n")
    config = write_config(tmp_path / "driftd.yaml", SMALL)
    out = tmp_path / "w.json"
    code = main(
        [
            *("backtest", "-c", str(config), "--events", str(events)),
            *("--json", str(out), "--progress-every", "0"),
        ]
    )
    assert code == 0
    data = json.loads(out.read_text())
    assert data["counts"]["events_read"] == 5_002
    assert data["counts"]["events_accepted"] == 5_000
    assert data["counts"]["rejected"] == {"invalid_json": 1, "bad_timestamp": 1}
    stdout = capsys.readouterr().out
    assert "invalid_json: 1 (e.g." in stdout


@pytest.mark.parametrize(
    ("make", "option"),
    [
        (lambda d: ["--events", str(d / "missing.jsonl")], "--events"),
        (lambda d: ["--events", str(d / "events.txt")], "--events"),
        (lambda d: ["--events", str(d / "events.jsonl"), "--labels", str(d)], "--labels"),
        (lambda d: ["--events", str(d / "broken.parquet")], "--events"),
        (
            lambda d: ["--events", str(d / "events.jsonl"), "--json", str(d / "no" / "x.json")],
            "--json",
        ),
        (
            lambda d: ["--events", str(d / "events.jsonl"), "--top-distributions", "-1"],
            "--top-distributions",
        ),
    ],
)
def test_a_bad_input_exits_2_with_one_line_naming_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: Any, option: str
) -> None:
    """A missing, unreadable or unsupported input or output exits 2, one stderr line naming it."""
    write_stream(tmp_path, 100)
    (tmp_path / "events.txt").write_text("{}\n")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    config = write_config(tmp_path / "driftd.yaml", SMALL)
    code = main(["backtest", "-c", str(config), *make(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and option in err[0], err
    assert "Traceback" not in err[0]


def test_a_bad_config_key_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown key in the config exits 2 with a line naming the key."""
    events, _ = write_stream(tmp_path, 100)
    config = write_config(tmp_path / "driftd.yaml", {**SMALL, "windowz": {}})
    assert main(["backtest", "-c", str(config), "--events", str(events)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "windowz" in err[0]


def test_no_event_accepted_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file of which no event is accepted exits 1 and says nothing was monitored."""
    events = tmp_path / "events.jsonl"
    events.write_text('{"not": "an event"}\n')
    config = write_config(tmp_path / "driftd.yaml", SMALL)
    code = main(["backtest", "-c", str(config), "--events", str(events), "--progress-every", "0"])
    assert code == 1
    assert "nothing was monitored" in capsys.readouterr().err


@pytest.mark.slow  # a whole report drawn with matplotlib: 4-7 s
def test_output_writes_the_html_report_of_the_same_data(tmp_path: Path) -> None:
    """-o renders the HTML report (monitor.report) from the data that --json writes."""
    pytest.importorskip("monitor.report")
    pytest.importorskip("matplotlib")  # the report extra
    report, out = tmp_path / "report.html", tmp_path / "windows.json"
    assert _backtest(tmp_path, "-o", str(report), "--json", str(out)) == 0
    html = report.read_text(encoding="utf-8")
    assert "<html" in html[:500].lower()
    data = json.loads(out.read_text())
    assert data["alerts"] and all(a["column"] in html for a in data["alerts"])
