"""When to save, and what the saves cost: the checkpoint cadence and its metrics.

Both kinds of checkpointer (whole state in a file, per partition on a topic) share
these, so they count saves the same way under the same metric names.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from monitor.config import CheckpointConfig

log = structlog.get_logger()

SAVE_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class CheckpointMetrics:
    """``driftd_checkpoint_*``: outcome counts, duration, size, last success time."""

    def __init__(self, registry: CollectorRegistry, model: str) -> None:
        self.total = Counter(
            "driftd_checkpoint",
            "Checkpoint saves by outcome (ok, failed).",
            ["outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "driftd_checkpoint_duration_seconds",
            "Seconds to encode and store one checkpoint.",
            buckets=SAVE_BUCKETS,
            registry=registry,
        )
        self.size = Gauge(
            "driftd_checkpoint_size_bytes",
            "Size of the last checkpoint saved.",
            ["model"],
            registry=registry,
        ).labels(model=model)
        self.last_success = Gauge(
            "driftd_checkpoint_last_success_timestamp_seconds",
            "Unix time of the last successful checkpoint (0: none yet).",
            ["model"],
            registry=registry,
        ).labels(model=model)
        for outcome in ("ok", "failed"):
            self.total.labels(outcome)


class SaveCadence:
    """A save is due every ``interval_s`` seconds or ``interval_batches`` batches; the
    daemon also saves on revoke and at shutdown regardless. Counts each save's outcome."""

    def __init__(
        self,
        cfg: CheckpointConfig,
        metrics: CheckpointMetrics,
        *,
        location: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cfg = cfg
        self.metrics = metrics
        self.location = location
        self._clock = clock
        self._saved_at = clock()
        self._batches = 0

    def due(self, batches: int = 1) -> bool:
        """Whether the cadence calls for a save, ``batches`` more having been processed."""
        self._batches += batches
        cfg = self._cfg
        if cfg.interval_batches is not None and self._batches >= cfg.interval_batches:
            return True
        return self._clock() - self._saved_at >= cfg.interval_s

    def succeeded(self, size: int, elapsed: float) -> None:
        """A save of ``size`` bytes took ``elapsed`` seconds; the cadence restarts."""
        self.metrics.total.labels("ok").inc()
        self.metrics.duration.observe(elapsed)
        self.metrics.size.set(size)
        self.metrics.last_success.set(time.time())
        self._saved_at = self._clock()
        self._batches = 0
        log.debug("checkpoint_saved", bytes=size, seconds=round(elapsed, 4))

    def failed(self, error: str) -> None:
        """A save failed: nothing may be committed, and the cadence stays due."""
        self.metrics.total.labels("failed").inc()
        log.error("checkpoint_failed", location=self.location, error=error)
