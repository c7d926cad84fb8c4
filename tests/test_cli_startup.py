"""`driftd --help` and `driftd check-config` stay light: what they import, not how long.

The time itself is a benchmark (``python -m benchmarks.startup``); these tests guard
the cause, the modules a command pulls in, in a fresh interpreter each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from detectors.rules import METHODS
from monitor.cli import LAZY_COMMANDS, build_parser
from monitor.config import CALIBRATED_METHODS

HEAVY = ("scipy", "kafka", "confluent_kafka", "prometheus_client", "pyarrow", "numpy")
"""Libraries that cost tenths of a second to import and that --help never needs."""
LOADED_MODULES = """
import json, sys
from monitor.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:  # argparse's --help
    code = exc.code
sys.stdout.flush()
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def _loaded(*argv: str) -> tuple[int, set[str]]:
    """Run ``driftd *argv`` in a fresh interpreter: its exit code and top-level modules."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("DRIFTD_")}
    done = subprocess.run(
        [sys.executable, "-c", LOADED_MODULES, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    report = json.loads(done.stderr.strip().splitlines()[-1])
    return report["code"], {name.split(".")[0] for name in report["modules"]}


def test_importing_the_cli_loads_no_heavy_library() -> None:
    """`import monitor.cli` pulls in neither scipy, Kafka, Prometheus, pyarrow nor numpy."""
    done = subprocess.run(
        [sys.executable, "-c", "import json, sys, monitor.cli; print(json.dumps([*sys.modules]))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = {name.split(".")[0] for name in json.loads(done.stdout)}
    assert "monitor" in loaded  # the probe imported what it claims to
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))
    assert "structlog" not in loaded and "pydantic" not in loaded


def test_help_loads_no_heavy_library() -> None:
    """`driftd --help` exits 0 without the engine, the config models or any heavy library."""
    code, loaded = _loaded("--help")
    assert code == 0
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))
    assert "detectors" not in loaded and "pydantic" not in loaded


def test_check_config_loads_no_scipy_kafka_or_prometheus(tmp_path: Path) -> None:
    """check-config on a valid Kafka config validates it without scipy, Kafka or Prometheus."""
    config = tmp_path / "driftd.yaml"
    config.write_text("model: credit-risk\nkafka:\n  topics: [inference]\n", encoding="utf-8")
    code, loaded = _loaded("check-config", "-c", str(config))
    assert code == 0
    assert "pydantic" in loaded  # it did validate
    heavy = {"scipy", "kafka", "confluent_kafka", "prometheus_client", "pyarrow", "detectors"}
    assert loaded.isdisjoint(heavy), sorted(loaded & heavy)


def test_config_lists_the_engines_methods() -> None:
    """The config's copy of the scored methods is the engine's tuple, in its order."""
    assert CALIBRATED_METHODS == METHODS


def test_lazy_commands_keep_their_help_line() -> None:
    """`driftd --help` lists each lazily built sub-command with its module's own help line."""
    summary = build_parser().format_help()
    for name in LAZY_COMMANDS:
        assert build_parser(name).format_help() == summary, name


@pytest.mark.parametrize("name", list(LAZY_COMMANDS))
def test_a_requested_command_gets_its_full_parser(name: str) -> None:
    """A sub-command on the command line is parsed by its module's parser, with a handler."""
    argv = {
        "demo": ["demo", "--events", "10"],
        "status": ["status", "--json"],
        "reference": ["reference", "show", "ref.json"],
        "backtest": ["backtest", "--events", "events.jsonl"],
    }[name]
    args = build_parser(name).parse_args(argv)
    assert args.command == name
    assert callable(args.handler)
    with pytest.raises(SystemExit):  # the stub knows the name, not the options
        build_parser().parse_args(argv)
