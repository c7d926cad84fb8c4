"""Suite-wide rules: every test states the behaviour it checks in a one-line docstring.

Also how the suite runs on several workers (``pytest -n 2 --dist loadfile
--no-loadscope-reorder``, as ``make test`` does): each module stays on one worker, so
its module-scoped services start once; each worker starts its own Kafka broker
(session scope, free ports); and the modules with slow tests are handed out first, so
that none of them starts last and runs alone at the end (xdist's own reorder, biggest
module first, would hand out a one-test 60 s module last).
"""

from __future__ import annotations

import gc
import socket
import sys
from collections.abc import Iterator

import pytest
import structlog

# Registered here, once, so every module shares one broker per worker: a module that
# imported the session fixture itself would get its own broker, alive to the session's end.
from tests.kafka_broker import kafka_bootstrap  # noqa: F401


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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Fail collection when a test function has no one-line docstring; on an xdist
    worker, put the modules with slow, then integration, tests first."""
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
    if hasattr(config, "workerinput"):  # an xdist worker: its order is the hand-out order
        _heaviest_modules_first(items)


def _heaviest_modules_first(items: list[pytest.Item]) -> None:
    """Sort whole modules, keeping their order otherwise: slow ones, integration, others.

    Every worker collects the same items and sorts them the same way, as xdist requires.
    """
    rank: dict[str, int] = {}
    for item in items:
        module = item.nodeid.partition("::")[0]
        weight = 2
        if item.get_closest_marker("slow"):
            weight = 0
        elif item.get_closest_marker("integration"):
            weight = 1
        rank[module] = min(rank.get(module, weight), weight)
    items.sort(key=lambda item: rank[item.nodeid.partition("::")[0]])


class _ConnectWatch:
    """Notes whether any socket tried to connect since the last look (an audit hook:
    cheap on every event, and it sees kafka-python's non-blocking ``connect_ex`` too)."""

    def __init__(self) -> None:
        self.connected = False
        sys.addaudithook(self._audit)

    def _audit(self, event: str, args: tuple[object, ...]) -> None:
        if event == "socket.connect":
            self.connected = True

    def take(self) -> bool:
        """Whether a connect was attempted since the last call."""
        connected, self.connected = self.connected, False
        return connected


_CONNECTS = _ConnectWatch()


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
    closed: live connections and the servers of session fixtures are left alone. A module
    that attempted no connection skips the walk over every object (most modules).
    """
    yield
    if not _CONNECTS.take():
        return
    for obj in gc.get_objects():
        # type(), not isinstance(): a dead weakref.proxy raises ReferenceError on __class__
        if not issubclass(type(obj), socket.socket) or obj.fileno() == -1:
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
