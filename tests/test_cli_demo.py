"""`driftd demo`: its port handling and its output as a newcomer meets it."""

from __future__ import annotations

import io
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import structlog

from monitor.cli import main
from monitor.cli_demo import WHY, build_demo_reference, demo_settings, explain
from monitor.emit.terminal import KINDS, TerminalView, alert_kind
from monitor.engine import embedding_window, multivariate_window, performance_estimate
from monitor.engine.labels.pair_quality import LABEL_COLUMN, NOISE_METHOD
from monitor.engine.outcome import BatchOutcome
from monitor.engine.results import WindowResults
from monitor.engine.segment_mix import MIX_COLUMN, MIX_METHOD, NEW_METHOD
from monitor.ingest.demo_source import DemoSource
from monitor.ingest.demo_stream import EPISODE_SEGMENT, SHOWCASE
from monitor.wiring import build_daemon

NEVER = 10**9


@pytest.fixture(autouse=True)
def _default_structlog() -> Iterator[None]:
    """Log with structlog's defaults, whatever an earlier test configured."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


def test_demo_on_a_busy_port_exits_2_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A port another process holds: exit 2 with one line naming --port, no traceback."""
    for name in [k for k in os.environ if k.startswith("DRIFTD_")]:
        monkeypatch.delenv(name)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["demo", "--events", "1000", "--port", str(port)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1, captured.err
    assert err[0].startswith(f"driftd: config error: --port: cannot listen on 127.0.0.1:{port}")
    assert "Traceback" not in captured.err + captured.out


def test_demo_never_builds_over_a_reference_the_environment_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """DRIFTD_REFERENCE__PATH: exit 2 in one line naming reference.path; no file is written."""
    target = tmp_path / "reference.json"
    monkeypatch.setenv("DRIFTD_REFERENCE__PATH", str(target))
    assert main(["demo", "--events", "10", "--port", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "driftd: config error: reference.path: the demo builds its own reference; "
        "unset DRIFTD_REFERENCE__PATH"
    ]
    assert not target.exists()


@pytest.mark.parametrize("port", ["-1", "70000"])
def test_demo_refuses_a_port_out_of_range(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    """--port outside 0..65535: exit 2, one line naming --port."""
    assert main(["demo", "--port", port]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"driftd: config error: --port: {port} is not a port"
    ]


def test_every_explanation_names_a_known_kind() -> None:
    """The demo's explanations are keyed by kinds the terminal view groups by."""
    assert {kind for _, kind in WHY} <= set(KINDS)


def test_the_side_methods_have_kinds_of_their_own() -> None:
    """Each side method's alerts (by the engine's method names) are a kind of their own."""
    kinds = {
        alert_kind(multivariate_window.COLUMN, multivariate_window.METHOD),
        alert_kind("embedding", embedding_window.METHOD),
        alert_kind(performance_estimate.PREDICTION_COLUMN, performance_estimate.METHOD),
        alert_kind(LABEL_COLUMN, NOISE_METHOD),
        alert_kind(MIX_COLUMN, MIX_METHOD),
        alert_kind(MIX_COLUMN, NEW_METHOD),
    }
    assert kinds == {
        "multivariate drift",
        "embedding drift",
        "estimated performance",
        "label noise",
        "segment mix",
        "new segment",
    }
    assert kinds <= set(KINDS)
    assert alert_kind(LABEL_COLUMN, "chi2") == "label drift"


def _rows(column: str, method: str, scores: list[float], thresholds: list[float]) -> WindowResults:
    """One-column window rows of north and south with the given scores and thresholds."""
    k = len(scores)
    return WindowResults(
        model="m",
        segments=("north", "south")[:k],
        columns=(column,),
        window_end_ts=np.zeros(k),
        rows=np.full(k, 5_000, dtype=np.int64),
        n=np.full((k, 1), 5_000, dtype=np.int64),
        missing_rate=np.zeros((k, 1)),
        scores={method: np.asarray(scores).reshape(k, 1)},
        p_values={},
        thresholds={method: np.asarray(thresholds).reshape(k, 1)},
    )


def test_window_lines_show_a_breaching_multivariate_test() -> None:
    """A multivariate row past its threshold leads its segment's line; a quiet one is left out."""
    out = io.StringIO()
    joint = _rows(multivariate_window.COLUMN, multivariate_window.METHOD, [0.99, 0.26], [0.29] * 2)
    features = _rows("age", "ks", [0.01, 0.02], [0.03, 0.03])
    TerminalView(out)(
        BatchOutcome(
            records=10, accepted=10, rejected=[], results=features, transitions=[], extra=[joint]
        )
    )
    north, south = out.getvalue().splitlines()
    assert "window north" in north and "multivariate:__multivariate__=0.99 (3.4x)  ks:age" in north
    assert "window south" in south and "multivariate" not in south


def test_north_episodes_page_by_their_own_methods_only(tmp_path: Path) -> None:
    """North's two episodes alone page north's multivariate drift and label noise, no more."""
    settings = demo_settings(0, tmp_path / "reference.json")
    assert build_demo_reference(settings, tmp_path, events=10_000) == []
    options = {
        **SHOWCASE,
        **{"feature_shift_at": NEVER, "prediction_shift_at": NEVER, "concept_shift_at": NEVER},
        **{"correlation_flip_at": 12_000, "label_noise_at": 12_000, "label_noise_end": None},
    }
    source = DemoSource(2_000, total_events=36_000, labels=True, stream_options=options)
    fired: set[tuple[str, str]] = set()

    def watch(outcome: BatchOutcome) -> None:
        fired.update(
            (t.segment, alert_kind(t.column, t.method))
            for t in outcome.transitions
            if t.current == "firing"
        )

    daemon = build_daemon(
        settings, source_kind="demo", source=source, on_batch=watch, serve_metrics=False
    )
    assert daemon.run() == 0
    assert fired == {(EPISODE_SEGMENT, "multivariate drift"), (EPISODE_SEGMENT, "label noise")}
    assert all(explain(segment, kind) is not None for segment, kind in fired)


@pytest.mark.slow
def test_demo_output_leads_with_windows_and_transitions(capsys: pytest.CaptureFixture[str]) -> None:
    """Port 0 prints the bound port; label lines only for ADWIN detections; a summary explains."""
    assert main(["demo", "--events", "80000", "--rate", "0", "--port", "0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    address = next(line for line in lines if line.startswith("metrics: "))
    port = int(address.split()[1].removesuffix("/metrics").rsplit(":", 1)[1])
    assert port > 0
    kinds = [line.split()[2] for line in lines if line[:9].strip().isdigit()]
    assert set(kinds) <= {"window", "labels", "FIRING", "RESOLVED"}
    assert kinds.count("labels") == 1  # west's one ADWIN detection before 80,000
    assert kinds.count("window") > kinds.count("labels")
    assert not any("detections=0" in line for line in lines)
    summary = lines[lines.index("alerts that fired:") :]
    assert any(line.startswith("  feature drift in west: ") for line in summary)
    assert any(line.startswith("  concept drift in west: __error__/adwin;") for line in summary)
    whys = [line for line in summary if line.startswith("    why: ")]
    assert whys and not any("unexpected" in line for line in whys)
