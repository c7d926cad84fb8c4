"""The terminal view: window lines, ADWIN detections only, transitions, and the summary."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import structlog
import yaml

from monitor.cli import main
from monitor.emit.terminal import TerminalView, alert_kind
from monitor.engine.decision import Transition, dedup_key
from monitor.engine.labels.monitor import ERROR_COLUMN, LABEL_COLUMN, LabelOutcome
from monitor.engine.outcome import BatchOutcome
from monitor.engine.results import WindowResults
from monitor.ingest.demo_stream import DemoStream


@pytest.fixture(autouse=True)
def _default_structlog() -> Iterator[None]:
    """Log with structlog's defaults, whatever an earlier test configured."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


def _performance(segments: tuple[str, ...], detections: list[int]) -> WindowResults:
    """Performance windows of ``segments`` with their ADWIN detection counts."""
    k = len(segments)
    return WindowResults(
        model="m",
        segments=segments,
        columns=(ERROR_COLUMN,),
        window_end_ts=np.zeros(k),
        rows=np.full(k, 1_000, dtype=np.int64),
        n=np.full((k, 1), 1_000, dtype=np.int64),
        missing_rate=np.zeros((k, 1)),
        scores={"adwin": np.asarray(detections, dtype=np.float64).reshape(k, 1)},
        p_values={},
    )


def _transition(segment: str, column: str, method: str, current: str) -> Transition:
    return Transition(
        model="m",
        segment=segment,
        column=column,
        method=method,
        previous="ok" if current == "firing" else "firing",
        current=current,  # type: ignore[arg-type]
        score=1.0,
        threshold=0.5,
        clear=0.2,
        p_value=float("nan"),
        n=1_000,
        window_end_ts=0.0,
        dedup_key=dedup_key("m", segment, column, method),
        consecutive=2,
    )


def _batch(
    accepted: int,
    labels: LabelOutcome | None = None,
    transitions: list[Transition] | None = None,
) -> BatchOutcome:
    return BatchOutcome(
        records=accepted,
        accepted=accepted,
        rejected=[],
        results=None,
        transitions=transitions or [],
        labels=labels,
    )


def test_label_windows_print_only_adwin_detections() -> None:
    """Performance windows without a detection print nothing; a detection prints one line."""
    out = io.StringIO()
    view = TerminalView(out)
    quiet = LabelOutcome(labels=2_000, matched=1_900, results=[_performance(("a", "b"), [1, 0])])
    view(_batch(1_000, quiet))  # a held detection count (1) is not a new detection
    assert out.getvalue() == ""
    detected = LabelOutcome(
        labels=2_000,
        matched=2_000,
        results=[_performance(("b",), [1])],
        detected_at=[("b", 4_999), ("b", 5_100)],
    )
    view(_batch(1_000, detected))
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].split()[:4] == ["2000", "events", "labels", "b"]
    assert "at joined pair 5,000, 5,101 of the segment" in lines[0]
    assert (view.label_windows, view.pairs, view.detections) == (3, 3_900, 2)


def test_summary_groups_fired_alerts_by_kind_and_explains_them() -> None:
    """The summary lists each kind and segment once, its episodes, and why (or unexpected)."""
    view = TerminalView(io.StringIO())
    view(_batch(100, transitions=[_transition("w", "income", "psi", "firing")]))
    view(_batch(100, transitions=[_transition("w", "income", "ks", "firing")]))
    view(_batch(100, transitions=[_transition("w", ERROR_COLUMN, "adwin", "firing")]))
    view(_batch(100, transitions=[_transition("w", ERROR_COLUMN, "adwin", "resolved")]))
    view(_batch(100, transitions=[_transition("n", LABEL_COLUMN, "chi2", "firing")]))
    lines = view.summary(lambda segment, kind: "injected" if segment == "w" else None)
    assert lines[0].endswith("5 alert transitions")
    assert lines[1:] == [
        "alerts that fired:",
        "  feature drift in w: income/ks, income/psi; fired at 100 events, still firing; "
        "fired at 200 events, still firing",
        "    why: injected",
        "  concept drift in w: __error__/adwin; fired at 300 events, resolved at 400",
        "    why: injected",
        "  label drift in n: __label__/chi2; fired at 500 events, still firing",
        "    why: not something the stream injected (unexpected)",
    ]


def test_alert_kinds() -> None:
    """Error stream, label drift, fairness, quality and feature rows get their kinds."""
    assert alert_kind(ERROR_COLUMN, "adwin") == "concept drift"
    assert alert_kind(LABEL_COLUMN, "psi") == "label drift"
    assert alert_kind("tpr_gap", "fairness") == "fairness"
    assert alert_kind("income", "missing") == "data quality"
    assert alert_kind("income", "psi") == "feature drift"
    assert alert_kind("__dataset__", "share") == "dataset drift"


def test_summary_without_alerts_says_so() -> None:
    """A run where nothing fired ends with a line saying so."""
    view = TerminalView(io.StringIO())
    view(_batch(10))
    assert view.summary()[-1] == "no alert fired"


@pytest.mark.slow
def test_run_view_prints_windows_transitions_and_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`run --view` on a recorded file prints window lines, the firing and a closing summary."""
    stream = DemoStream(feature_shift_at=8_000, prediction_shift_at=10**9, concept_shift_at=10**9)
    events = tmp_path / "events.jsonl"
    with events.open("w", encoding="utf-8") as file:
        for _ in range(8):
            for event in stream.next_batch(2_000).events():
                file.write(json.dumps(event) + "\n")
    config = tmp_path / "driftd.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": "credit-risk",
                "source": {"type": "file", "path": str(events), "batch_size": 1_000},
                "schema": {"segment_by": ["features.region"], "categorical": []},
                "reference": {"warmup_events": 6_000},
                "windows": {"size_events": 1_000, "min_samples": 500},
                "checkpoint": {"store": "none"},
                "metrics": {"host": "127.0.0.1", "port": 0},
                "logging": {"level": "error", "format": "json"},
            }
        )
    )
    assert main(["run", "-c", str(config), "--view"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert any(line.split()[2:4] == ["window", "west"] for line in out if len(line.split()) > 3)
    firing = [line for line in out if " FIRING " in line]
    assert firing and all("/west/" in line for line in firing), firing
    assert "driftd: 16,000 events" in "\n".join(out)
    assert "alerts that fired:" in out
    assert any(line.startswith("  feature drift in west: ") for line in out)
