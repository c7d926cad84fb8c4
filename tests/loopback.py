"""Start a Prometheus-family server (Prometheus, Alertmanager) on a free loopback port."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

START_ATTEMPTS = 3


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def ready(url: str) -> bool:
    """Whether ``<url>/-/ready`` answers 200."""
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as r:
            return int(r.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def _tail(log_path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@contextmanager
def loopback_process(
    name: str, argv: Callable[[int], list[str]], log_path: Path, ready_timeout_s: float
) -> Iterator[str]:
    """Run ``argv(port)`` until ``/-/ready``; yield its URL; stop it on exit.

    A process that exits before it is ready most likely lost its free port to another
    process, so it is started again on a new port (``START_ATTEMPTS`` times).
    """
    for attempt in range(1, START_ATTEMPTS + 1):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                argv(port), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            deadline = time.monotonic() + ready_timeout_s
            while proc.poll() is None and not ready(url) and time.monotonic() < deadline:
                time.sleep(0.05)
            if proc.poll() is None and ready(url):
                yield url
                return
            if proc.poll() is not None and attempt < START_ATTEMPTS:
                continue
            pytest.fail(
                f"{name} did not become ready at {url} "
                f"(exit code {proc.poll()}):\n{_tail(log_path)}"
            )
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
