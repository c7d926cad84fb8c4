"""Config values that would silently disable a safeguard are refused at start."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.config import load_settings, unknown_env_settings
from monitor.engine.reference.profile_file import load_reference
from monitor.errors import InvalidConfigError, ReferenceProfileError


def _errors(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "driftd.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidConfigError) as info:
        load_settings(path)
    return {e.key: e.message for e in info.value.errors}


def test_infinite_timeouts_are_refused_naming_the_key(tmp_path: Path) -> None:
    """An infinite flush or timeout would hang shutdown; it is refused by key."""
    errors = _errors(tmp_path, "alerts:\n  shutdown_flush_s: .inf\n")
    assert "alerts.shutdown_flush_s" in errors


def test_nan_threshold_is_refused(tmp_path: Path) -> None:
    """A NaN threshold never compares true; it is refused by key."""
    errors = _errors(tmp_path, "detectors:\n  psi: {threshold: .nan, clear: 0.1}\n")
    assert "detectors.psi.threshold" in errors


def test_topic_names_kafka_would_refuse_are_config_errors(tmp_path: Path) -> None:
    """A topic name Kafka refuses is caught when the config loads (check-config), by key."""
    errors = _errors(
        tmp_path,
        "kafka:\n  topics: [inference, 'bad topic']\n  dead_letter_topic: '..'\n"
        f"  labels_topic: {'x' * 250}\n",
    )
    assert set(errors) == {"kafka.topics.1", "kafka.dead_letter_topic", "kafka.labels_topic"}
    assert errors["kafka.topics.1"] == (
        "'bad topic' is not a valid topic name (1-249 of A-Z a-z 0-9 . _ -)"
    )


def test_secret_file_must_be_a_regular_file(tmp_path: Path) -> None:
    """A secret 'file' that is a device or FIFO is refused instead of blocking the start."""
    config = (
        "alerts:\n  sinks:\n    - {type: pagerduty, name: pd, routing_key: {file: /dev/zero}}\n"
        "  routes: [{sinks: [pd]}]\n"
    )
    errors = _errors(tmp_path, config)
    (message,) = (m for k, m in errors.items() if k.startswith("alerts.sinks.0"))
    assert "not a regular file" in message


def test_reference_path_with_nul_byte_is_a_reference_error() -> None:
    """A NUL byte in the reference path is a clear reference error, not a traceback."""
    with pytest.raises(ReferenceProfileError, match="cannot read"):
        load_reference(Path("ref\x00.json"))


REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_driftd_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """The environment without any DRIFTD_ variable; set the test's own on the patch."""
    for name in [n for n in os.environ if n.upper().startswith("DRIFTD_")]:
        monkeypatch.delenv(name)
    yield monkeypatch


@pytest.mark.parametrize(
    ("name", "key", "hint"),
    [
        ("DRIFTD_WINDOW__SIZE_EVENTS", "window.size_events", "DRIFTD_WINDOWS__SIZE_EVENTS"),
        ("DRIFTD_WINDOWS_SIZE_EVENTS", "windows_size_events", "DRIFTD_WINDOWS__SIZE_EVENTS"),
        ("DRIFTD_MODEL__NAME", "model.name", "model is a plain value"),
        ("DRIFTD_KAFKA_BOOTSTRAP", "kafka_bootstrap", "DRIFTD_KAFKA__BOOTSTRAP_SERVERS"),
        ("DRIFTD_NOPE", "nope", "top-level keys: alerts"),
    ],
)
def test_unknown_driftd_variables_are_refused_by_name(
    no_driftd_env: pytest.MonkeyPatch, name: str, key: str, hint: str
) -> None:
    """A DRIFTD_ variable that names no setting is an error naming it, with a likely fix."""
    no_driftd_env.setenv(name, "10")
    with pytest.raises(InvalidConfigError) as info:
        load_settings(None)
    (error,) = info.value.errors
    assert error.key == key
    assert error.message.startswith(f"unknown setting {name} (") and hint in error.message


def test_known_driftd_variables_are_settings(no_driftd_env: pytest.MonkeyPatch) -> None:
    """Section keys, whole sections, the aliased schema and plain values all still apply."""
    no_driftd_env.setenv("DRIFTD_WINDOWS__SIZE_EVENTS", "777")
    no_driftd_env.setenv("DRIFTD_SCHEMA__ID", "request")
    no_driftd_env.setenv("DRIFTD_MODEL", "fraud")
    no_driftd_env.setenv("DRIFTD_METRICS", '{"port": 9200}')
    settings = load_settings(None)
    assert settings.windows.size_events == 777 and settings.schema_.id == "request"
    assert settings.model == "fraud" and settings.metrics.port == 9200
    assert unknown_env_settings() == []


def test_a_secret_in_a_driftd_variable_is_not_unknown(
    tmp_path: Path, no_driftd_env: pytest.MonkeyPatch
) -> None:
    """A secret the config reads from DRIFTD_PD_KEY (env:) is the config's, not a typo."""
    no_driftd_env.setenv("DRIFTD_PD_KEY", "routing-key")
    config = tmp_path / "driftd.yaml"
    config.write_text(
        "alerts:\n  sinks: [{type: pagerduty, name: pd, routing_key: {env: DRIFTD_PD_KEY}}]\n"
        "  routes: [{sinks: [pd]}]\n"
    )
    settings = load_settings(config)
    assert settings.alerts.sinks[0].name == "pd"


def test_repo_tools_read_no_driftd_variables() -> None:
    """The test and launcher tools use DRIFTDTEST_*, so they never look like daemon settings."""
    pattern = re.compile(r"DRIFTD_[A-Z][A-Z0-9_]*")
    tools = [
        REPO / "deploy" / "kafka" / "kafka.sh",
        REPO / "tests" / "kafka_broker.py",
        REPO / "tests" / "alertmanager_server.py",
        REPO / "tests" / "prometheus_server.py",
    ]
    for path in tools:
        found = set(pattern.findall(path.read_text(encoding="utf-8")))
        # DRIFTD_WEBHOOK_URL is a placeholder in Alertmanager's config template, not a variable.
        assert found <= {"DRIFTD_WEBHOOK_URL"}, (path.name, found)
