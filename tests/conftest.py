"""Suite-wide rules: every test states the behaviour it checks in a one-line docstring."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to start with a ``DRIFTD_`` variable that names no setting.

    Every daemon a test starts would refuse it too (exit 2). The test tools' own
    variables (``DRIFTDTEST_KAFKA_BOOTSTRAP``, ``DRIFTDTEST_ALERTMANAGER_BIN`` ...) were
    ``DRIFTD_...`` before; the message says so.
    """
    from monitor.config import unknown_env_settings

    unknown = unknown_env_settings()
    if unknown:
        raise pytest.UsageError(
            "; ".join(error.message for error in unknown)
            + ". Test tools read DRIFTDTEST_* (e.g. DRIFTDTEST_KAFKA_BOOTSTRAP), not DRIFTD_*."
        )


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
