"""Suite-wide rules: every test states the behaviour it checks in a one-line docstring."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Fail collection when a test function has no one-line docstring."""
    missing = []
    for item in items:
        func = getattr(item, "function", None)
        doc = (func.__doc__ or "").strip() if func is not None else "x"
        if not doc or "\n" in doc:
            missing.append(item.nodeid)
    if missing:
        raise pytest.UsageError(
            "every test needs a one-line docstring stating the behaviour it checks: "
            + ", ".join(sorted(set(missing)))
        )


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    """Tests that configure logging (the CLI does) must not leak it into later tests."""
    yield
    structlog.reset_defaults()
