"""A real Prometheus server (and promtool) for driftd's deployment tests.

``prometheus_server(targets, rule_files)`` starts Prometheus on a free 127.0.0.1 port
with a temporary config that scrapes each ``host:port`` in ``targets`` every second
under ``job="driftd"`` and evaluates ``rule_files`` every second, with its TSDB in a
temporary directory; ``config=`` runs a given configuration instead (a parsed
prometheus.yml, e.g. the compose stack's retargeted to loopback). It waits for
``/-/ready``, yields a :class:`Prometheus` handle (``query``, ``api``, ``targets``,
``rules``, ``alertmanagers``) and stops the process on exit.

The binaries are ``$DRIFTDTEST_PROMETHEUS_BIN`` / ``$DRIFTDTEST_PROMTOOL_BIN``, else
``prometheus`` / ``promtool`` on PATH (Debian's ``prometheus`` package, installed by
``scripts/install-test-services``). When one is missing the tests are skipped, except
under ``make test`` or CI, where a missing binary fails them (see
``tests/required_tools.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.loopback import loopback_process
from tests.required_tools import CI_ENV, REQUIRE_ENV, missing_tool

__all__ = [
    "CI_ENV",
    "PROMETHEUS_BIN_ENV",
    "PROMTOOL_BIN_ENV",
    "REQUIRE_ENV",
    "Prometheus",
    "find_prometheus",
    "find_promtool",
    "prometheus_server",
]

PROMETHEUS_BIN_ENV = "DRIFTDTEST_PROMETHEUS_BIN"
"""Environment variable naming the Prometheus server binary to use."""
PROMTOOL_BIN_ENV = "DRIFTDTEST_PROMTOOL_BIN"
"""Environment variable naming the promtool binary to use."""
JOB = "driftd"
"""The scrape job name; driftd's alert rules expect it."""
_READY_TIMEOUT_S = 30.0


def _find(env: str, name: str) -> str:
    explicit = os.environ.get(env)
    if explicit:
        if os.access(explicit, os.X_OK):
            return explicit
        pytest.fail(f"${env}={explicit} is not an executable file")
    found = shutil.which(name) or (
        f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None
    )
    if found:
        return found
    missing_tool(f"{name} binary not found (install Debian's prometheus package, or set ${env})")


def find_prometheus() -> str:
    """The Prometheus server binary; skips the test if absent (fails under make test or CI)."""
    return _find(PROMETHEUS_BIN_ENV, "prometheus")


def find_promtool() -> str:
    """The promtool binary; skips the test if absent (fails under make test or CI)."""
    return _find(PROMTOOL_BIN_ENV, "promtool")


@dataclass(frozen=True)
class Prometheus:
    """A running Prometheus: its base URL and its log file."""

    url: str
    log_path: Path

    def api(self, path: str, **params: str) -> dict[str, Any]:
        """``GET /api/v1/<path>``; the whole JSON answer, errors included (HTTP 400/422)."""
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as r:
                answer: dict[str, Any] = json.load(r)
        except urllib.error.HTTPError as exc:  # bad queries answer 400 with a JSON body
            answer = json.loads(exc.read() or b"{}")
            answer.setdefault("status", "error")
            answer.setdefault("error", f"HTTP {exc.code}")
        return answer

    def query(self, expr: str) -> dict[str, Any]:
        """An instant query through ``/api/v1/query``: the JSON answer."""
        return self.api("query", query=expr)

    def alertmanagers(self) -> list[str]:
        """URLs of the Alertmanagers Prometheus sends alerts to."""
        data = self.api("alertmanagers")["data"]
        return [str(a["url"]) for a in data["activeAlertmanagers"]]

    def rules(self) -> list[dict[str, Any]]:
        """Every loaded rule, with its health and last error."""
        groups = self.api("rules")["data"]["groups"]
        return [rule for group in groups for rule in group["rules"]]

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets."""
        active: list[dict[str, Any]] = self.api("targets")["data"]["activeTargets"]
        return active

    def log_tail(self, lines: int = 40) -> str:
        """The end of Prometheus's log, for failure messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _config(targets: Sequence[str], rule_files: Sequence[Path]) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [str(p.resolve()) for p in rule_files],
        "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": list(targets)}]}],
    }


@contextmanager
def prometheus_server(
    targets: Sequence[str] = (),
    rule_files: Sequence[Path] = (),
    *,
    config: dict[str, Any] | None = None,
) -> Iterator[Prometheus]:
    """Run Prometheus on loopback, scraping ``targets`` every second, for the ``with`` block.

    With ``config``, that configuration is used as is (``targets`` and ``rule_files``
    are ignored); its rule file paths must be absolute.
    """
    binary = find_prometheus()
    settings = config if config is not None else _config(targets, rule_files)
    with tempfile.TemporaryDirectory(prefix="driftd-prometheus-") as tmp:
        root = Path(tmp)
        config_path = root / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(settings, sort_keys=False))
        log_path = root / "prometheus.log"

        def argv(port: int) -> list[str]:
            return [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--web.enable-lifecycle",
            ]

        with loopback_process("Prometheus", argv, log_path, _READY_TIMEOUT_S) as url:
            handle = Prometheus(url=url, log_path=log_path)
            yield handle
