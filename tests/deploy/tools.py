"""Optional test tools from the ``test`` extra: skipped locally, required by make test and CI."""

from __future__ import annotations

import importlib
from types import ModuleType

from tests.required_tools import missing_tool


def require_module(name: str) -> ModuleType:
    """Import ``name``; skip (module-level) without it, but fail under make test or CI."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing_tool(
            f"{name} is not installed (pip install -e '.[test]'): {exc}", allow_module_level=True
        )
