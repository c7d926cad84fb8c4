"""`driftd status`: the table of a live daemon's state, its JSON, and its one-line errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import structlog
from prometheus_client import CollectorRegistry

from monitor.cli import main
from monitor.cli_status import OK_ROWS_SHOWN, state_url
from monitor.config import DetectorsConfig
from monitor.emit.http import Heartbeat, LoopHealth, MetricsServer
from monitor.emit.state_api import LiveState
from monitor.engine.decision import DecisionBook
from monitor.engine.outcome import BatchOutcome
from monitor.engine.results import LatestResults, WindowResults

DRIFTD = str(Path(sys.executable).with_name("driftd"))


@pytest.fixture(autouse=True)
def _quiet_structlog() -> Iterator[None]:
    """Drop log lines (the server's would mix into the captured stdout), then restore."""
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())
    yield
    structlog.reset_defaults()


def _window(psi: list[float], ts: float) -> WindowResults:
    """One window of segment ``eu`` with one psi score per column c00, c01, ..."""
    f = len(psi)
    return WindowResults(
        model="m",
        segments=("eu",),
        columns=tuple(f"c{j:02d}" for j in range(f)),
        window_end_ts=np.array([ts]),
        rows=np.array([1_000], dtype=np.int64),
        n=np.full((1, f), 1_000, dtype=np.int64),
        missing_rate=np.zeros((1, f)),
        scores={"psi": np.asarray(psi, dtype=np.float64).reshape(1, f)},
        p_values={},
    )


@pytest.fixture
def daemon_url() -> Iterator[str]:
    """A server whose state has c00 firing, c01 in the band and 14 ok columns (psi 0.25/0.1)."""
    results, book = LatestResults("m"), DecisionBook("m", DetectorsConfig(consecutive=1), 100)
    state = LiveState(results, book)
    ok = [0.001 * (j + 1) for j in range(14)]
    for ts in (1.0, 2.0):
        window = _window([0.5, 0.15, *ok], ts)
        results.record(window)
        transitions = book.observe(window)
        state(
            BatchOutcome(
                records=1, accepted=1, rejected=[], results=window, transitions=transitions
            )
        )
    health = LoopHealth(Heartbeat(60.0))
    server = MetricsServer(
        CollectorRegistry(), "127.0.0.1", 0, health.alive, health.readiness, state=state.json_bytes
    )
    with server:
        yield server.url


def _table(out: str) -> list[list[str]]:
    """The rows of the printed table (after its header line), split into cells."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("STATE"))
    return [line.split() for line in lines[start + 1 :] if line and not line.startswith("(")]


def test_status_prints_firing_first_then_band_then_the_worst_ok_rows(
    daemon_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The table leads with the firing row, then the band, then the ok rows nearest threshold."""
    assert main(["status", "--url", daemon_url]) == 0
    out = capsys.readouterr().out
    assert "1 firing, 1 in the band, 14 ok" in out
    table = _table(out)
    assert [row[:3] for row in table[:2]] == [["firing", "eu", "c00"], ["band", "eu", "c01"]]
    ok = [row for row in table if row[0] == "ok"]
    assert len(ok) == OK_ROWS_SHOWN
    assert [row[2] for row in ok] == [f"c{j:02d}" for j in range(15, 15 - OK_ROWS_SHOWN, -1)]
    assert "(4 more ok rows; --all shows them)" in out


def test_status_all_shows_every_row(daemon_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """--all prints all 16 rows and no note of hidden ones."""
    assert main(["status", "--url", daemon_url, "--all"]) == 0
    out = capsys.readouterr().out
    assert len(_table(out)) == 16
    assert "more ok rows" not in out


def test_status_json_prints_the_document(
    daemon_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json prints the state document itself."""
    assert main(["status", "--url", daemon_url + "/", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["model"] == "m"
    assert {r["state"] for r in document["rows"]} == {"firing", "band", "ok"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_status_of_an_unreachable_daemon_exits_2_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Nothing listening: exit 2, one line naming --url and the address, no traceback."""
    url = f"http://127.0.0.1:{_free_port()}"
    assert main(["status", "--url", url]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"driftd: status: --url: cannot reach {url}/api/v1/state")


def test_status_of_a_server_without_the_state_api_exits_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A server that answers 404 (no state endpoint): exit 2 naming the HTTP status."""
    health = LoopHealth(Heartbeat(60.0))
    with MetricsServer(CollectorRegistry(), "127.0.0.1", 0, health.alive, health.readiness) as s:
        assert main(["status", "--url", s.url]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "answered HTTP 404" in err[0]


@pytest.mark.parametrize("url", ["127.0.0.1:9108", "ftp://host/x", "http://"])
def test_status_refuses_a_url_that_is_not_http(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A --url without http(s) scheme and host: exit 2, one line naming --url."""
    assert main(["status", "--url", url]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"driftd: status: --url: {url!r} is not an http:// or https:// URL"]


def test_state_url_appends_the_path_once() -> None:
    """The endpoint path is added to a base URL, and kept when already given."""
    assert state_url("http://h:1") == "http://h:1/api/v1/state"
    assert state_url("http://h:1/") == "http://h:1/api/v1/state"
    assert state_url("http://h:1/api/v1/state") == "http://h:1/api/v1/state"


@pytest.mark.slow
def test_demo_serve_keeps_serving_and_status_reads_it() -> None:
    """`demo --port 0 --serve` prints its port, serves on, `status` reads it, SIGTERM exits 0."""
    proc = subprocess.Popen(
        [DRIFTD, "demo", "--events", "80000", "--rate", "0", "--port", "0", "--serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("DRIFTD_")},
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "still serving" in line:
                break
        out = "".join(lines)
        assert "still serving" in out, out[-2000:]
        metrics_line = next(line for line in lines if line.startswith("metrics: "))
        url = metrics_line.split()[1].removesuffix("/metrics")
        assert not url.endswith(":0"), metrics_line
        status = subprocess.run(
            [DRIFTD, "status", "--url", url],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert status.returncode == 0, status.stderr
        table = _table(status.stdout)
        assert table[0][:3] == ["firing", "west", table[0][2]]
        firing = {tuple(row[1:4]) for row in table if row[0] == "firing"}
        assert ("west", "income", "psi") in firing
        assert not any(row[1] == "north" for row in table if row[0] == "firing")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()
