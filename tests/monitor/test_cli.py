"""The command line: config checking, exit codes, and the demo's real work."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.cli import LABELS_NOT_READ, main
from monitor.errors import SourceError
from monitor.ingest.file_source import FileSource
from tests.monitor.cli_helpers import driftd_lines, write_config


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No DRIFTD_ variable of the caller leaks in; signal handlers a run installs are undone."""
    for name in [n for n in os.environ if n.upper().startswith("DRIFTD_")]:
        monkeypatch.delenv(name)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


def _env(**extra: str) -> dict[str, str]:
    """The environment of a driftd subprocess: this one's, without DRIFTD_ variables."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("DRIFTD_")}
    return env | extra


def _driftd(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Any:
    """Run the real ``driftd`` console script; the completed process."""
    return subprocess.run(
        [str(Path(sys.executable).with_name("driftd")), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env if env is not None else _env(),
        input=stdin,
    )


def _events(path: Path, n: int, *, ts: float | None = None, garbage: int = 0) -> Path:
    """``n`` inference events (current timestamps unless ``ts``), then ``garbage`` bad lines."""
    now = time.time()
    with path.open("w", encoding="utf-8") as out:
        for i in range(n):
            event = {
                "id": f"e{i}",
                "ts": now - n + i if ts is None else ts,
                "model_version": "v1",
                "features": {"x": float(i % 97), "c": "ab"[i % 2]},
                "prediction": (i % 10) / 10,
            }
            out.write(json.dumps(event) + "\n")
        out.write("not json\n" * garbage)
    return path


def _file_config(tmp_path: Path, events: Path, **sections: Any) -> Path:
    """A config replaying ``events`` with a small warm-up, quiet logs and any free port."""
    config: dict[str, Any] = {
        "source": {"type": "file", "path": str(events), "batch_size": 100},
        "reference": {"warmup_events": 400},
        "windows": {"size_events": 200, "min_samples": 100},
        "checkpoint": {"store": "none"},
        "metrics": {"host": "127.0.0.1", "port": 0},
        "logging": {"level": "error", "format": "json"},
    }
    config.update(sections)
    return write_config(tmp_path, config)


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


@pytest.mark.slow
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


def test_run_with_a_missing_source_file_exits_2_in_one_line(tmp_path: Path) -> None:
    """`run` of a file source whose path does not exist: exit 2, one line naming key and file."""
    missing = tmp_path / "events.jsonl"
    proc = _driftd("run", "-c", str(_file_config(tmp_path, missing)))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"driftd: config error: source.path: {missing}: no such file"
    ]


def test_run_with_a_missing_reference_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`run` with reference.path pointing nowhere exits 2 naming reference.path and the file."""
    missing = tmp_path / "reference.json"
    events = _events(tmp_path / "events.jsonl", 10)
    config = _file_config(tmp_path, events, reference={"path": str(missing)})
    assert main(["run", "-c", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        f"driftd: config error: reference.path: {missing}: no such file"
    ]


def test_reference_build_of_a_missing_input_exits_2_in_one_line(tmp_path: Path) -> None:
    """`reference build -i` of a missing file: exit 2, one line naming --input and the file."""
    missing = tmp_path / "train.csv"
    proc = _driftd("reference", "build", "-i", str(missing), "-o", str(tmp_path / "r.json"))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"driftd reference build: --input {missing}: no such file"
    ]


def test_busy_metrics_port_exits_2_naming_the_key_and_address(tmp_path: Path) -> None:
    """A metrics.port another process listens on: exit 2 naming metrics.port, no traceback."""
    events = _events(tmp_path / "events.jsonl", 10)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = _file_config(tmp_path, events, metrics={"host": "127.0.0.1", "port": port})
        proc = _driftd("run", "-c", str(config))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = driftd_lines(proc.stderr)
    assert line.startswith(f"driftd: config error: metrics.port: cannot listen on 127.0.0.1:{port}")


def test_check_config_verifies_every_file_the_config_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """check-config exits 2 for a missing reference, source file and TLS file, each by key."""
    config = tmp_path / "driftd.yaml"
    config.write_text(
        f"reference: {{path: {tmp_path / 'reference.json'}}}\n"
        f"source: {{type: file, path: {tmp_path / 'events.jsonl'}}}\n"
        f"kafka: {{security_protocol: SSL, ssl_cafile: {tmp_path / 'ca.pem'}}}\n"
    )
    assert main(["check-config", "-c", str(config)]) == 2
    captured = capsys.readouterr()
    assert "config ok" not in captured.err and captured.out == ""
    assert captured.err.strip().splitlines() == [
        f"driftd: config error: reference.path: {tmp_path / 'reference.json'}: no such file",
        f"driftd: config error: source.path: {tmp_path / 'events.jsonl'}: no such file",
        f"driftd: config error: kafka.ssl_cafile: {tmp_path / 'ca.pem'}: no such file",
    ]


def test_check_config_loads_the_reference_profile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A reference.path that exists but is no profile fails check-config; a real one passes."""
    reference = tmp_path / "reference.json"
    reference.write_text("{not json")
    config = tmp_path / "driftd.yaml"
    config.write_text(f"reference: {{path: {reference}}}\n")
    assert main(["check-config", "-c", str(config)]) == 2
    assert "reference.path: " in capsys.readouterr().err
    train = tmp_path / "train.csv"
    train.write_text("x\n" + "".join(f"{i % 13}\n" for i in range(200)))
    assert main(["reference", "build", "-i", str(train), "-o", str(reference)]) == 0
    assert main(["check-config", "-c", str(config)]) == 0
    assert "driftd: config ok" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["run", "check-config"])
def test_no_config_and_no_environment_exits_2(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without -c and without DRIFTD_ variables there is nothing to run: exit 2 saying so."""
    assert main([command]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "-c driftd.yaml" in line and "DRIFTD_*" in line and "docs/configuration.md" in line


def test_environment_alone_is_a_configuration(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """DRIFTD_ variables without -c configure driftd on their own."""
    monkeypatch.setenv("DRIFTD_MODEL", "fraud")
    assert main(["check-config"]) == 0
    assert '"model": "fraud"' in capsys.readouterr().out


def test_help_says_where_the_defaults_are(capsys: pytest.CaptureFixture[str]) -> None:
    """`run --help` and `check-config --help` point to docs/configuration.md; demo shows its own."""
    for command in ("run", "check-config", "demo"):
        with pytest.raises(SystemExit) as exited:
            main([command, "--help"])
        assert exited.value.code == 0
        out = " ".join(capsys.readouterr().out.split())
        if command == "demo":
            assert "(default: 180000)" in out
        else:
            assert "docs/configuration.md" in out and "DRIFTD_" in out


def test_unknown_driftd_variable_exits_2_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A DRIFTD_ variable with a typo in its section stops check-config and run with exit 2."""
    config = _file_config(tmp_path, _events(tmp_path / "events.jsonl", 10))
    monkeypatch.setenv("DRIFTD_WINDOW__SIZE_EVENTS", "10")
    for command in ("check-config", "run"):
        assert main([command, "-c", str(config)]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert "unknown setting DRIFTD_WINDOW__SIZE_EVENTS" in line
        assert "did you mean DRIFTD_WINDOWS__SIZE_EVENTS?" in line


def test_file_run_prints_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file run ends with events read, accepted, rejected by reason, windows and alerts."""
    events = _events(tmp_path / "events.jsonl", 1_200, garbage=2)
    assert main(["run", "-c", str(_file_config(tmp_path, events))]) == 0
    lines = driftd_lines(capsys.readouterr().err)
    assert lines[0] == (
        "driftd: file:events.jsonl: 1,202 events read, 1,200 accepted, 2 rejected "
        "(invalid_json: 2); 4 windows closed; 0 alert transitions (0 firing, 0 resolved)"
    )
    assert lines[1] == f"driftd: rejected lines written to {events}.dead-letter.jsonl"
    assert len(lines) == 2


def test_file_run_that_accepts_nothing_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A replay with a wall-clock window refusing every event: summary and exit 1."""
    events = _events(tmp_path / "events.jsonl", 50, ts=1_000_000_000.0)
    # A file replay applies the window only when the config sets it.
    config = _file_config(tmp_path, events, schema={"max_past_seconds": 86_400})
    assert main(["run", "-c", str(config)]) == 1
    err = capsys.readouterr().err
    assert "50 events read, 0 accepted, 50 rejected (timestamp_out_of_range: 50)" in err
    assert "schema.max_past_seconds" in err
    assert "no event was accepted, so nothing was monitored (exit 1)" in err


def test_file_replay_of_old_events_needs_no_wall_clock_tuning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Years-old events in a file replay are history, accepted without a window setting."""
    events = _events(tmp_path / "events.jsonl", 50, ts=1_000_000_000.0)
    assert main(["run", "-c", str(_file_config(tmp_path, events))]) == 0
    assert "50 events read, 50 accepted, 0 rejected" in capsys.readouterr().err


def test_stdin_run_configured_by_environment_prints_its_summary() -> None:
    """`run` of stdin from DRIFTD_ variables alone: the summary on stderr, exit 1 on garbage."""
    env = _env(
        DRIFTD_SOURCE__TYPE="stdin",
        DRIFTD_METRICS__PORT="0",
        DRIFTD_LOGGING__LEVEL="error",
        DRIFTD_CHECKPOINT__STORE="none",
    )
    proc = _driftd("run", env=env, stdin="not json\n[1]\n")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert driftd_lines(proc.stderr) == [
        "driftd: stdin: 2 events read, 0 accepted, 2 rejected (invalid_json: 1, "
        "not_an_object: 1); 0 windows closed; 0 alert transitions (0 firing, 0 resolved)",
        "driftd: no event was accepted, so nothing was monitored (exit 1)",
    ]


def test_file_source_of_a_missing_file_is_a_source_error(tmp_path: Path) -> None:
    """FileSource refuses a missing path with SourceError naming it, not a bare OSError."""
    with pytest.raises(SourceError, match="no such file") as info:
        FileSource(tmp_path / "gone.jsonl", batch_size=10)
    assert str(tmp_path / "gone.jsonl") in info.value.message
    with pytest.raises(SourceError, match="cannot open"):
        FileSource(tmp_path, batch_size=10)


def test_file_run_with_labels_enabled_says_it_reads_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """labels.enabled on a file run is not silent: the summary says no label was read."""
    events = _events(tmp_path / "events.jsonl", 600)
    config = _file_config(tmp_path, events, labels={"enabled": True})
    assert main(["run", "-c", str(config)]) == 0
    lines = driftd_lines(capsys.readouterr().err)
    assert LABELS_NOT_READ in lines
    assert "driftd backtest --events FILE --labels FILE" in LABELS_NOT_READ
