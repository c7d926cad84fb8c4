"""Helpers of the tests that run the driftd command: write a config, read its messages."""

from __future__ import annotations

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
