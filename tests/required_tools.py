"""When a program or package a test needs is missing: skip for a developer, fail under make test.

``make test`` runs ``scripts/install-test-services`` first and exports
``DRIFTDTEST_REQUIRE_SERVICES=1``; CI sets ``CI``. Under either, a missing Kafka, Java,
Maven, Prometheus, Alertmanager, tini, Chromium or test extra fails its tests, so the
suite can never pass by skipping them. A developer running plain ``pytest`` or
``make test-fast`` without them gets a skip whose reason names what is missing.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

REQUIRE_ENV = "DRIFTDTEST_REQUIRE_SERVICES"
"""Set to a non-empty value other than ``0`` (``make test`` sets it) to fail instead of skip."""
CI_ENV = "CI"
"""Set (non-empty) by CI systems; it has the same effect as ``REQUIRE_ENV``."""
INSTALLER = "scripts/install-test-services"
"""The script that installs (as root) or names (otherwise) the missing programs."""


def tools_required() -> bool:
    """Whether a missing tool must fail its test (under ``make test`` or CI) instead of skip."""
    required = os.environ.get(REQUIRE_ENV, "")
    return (required not in ("", "0")) or bool(os.environ.get(CI_ENV))


def missing_tool(message: str, *, allow_module_level: bool = False) -> NoReturn:
    """Skip the test with ``message``, or fail it when ``tools_required()``."""
    if tools_required():
        pytest.fail(
            f"{message}; make test and CI must run these tests "
            f"(${REQUIRE_ENV} or ${CI_ENV} is set): run {INSTALLER}",
            pytrace=False,
        )
    pytest.skip(
        f"{message} (make test installs what is missing with {INSTALLER}, and fails instead)",
        allow_module_level=allow_module_level,
    )
