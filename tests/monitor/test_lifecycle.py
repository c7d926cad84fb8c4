"""The daemon process: graceful SIGTERM, forced second signal, live HTTP endpoints."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(tmp_path: Path) -> tuple[subprocess.Popen[str], int]:
    port = _free_port()
    config = tmp_path / "driftd.yaml"
    config.write_text(
        "model: credit-risk\n"
        "source: {type: demo, batch_size: 2000}\n"
        "schema: {segment_by: [features.region]}\n"
        "reference: {warmup_events: 5000}\n"
        "windows: {size_events: 2000, min_samples: 200}\n"
        f"metrics: {{host: 127.0.0.1, port: {port}}}\n"
        "logging: {format: json}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "run", "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
            if b"driftd_windows_closed_total" in body:
                return proc, port
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"daemon did not serve metrics: {proc.communicate()[1][-2000:]}")


def test_sigterm_finishes_the_batch_and_exits_zero(tmp_path: Path) -> None:
    """SIGTERM while consuming: the daemon stops cleanly with exit code 0 within seconds."""
    proc, port = _start(tmp_path)
    health = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
    ready = urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2)
    assert health.status == 200 and ready.status == 200
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
    assert "shutdown_requested" in err and "daemon_stopped" in err


def test_second_signal_forces_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first signal requests a graceful stop; a second one exits at once with code 1."""
    from monitor import app as app_module
    from monitor.app import Daemon, make_results
    from monitor.config import Settings
    from monitor.pipeline import Pipeline
    from monitor.sources.demo_source import DemoSource

    exits: list[int] = []
    monkeypatch.setattr(app_module, "os", type("FakeOs", (), {"_exit": staticmethod(exits.append)}))
    settings = Settings(reference={"warmup_events": 100})  # type: ignore[arg-type]
    daemon = Daemon(
        settings,
        DemoSource(100, total_events=100),
        Pipeline(settings, None, make_results(settings)),
        serve_metrics=False,
    )
    daemon.handle_exit(signal.SIGTERM, None)
    assert daemon.should_exit.is_set() and exits == []
    daemon.handle_exit(signal.SIGTERM, None)
    assert exits == [1] and daemon.force_exit
