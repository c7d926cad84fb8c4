"""`driftd demo`: its port handling and its output as a newcomer meets it."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest
import structlog

from monitor.cli import main
from monitor.cli_demo import WHY
from monitor.emit.terminal import KINDS


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
