"""The docstring examples of every detectors module run, and the public API is documented."""

from __future__ import annotations

import dataclasses
import doctest
import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import detectors

MODULES = [
    "detectors",
    *sorted(f"detectors.{info.name}" for info in pkgutil.iter_modules(detectors.__path__)),
]
WITH_EXAMPLES = {
    "detectors",
    "detectors.engine",
    "detectors.detector",
    "detectors.report",
    "detectors.profile",
    "detectors.performance",
    "detectors.label_noise",
    "detectors.multivariate",
    "detectors.embedding",
}
"""Public modules that must carry at least one example."""
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _import(name: str) -> ModuleType:
    return importlib.import_module(name)


def test_every_module_is_collected() -> None:
    """The doctest run covers the package and its engine, detector, report and profile."""
    assert set(MODULES) >= WITH_EXAMPLES
    assert len(MODULES) > len(WITH_EXAMPLES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_pass(name: str) -> None:
    """Every docstring example of the module gives the output it shows."""
    module = _import(name)
    result = doctest.testmod(module, optionflags=FLAGS, report=False, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
    if name in WITH_EXAMPLES:
        assert result.attempted > 0, f"{name} has no docstring examples"


@pytest.mark.parametrize("name", sorted(detectors.__all__))
def test_public_names_exist_and_are_documented(name: str) -> None:
    """Every name in detectors.__all__ exists; its classes and functions have docstrings."""
    assert hasattr(detectors, name), name
    obj = getattr(detectors, name)
    if not (inspect.isclass(obj) or inspect.isfunction(obj)):
        return
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
    assert doc and doc.strip(), f"{name} has no docstring"
    if inspect.isclass(obj) and dataclasses.is_dataclass(obj):
        # A dataclass without a docstring gets its signature as __doc__.
        assert not doc.startswith(f"{obj.__name__}("), f"{name} only has the generated docstring"


def test_all_has_no_duplicates_and_matches_exports() -> None:
    """__all__ lists each name once, and every listed class or function is importable."""
    assert len(detectors.__all__) == len(set(detectors.__all__))
    namespace: dict[str, object] = {}
    exec("from detectors import *", namespace)
    assert set(detectors.__all__) <= set(namespace)
