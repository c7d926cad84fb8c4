"""Whether the Kafka source can reach its brokers, and when it may try again.

A broker outage does not make kafka-python's ``poll`` raise: it returns nothing,
forever. So an empty poll counts as successful only if the broker answered in the last
``PROBE_INTERVAL_S`` seconds; otherwise the source probes it (a bounded ListOffsets
request). A failed probe, or an error raised by the client, counts in
``consecutive_poll_failures`` and backs the next attempt off exponentially
(``BACKOFF_INITIAL_S`` doubling up to ``kafka.retry_backoff_max_ms``, which also caps
the client's reconnect backoff, so consumption resumes within seconds of the broker's
return). :class:`PollHealth` keeps that account; the source reads and writes nothing of
it but through its methods.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import structlog

from monitor.kafka.api import kafka_errors

__all__ = ["BACKOFF_INITIAL_S", "PROBE_INTERVAL_S", "PollHealth"]

log = structlog.get_logger()

PROBE_INTERVAL_S = 5.0
"""An empty poll proves nothing; the broker is probed when it has not answered for this long."""

BACKOFF_INITIAL_S = 0.5
"""The first poll retry waits this long; each further failure doubles it, up to
``kafka.retry_backoff_max_ms``."""


def _retriable(exc: BaseException) -> bool:
    """Whether the client says a retry may succeed (kafka-python's error classes, or the
    ``retriable()`` of the librdkafka error a confluent-kafka exception carries)."""
    if isinstance(exc, kafka_errors.RetriableError | OSError):
        return True
    said = getattr(exc.args[0] if exc.args else None, "retriable", None)
    return bool(said()) if callable(said) else False


class PollHealth:
    """The account of the source's polls: failures in a row, the last success, the backoff.

    ``clock`` gives monotonic seconds (``time.monotonic`` unless a test injects one).
    """

    def __init__(self, max_backoff_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_backoff_s = max_backoff_s
        self._clock = clock
        self._answered_at = -math.inf
        self._retry_at = -math.inf
        self._failing_since: float | None = None
        self.consecutive_failures = 0
        """Polls in a row that failed (client error or unanswered probe); 0 when healthy."""
        self.last_success: float | None = None
        """Clock time of the last poll that returned records or had the broker answer."""
        self.last_error: str | None = None
        """The last poll failure, as ``ErrorType: message`` (kept after recovery)."""

    def backoff_left(self) -> float:
        """Seconds until the next attempt is due (0 when it is due now)."""
        return max(0.0, self._retry_at - self._clock())

    def needs_probe(self) -> bool:
        """Whether the broker has been silent for ``PROBE_INTERVAL_S`` (an empty poll must
        then be confirmed by a probe before it counts as a success)."""
        return self._clock() - self._answered_at >= PROBE_INTERVAL_S

    def broker_answered(self) -> None:
        """The broker answered a request just now (a lag lookup, a probe)."""
        self._answered_at = self._clock()

    def failed(self, exc: BaseException) -> None:
        """Count one failed poll and back the next attempt off."""
        now = self._clock()
        self.consecutive_failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        if self._failing_since is None:
            self._failing_since = now
        exponent = min(self.consecutive_failures - 1, 30)  # no float overflow in outages
        delay = min(self._max_backoff_s, BACKOFF_INITIAL_S * 2**exponent)
        self._retry_at = now + delay
        log.warning(
            "kafka_poll_failed",
            error=self.last_error,
            retriable=_retriable(exc),
            failures=self.consecutive_failures,
            retry_in_s=round(delay, 3),
        )

    def succeeded(self, *, confirmed: bool = True) -> None:
        """Record a good poll; ``confirmed`` when the broker itself answered just now."""
        now = self._clock()
        if self.consecutive_failures:
            since = self._failing_since if self._failing_since is not None else now
            log.info(
                "kafka_poll_recovered",
                failures=self.consecutive_failures,
                down_s=round(now - since, 3),
            )
        self.consecutive_failures = 0
        self._failing_since = None
        self._retry_at = -math.inf
        if confirmed:
            self._answered_at = now
        self.last_success = now
