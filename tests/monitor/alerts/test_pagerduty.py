"""PagerDuty Events v2 sink against a local receiver that enforces the contract."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from monitor.emit.alerts.model import AlertAction
from monitor.emit.alerts.outbox import AlertOutbox
from monitor.emit.alerts.pagerduty import (
    DEDUP_KEY_LIMIT,
    SUMMARY_LIMIT,
    PagerDutySink,
    TokenBucket,
    bucket_for,
)
from monitor.errors import AlertDeliveryError
from tests.monitor.alerts.helpers import FAST, ROUTING_KEY, action, sample, transition
from tests.monitor.alerts.receivers import Receiver, pagerduty_violations, receiver

GRAFANA = "https://grafana.example/d/drift?var-model={model}&var-segment={segment}&from={from_ms}"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def pd() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


def make_sink(pd: Receiver, **kw: object) -> PagerDutySink:
    kw.setdefault("bucket", TokenBucket(100_000.0, 1_000))
    return PagerDutySink("pd", ROUTING_KEY, url=pd.url, grafana_url=GRAFANA, **kw)  # type: ignore[arg-type]


def test_trigger_event_meets_the_contract_and_carries_details(pd: Receiver) -> None:
    """A trigger posts a valid v2 event with component/group/class, details and a Grafana link."""
    a = AlertAction.from_transition(
        transition("age", segment="eu west"),
        severity="critical",
        reference_version="ref-7",
        extra={"top_bins": [{"bin": "[30, 40)", "reference": 0.1, "current": 0.3}]},
    )
    make_sink(pd).send(a)
    assert pd.violations == []
    (event,) = pd.accepted
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == "driftd/fraud/eu west/age/psi"
    p = event["payload"]
    assert (p["component"], p["group"], p["class"], p["severity"]) == (
        "fraud",
        "eu west",
        "psi",
        "critical",
    )
    assert p["timestamp"] == "2025-10-09T08:53:20.000Z"
    d = p["custom_details"]
    assert (d["score"], d["threshold"], d["p_value"], d["window_size"]) == (0.31, 0.25, 0.001, 5000)
    assert d["reference_version"] == "ref-7"
    assert d["top_bins"][0]["bin"] == "[30, 40)"
    assert event["links"] == [
        {
            "href": "https://grafana.example/d/drift?var-model=fraud&var-segment=eu%20west"
            "&from=1759996400000",
            "text": "Grafana",
        }
    ]


def test_resolve_event_carries_only_key_action_and_dedup_key(pd: Receiver) -> None:
    """A resolve posts routing_key, event_action=resolve and the trigger's dedup_key."""
    make_sink(pd).send(action("age", "resolve"))
    assert pd.violations == []
    assert pd.accepted == [
        {
            "routing_key": ROUTING_KEY,
            "event_action": "resolve",
            "dedup_key": "driftd/fraud/eu/age/psi",
        }
    ]


def test_long_names_are_cut_to_the_summary_and_dedup_key_limits(pd: Receiver) -> None:
    """Summaries are cut to 1024 characters and dedup keys to 255, stably for the resolve."""
    long_segment = "s" * 1500
    sink = make_sink(pd)
    sink.send(action("age", segment=long_segment))
    sink.send(action("age", "resolve", segment=long_segment))
    assert pd.violations == []
    trigger, resolve = pd.accepted
    assert len(trigger["payload"]["summary"]) == SUMMARY_LIMIT
    assert len(trigger["dedup_key"]) == DEDUP_KEY_LIMIT
    assert trigger["dedup_key"] == resolve["dedup_key"]


def test_receiver_rejects_contract_violations() -> None:
    """The contract checker itself flags bad enums, missing fields, lengths and key formats."""
    bad = {
        "routing_key": "short",
        "event_action": "fire",
        "dedup_key": "nope",
        "payload": {"summary": "x" * 1025, "severity": "high", "timestamp": "yesterday"},
    }
    problems = " | ".join(pagerduty_violations(bad))
    for word in ("routing_key", "event_action", "dedup_key", "summary", "severity", "source"):
        assert word in problems
    assert "timestamp" in problems


def test_http_400_is_never_retried_and_is_logged_with_its_body(
    pd: Receiver, registry: CollectorRegistry
) -> None:
    """A 400 is sent once, logged with status and body, and counted as rejected."""
    pd.script([400])
    pd.error_body = '{"status":"invalid event","errors":["payload.summary too long"]}'
    outbox = AlertOutbox([make_sink(pd)], registry, backoff=FAST)
    with capture_logs() as logs:
        outbox.start()
        outbox.enqueue(action("age"))
        assert outbox.close(5.0)
    assert len(pd.requests) == 1
    (rejected,) = [e for e in logs if e["event"] == "pagerduty_rejected"]
    assert rejected["status"] == 400
    assert "summary too long" in rejected["body"]
    labels = {"sink": "pd", "action": "trigger"}
    assert sample(registry, "driftd_alerts_total", **labels, outcome="rejected") == 1
    assert sample(registry, "driftd_alerts_total", **labels, outcome="retry") == 0


@pytest.mark.parametrize("statuses", [[429], [500], [502, 503, 429]])
def test_429_and_5xx_are_retried_until_accepted(
    pd: Receiver, registry: CollectorRegistry, statuses: list[int]
) -> None:
    """429 and 5xx answers are retried with backoff until a 202, delivering exactly once."""
    pd.script(statuses)
    outbox = AlertOutbox([make_sink(pd)], registry, backoff=FAST)
    with capture_logs():
        outbox.start()
        outbox.enqueue(action("age"))
        assert outbox.close(5.0)
    assert len(pd.requests) == len(statuses) + 1
    assert pd.actions() == [("trigger", "driftd/fraud/eu/age/psi")]
    labels = {"sink": "pd", "action": "trigger"}
    assert sample(registry, "driftd_alerts_total", **labels, outcome="retry") == len(statuses)
    assert sample(registry, "driftd_alerts_total", **labels, outcome="delivered") == 1


def test_retry_after_header_is_respected(pd: Receiver, registry: CollectorRegistry) -> None:
    """A 429 with Retry-After: 1 delays the retry by about a second despite a tiny backoff."""
    pd.script([429], retry_after="1")
    outbox = AlertOutbox([make_sink(pd)], registry, backoff=FAST)
    with capture_logs():
        outbox.start()
        t0 = time.monotonic()
        outbox.enqueue(action("age"))
        assert outbox.close(5.0)
    assert time.monotonic() - t0 >= 0.95
    assert len(pd.accepted) == 1


def test_sink_errors_classify_statuses(pd: Receiver) -> None:
    """send() raises retriable errors for 408/429/5xx and permanent ones for other 4xx."""
    sink = make_sink(pd)
    for status, retriable in [(408, True), (429, True), (500, True), (400, False), (404, False)]:
        pd.script([status])
        with capture_logs(), pytest.raises(AlertDeliveryError) as info:
            sink.send(action("age"))
        assert (info.value.status, info.value.retriable) == (status, retriable)


def test_token_bucket_limits_rate_with_a_fake_clock() -> None:
    """The bucket allows its burst, then one token per 60/rate seconds."""
    clock = FakeClock()
    bucket = TokenBucket(60.0, 2, clock=clock)
    assert bucket.take() == 0.0
    assert bucket.take() == 0.0
    assert bucket.take() == pytest.approx(1.0)
    clock.now += 0.5
    assert bucket.take() == pytest.approx(0.5)
    clock.now += 0.5
    assert bucket.take() == 0.0
    clock.now += 3600
    assert [bucket.take() for _ in range(3)][:2] == [0.0, 0.0]


def test_rate_limit_stays_under_120_events_per_minute(pd: Receiver) -> None:
    """Over a simulated minute the sink sends at most rate + burst events, never 120."""
    clock = FakeClock()
    sink = make_sink(pd, bucket=TokenBucket(100.0, 10, clock=clock))
    sent = 0
    for _ in range(600):  # one attempt every 0.1 s for 60 s
        try:
            sink.send(action("age"))
            sent += 1
        except AlertDeliveryError as e:
            assert e.reason == "rate_limited"
            assert e.retriable
            assert e.retry_after is not None
            assert 0 < e.retry_after <= 0.6
        clock.now += 0.1
    assert sent < 120
    assert sent >= 100
    assert len(pd.requests) == sent


def test_rate_limited_actions_wait_in_order_and_are_not_lost(
    pd: Receiver, registry: CollectorRegistry
) -> None:
    """Past the burst, the outbox waits for tokens (counted as throttled) and keeps order."""
    sink = make_sink(pd, bucket=TokenBucket(600.0, 2))  # one token per 0.1 s
    outbox = AlertOutbox([sink], registry, backoff=FAST)
    keys = []
    for i in range(5):
        a = action(f"f{i}")
        keys.append(a.dedup_key)
        outbox.enqueue(a)
    outbox.start()
    assert outbox.close(5.0)
    assert [k for _, k in pd.actions()] == keys
    assert (
        sample(registry, "driftd_alerts_total", sink="pd", action="trigger", outcome="throttled")
        >= 2
    )


def test_buckets_are_shared_per_routing_key() -> None:
    """Sinks with the same routing key share one bucket; other keys get their own."""
    a = bucket_for(ROUTING_KEY, 100.0, 10)
    assert bucket_for(ROUTING_KEY, 100.0, 10) is a
    assert bucket_for("another-key-" + "x" * 20, 100.0, 10) is not a
