"""Logging setup: kafka-python's group-membership warnings reach the structured log."""

from __future__ import annotations

import logging

from structlog.testing import capture_logs

from monitor.logsetup import configure_logging


def test_group_warnings_from_kafka_python_become_structured_events() -> None:
    """A coordinator warning is logged as kafka_group_warning with its message."""
    configure_logging("info", "json")
    with capture_logs() as logs:
        logging.getLogger("kafka.coordinator").warning(
            "Heartbeat session expired - marking coordinator dead"
        )
        logging.getLogger("kafka.coordinator.heartbeat").error("Heartbeat poll expired")
    assert [(e["event"], e["log_level"], e["logger"]) for e in logs] == [
        ("kafka_group_warning", "warning", "kafka.coordinator"),
        ("kafka_group_warning", "error", "kafka.coordinator.heartbeat"),
    ]
    assert logs[0]["message"].startswith("Heartbeat session expired")


def test_connection_errors_and_other_kafka_loggers_stay_quiet() -> None:
    """Outages are the source's to report: connection messages and kafka.conn stay out."""
    configure_logging("info", "json")
    with capture_logs() as logs:
        logging.getLogger("kafka.coordinator").warning("Error sending JoinGroupRequest")
        logging.getLogger("kafka.coordinator").warning("Marking the coordinator dead")
        logging.getLogger("kafka.coordinator").info("Successfully joined group")
        logging.getLogger("kafka.conn").error("Connect attempt returned error 111")
        logging.getLogger("kafka.coordinator.consumer").warning("Offset commit failed")
    assert logs == []


def test_configuring_twice_forwards_each_warning_once() -> None:
    """Repeated configuration (every CLI command) adds no second handler."""
    configure_logging("info", "json")
    configure_logging("warning", "console")
    with capture_logs() as logs:
        logging.getLogger("kafka.coordinator").warning("Heartbeat session expired")
    assert len(logs) == 1
