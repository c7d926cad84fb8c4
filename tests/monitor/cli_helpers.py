"""Helpers of the tests that run the driftd command: write a config, read its messages."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def write_config(tmp_path: Path, config: dict[str, Any]) -> Path:
    """``config`` as ``tmp_path/driftd.yaml`` (JSON is YAML)."""
    path = tmp_path / "driftd.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def driftd_lines(stderr: str) -> list[str]:
    """The driftd lines of stderr (not the JSON log lines)."""
    return [line for line in stderr.splitlines() if line.startswith("driftd")]


def run_reference(*argv: str) -> int:
    """``driftd reference ...`` through the registered parser, in this process; its exit code."""
    from monitor.cli_reference import add_reference_parser

    top = argparse.ArgumentParser(prog="driftd")
    add_reference_parser(top.add_subparsers(dest="command", required=True))
    args = top.parse_args(["reference", *argv])
    code: int = args.handler(args)
    return code
