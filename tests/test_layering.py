"""The import graph keeps its direction, and no module reaches into another's privates."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("detectors", "monitor", "benchmarks")
BASE = ("monitor.config", "monitor.errors", "monitor.logsetup")
"""Modules every stage may import: the validated settings, the exceptions, logging."""
ENGINE_OUTPUTS = (
    "monitor.ingest.source",
    "monitor.ingest.segments",
    "monitor.engine.outcome",
    "monitor.engine.results",
    "monitor.engine.decision",
    "monitor.engine.labels.monitor",
    "monitor.engine.segment_mix",
)
"""What the emit side may read of the flow before it: the outcome of a batch and its parts."""
STAGES = {
    "monitor.kafka": (),
    "monitor.ingest": ("monitor.kafka",),
    "monitor.engine": ("monitor.ingest",),
    "monitor.emit": ENGINE_OUTPUTS,
    "monitor.state": ("monitor.kafka", "monitor.ingest", "monitor.engine"),
    # Not a stage but held to the same rule: the publisher a model server imports
    # reaches only the Kafka clients (and BASE), never the engine or the daemon.
    "monitor.publish": ("monitor.kafka",),
}
"""Each stage of the flow, and the earlier stages it may import besides itself and BASE.

ingest -> engine -> emit -> state; ``monitor.kafka`` is the client library they share.
The top-level modules (``cli``, ``wiring``, ``app``, ``config_docs``) assemble the
stages and may import any of them; no stage imports them.
"""
NAMED_TUPLE_API = frozenset({"_replace", "_asdict", "_fields", "_make"})


def _modules() -> Iterator[tuple[str, Path, ast.Module]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            yield name, path, ast.parse(path.read_text(encoding="utf-8"))


def _imports(tree: ast.Module) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


MODULES = list(_modules())


def test_modules_are_found() -> None:
    """The scan sees the packages (an empty scan would pass every check below)."""
    names = {name for name, _, _ in MODULES}
    assert {"detectors.engine", "monitor.engine.pipeline", "monitor.engine.outcome"} <= names


def _crosses_stages(name: str, imported: str) -> bool:
    stage = next((s for s in STAGES if _within(name, (s,))), None)
    if stage is None or not _within(imported, ("monitor",)):
        return False
    allowed = (stage, *BASE, *STAGES[stage])
    return not _within(imported, allowed)


def upward_imports(name: str, tree: ast.Module) -> list[str]:
    """Imports of ``tree`` (module ``name``) that point the wrong way."""
    found = []
    for line, imported in _imports(tree):
        wrong = (
            (name.startswith("detectors") and _within(imported, ("monitor", "benchmarks", "tests")))
            or (name.startswith("monitor") and _within(imported, ("benchmarks", "tests")))
            or _crosses_stages(name, imported)
        )
        if wrong:
            found.append(f"line {line}: {imported}")
    return found


def private_reads(tree: ast.Module) -> list[str]:
    """``_private`` names ``tree`` imports, or reads on other objects without defining them."""
    own: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            own.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            own.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            own.add(node.id)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"line {node.lineno}: imports {alias.name}")
        if isinstance(node, ast.Attribute):
            attr = node.attr
            if not attr.startswith("_") or attr.startswith("__") or attr in NAMED_TUPLE_API:
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            if attr not in own:
                found.append(f"line {node.lineno}: reads {attr}")
    return found


def test_the_checks_catch_what_they_forbid() -> None:
    """Each check flags a hand-made violation and passes its clean twin."""
    engine = ast.parse("from monitor.engine.pipeline import Pipeline\n")
    assert upward_imports("monitor.emit.journal", engine) == ["line 1: monitor.engine.pipeline"]
    assert upward_imports("monitor.app", engine) == []
    assert upward_imports("monitor.engine.windows", ast.parse("import monitor.emit.metrics\n"))
    assert upward_imports("monitor.ingest.decode", ast.parse("import monitor.app\n"))
    assert upward_imports("monitor.publish.publisher", engine)
    assert upward_imports("monitor.publish.sender", ast.parse("import monitor.kafka.api\n")) == []
    outputs = ast.parse("from monitor.engine.outcome import BatchOutcome\n")
    assert upward_imports("monitor.emit.journal", outputs) == []
    assert upward_imports("detectors.engine", ast.parse("import monitor.config\n"))
    sneaky = ast.parse("from monitor.engine.pipeline import _Warmup\nx = pipeline._warmup\n")
    assert private_reads(sneaky) == ["line 1: imports _Warmup", "line 2: reads _warmup"]
    own = ast.parse("class A:\n    def f(self, o):\n        self._n = 1\n        return o._n\n")
    assert private_reads(own) == []


@pytest.mark.parametrize(("name", "path", "tree"), MODULES, ids=[m[0] for m in MODULES])
def test_no_upward_import(name: str, path: Path, tree: ast.Module) -> None:
    """detectors imports nothing of the daemon; each stage imports only the stages before it."""
    assert upward_imports(name, tree) == [], path


@pytest.mark.parametrize(("name", "path", "tree"), MODULES, ids=[m[0] for m in MODULES])
def test_no_module_uses_another_modules_private_names(
    name: str, path: Path, tree: ast.Module
) -> None:
    """``_private`` names are imported from nowhere, and read only where they are defined."""
    assert private_reads(tree) == [], path
