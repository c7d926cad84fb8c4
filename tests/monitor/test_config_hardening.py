"""Config values that would silently disable a safeguard are refused at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import load_settings
from monitor.errors import InvalidConfigError, ReferenceProfileError
from monitor.reference_build import load_reference


def _errors(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "driftd.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidConfigError) as info:
        load_settings(path)
    return {e.key: e.message for e in info.value.errors}


def test_infinite_timeouts_are_refused_naming_the_key(tmp_path: Path) -> None:
    """An infinite flush or timeout would hang shutdown; it is refused by key."""
    errors = _errors(tmp_path, "alerts:\n  shutdown_flush_s: .inf\n")
    assert "alerts.shutdown_flush_s" in errors


def test_nan_threshold_is_refused(tmp_path: Path) -> None:
    """A NaN threshold never compares true; it is refused by key."""
    errors = _errors(tmp_path, "detectors:\n  psi: {threshold: .nan, clear: 0.1}\n")
    assert "detectors.psi.threshold" in errors


def test_secret_file_must_be_a_regular_file(tmp_path: Path) -> None:
    """A secret 'file' that is a device or FIFO is refused instead of blocking the start."""
    config = (
        "alerts:\n  sinks:\n    - {type: pagerduty, name: pd, routing_key: {file: /dev/zero}}\n"
        "  routes: [{sinks: [pd]}]\n"
    )
    errors = _errors(tmp_path, config)
    (message,) = (m for k, m in errors.items() if k.startswith("alerts.sinks.0"))
    assert "not a regular file" in message


def test_reference_path_with_nul_byte_is_a_reference_error() -> None:
    """A NUL byte in the reference path is a clear reference error, not a traceback."""
    with pytest.raises(ReferenceProfileError, match="cannot read"):
        load_reference(Path("ref\x00.json"))
