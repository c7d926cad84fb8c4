"""The counters and histograms the daemon updates as it works, bound to an injected registry.

:class:`DaemonMetrics` holds them; the pipeline's outcome of each batch is counted by
:meth:`DaemonMetrics.observe_batch`. What is read at scrape time instead (scores,
decisions, lag) lives in ``monitor.emit.drift_collector``; the HTTP endpoints that serve
the registry live in ``monitor.emit.http``. Nothing here uses the global registry.

Label values come only from code constants, the configured columns and the capped
segment table (through ``WindowResults``), never from raw input.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable, Sequence
from contextlib import suppress
from importlib import metadata
from typing import Final, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from monitor.engine.decision import Transition
from monitor.engine.results import WindowResults
from monitor.ingest.segments import SegmentCounts

__all__ = ["BATCH_BUCKETS", "BatchSummary", "DaemonMetrics", "driftd_version"]

BATCH_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""``driftd_batch_processing_seconds`` buckets: 1 ms to 10 s."""


def driftd_version() -> str:
    """The installed driftd version, or ``0+unknown`` when running from a source tree."""
    try:
        return metadata.version("driftd")
    except metadata.PackageNotFoundError:
        return "0+unknown"


class BatchSummary(Protocol):
    """What :meth:`DaemonMetrics.observe_batch` reads of a batch (the pipeline's outcome)."""

    @property
    def accepted(self) -> int: ...
    @property
    def rejected(self) -> Sequence[tuple[object, str, str]]: ...
    @property
    def results(self) -> WindowResults | None: ...
    @property
    def transitions(self) -> Sequence[Transition]: ...


class DaemonMetrics:
    """The counters and histograms the daemon updates as it works.

    Reason and outcome labels must be code constants (``DecodeError.reason``, say),
    never text from the input.
    """

    def __init__(self, registry: CollectorRegistry, model: str, version: str | None = None):
        self.model = model
        self.events_consumed = Counter(
            "driftd_events_consumed",
            "Events decoded and fed to the windows.",
            ["model"],
            registry=registry,
        ).labels(model=model)
        self.events_rejected = Counter(
            "driftd_events_rejected",
            "Events rejected by decode or validation, by reason.",
            ["model", "reason"],
            registry=registry,
        )
        self.events_late = Counter(
            "driftd_events_late",
            "Accepted events that came after the watermark passed their time window.",
            ["model"],
            registry=registry,
        ).labels(model=model)
        self.windows_closed = Counter(
            "driftd_windows_closed",
            "Segment windows closed and evaluated.",
            ["model", "segment"],
            registry=registry,
        )
        self.segments_overflow = Counter(
            "driftd_segments_overflow",
            "Events whose segment key went to __other__ because the segment table was full.",
            ["model"],
            registry=registry,
        ).labels(model=model)
        self.segments_unadmitted = Counter(
            "driftd_segments_unadmitted_events",
            "Events counted under __other__ while their segment value waited for admission.",
            ["model"],
            registry=registry,
        ).labels(model=model)
        self.segments_admitted = Counter(
            "driftd_segments_admitted",
            "Segment values given a segment of their own.",
            ["model"],
            registry=registry,
        ).labels(model=model)
        self.segments_evicted = Counter(
            "driftd_segments_evicted",
            "Segments evicted after segments.idle_seconds without an event.",
            ["model"],
            registry=registry,
        ).labels(model=model)
        self.segments_tracked = Gauge(
            "driftd_segments_tracked",
            "Segments with a segment of their own now (__other__ excluded).",
            ["model"],
            registry=registry,
        ).labels(model=model)
        self._transition_labels: dict[str, set[tuple[str, str, str]]] = {}
        """(feature, method, to) of each segment's transition series, to remove them."""
        self.batch_processing = Histogram(
            "driftd_batch_processing_seconds",
            "Wall time to process one poll batch, decode to decisions.",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.dead_letter = Counter(
            "driftd_dead_letter",
            "Messages written to the dead-letter topic, by reason.",
            ["model", "reason"],
            registry=registry,
        )
        self.commits = Counter(
            "driftd_commit",
            "Offset commits, by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.drift_transitions = Counter(
            "driftd_drift_transitions",
            "Alert state transitions, by target state (firing or resolved).",
            ["model", "segment", "feature", "method", "to"],
            registry=registry,
        )
        self.build_info = Info("driftd_build", "driftd build information.", registry=registry)
        self.build_info.info(
            {"version": version or driftd_version(), "python": platform.python_version()}
        )
        self.reference_info = Info(
            "driftd_reference",
            "The reference profile in use (version is its content hash).",
            ["model"],
            registry=registry,
        )

    def consumed(self, n: int) -> None:
        """Count ``n`` events fed to the windows."""
        self.events_consumed.inc(n)

    def rejected(self, reason: str, n: int = 1) -> None:
        """Count ``n`` events rejected for ``reason``."""
        self.events_rejected.labels(model=self.model, reason=reason).inc(n)

    def dead_lettered(self, reason: str, n: int = 1) -> None:
        """Count ``n`` messages written to the dead-letter topic."""
        self.dead_letter.labels(model=self.model, reason=reason).inc(n)

    def record_segments(self, before: SegmentCounts, after: SegmentCounts, tracked: int) -> None:
        """Count what the segment table did between two of its ``counts()``."""
        self.segments_overflow.inc(after.overflow - before.overflow)
        self.segments_unadmitted.inc(after.unadmitted - before.unadmitted)
        self.segments_admitted.inc(after.admitted - before.admitted)
        self.segments_evicted.inc(after.evicted - before.evicted)
        self.segments_tracked.set(tracked)

    def forget_segments(self, segments: Iterable[str]) -> None:
        """Remove the series of evicted ``segments`` (their ids serve other segments)."""
        for segment in segments:
            with suppress(KeyError):  # it never closed a window
                self.windows_closed.remove(self.model, segment)
            for feature, method, to in self._transition_labels.pop(segment, set()):
                self.drift_transitions.remove(self.model, segment, feature, method, to)

    def commit(self, outcome: str) -> None:
        """Count one offset commit with ``outcome`` (``ok``, ``failed``, ``skipped``)."""
        self.commits.labels(outcome=outcome).inc()

    def record_windows(self, results: WindowResults) -> None:
        """Count the windows that closed in ``results``."""
        for segment in results.segments:
            self.windows_closed.labels(model=self.model, segment=segment).inc()

    def record_transitions(self, transitions: Iterable[Transition]) -> None:
        """Count alert transitions."""
        for t in transitions:
            self._transition_labels.setdefault(t.segment, set()).add(
                (t.column, t.method, t.current)
            )
            self.drift_transitions.labels(
                model=t.model, segment=t.segment, feature=t.column, method=t.method, to=t.current
            ).inc()

    def observe_batch(self, outcome: BatchSummary, seconds: float) -> None:
        """Account for one processed poll batch that took ``seconds`` of wall time.

        Counts accepted events, rejections by reason, closed windows and alert
        transitions, and observes the batch histogram. Dead letters are counted by
        whoever writes them (:meth:`dead_lettered`), since writing can be disabled.
        """
        self.consumed(outcome.accepted)
        # ``late`` (events behind the watermark) only exists once the windows ran.
        self.events_late.inc(int(getattr(outcome, "late", 0)))
        reasons: dict[str, int] = {}
        for _, reason, _ in outcome.rejected:
            reasons[reason] = reasons.get(reason, 0) + 1
        for reason, count in sorted(reasons.items()):
            self.rejected(reason, count)
        if outcome.results is not None:
            self.record_windows(outcome.results)
        self.record_transitions(outcome.transitions)
        self.batch_processing.observe(seconds)

    def set_reference(self, version: str) -> None:
        """Publish the reference profile version in use (replaces the previous one)."""
        self.reference_info.labels(model=self.model).info({"version": version})
