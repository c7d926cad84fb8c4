"""A real Prometheus Alertmanager for driftd's alerting tests, plus a local HTTP receiver.

``alertmanager_server(webhook_url)`` starts Alertmanager on a free 127.0.0.1 port with
``deploy/alertmanager/alertmanager.yml.tmpl`` rendered for ``webhook_url``, clustering
disabled and its storage in a temporary directory; it waits for ``/-/ready``, yields
an :class:`Alertmanager` handle and stops the process on exit.

The binary is ``$DRIFTDTEST_ALERTMANAGER_BIN``, else ``prometheus-alertmanager`` (Debian's
package, installed by ``scripts/install-test-services``) or ``alertmanager`` on PATH.
When there is none the tests are skipped, except under ``make test`` or CI, where a
missing binary fails them (see ``tests/required_tools.py``).

``http_receiver()`` yields a :class:`Receiver`: a ``ThreadingHTTPServer`` on
127.0.0.1 that records every request and answers ``receiver.status`` (200 unless a
test changes it). It is Alertmanager's webhook target, and also stands in for a
misbehaving Alertmanager (400, 503) in the sink's error-handling tests.
"""

from __future__ import annotations

import json
import os
import shutil
import string
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.loopback import loopback_process
from tests.required_tools import CI_ENV, REQUIRE_ENV, missing_tool

__all__ = [
    "BIN_ENV",
    "CANDIDATES",
    "CI_ENV",
    "CONFIG_TEMPLATE",
    "DEBIAN_BIN",
    "REQUIRE_ENV",
    "Alertmanager",
    "Receiver",
    "Request",
    "alertmanager_server",
    "find_alertmanager",
    "http_receiver",
    "wait_for",
]

BIN_ENV = "DRIFTDTEST_ALERTMANAGER_BIN"
"""Environment variable naming the Alertmanager binary to use."""

CONFIG_TEMPLATE = (
    Path(__file__).resolve().parent.parent / "deploy" / "alertmanager" / "alertmanager.yml.tmpl"
)
CANDIDATES = ("prometheus-alertmanager", "alertmanager")
"""Binary names looked up on PATH, in order."""
DEBIAN_BIN = "/usr/bin/prometheus-alertmanager"
"""Where Debian's prometheus-alertmanager package installs the binary."""
_READY_TIMEOUT_S = 20.0


def find_alertmanager() -> str:
    """The Alertmanager binary's path; skips the test if absent (fails under make test or CI)."""
    explicit = os.environ.get(BIN_ENV)
    if explicit:
        if os.access(explicit, os.X_OK):
            return explicit
        pytest.fail(f"${BIN_ENV}={explicit} is not an executable file")
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    if os.access(DEBIAN_BIN, os.X_OK):
        return DEBIAN_BIN
    missing_tool(
        "Alertmanager binary not found (install Debian's prometheus-alertmanager, "
        f"or set ${BIN_ENV})"
    )


def wait_for(
    predicate: Callable[[], Any], *, timeout_s: float, interval_s: float = 0.1, what: str
) -> Any:
    """Poll ``predicate`` until it returns something truthy, and return that; fail on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(interval_s)


@dataclass(frozen=True)
class Alertmanager:
    """A running Alertmanager: its base URL and its log file."""

    url: str
    log_path: Path

    def alerts(self, **filters: str) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts`` (active, unresolved alerts), filtered by exact label values."""
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as r:
            alerts: list[dict[str, Any]] = json.load(r)
        return [a for a in alerts if all(a["labels"].get(k) == v for k, v in filters.items())]

    def log_tail(self, lines: int = 40) -> str:
        """The end of Alertmanager's log, for failure messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@contextmanager
def alertmanager_server(webhook_url: str) -> Iterator[Alertmanager]:
    """Run Alertmanager on loopback, notifying ``webhook_url``, for the ``with`` block."""
    binary = find_alertmanager()
    template = string.Template(CONFIG_TEMPLATE.read_text())
    with tempfile.TemporaryDirectory(prefix="driftd-alertmanager-") as tmp:
        root = Path(tmp)
        config = root / "alertmanager.yml"
        config.write_text(template.substitute(DRIFTD_WEBHOOK_URL=webhook_url))
        log_path = root / "alertmanager.log"

        def argv(port: int) -> list[str]:
            return [
                binary,
                f"--config.file={config}",
                f"--storage.path={root / 'storage'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ]

        with loopback_process("Alertmanager", argv, log_path, _READY_TIMEOUT_S) as url:
            handle = Alertmanager(url=url, log_path=log_path)
            yield handle


@dataclass(frozen=True)
class Request:
    """One request the receiver recorded."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass
class Receiver:
    """A local HTTP server that records requests and answers ``status`` with ``reply``."""

    url: str
    status: int = 200
    reply: bytes = b"{}"
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self) -> list[Request]:
        """A snapshot of the requests so far."""
        with self.lock:
            return list(self.requests)

    def notifications(self, **labels: str) -> list[dict[str, Any]]:
        """Alertmanager webhook payloads whose common labels include ``labels``."""
        out = []
        for req in self.received():
            if req.method != "POST":
                continue
            payload = req.json()
            common = payload.get("commonLabels", {}) if isinstance(payload, dict) else {}
            if all(common.get(k) == v for k, v in labels.items()):
                out.append(payload)
        return out


@contextmanager
def http_receiver() -> Iterator[Receiver]:
    """Serve a recording :class:`Receiver` on 127.0.0.1 for the ``with`` block."""
    receiver_ref: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            receiver = receiver_ref[0]
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with receiver.lock:
                receiver.requests.append(
                    Request(self.command, self.path, dict(self.headers.items()), body)
                )
                status, reply = receiver.status, receiver.reply
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def do_POST(self) -> None:
            self._handle()

        def do_GET(self) -> None:
            self._handle()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    host, port = server.server_address[:2]
    receiver_ref.append(Receiver(url=f"http://{host!s}:{port}"))
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name="http-receiver",
        daemon=True,
    )
    thread.start()
    try:
        yield receiver_ref[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
