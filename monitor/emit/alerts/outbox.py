"""The bounded alert outbox: one FIFO queue and one worker thread per sink.

``enqueue`` is O(1) and never blocks on a sink: it appends the action to each target
sink's queue under a short lock and returns. Each sink's worker delivers its queue in
order, one action at a time, so a resolve is never sent before the trigger queued
ahead of it, and a slow or dead sink only delays itself.

Failures:

- a retriable :class:`~monitor.errors.AlertDeliveryError` (connection refused, timeout,
  408, 429, 5xx, local rate limit) retries the *same* action, forever, after an
  exponential backoff with jitter (or the receiver's ``Retry-After``, capped), so a
  sink outage loses nothing as long as the queue does not overflow;
- a permanent one (e.g. HTTP 400) is counted as ``rejected``, logged, and skipped.

Overflow (a sink's queue holds ``capacity`` waiting actions): the oldest waiting
*resolve* is dropped first; when none is waiting, the oldest trigger. Either way the
drop is counted in ``driftd_alerts_dropped_total{action}`` and logged as
``alert_dropped``: nothing is lost silently.

``close(timeout)`` stops accepting actions, lets the workers flush (still retrying)
until the deadline, then counts and logs what is left as ``abandoned``.
"""

from __future__ import annotations

import random
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from monitor.config import RetryConfig
from monitor.emit.alerts.model import AlertAction, PeriodicSink, Sink
from monitor.errors import AlertDeliveryError

__all__ = ["DELIVERY_BUCKETS", "AlertMetrics", "AlertOutbox", "Backoff"]

DELIVERY_BUCKETS: Final = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
"""``driftd_alert_delivery_seconds`` buckets (enqueue to accepted): 10 ms to 5 min."""
_MAX_EXPONENT: Final = 60

_log = structlog.get_logger()


@dataclass(frozen=True)
class Backoff:
    """Delay before retry ``attempt`` (0-based): ``initial * multiplier**attempt``, capped.

    Jitter scales each delay by a uniform factor in ``[1 - jitter, 1]``.
    """

    initial_s: float = 1.0
    max_s: float = 60.0
    multiplier: float = 2.0
    jitter: float = 0.5
    max_retry_after_s: float = 300.0

    @classmethod
    def from_config(cls, cfg: RetryConfig) -> Backoff:
        """The backoff of ``alerts.retry``."""
        return cls(cfg.initial_s, cfg.max_s, cfg.multiplier, cfg.jitter, cfg.max_retry_after_s)

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``attempt``."""
        base = min(self.max_s, self.initial_s * self.multiplier ** min(attempt, _MAX_EXPONENT))
        return float(base * (1.0 - self.jitter * rng.random()))

    def after(self, retry_after: float | None, attempt: int, rng: random.Random) -> float:
        """The receiver's ``Retry-After`` (capped) when given, else :meth:`delay`."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after_s)
        return self.delay(attempt, rng)


class AlertMetrics:
    """The outbox's Prometheus metrics, bound to an injected registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.alerts = Counter(
            "driftd_alerts",
            "Alert delivery attempts by sink, action (trigger/resolve) and outcome "
            "(delivered, retry, throttled, rejected, abandoned).",
            ["sink", "action", "outcome"],
            registry=registry,
        )
        self.depth = Gauge(
            "driftd_alert_outbox_depth",
            "Alert actions waiting or in flight, per sink.",
            ["sink"],
            registry=registry,
        )
        self.delivery = Histogram(
            "driftd_alert_delivery_seconds",
            "Seconds from enqueue to acceptance by the sink, retries included.",
            ["sink"],
            buckets=DELIVERY_BUCKETS,
            registry=registry,
        )
        self.dropped = Counter(
            "driftd_alerts_dropped",
            "Alert actions dropped because a sink's outbox queue was full.",
            ["action"],
            registry=registry,
        )


@dataclass(eq=False)
class _Item:
    action: AlertAction
    enqueued_at: float
    attempts: int = 0


class _Queue:
    """One sink's FIFO with O(1) append, pop-front and drop-oldest-resolve/trigger."""

    def __init__(self, sink: Sink, capacity: int) -> None:
        self.sink = sink
        self.name = sink.name
        self.capacity = capacity
        self.cond = threading.Condition()
        self.items: OrderedDict[int, _Item] = OrderedDict()
        self.by_action: dict[str, deque[int]] = {"trigger": deque(), "resolve": deque()}
        self.in_flight: _Item | None = None
        self.thread: threading.Thread | None = None

    def append(self, seq: int, item: _Item) -> _Item | None:
        """Append; when full first drop the oldest resolve, else the oldest trigger."""
        dropped = None
        if len(self.items) >= self.capacity:
            victims = self.by_action["resolve"] or self.by_action["trigger"]
            dropped = self.items.pop(victims.popleft())
        self.items[seq] = item
        self.by_action[item.action.action].append(seq)
        return dropped

    def pop(self) -> _Item:
        """Remove and return the oldest item (it heads its action's deque too)."""
        seq, item = self.items.popitem(last=False)
        head = self.by_action[item.action.action].popleft()
        assert head == seq
        return item

    def depth(self) -> int:
        return len(self.items) + (self.in_flight is not None)


class AlertOutbox:
    """Bounded per-sink queues of alert actions, each drained by its own worker thread."""

    def __init__(
        self,
        sinks: Sequence[Sink],
        registry: CollectorRegistry,
        *,
        capacity: int = 1_000,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        names = [s.name for s in sinks]
        if len(set(names)) != len(names):
            raise ValueError(f"sink names must be unique: {names}")
        self.capacity = capacity
        self.backoff = backoff or Backoff()
        self.metrics = AlertMetrics(registry)
        self._clock = clock
        self._rng = rng or random.Random()
        self._queues = {s.name: _Queue(s, capacity) for s in sinks}
        self._seq = 0
        self._seq_lock = threading.Lock()
        self._closing = False
        self._abort = threading.Event()
        self._started = False
        for name in self._queues:
            self.metrics.depth.labels(name).set(0)

    @property
    def sinks(self) -> list[str]:
        """The sink names, in configuration order."""
        return list(self._queues)

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        """Start one daemon worker thread per sink (idempotent)."""
        if self._started:
            return
        self._started = True
        for q in self._queues.values():
            q.thread = threading.Thread(
                target=self._run, args=(q,), name=f"driftd-alerts-{q.name}", daemon=True
            )
            q.thread.start()

    def close(self, timeout: float = 10.0, give_up: Callable[[], bool] | None = None) -> bool:
        """Stop accepting, flush until ``timeout`` seconds pass (or ``give_up()`` turns
        true, checked every 0.1 s); True if all was delivered.

        Actions still queued after the deadline are counted (``outcome="abandoned"``)
        and logged. An HTTP request in flight at the deadline finishes on its daemon
        thread (bounded by the sink's timeout) but is not waited for.
        """
        deadline = time.monotonic() + max(timeout, 0.0)
        for q in self._queues.values():
            with q.cond:
                self._closing = True
                q.cond.notify_all()
        if not self._started:
            self.start()
        stop = give_up or (lambda: False)
        for q in self._queues.values():
            while q.thread is not None and q.thread.is_alive() and not stop():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                q.thread.join(min(0.1, remaining))
        self._abort.set()
        for q in self._queues.values():
            with q.cond:
                q.cond.notify_all()
        clean = True
        for q in self._queues.values():
            if q.thread is not None:
                q.thread.join(0.05)
            with q.cond:
                left = list(q.items.values())
                q.items.clear()
                for d in q.by_action.values():
                    d.clear()
                in_flight = q.in_flight is not None
                self.metrics.depth.labels(q.name).set(q.depth())
            if left or in_flight:
                clean = False
            for item in left:
                self.metrics.alerts.labels(q.name, item.action.action, "abandoned").inc()
            if left:
                _log.error(
                    "alert_outbox_abandoned",
                    sink=q.name,
                    triggers=sum(i.action.action == "trigger" for i in left),
                    resolves=sum(i.action.action == "resolve" for i in left),
                    dedup_keys=[i.action.dedup_key for i in left],
                    in_flight=in_flight,
                )
        return clean

    def __enter__(self) -> AlertOutbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- producer side ----------------------------------------------------------

    def enqueue(self, action: AlertAction, sinks: Iterable[str] | None = None) -> bool:
        """Queue ``action`` for ``sinks`` (all by default); O(1) per sink, never blocks.

        False (and logged) once closing or for an unknown sink name.
        """
        targets = list(self._queues) if sinks is None else list(dict.fromkeys(sinks))
        with self._seq_lock:
            self._seq += 1
            seq = self._seq
        now = self._clock()
        ok = True
        for name in targets:
            q = self._queues.get(name)
            if q is None:
                _log.error("alert_unknown_sink", sink=name, dedup_key=action.dedup_key)
                ok = False
                continue
            with q.cond:
                if self._closing:
                    closed = True
                    dropped = None
                else:
                    closed = False
                    dropped = q.append(seq, _Item(action, now))
                    self.metrics.depth.labels(name).set(q.depth())
                    q.cond.notify()
            if closed:
                _log.error(
                    "alert_outbox_closed",
                    sink=name,
                    action=action.action,
                    dedup_key=action.dedup_key,
                )
                ok = False
            elif dropped is not None:
                self.metrics.dropped.labels(dropped.action.action).inc()
                _log.error(
                    "alert_dropped",
                    sink=name,
                    action=dropped.action.action,
                    dedup_key=dropped.action.dedup_key,
                    reason="outbox_full",
                    capacity=q.capacity,
                )
        return ok

    def snapshot(self) -> dict[str, list[AlertAction]]:
        """What each sink still owes, in delivery order (in flight first), for checkpoints."""
        out: dict[str, list[AlertAction]] = {}
        for name, q in self._queues.items():
            with q.cond:
                items = [q.in_flight] if q.in_flight is not None else []
                items += list(q.items.values())
                out[name] = [item.action for item in items]
        return out

    def depth(self, sink: str | None = None) -> int:
        """Actions waiting or in flight for ``sink`` (all sinks by default)."""
        queues = self._queues.values() if sink is None else [self._queues[sink]]
        total = 0
        for q in queues:
            with q.cond:
                total += q.depth()
        return total

    # -- worker side -------------------------------------------------------------

    def _run(self, q: _Queue) -> None:
        periodic = q.sink if isinstance(q.sink, PeriodicSink) else None
        while True:
            with q.cond:
                if not q.items and not self._closing and not self._abort.is_set():
                    q.cond.wait(periodic.tick_interval_s if periodic is not None else None)
                if self._abort.is_set():
                    return
                item: _Item | None = None
                if q.items:
                    item = q.pop()
                    q.in_flight = item
                elif self._closing:
                    return
            if item is None:
                if periodic is not None:
                    self._tick(periodic)
                continue
            try:
                self._deliver(q, item)
            finally:
                with q.cond:
                    q.in_flight = None
                    self.metrics.depth.labels(q.name).set(q.depth())

    def _tick(self, sink: PeriodicSink) -> None:
        try:
            outcome = sink.tick()
        except Exception as e:
            # The next idle interval retries; the alert state the tick re-sends is kept.
            self.metrics.alerts.labels(sink.name, "trigger", "retry").inc()
            _log.warning(
                "alert_resend_failed",
                sink=sink.name,
                error_type=type(e).__name__,
                error=e.message if isinstance(e, AlertDeliveryError) else "sink failure",
            )
            return
        if outcome is not None:
            self.metrics.alerts.labels(sink.name, "trigger", outcome).inc()

    def _deliver(self, q: _Queue, item: _Item) -> None:
        action = item.action
        while True:
            try:
                q.sink.send(action)
            except AlertDeliveryError as e:
                if not e.retriable:
                    self.metrics.alerts.labels(q.name, action.action, "rejected").inc()
                    _log.error(
                        "alert_rejected",
                        sink=q.name,
                        action=action.action,
                        dedup_key=action.dedup_key,
                        status=e.status,
                        error=e.message,
                    )
                    return
                throttled = e.reason == "rate_limited"
                outcome = "throttled" if throttled else "retry"
                self.metrics.alerts.labels(q.name, action.action, outcome).inc()
                delay = self.backoff.after(e.retry_after, item.attempts, self._rng)
                if not throttled:
                    item.attempts += 1
                    _log.warning(
                        "alert_delivery_retry",
                        sink=q.name,
                        action=action.action,
                        dedup_key=action.dedup_key,
                        attempt=item.attempts,
                        delay_s=round(delay, 3),
                        status=e.status,
                        error=e.message,
                    )
            except Exception as e:
                # A bug in a sink: retry like an outage rather than lose the alert.
                self.metrics.alerts.labels(q.name, action.action, "retry").inc()
                delay = self.backoff.delay(item.attempts, self._rng)
                item.attempts += 1
                _log.error(
                    "alert_sink_failed",
                    sink=q.name,
                    action=action.action,
                    dedup_key=action.dedup_key,
                    attempt=item.attempts,
                    error_type=type(e).__name__,
                )
            else:
                self.metrics.alerts.labels(q.name, action.action, "delivered").inc()
                self.metrics.delivery.labels(q.name).observe(
                    max(0.0, self._clock() - item.enqueued_at)
                )
                return
            if self._abort.wait(delay):
                with q.cond:
                    # Put it back at the front so close() counts it as abandoned.
                    q.items[0] = item
                    q.items.move_to_end(0, last=False)
                    q.by_action[action.action].appendleft(0)
                return
