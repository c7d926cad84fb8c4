"""The text report: windows with something to show in full, the quiet ones counted."""

from __future__ import annotations

from monitor.backtest.result import (
    AlertSpan,
    BacktestResult,
    Counts,
    Quality,
    TransitionRow,
    WindowRow,
)
from monitor.backtest.table import breaches, render_text

T0 = 1_795_000_000.0


def _window(index: int, segment: str, psi: float, *, verdict: str = "clear") -> WindowRow:
    return WindowRow(
        "window",
        segment,
        index,
        T0 + index,
        1_000,
        scores={"psi": {"income": psi, "age": 0.001}, "samples": {"__window__": 1_000.0}},
        thresholds={"psi": {"income": 0.01, "age": 0.01}, "samples": {"__window__": 500.0}},
        verdicts={"psi": {"income": verdict, "age": "clear"}, "samples": {"__window__": "clear"}},  # type: ignore[dict-item]
        missing_rate={"income": 0.0},
    )


def _result(windows: list[WindowRow], *, resolved: bool) -> BacktestResult:
    fired = TransitionRow(
        "k/west/income/psi", "west", "income", "psi", "firing", T0 + 150, 0.5, 0.01
    )
    transitions = [fired]
    if resolved:
        transitions.append(
            TransitionRow(
                "k/west/income/psi", "west", "income", "psi", "resolved", T0 + 160, 0.001, 0.01
            )
        )
    return BacktestResult(
        model="m",
        reference_version="abc",
        config={"window_size_events": 1_000, "warmup_events": 3_000},
        counts=Counts(200_000, 199_990, {"invalid_json": 10}, 0, 0, len(windows), 0, 0),
        windows=tuple(windows),
        performance=(),
        transitions=tuple(transitions),
        alerts=(
            AlertSpan(
                "k/west/income/psi",
                "west",
                "income",
                "psi",
                T0 + 150,
                T0 + 160 if resolved else None,
                0.7,
            ),
        ),
        quality=Quality({}, {}, {}, {"invalid_json": 10}, {"invalid_json": "line 1: bad"}),
        distributions=(),
    )


def test_quiet_windows_are_counted_per_segment_and_shown_with_all_windows() -> None:
    """Of 200 windows only those over threshold or with a transition get a line."""
    windows = [_window(i, "north", 0.001) for i in range(100)]
    windows += [
        _window(i, "west", 0.5 if i >= 150 else 0.001, verdict="breach" if i >= 150 else "clear")
        for i in range(100, 200)
    ]
    result = _result(windows, resolved=False)
    text = render_text(result)
    lines = text.splitlines()
    shown = [line for line in lines if line.startswith("  west ")]
    assert len(shown) == 50
    assert "psi:income=0.5 (50.0x)" in shown[0] and "FIRING income/psi" in shown[0]
    assert "with nothing over threshold and no transition: north 100, west 50" in text
    assert "Would have paged: 1 alert (1 still firing at the end)" in text
    assert "still firing at the end" in text
    assert "invalid_json: 10 (e.g. line 1: bad)" in text
    assert (
        len(render_text(result, all_windows=True).splitlines()) == len(lines) + 150 - 1
    )  # no quiet line


def test_a_resolved_alert_shows_its_duration() -> None:
    """A resolved alert lists when it fired, when it resolved and for how long."""
    text = render_text(_result([_window(150, "west", 0.5, verdict="breach")], resolved=True))
    assert "2026-11-18 11:09:10  2026-11-18 11:09:20  10 s" in text


def test_breaches_rank_columns_by_how_far_past_the_threshold() -> None:
    """One entry per column at its worst method; too few samples counts as threshold/score."""
    window = WindowRow(
        "window",
        "s",
        0,
        T0,
        100,
        scores={"psi": {"a": 0.02, "b": 0.5}, "ks": {"a": 0.3}, "samples": {"__window__": 100.0}},
        thresholds={
            "psi": {"a": 0.01, "b": 0.01},
            "ks": {"a": 0.05},
            "samples": {"__window__": 500.0},
        },
        verdicts={
            "psi": {"a": "breach", "b": "severe"},
            "ks": {"a": "breach"},
            "samples": {"__window__": "breach"},
        },
        missing_rate={},
    )
    assert [(m, c, round(r, 3)) for r, m, c, _ in breaches(window)] == [
        ("psi", "b", 50.0),
        ("ks", "a", 6.0),
        ("samples", "__window__", 5.0),
    ]
