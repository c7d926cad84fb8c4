"""The daemon process: graceful SIGTERM, forced second signal, live HTTP endpoints."""

from __future__ import annotations

import gc
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import weakref
from pathlib import Path
from typing import Any

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


def _demo_daemon(events: int) -> Any:
    from monitor.config import Settings
    from monitor.wiring import build_daemon

    settings = Settings(
        reference={"warmup_events": 100},  # type: ignore[arg-type]
        source={"batch_size": 100},  # type: ignore[arg-type]
    )
    return build_daemon(
        settings, source_kind="demo", serve_metrics=False, demo_events=events, demo_rate=0
    )


def test_second_signal_forces_exit_without_saving() -> None:
    """A second signal sets force_exit: run returns 1 and nothing more is committed."""
    daemon = _demo_daemon(100)
    daemon.handle_exit(signal.SIGTERM, None)
    assert daemon.should_exit.is_set() and not daemon.force_exit
    daemon.handle_exit(signal.SIGINT, None)
    assert daemon.force_exit
    assert daemon.run() == 1
    assert daemon.stats.batches == 0 and daemon.stats.commits == 0


def test_shutdown_closes_every_output_even_after_one_fails() -> None:
    """Outputs beside the pipeline are closed at shutdown; one that raises stops none."""
    daemon = _demo_daemon(100)
    closed: list[str] = []

    def failing() -> None:
        closed.append("first")
        raise OSError("disk gone")

    daemon.closers.extend([failing, lambda: closed.append("second")])
    assert daemon.run() == 0
    assert closed == ["first", "second"]


def test_run_captures_the_signal_handlers_and_restores_them() -> None:
    """While run() runs, SIGTERM and SIGINT go to the daemon; afterwards the old ones are back."""
    seen: list[Any] = []

    def previous(sig: int, frame: object) -> None:  # pragma: no cover - never called
        raise AssertionError("the previous handler ran")

    old_term = signal.signal(signal.SIGTERM, previous)
    old_int = signal.getsignal(signal.SIGINT)
    try:
        daemon = _demo_daemon(300)
        daemon.on_batch = lambda _outcome: seen.append(signal.getsignal(signal.SIGTERM))
        assert daemon.run() == 0
        assert seen and all(h == daemon.handle_exit for h in seen)
        assert signal.getsignal(signal.SIGTERM) is previous
        assert signal.getsignal(signal.SIGINT) is old_int
    finally:
        signal.signal(signal.SIGTERM, old_term)


def test_readiness_is_off_only_while_starting_and_stopping() -> None:
    """Not ready before startup, ready while running, not ready once a stop is asked."""
    daemon = _demo_daemon(100)
    assert daemon.readiness() == (False, "starting")
    daemon.started = True
    assert daemon.readiness() == (True, "ok")
    daemon.handle_exit(signal.SIGTERM, None)
    assert daemon.readiness() == (False, "shutting down")


def test_the_collector_is_held_from_each_poll_and_back_once_the_batch_is_let_go(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each turn holds the cyclic collector over poll and handle; after run it is on again."""
    daemon = _demo_daemon(300)
    read, seen = daemon.source.poll, []
    batches: list[weakref.ref[Any]] = []

    class Watched(list):  # type: ignore[type-arg]  # a batch that can be watched dying
        pass

    def poll(timeout_s: float) -> Any:
        seen.append(gc.isenabled())
        batch = Watched(read(timeout_s))
        batches.append(weakref.ref(batch))
        return batch

    monkeypatch.setattr(daemon.source, "poll", poll)
    daemon.on_batch = lambda _outcome: seen.append(gc.isenabled())
    assert gc.isenabled()
    assert daemon.step(0.0) == 100 and gc.isenabled()
    assert seen == [False, False] and batches[0]() is None
    assert daemon.run() == 0 and gc.isenabled()
    assert not any(seen) and daemon.stats.batches == 3

    gc.disable()  # a library user's choice is kept
    try:
        assert _demo_daemon(100).step(0.0) == 100 and not gc.isenabled()
    finally:
        gc.enable()
