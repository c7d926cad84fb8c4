"""Builders shared by the alert tests (no fixtures here: each test module owns its own)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from monitor.emit.alerts.model import AlertAction
from monitor.emit.alerts.outbox import Backoff
from monitor.engine.decision import Transition, dedup_key
from monitor.errors import AlertDeliveryError

ROUTING_KEY = "R0UT1NGKEYsecret0123456789abcdef"
assert len(ROUTING_KEY) == 32
FAST = Backoff(initial_s=0.005, max_s=0.03, multiplier=2.0, jitter=0.5, max_retry_after_s=2.0)


def transition(
    column: str = "age",
    *,
    current: str = "firing",
    model: str = "fraud",
    segment: str = "eu",
    method: str = "psi",
    ts: float = 1_760_000_000.0,
    score: float | None = None,
) -> Transition:
    firing = current == "firing"
    return Transition(
        model=model,
        segment=segment,
        column=column,
        method=method,
        previous="pending" if firing else "firing",
        current="firing" if firing else "resolved",
        score=(0.31 if firing else 0.02) if score is None else score,
        threshold=0.25,
        clear=0.1,
        p_value=0.001,
        n=5000,
        window_end_ts=ts,
        dedup_key=dedup_key(model, segment, column, method),
        consecutive=2,
    )


def action(column: str = "age", kind: str = "trigger", **kw: Any) -> AlertAction:
    current = "firing" if kind == "trigger" else "resolved"
    return AlertAction.from_transition(transition(column, current=current, **kw))


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.005)


class RecordingSink:
    """Records delivered actions; fails per ``failures`` (a list of errors to raise first)."""

    def __init__(self, name: str = "rec", failures: list[Exception] | None = None) -> None:
        self._name = name
        self.failures = list(failures or [])
        self.delivered: list[tuple[str, str]] = []
        self.attempts: list[float] = []
        self.gate = threading.Event()
        self.gate.set()
        self.lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    def send(self, action: AlertAction) -> None:
        self.gate.wait()
        with self.lock:
            self.attempts.append(time.monotonic())
            if self.failures:
                raise self.failures.pop(0)
            self.delivered.append((action.action, action.dedup_key))


def retriable(status: int = 500) -> AlertDeliveryError:
    return AlertDeliveryError("rec", f"HTTP {status}", retriable=True, status=status)
