"""The log sink: alert actions as structlog events (``alert_trigger`` / ``alert_resolve``)."""

from __future__ import annotations

import structlog

from monitor.emit.alerts.model import AlertAction

_log = structlog.get_logger()


class LogSink:
    """Writes each action as one structured log event; never fails."""

    def __init__(self, name: str = "log") -> None:
        self._name = name

    @property
    def name(self) -> str:
        """The configured sink name."""
        return self._name

    def send(self, action: AlertAction) -> None:
        """Log ``action`` (warning for a trigger, info for a resolve)."""
        fields = {
            "sink": self._name,
            "dedup_key": action.dedup_key,
            "severity": action.severity,
            "summary": action.summary(),
            "details": action.details(),
        }
        if action.action == "trigger":
            _log.warning("alert_trigger", **fields)
        else:
            _log.info("alert_resolve", **fields)
