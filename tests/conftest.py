"""Suite-wide rules: every test states the behaviour it checks in a one-line docstring."""

from __future__ import annotations

import gc
import socket
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


@pytest.fixture(autouse=True, scope="module")
def _close_refused_connects() -> Iterator[None]:
    """Close the never-connected sockets a module's Kafka clients left behind.

    kafka-python keeps the socket of every refused connect alive through the traceback
    of the error it stores (see tests/monitor/test_broker_outage.py); the garbage
    collector then finalises it, as an unclosed-socket warning, in whatever test runs
    at that moment. Only stream sockets that were never connected and do not listen are
    closed: live connections and the servers of session fixtures are left alone.
    """
    yield
    for obj in gc.get_objects():
        if not isinstance(obj, socket.socket) or obj.fileno() == -1:
            continue
        try:
            if obj.type != socket.SOCK_STREAM:
                continue
            if obj.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                continue  # a listening server
            obj.getpeername()
        except OSError:
            obj.close()  # never connected: a refused connect's leftover
    gc.collect()
