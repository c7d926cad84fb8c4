"""AlertOutbox: non-blocking enqueue, per-sink order, retries, overflow policy, close."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from monitor.emit.alerts.outbox import AlertOutbox, Backoff
from monitor.emit.alerts.pagerduty import PagerDutySink, TokenBucket
from monitor.errors import AlertDeliveryError
from tests.monitor.alerts.helpers import (
    FAST,
    ROUTING_KEY,
    RecordingSink,
    action,
    retriable,
    sample,
    wait_until,
)
from tests.monitor.alerts.receivers import receiver


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def blocked() -> Iterator[RecordingSink]:
    sink = RecordingSink("blocked")
    sink.gate.clear()
    yield sink
    sink.gate.set()


def test_enqueue_does_not_block_on_a_stuck_sink(
    registry: CollectorRegistry, blocked: RecordingSink
) -> None:
    """Enqueueing 5000 actions behind a sink stuck in send takes well under a second."""
    outbox = AlertOutbox([blocked], registry, capacity=10_000, backoff=FAST)
    outbox.start()
    a = action()
    t0 = time.perf_counter()
    for _ in range(5_000):
        assert outbox.enqueue(a)
    assert time.perf_counter() - t0 < 1.0
    assert outbox.depth() == 5_000
    blocked.gate.set()
    assert outbox.close(5.0)


def test_a_dead_sink_does_not_delay_another_sink(
    registry: CollectorRegistry, blocked: RecordingSink
) -> None:
    """Each sink drains on its own thread: a stuck sink leaves the other one unaffected."""
    fine = RecordingSink("fine")
    outbox = AlertOutbox([blocked, fine], registry, backoff=FAST)
    with capture_logs():
        outbox.start()
        for col in ("a", "b", "c"):
            outbox.enqueue(action(col))
        assert wait_until(lambda: len(fine.delivered) == 3)
        assert blocked.delivered == []
        blocked.gate.set()
        assert outbox.close(5.0)
    assert len(blocked.delivered) == 3


def test_overflow_drops_the_oldest_resolve_first(
    registry: CollectorRegistry, blocked: RecordingSink
) -> None:
    """A full queue drops its oldest waiting resolve (counted, logged), keeping triggers."""
    outbox = AlertOutbox([blocked], registry, capacity=3, backoff=FAST)
    with capture_logs() as logs:
        for a in (
            action("a"),
            action("b", "resolve"),
            action("c", "resolve"),
            action("d"),
            action("e"),
        ):
            outbox.enqueue(a)
    assert sample(registry, "driftd_alerts_dropped_total", action="resolve") == 2
    assert sample(registry, "driftd_alerts_dropped_total", action="trigger") == 0
    dropped = [e for e in logs if e["event"] == "alert_dropped"]
    assert [e["dedup_key"].split("/")[3] for e in dropped] == ["b", "c"]
    blocked.gate.set()
    outbox.start()
    assert outbox.close(5.0)
    assert [k.split("/")[3] for _, k in blocked.delivered] == ["a", "d", "e"]


def test_overflow_without_resolves_drops_the_oldest_trigger_and_logs_it(
    registry: CollectorRegistry, blocked: RecordingSink
) -> None:
    """With only triggers waiting, the oldest trigger is dropped, counted and logged."""
    outbox = AlertOutbox([blocked], registry, capacity=2, backoff=FAST)
    with capture_logs() as logs:
        for col in ("a", "b", "c"):
            outbox.enqueue(action(col))
    assert sample(registry, "driftd_alerts_dropped_total", action="trigger") == 1
    (event,) = [e for e in logs if e["event"] == "alert_dropped"]
    assert event["action"] == "trigger"
    assert event["dedup_key"].endswith("/a/psi")
    assert event["log_level"] == "error"
    blocked.gate.set()
    outbox.start()
    assert outbox.close(5.0)
    assert [k.split("/")[3] for _, k in blocked.delivered] == ["b", "c"]


def test_retriable_failures_retry_the_same_action_in_order(registry: CollectorRegistry) -> None:
    """Retriable failures retry the head action; a resolve never overtakes its trigger."""
    sink = RecordingSink(failures=[retriable(500), retriable(503), retriable(429)])
    outbox = AlertOutbox([sink], registry, backoff=FAST)
    with capture_logs() as logs:
        outbox.start()
        outbox.enqueue(action("a"))
        outbox.enqueue(action("a", "resolve"))
        outbox.enqueue(action("b"))
        assert outbox.close(5.0)
    assert sink.delivered == [
        ("trigger", "driftd/fraud/eu/a/psi"),
        ("resolve", "driftd/fraud/eu/a/psi"),
        ("trigger", "driftd/fraud/eu/b/psi"),
    ]
    assert (
        sample(registry, "driftd_alerts_total", sink="rec", action="trigger", outcome="retry") == 3
    )
    assert [e["attempt"] for e in logs if e["event"] == "alert_delivery_retry"] == [1, 2, 3]


def test_permanent_failure_is_rejected_once_and_the_queue_moves_on(
    registry: CollectorRegistry,
) -> None:
    """A non-retriable error is counted as rejected and logged; the next action is delivered."""
    sink = RecordingSink(failures=[AlertDeliveryError("rec", "HTTP 400", retriable=False)])
    outbox = AlertOutbox([sink], registry, backoff=FAST)
    with capture_logs() as logs:
        outbox.start()
        outbox.enqueue(action("a"))
        outbox.enqueue(action("b"))
        assert outbox.close(5.0)
    assert len(sink.attempts) == 2
    assert [k for _, k in sink.delivered] == ["driftd/fraud/eu/b/psi"]
    labels = {"sink": "rec", "action": "trigger"}
    assert sample(registry, "driftd_alerts_total", **labels, outcome="rejected") == 1
    assert sample(registry, "driftd_alerts_total", **labels, outcome="delivered") == 1
    assert any(e["event"] == "alert_rejected" for e in logs)


def test_unexpected_sink_exception_is_retried_not_lost(registry: CollectorRegistry) -> None:
    """A bug in a sink (any exception) is retried like an outage, so the alert survives."""
    sink = RecordingSink(failures=[RuntimeError("boom")])
    outbox = AlertOutbox([sink], registry, backoff=FAST)
    with capture_logs() as logs:
        outbox.start()
        outbox.enqueue(action("a"))
        assert outbox.close(5.0)
    assert len(sink.delivered) == 1
    assert any(e["event"] == "alert_sink_failed" for e in logs)


def test_backoff_is_exponential_capped_and_jittered() -> None:
    """Delays grow by the multiplier up to max_s, each scaled into [1 - jitter, 1]."""
    b = Backoff(initial_s=1.0, max_s=60.0, multiplier=2.0, jitter=0.5, max_retry_after_s=30.0)
    rng = random.Random(7)
    for attempt, full in [(0, 1.0), (1, 2.0), (3, 8.0), (10, 60.0), (10_000, 60.0)]:
        for _ in range(50):
            assert full * 0.5 <= b.delay(attempt, rng) <= full
    assert len({round(b.delay(4, rng), 6) for _ in range(20)}) > 1
    assert b.after(12.0, 0, rng) == 12.0
    assert b.after(3600.0, 0, rng) == 30.0


def test_close_flushes_pending_actions(registry: CollectorRegistry) -> None:
    """close() delivers everything still queued before returning True."""
    sink = RecordingSink()
    outbox = AlertOutbox([sink], registry, backoff=FAST)
    for col in "abcdef":
        outbox.enqueue(action(col))
    outbox.start()
    assert outbox.close(5.0)
    assert len(sink.delivered) == 6
    assert sample(registry, "driftd_alert_outbox_depth", sink="rec") == 0
    assert sample(registry, "driftd_alert_delivery_seconds_count", sink="rec") == 6
    assert not outbox.enqueue(action("late"))


def test_close_gives_up_at_the_deadline_and_counts_what_is_left(
    registry: CollectorRegistry,
) -> None:
    """A sink that never recovers makes close() return False at its timeout, logging leftovers."""
    sink = RecordingSink(failures=[retriable() for _ in range(10_000)])
    outbox = AlertOutbox([sink], registry, backoff=FAST)
    with capture_logs() as logs:
        outbox.start()
        for col in "abc":
            outbox.enqueue(action(col))
        t0 = time.monotonic()
        assert not outbox.close(0.3)
        assert time.monotonic() - t0 < 1.5
    labels = {"sink": "rec", "action": "trigger", "outcome": "abandoned"}
    assert sample(registry, "driftd_alerts_total", **labels) == 3
    (event,) = [e for e in logs if e["event"] == "alert_outbox_abandoned"]
    assert event["triggers"] == 3


def test_close_stops_flushing_when_told_to_give_up(registry: CollectorRegistry) -> None:
    """close(give_up=...) stops waiting for a sink that never recovers once give_up is true."""
    sink = RecordingSink(failures=[retriable() for _ in range(10_000)])
    outbox = AlertOutbox([sink], registry, backoff=FAST)
    outbox.start()
    outbox.enqueue(action("a"))
    asked: list[float] = []

    def give_up() -> bool:
        asked.append(time.monotonic())
        return len(asked) > 3

    t0 = time.monotonic()
    assert not outbox.close(60.0, give_up=give_up)
    assert len(asked) == 4  # checked while waiting, and the wait ended at the first yes
    assert time.monotonic() - t0 < 30.0  # far from the 60 s it would otherwise wait
    labels = {"sink": "rec", "action": "trigger", "outcome": "abandoned"}
    assert sample(registry, "driftd_alerts_total", **labels) == 1


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v2/enqueue"


def test_sink_outage_loses_no_trigger_or_resolve(registry: CollectorRegistry) -> None:
    """Connection refused then HTTP 500s (a compressed 60 s outage): all events arrive, in order."""
    with receiver() as pd, capture_logs():
        sink = PagerDutySink(
            "pd",
            ROUTING_KEY,
            url=_closed_port_url(),
            timeout_s=2.0,
            bucket=TokenBucket(100_000.0, 1_000),
        )
        outbox = AlertOutbox([sink], registry, capacity=1_000, backoff=FAST)
        outbox.start()
        expected = []
        for i in range(20):
            a = action(f"f{i % 5}", "trigger" if i % 2 == 0 else "resolve", ts=1.76e9 + i)
            expected.append((a.action, a.dedup_key))
            outbox.enqueue(a)
        assert wait_until(
            lambda: (
                sample(
                    registry, "driftd_alerts_total", sink="pd", action="trigger", outcome="retry"
                )
                >= 3
            )
        )
        pd.down = True  # the service answers again, with 500s
        sink.url = pd.url
        assert wait_until(lambda: len(pd.requests) >= 5)
        time.sleep(0.3)
        assert pd.accepted == []
        pd.down = False
        assert outbox.close(10.0)
    assert pd.actions() == expected
    assert pd.violations == []
