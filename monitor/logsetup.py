"""structlog, configured once at startup: JSON in production, console in a terminal."""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_LEVELS["error"] = logging.ERROR


def configure_logging(
    level: Literal["debug", "info", "warning", "error"] = "info",
    fmt: Literal["auto", "json", "console"] = "auto",
    stream: object | None = None,
) -> None:
    """Configure structlog for the process; later calls replace the configuration."""
    out = stream if stream is not None else sys.stderr
    use_console = fmt == "console" or (fmt == "auto" and getattr(out, "isatty", lambda: False)())
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=use_console and fmt == "auto")
        if use_console
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=out),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    # kafka-python logs every reconnect at ERROR through stdlib logging; the source
    # reports outages itself (metrics and one structured event per failure streak).
    kafka_level = logging.CRITICAL if level != "debug" else logging.INFO
    logging.getLogger("kafka").setLevel(kafka_level)
    # Except what it says about this member's place in its group (session expired, poll
    # interval exceeded, generation or member id refused, a join that failed): those
    # become structured ``kafka_group_warning`` events.
    group = logging.getLogger("kafka.coordinator")
    group.setLevel(min(kafka_level, logging.WARNING))
    group.propagate = False
    if _GROUP_WARNINGS not in group.handlers:
        group.addHandler(_GROUP_WARNINGS)


class _GroupWarnings(logging.Handler):
    """Forwards kafka-python's group-membership warnings to structlog.

    Only from the group coordinator itself and its heartbeat loop (``kafka.coordinator``,
    ``kafka.coordinator.heartbeat``), and not the ones a lost connection causes: the
    source reports outages. Commit failures and rebalance-callback errors
    (``kafka.coordinator.consumer``) are reported by the source and the rebalance relay.
    """

    _LOGGERS = frozenset({"kafka.coordinator", "kafka.coordinator.heartbeat"})
    _CONNECTION = ("Error sending", "Marking the coordinator dead", "LeaveGroup request failed")

    def emit(self, record: logging.LogRecord) -> None:
        if record.name not in self._LOGGERS:
            return
        try:
            message = record.getMessage()
        except Exception:  # a malformed kafka-python log call must not break its IO loop
            return
        if message.startswith(self._CONNECTION):
            return
        log = structlog.get_logger()
        emit = log.error if record.levelno >= logging.ERROR else log.warning
        emit("kafka_group_warning", logger=record.name, message=message)


_GROUP_WARNINGS = _GroupWarnings(logging.WARNING)
