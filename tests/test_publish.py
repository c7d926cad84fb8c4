"""The publisher without a broker: bounded, counted, never raising on the request path."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY, CollectorRegistry
from structlog.testing import capture_logs

from monitor.errors import ConfigError
from monitor.publish import DROP_REASONS, EventPublisher, PublisherStats
from monitor.publish.stats import DropLog


@pytest.fixture
def dead_bootstrap() -> str:
    """An address where nothing listens (a port bound a moment ago, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"127.0.0.1:{port}"


@pytest.fixture
def publisher(dead_bootstrap: str) -> Iterator[EventPublisher]:
    """A publisher whose broker is down, with a small buffer."""
    pub = EventPublisher(dead_bootstrap, "inference", model="m", max_buffer=1_000)
    yield pub
    pub.close(timeout=0.0)


def test_a_down_broker_bounds_the_buffer_and_counts_drops(dead_bootstrap: str) -> None:
    """With no broker, publish returns ids, holds at most max_buffer events and counts the rest."""
    with capture_logs() as logs:
        pub = EventPublisher(
            dead_bootstrap, "inference", max_buffer=1_000, log_interval_s=0.0, linger_ms=1
        )
        ids = [pub.publish({"a": float(i)}, 0.5) for i in range(5_000)]
        stats = pub.stats()
        assert not pub.connected
        assert len(set(ids)) == 5_000
        assert stats.pending == 1_000 == stats.published
        assert stats.dropped["buffer_full"] == 4_000
        assert stats.delivered == 0
        pub.close(timeout=0.2)
    closed = pub.stats()
    assert closed.pending == 0
    assert closed.dropped["unsent_at_close"] == 1_000
    assert closed.published == closed.delivered + closed.dropped_total - 4_000
    events = [entry["event"] for entry in logs]
    assert "publisher_connect_failed" in events
    assert "publisher_dropping" in events
    assert "publisher_closed_with_unsent" in events


def test_values_that_cannot_be_serialised_are_dropped_and_counted(
    publisher: EventPublisher,
) -> None:
    """A value orjson refuses is a counted drop, never an exception."""
    returned = publisher.publish({"a": object()}, 0.1, id="req-1")
    publisher.publish({"a": {1, 2}})
    publisher.publish({"a": 1.0}, prediction=object())
    assert returned == "req-1"
    stats = publisher.stats()
    assert stats.dropped["serialise"] == 3
    assert stats.published == 0


@pytest.mark.parametrize(
    "call",
    [
        {"id": "x" * 257},
        {"id": True},
        {"id": 1.5},
        {"ts": "yesterday"},
        {"ts": float("nan")},
        {"ts": False},
        {"features": [1.0, 2.0]},
        {"extra": {"features": {}}},
        {"extra": {"id": "other"}},
        {"key": 5},
    ],
    ids=str,
)
def test_events_driftd_would_refuse_are_dropped_alone(
    publisher: EventPublisher, call: dict[str, object]
) -> None:
    """An event driftd's decoder would refuse is counted as invalid instead of buffered."""
    arguments = dict(call)
    features = arguments.pop("features", {"a": 1.0})
    publisher.publish(features, 0.5, **arguments)  # type: ignore[arg-type]
    stats = publisher.stats()
    assert stats.dropped["invalid"] == 1, stats
    assert stats.published == 0


def test_valid_ids_and_times_of_every_accepted_kind_are_buffered(
    publisher: EventPublisher,
) -> None:
    """Ids as text or integers and times as epochs, numeric or ISO strings and datetimes pass."""
    from datetime import UTC, datetime

    for ts in (
        1_748_779_087,
        1_748_779_087.25,
        "1748779087",
        "2025-06-01T11:58:07Z",
        "2025-06-01 11:58:07",
        datetime(2025, 6, 1, tzinfo=UTC),
    ):
        publisher.publish({"a": 1.0}, ts=ts, id=7)
    assert publisher.stats().published == 6


@pytest.mark.parametrize("label", ["yes", None, float("nan"), float("inf"), [1]], ids=repr)
def test_labels_driftd_would_refuse_are_dropped_alone(dead_bootstrap: str, label: object) -> None:
    """A label that is no finite number is counted as invalid instead of buffered."""
    pub = EventPublisher(dead_bootstrap, "inference", labels_topic="labels")
    try:
        pub.publish_label("req-1", label)
        pub.publish_label("req-2", True)
        stats = pub.stats()
        assert stats.dropped["invalid"] == 1 and stats.published == 1, stats
    finally:
        pub.close(timeout=0.0)


def test_publish_after_close_is_counted(publisher: EventPublisher) -> None:
    """An event published after close is dropped as closed, never raised."""
    publisher.close(timeout=0.0)
    publisher.publish({"a": 1.0})
    assert publisher.stats().dropped["closed"] == 1


def test_ids_are_unique_and_fit_the_contract(
    publisher: EventPublisher, dead_bootstrap: str
) -> None:
    """Generated ids never repeat, across publishers too, and stay within 256 characters."""
    ids = [publisher.publish({"a": 1.0}) for _ in range(2_000)]
    other = EventPublisher(dead_bootstrap, "inference")
    ids += [other.publish({"a": 1.0}) for _ in range(2_000)]
    other.close(timeout=0.0)
    assert len(set(ids)) == 4_000
    assert max(map(len, ids)) <= 256
    assert publisher.publish({"a": 1.0}, id=42) == "42"


def test_metrics_go_to_the_injected_registry_only(dead_bootstrap: str) -> None:
    """The collector reports the counts on the caller's registry, never the global one."""
    registry = CollectorRegistry()
    pub = EventPublisher(dead_bootstrap, "inference", max_buffer=10, registry=registry)
    try:
        for _ in range(25):
            pub.publish({"a": 1.0})
        pub.publish({"a": object()})

        def sample(name: str, **labels: str) -> float | None:
            return registry.get_sample_value(name, {"topic": "inference", **labels})

        assert sample("driftd_publisher_events_published_total") == 10
        assert sample("driftd_publisher_events_dropped_total", reason="buffer_full") == 15
        assert sample("driftd_publisher_events_dropped_total", reason="serialise") == 1
        assert sample("driftd_publisher_events_delivered_total") == 0
        assert sample("driftd_publisher_pending_events") == 10
        assert sample("driftd_publisher_max_buffer_events") == 10
    finally:
        pub.close(timeout=0.0)
    assert REGISTRY.get_sample_value("driftd_publisher_events_published_total") is None


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"max_buffer": 0}, "max_buffer"),
        ({"max_events_per_message": 0}, "max_events_per_message"),
        ({"linger_ms": -1}, "linger_ms"),
        ({"max_message_bytes": 10}, "max_message_bytes"),
        ({"topic": "no spaces allowed"}, "topic"),
        ({"labels_topic": "bad/topic"}, "labels_topic"),
        ({"sasl_mechanism": "GSSAPI"}, "sasl_mechanism"),
        ({"security_protocol": "TLS"}, "security_protocol"),
        ({"compression_type": "brotli"}, "compression_type"),
        ({"connect_backoff_s": 0}, "connect_backoff_s"),
    ],
)
def test_bad_arguments_raise_config_error_naming_the_argument(
    dead_bootstrap: str, kwargs: dict[str, object], key: str
) -> None:
    """A wrong argument is refused at construction with a ConfigError that names it."""
    arguments: dict[str, object] = {"topic": "inference", **kwargs}
    topic = str(arguments.pop("topic"))
    with pytest.raises(ConfigError) as refused:
        EventPublisher(dead_bootstrap, topic, **arguments)  # type: ignore[arg-type]
    assert refused.value.key == key


def test_publish_label_needs_a_labels_topic(publisher: EventPublisher) -> None:
    """publish_label on a publisher without labels_topic is a programming error, raised."""
    with pytest.raises(ConfigError) as refused:
        publisher.publish_label("req-1", 1)
    assert refused.value.key == "labels_topic"


def _stats(delivered: int, **dropped: int) -> PublisherStats:
    counts = dict.fromkeys(DROP_REASONS, 0)
    counts.update(dropped)
    return PublisherStats(published=0, delivered=delivered, dropped=counts, pending=0, max_buffer=1)


def test_drop_log_says_when_drops_start_repeat_and_stop() -> None:
    """publisher_dropping is logged at once, then at most once per interval; recovery once."""
    now = [0.0]
    drop_log = DropLog("inference", interval_s=10.0, clock=lambda: now[0])
    with capture_logs() as logs:
        drop_log.observe(_stats(5), {})
        drop_log.observe(_stats(5, buffer_full=3), {"serialise": "not serialisable"})
        for second in range(1, 10):
            now[0] = float(second)
            drop_log.observe(_stats(5, buffer_full=3 + second), {"serialise": "not serialisable"})
        now[0] = 10.5
        drop_log.observe(_stats(5, buffer_full=20), {})
        drop_log.observe(_stats(5, buffer_full=20), {})  # no delivery yet: still dropping
        assert drop_log.dropping
        drop_log.observe(_stats(9, buffer_full=20), {})
        drop_log.observe(_stats(12, buffer_full=20), {})
    events = [entry["event"] for entry in logs]
    assert events.count("publisher_dropping") == 2
    assert events.count("publisher_drop_cause") == 1
    assert events.count("publisher_recovered") == 1
    recovered = next(e for e in logs if e["event"] == "publisher_recovered")
    assert recovered["dropped_in_episode"] == 20
    assert not drop_log.dropping
