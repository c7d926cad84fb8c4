"""scripts/install-test-services and the Makefile targets around it, in a sandbox.

The script runs with a PATH holding only fake programs: fake tools that are "present",
a fake ``id`` that says who we are, and fake ``apt-get`` / ``systemctl`` that record
their arguments (and "install" by copying fake tools into the sandbox). Nothing here
needs root, the network or the real packages.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.required_tools import CI_ENV, REQUIRE_ENV, missing_tool, tools_required

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "install-test-services"
BASH = shutil.which("bash") or "/bin/bash"
CP = shutil.which("cp") or "/bin/cp"

# The program names the script looks for, and the Debian package that brings each.
PACKAGE_OF = {
    "java": "openjdk-17-jre-headless",
    "mvn": "maven",
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
    "tini": "tini",
    "chromium": "chromium",
}
JAVA_17 = 'openjdk version "17.0.15" 2025-04-15'


@dataclass
class Sandbox:
    """A PATH of fake programs, and the logs the fake apt-get and systemctl write."""

    root: Path

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def pool(self) -> Path:
        """Fake tools the fake apt-get "installs" into ``bin``."""
        return self.root / "pool"

    def tool(self, directory: Path, name: str, body: str = "exit 0") -> None:
        """Write an executable ``/bin/sh`` script ``directory/name`` running ``body``."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)

    def calls(self, program: str) -> list[str]:
        """The argument lines a recording fake ``program`` was called with, in order."""
        log = self.root / f"{program}.log"
        return log.read_text().splitlines() if log.exists() else []

    def run(
        self, *, uid: int, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the script on the sandbox PATH, as the user ``id -u`` reports as ``uid``."""
        env = {
            "PATH": str(self.bin),
            "FAKE_UID": str(uid),
            # A virtual environment that exists, so the python3-venv check is not needed.
            "VENV": str(self.root / "venv"),
            "PYTHON": str(self.bin / "python3"),
            **(extra_env or {}),
        }
        return subprocess.run(
            [BASH, str(SCRIPT)],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


def _sandbox(tmp_path: Path, present: Iterable[str], java_version: str = JAVA_17) -> Sandbox:
    """A sandbox where ``present`` tools exist and every other one sits in the apt pool."""
    box = Sandbox(tmp_path)
    present_names = set(present)
    recorder = 'echo "$*" >> ' + str(tmp_path) + "/{name}.log"
    box.tool(box.bin, "id", 'echo "$FAKE_UID"')
    box.tool(box.bin, "systemctl", recorder.format(name="systemctl"))
    installs = "\n".join(
        f"    {package}) {CP} {box.pool}/{package}/* {box.bin}/ 2>/dev/null || true ;;"
        for package in sorted(set(PACKAGE_OF.values()))
    )
    box.tool(
        box.bin,
        "apt-get",
        recorder.format(name="apt-get")
        + f'\n[ "$1" = install ] || exit 0\nfor p in "$@"; do\n  case "$p" in\n{installs}\n'
        "  esac\ndone",
    )
    for name, package in PACKAGE_OF.items():
        body = f"echo '{java_version}' >&2" if name == "java" else "exit 0"
        box.tool(box.bin if name in present_names else box.pool / package, name, body)
    box.tool(box.root / "venv" / "bin", "python")
    return box


def test_everything_present_exits_zero_without_apt_get(tmp_path: Path) -> None:
    """With every tool present the script exits 0, silent, and never calls apt-get."""
    box = _sandbox(tmp_path, PACKAGE_OF)
    result = box.run(uid=0)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert box.calls("apt-get") == []
    assert box.calls("systemctl") == []


def test_not_root_names_missing_packages_in_one_line_and_fails(tmp_path: Path) -> None:
    """As non-root with tools missing: one line naming them and the command, exit 1, no apt."""
    box = _sandbox(tmp_path, set(PACKAGE_OF) - {"mvn", "prometheus", "promtool"})
    result = box.run(uid=1000)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("install-test-services: missing mvn, prometheus, promtool;")
    assert "apt-get install --no-install-recommends maven prometheus'" in lines[0]
    assert box.calls("apt-get") == []


@pytest.mark.parametrize(("version", "major"), [('"11.0.22" 2024-01-16', 11), ('"1.8.0_402"', 8)])
def test_java_older_than_17_counts_as_missing(tmp_path: Path, version: str, major: int) -> None:
    """A Java below 17 on PATH is reported missing, with the version found."""
    box = _sandbox(tmp_path, PACKAGE_OF, java_version=f"openjdk version {version}")
    result = box.run(uid=1000)
    assert result.returncode == 1
    assert f"missing java 17+ (found {major});" in result.stderr
    assert "--no-install-recommends openjdk-17-jre-headless'" in result.stderr


def test_missing_venv_bootstrap_names_python3_venv(tmp_path: Path) -> None:
    """Before the virtual environment exists, a Python without ensurepip needs python3-venv."""
    box = _sandbox(tmp_path, PACKAGE_OF)
    box.tool(box.bin, "python3", "exit 1")
    result = box.run(uid=1000, extra_env={"VENV": str(tmp_path / "no-venv")})
    assert result.returncode == 1
    assert "--no-install-recommends python3-venv'" in result.stderr


def test_root_installs_missing_packages_and_stops_their_services(tmp_path: Path) -> None:
    """As root: apt-get update, one install of the missing packages, services stopped, exit 0."""
    box = _sandbox(tmp_path, set(PACKAGE_OF) - {"prometheus-alertmanager", "amtool", "tini"})
    result = box.run(uid=0)
    assert result.returncode == 0, result.stderr
    assert box.calls("apt-get") == [
        "update -qq",
        "install -y -qq --no-install-recommends prometheus-alertmanager tini",
    ]
    assert box.calls("systemctl") == ["stop prometheus", "stop prometheus-alertmanager"]
    assert (box.bin / "amtool").exists()


def test_root_installs_chromium_for_the_report_tests(tmp_path: Path) -> None:
    """As root with only Chromium missing: apt-get installs the chromium package, exit 0."""
    box = _sandbox(tmp_path, set(PACKAGE_OF) - {"chromium"})
    result = box.run(uid=0)
    assert result.returncode == 0, result.stderr
    assert box.calls("apt-get")[-1] == "install -y -qq --no-install-recommends chromium"
    assert (box.bin / "chromium").exists()


def test_root_fails_when_the_install_leaves_a_tool_missing(tmp_path: Path) -> None:
    """As root, a tool still missing after apt-get is an error naming it, not a pass."""
    box = _sandbox(tmp_path, set(PACKAGE_OF) - {"tini"})
    shutil.rmtree(box.pool / "tini")
    result = box.run(uid=0)
    assert result.returncode == 1
    assert "still missing tini after installing" in result.stderr


def test_root_without_apt_get_fails_in_one_line(tmp_path: Path) -> None:
    """As root on a machine without apt-get: one line naming the packages, exit 1."""
    box = _sandbox(tmp_path, set(PACKAGE_OF) - {"tini"})
    (box.bin / "apt-get").unlink()
    result = box.run(uid=0)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "missing tini and no apt-get" in result.stderr


# -- the Makefile -------------------------------------------------------------------


def _fake_venv(tmp_path: Path) -> tuple[Path, Path]:
    """A VENV whose programs record how they were called, already "installed" for make."""
    venv, log = tmp_path / "venv", tmp_path / "calls.log"
    recorder = f'echo "$(basename "$0") {REQUIRE_ENV}=${REQUIRE_ENV} $*" >> {log}'
    for name in ("python", "pytest", "ruff", "mypy", "driftd"):
        Sandbox(tmp_path).tool(venv / "bin", name, recorder)
    (venv / ".runtime").touch()
    (venv / ".installed").touch()
    return venv, log


def _make(*args: str) -> subprocess.CompletedProcess[str]:
    make = shutil.which("make")
    assert make is not None, "make is the entry point; it must be installed"
    env = {k: v for k, v in os.environ.items() if k not in (REQUIRE_ENV, "MAKEFLAGS", "MFLAGS")}
    return subprocess.run(
        [make, "--no-print-directory", "-C", str(ROOT), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("installer_exit", [0, 1])
def test_make_test_runs_the_installer_first_and_requires_services(
    tmp_path: Path, installer_exit: int
) -> None:
    """make test runs the installer first, stops if it fails, and pytest gets the require flag."""
    venv, log = _fake_venv(tmp_path)
    installer = tmp_path / "installer"
    installer.write_text(
        f'#!/bin/sh\necho "installer VENV=$VENV" >> {log}\nexit {installer_exit}\n'
    )
    installer.chmod(0o755)
    result = _make("test", f"VENV={venv}", f"TEST_SERVICES={installer}")
    calls = log.read_text().splitlines()
    assert calls[0] == f"installer VENV={venv}"
    if installer_exit:
        assert result.returncode != 0
        assert calls == [calls[0]], "nothing may run after the installer fails"
        return
    assert result.returncode == 0, result.stdout + result.stderr
    pytest_calls = [c for c in calls if c.startswith(("pytest", "python"))]
    assert pytest_calls, calls
    assert all(f"{REQUIRE_ENV}=1 " in c for c in pytest_calls), calls


def test_make_demo_does_not_run_the_installer(tmp_path: Path) -> None:
    """make demo installs only what running needs: it never calls the service installer."""
    venv, _ = _fake_venv(tmp_path)
    result = _make("-n", "demo", f"VENV={venv}")
    assert result.returncode == 0, result.stderr
    assert "driftd demo" in result.stdout
    assert "install-test-services" not in result.stdout
    assert "[test]" not in result.stdout


def test_make_test_dry_run_names_the_installer() -> None:
    """make -n test lists scripts/install-test-services before lint, types and pytest."""
    result = _make("-n", "test")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    first = next(i for i, line in enumerate(lines) if "scripts/install-test-services" in line)
    checks = [i for i, line in enumerate(lines) if "ruff" in line or "pytest" in line]
    assert checks and first < min(checks)


# -- the skip-or-fail rule ---------------------------------------------------------


@pytest.mark.parametrize(
    ("require", "ci", "required"),
    [("", "", False), ("0", "", False), ("1", "", True), ("", "true", True)],
)
def test_tools_required_under_make_test_or_ci(
    monkeypatch: pytest.MonkeyPatch, require: str, ci: str, required: bool
) -> None:
    """A missing tool fails under DRIFTDTEST_REQUIRE_SERVICES=1 or CI, and skips otherwise."""
    monkeypatch.setenv(REQUIRE_ENV, require)
    monkeypatch.setenv(CI_ENV, ci)
    assert tools_required() is required
    expected = pytest.fail.Exception if required else pytest.skip.Exception
    with pytest.raises(expected, match="tini not found"):
        missing_tool("tini not found")


@pytest.mark.parametrize("require", ["", "1"])
def test_report_browser_tests_skip_or_fail_without_chromium(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, require: str
) -> None:
    """Without chromium the report's browser tests skip for a developer, fail under make test."""
    from tests.report.browser import chromium_binary

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv(CI_ENV, raising=False)
    monkeypatch.setenv(REQUIRE_ENV, require)
    expected = pytest.fail.Exception if require else pytest.skip.Exception
    with pytest.raises(expected, match="chromium not found"):
        chromium_binary()


@pytest.mark.parametrize("require", ["", "1"])
def test_kafka_tests_skip_or_fail_without_java_and_maven(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, require: str
) -> None:
    """Without java and mvn the Kafka tests skip for a developer and fail under make test."""
    from tests.kafka_broker import require_local_broker_tools

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.delenv(CI_ENV, raising=False)
    monkeypatch.setenv(REQUIRE_ENV, require)
    expected = pytest.fail.Exception if require else pytest.skip.Exception
    with pytest.raises(expected, match="java and mvn not found"):
        require_local_broker_tools()
