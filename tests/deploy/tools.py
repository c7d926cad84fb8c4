"""Optional test tools from the ``test`` extra: skipped locally, required in CI."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

CI_ENV = "CI"


def require_module(name: str) -> ModuleType:
    """Import ``name``; skip (module-level) without it, but fail when ``$CI`` is set."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        message = f"{name} is not installed (pip install -e '.[test]'): {exc}"
        if os.environ.get(CI_ENV):
            pytest.fail(message + "; CI must run these tests", pytrace=False)
        pytest.skip(message, allow_module_level=True)
