"""The command line: config checking, exit codes, and the demo's real work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from monitor.cli import main


def test_bad_config_exits_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown key and a bad value each fail check-config with exit 2 and their dotted key."""
    config = tmp_path / "driftd.yaml"
    config.write_text("windows:\n  sise_events: 10\nmetrics:\n  port: -1\n")
    assert main(["check-config", "-c", str(config)]) == 2
    err = capsys.readouterr().err
    assert "windows.sise_events" in err and "metrics.port" in err


def test_run_with_bad_config_exits_2(tmp_path: Path) -> None:
    """`driftd run` with a broken config exits 2 before starting anything."""
    config = tmp_path / "driftd.yaml"
    config.write_text("detectors:\n  psi: {threshold: 0.1, clear: 0.5}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "run", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "detectors.psi" in proc.stderr


def test_env_overrides_yaml_and_secrets_are_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """DRIFTD_ env vars override the file, and check-config never prints the password."""
    config = tmp_path / "driftd.yaml"
    config.write_text("kafka:\n  sasl_plain_password: hunter2\nwindows:\n  size_events: 100\n")
    monkeypatch.setenv("DRIFTD_WINDOWS__SIZE_EVENTS", "777")
    assert main(["check-config", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert '"size_events": 777' in out
    assert "hunter2" not in out


def test_demo_pages_only_the_drifting_segments(capsys: pytest.CaptureFixture[str]) -> None:
    """Feature drift pages for west only; south's concept shift pages through its labels only."""
    assert main(["demo", "--events", "130000", "--rate", "0", "--port", "0"]) == 0
    out = capsys.readouterr().out
    firing = [line for line in out.splitlines() if "FIRING" in line]
    assert firing, out[-2000:]
    assert not any("/north/" in line for line in firing)
    assert any("/west/income/" in line for line in firing)
    assert all(int(line.split()[0]) > 60_000 for line in firing)
    south = [line for line in firing if "/south/" in line]
    # The new concept shows in south's error stream (ADWIN) and in its label prior (label
    # drift), never in its features: those did not move.
    assert south and all(
        "/south/__error__/" in line or "/south/__label__/" in line for line in south
    )
    assert "/south/__error__/adwin" in south[0]
    assert all(int(line.split()[0]) > 90_000 for line in south)
