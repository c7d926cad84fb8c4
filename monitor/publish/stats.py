"""What the publisher did with each event: counts, an optional Prometheus view, drop logs.

Counting sits on the model server's request path, so it is a few integer additions under
the publisher's lock and nothing else; the Prometheus collector reads the counts only
when it is scraped, and the drop log lines are written by the sender thread, never by the
thread that called ``publish``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

log = structlog.get_logger()

DROP_REASONS = (
    "buffer_full",
    "invalid",
    "serialise",
    "too_large",
    "delivery_failed",
    "closed",
    "unsent_at_close",
)
"""Why an event was dropped (see docs/publishing.md for each one)."""


@dataclass(frozen=True, slots=True)
class PublisherStats:
    """A snapshot of the counts since the publisher started (label events included).

    ``pending`` is what the publisher holds: buffered, or handed to the Kafka producer and
    not yet acknowledged. It never exceeds ``max_buffer``.
    """

    published: int
    delivered: int
    dropped: dict[str, int]
    pending: int
    max_buffer: int

    @property
    def dropped_total(self) -> int:
        """Events dropped for any reason."""
        return sum(self.dropped.values())


@dataclass(slots=True)
class Counts:
    """The live counters; every change happens under ``lock`` (the publisher's)."""

    lock: threading.Lock
    max_buffer: int
    published: int = 0
    delivered: int = 0
    pending: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))
    first_error: dict[str, str] = field(default_factory=dict)
    """The first detail seen per drop reason, logged once by the sender thread."""

    def snapshot(self) -> PublisherStats:
        """A consistent copy of the counts."""
        with self.lock:
            return PublisherStats(
                published=self.published,
                delivered=self.delivered,
                dropped=dict(self.dropped),
                pending=self.pending,
                max_buffer=self.max_buffer,
            )


class PublisherCollector(Collector):
    """The counts as Prometheus metrics, read at scrape time."""

    def __init__(self, stats: Callable[[], PublisherStats], topic: str) -> None:
        self._stats = stats
        self._topic = topic

    def collect(self) -> Iterator[Any]:
        """Yield the publisher's metric families."""
        stats = self._stats()
        labels = ["topic"]
        published = CounterMetricFamily(
            "driftd_publisher_events_published",
            "Events (and labels) the publisher accepted into its buffer.",
            labels=labels,
        )
        published.add_metric([self._topic], stats.published)
        delivered = CounterMetricFamily(
            "driftd_publisher_events_delivered",
            "Events (and labels) the Kafka broker acknowledged.",
            labels=labels,
        )
        delivered.add_metric([self._topic], stats.delivered)
        dropped = CounterMetricFamily(
            "driftd_publisher_events_dropped",
            "Events (and labels) the publisher dropped, by reason.",
            labels=[*labels, "reason"],
        )
        for reason in DROP_REASONS:
            dropped.add_metric([self._topic, reason], stats.dropped[reason])
        pending = GaugeMetricFamily(
            "driftd_publisher_pending_events",
            "Events buffered or awaiting the broker's acknowledgement.",
            labels=labels,
        )
        pending.add_metric([self._topic], stats.pending)
        capacity = GaugeMetricFamily(
            "driftd_publisher_max_buffer_events",
            "The most events the publisher holds before it drops new ones.",
            labels=labels,
        )
        capacity.add_metric([self._topic], stats.max_buffer)
        yield from (published, delivered, dropped, pending, capacity)


def register_collector(
    registry: CollectorRegistry | None, stats: Callable[[], PublisherStats], topic: str
) -> PublisherCollector | None:
    """Register the collector on the caller's registry (never the global one by default)."""
    if registry is None:
        return None
    collector = PublisherCollector(stats, topic)
    registry.register(collector)
    return collector


class DropLog:
    """Logs when drops start and when they stop, at most once per ``interval_s``.

    Called by the sender thread after each pass: ``publisher_dropping`` (a warning) when
    events were dropped since the last pass, repeated at most once per interval while
    drops go on; ``publisher_recovered`` once a pass sees deliveries and no new drop.
    The first detail of each reason (a value orjson cannot serialise, say) is logged once.
    """

    def __init__(self, topic: str, interval_s: float, clock: Callable[[], float]) -> None:
        self._topic = topic
        self._interval_s = interval_s
        self._clock = clock
        self._seen_dropped: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)
        self._seen_delivered = 0
        self._dropping = False
        self._episode_dropped = 0
        self._last_logged = -float("inf")
        self._details_logged: set[str] = set()

    @property
    def dropping(self) -> bool:
        """Whether the publisher is in a dropping episode."""
        return self._dropping

    def observe(self, stats: PublisherStats, first_error: dict[str, str]) -> None:
        """Compare with the previous pass and log what changed (rate-limited)."""
        new = {r: stats.dropped[r] - self._seen_dropped[r] for r in DROP_REASONS}
        new = {r: n for r, n in new.items() if n > 0}
        delivered = stats.delivered - self._seen_delivered
        self._seen_dropped = dict(stats.dropped)
        self._seen_delivered = stats.delivered
        for reason, detail in first_error.items():
            if reason not in self._details_logged:
                self._details_logged.add(reason)
                log.warning("publisher_drop_cause", topic=self._topic, reason=reason, detail=detail)
        now = self._clock()
        if new:
            self._episode_dropped += sum(new.values())
            if not self._dropping or now - self._last_logged >= self._interval_s:
                log.warning(
                    "publisher_dropping",
                    topic=self._topic,
                    dropped=new,
                    dropped_in_episode=self._episode_dropped,
                    pending=stats.pending,
                    max_buffer=stats.max_buffer,
                )
                self._last_logged = now
            self._dropping = True
        elif self._dropping and delivered > 0:
            log.info(
                "publisher_recovered",
                topic=self._topic,
                dropped_in_episode=self._episode_dropped,
                pending=stats.pending,
            )
            self._dropping = False
            self._episode_dropped = 0
