"""Fixtures of the report tests."""

from __future__ import annotations

import sys

import pytest

import monitor.report


@pytest.fixture
def without_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    """matplotlib cannot be imported, as on an install without the ``report`` extra."""
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith(
            ("matplotlib.", "monitor.report.page", "monitor.report.charts")
        ):
            monkeypatch.delitem(sys.modules, name)
    for submodule in ("page", "charts"):  # what imported matplotlib, as on a fresh install
        monkeypatch.delattr(monitor.report, submodule, raising=False)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
