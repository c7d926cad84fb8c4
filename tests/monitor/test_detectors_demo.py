"""The demo command does real work: it finds the injected drift and only that."""

from __future__ import annotations

from monitor.cli import main
from monitor.detectors_demo import WindowReport, run_demo


def test_demo_flags_only_the_drifting_segment_after_the_shift() -> None:
    """West drifts after the feature shift; north and south stay below the PSI alert."""
    reports: list[WindowReport] = []
    run_demo(events=90_000, emit=reports.append)
    west_after = [r for r in reports if r.segment == "west" and r.events_seen > 70_000]
    others = [r for r in reports if r.segment != "west"]
    before = [r for r in reports if r.events_seen <= 60_000]
    assert west_after and all(r.psi_max > 0.25 for r in west_after)
    assert all({"income", "utilization"} <= set(r.ks_drifted) for r in west_after)
    assert others and all(r.psi_max < 0.1 and not r.ks_drifted for r in others)
    assert before and all(r.psi_max < 0.1 for r in before)


def test_demo_command_exits_zero(capsys) -> None:
    """`driftd demo` prints one line per segment window and exits 0."""
    assert main(["demo", "--events", "30000"]) == 0
    out = capsys.readouterr().out
    assert out.count("west") >= 2
