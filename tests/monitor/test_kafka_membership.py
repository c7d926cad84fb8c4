"""Consumer-group membership: the tracker on a scripted consumer, then on a real broker."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from monitor.config import KafkaConfig
from monitor.ingest.kafka.membership import MembershipTracker
from monitor.ingest.kafka.metrics import KafkaHealthCollector
from monitor.ingest.kafka.source import KafkaSource
from monitor.kafka import clients
from monitor.kafka.api import MemberState
from tests.kafka_broker import (
    create_topic,
    unique_topic,
)


@dataclass
class Metadata:
    """What ``KafkaConsumer.group_metadata()`` returns (the fields the tracker reads)."""

    state: str
    generation_id: int


@dataclass
class ScriptedConsumer:
    """A consumer whose membership the test sets by hand."""

    state: str = MemberState.UNJOINED
    generation: int = -1
    owned: set[tuple[str, int]] = field(default_factory=set)

    def group_metadata(self) -> Metadata:
        """The membership snapshot, as kafka-python gives it."""
        return Metadata(self.state, self.generation)

    def assignment(self) -> set[tuple[str, int]]:
        """The partitions owned now."""
        return set(self.owned)


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_joined_member_reports_stable_with_its_partitions() -> None:
    """STABLE with two owned partitions reads as stable, 2 partitions, 1 generation joined."""
    tracker = MembershipTracker("g", clock=Clock())
    consumer = ScriptedConsumer(MemberState.STABLE, 4, {("t", 0), ("t", 1)})
    snapshot = tracker.observe(consumer)
    assert (snapshot.state, snapshot.partitions, snapshot.generation) == ("stable", 2, 4)
    assert snapshot.stable and snapshot.generations_joined == 1
    assert snapshot.unstable_since is None


def test_each_new_generation_counts_once_however_often_it_is_observed() -> None:
    """Polls within one generation add nothing; every rebalance to a new one adds one."""
    tracker = MembershipTracker("g", clock=Clock())
    consumer = ScriptedConsumer(MemberState.STABLE, 1, {("t", 0)})
    for _ in range(3):
        tracker.observe(consumer)
    consumer.state = MemberState.REBALANCING
    tracker.observe(consumer)
    consumer.state, consumer.generation = MemberState.STABLE, 2
    tracker.observe(consumer)
    tracker.observe(consumer)
    assert tracker.snapshot.generations_joined == 2


def test_a_generation_seen_first_while_rebalancing_counts_once_stable() -> None:
    """The client knows the new generation before it is stable: it counts when stable."""
    tracker = MembershipTracker("g", clock=Clock())
    consumer = ScriptedConsumer(MemberState.STABLE, 1, {("t", 0)})
    tracker.observe(consumer)
    consumer.state, consumer.generation = MemberState.REBALANCING, 2  # JoinGroup answered
    tracker.observe(consumer)
    assert tracker.snapshot.generations_joined == 1
    consumer.state = MemberState.STABLE  # SyncGroup answered
    tracker.observe(consumer)
    tracker.observe(consumer)
    assert tracker.snapshot.generations_joined == 2


def test_a_rebalancing_member_owns_nothing_whatever_its_assignment_says() -> None:
    """While rebalancing the partitions are not being monitored: 0 owned, not stable."""
    tracker = MembershipTracker("g", clock=Clock())
    snapshot = tracker.observe(ScriptedConsumer(MemberState.REBALANCING, 3, {("t", 0)}))
    assert (snapshot.state, snapshot.partitions, snapshot.stable) == ("rebalancing", 0, False)


def test_no_consumer_means_unjoined() -> None:
    """Before the consumer exists (broker away) or after close: unjoined, 0 partitions."""
    tracker = MembershipTracker("g", clock=Clock())
    tracker.observe(ScriptedConsumer(MemberState.STABLE, 1, {("t", 0)}))
    snapshot = tracker.observe(None)
    assert (snapshot.state, snapshot.partitions) == ("unjoined", 0)
    assert snapshot.generation == 1  # the last generation joined is kept


def test_a_member_stuck_outside_its_group_warns_once_per_interval() -> None:
    """kafka_group_not_joined after warn_after_s unstable, again only a full interval later."""
    clock = Clock()
    tracker = MembershipTracker("orders", warn_after_s=60.0, clock=clock)
    consumer = ScriptedConsumer(MemberState.REBALANCING)
    with capture_logs() as logs:
        for _ in range(130):  # 130 s of polls, one a second
            tracker.observe(consumer)
            clock.now += 1.0
    warnings = [entry for entry in logs if entry["event"] == "kafka_group_not_joined"]
    assert [w["for_s"] for w in warnings] == [60.0, 120.0]
    assert warnings[0]["group_id"] == "orders" and warnings[0]["state"] == "rebalancing"


def test_joining_after_a_warning_is_logged_with_how_long_it_took() -> None:
    """A member that warned logs kafka_group_joined with the time it spent outside."""
    clock = Clock()
    tracker = MembershipTracker("g", warn_after_s=10.0, clock=clock)
    consumer = ScriptedConsumer(MemberState.UNJOINED)
    with capture_logs() as logs:
        tracker.observe(consumer)
        clock.now += 30.0
        tracker.observe(consumer)
        consumer.state, consumer.generation, consumer.owned = MemberState.STABLE, 1, {("t", 0)}
        tracker.observe(consumer)
    joined = [entry for entry in logs if entry["event"] == "kafka_group_joined"]
    assert len(joined) == 1 and joined[0]["after_s"] == 30.0
    assert joined[0]["partitions"] == 1


def test_a_member_that_joins_quickly_logs_nothing() -> None:
    """A normal join (stable before warn_after_s) logs neither a warning nor a join."""
    clock = Clock()
    tracker = MembershipTracker("g", warn_after_s=60.0, clock=clock)
    consumer = ScriptedConsumer(MemberState.REBALANCING)
    with capture_logs() as logs:
        tracker.observe(consumer)
        clock.now += 5.0
        consumer.state, consumer.generation = MemberState.STABLE, 1
        tracker.observe(consumer)
    assert logs == []


def test_warn_after_must_be_positive() -> None:
    """A zero interval is refused at construction."""
    with pytest.raises(ValueError, match="warn_after_s"):
        MembershipTracker("g", warn_after_s=0)


# ------------------------------------------------------------------ real broker


def _samples(registry: CollectorRegistry, group: str) -> tuple[float, float, float]:
    def value(name: str) -> float:
        found = registry.get_sample_value(name, {"group": group})
        assert found is not None, name
        return found

    return (
        value("driftd_kafka_group_stable"),
        value("driftd_kafka_assigned_partitions"),
        value("driftd_kafka_rebalances_total"),
    )


@pytest.fixture
def members(kafka_bootstrap: str) -> Iterator[list[KafkaSource]]:
    """Sources made by the test, closed at the end."""
    made: list[KafkaSource] = []
    yield made
    for source in made:
        source.close()


def _member(bootstrap: str, topic: str, group: str, made: list[KafkaSource]) -> KafkaSource:
    settings = {
        "bootstrap_servers": [bootstrap],
        "topics": [topic],
        "group_id": group,
        "dead_letter_topic": None,
        "poll_timeout_ms": 200,
    }
    source = KafkaSource(KafkaConfig.model_validate(settings))
    made.append(source)
    return source


def _poll_until(sources: list[KafkaSource], done: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, [s.membership for s in sources]
        for source in sources:
            source.poll(0.1)


@pytest.mark.integration
def test_group_membership_metrics_follow_joins_and_leaves(
    kafka_bootstrap: str,
    members: list[KafkaSource],
) -> None:
    """Owned partitions, stability and rebalances are exported as members join and leave."""
    topic = unique_topic()
    group = f"driftd-test-{uuid.uuid4().hex[:12]}"
    create_topic(kafka_bootstrap, topic, partitions=2)
    first = _member(kafka_bootstrap, topic, group, members)
    registry = CollectorRegistry()
    registry.register(KafkaHealthCollector(first))
    assert _samples(registry, group) == (0.0, 0.0, 0.0)  # before the first poll: not joined

    _poll_until([first], lambda: first.membership.partitions == 2)
    stable, owned, joined = _samples(registry, group)
    # A member may join twice at first: once before it knows the new topic's partitions.
    assert (stable, owned) == (1.0, 2.0) and joined >= 1.0

    second = _member(kafka_bootstrap, topic, group, members)
    _poll_until(
        [first, second],
        lambda: first.membership.partitions == 1 and second.membership.partitions == 1,
    )
    stable, owned, joined_again = _samples(registry, group)
    assert (stable, owned) == (1.0, 1.0) and joined_again > joined

    second.close()
    assert (second.membership.state, second.membership.partitions) == ("unjoined", 0)
    _poll_until([first], lambda: first.membership.partitions == 2)
    stable, owned, joined_last = _samples(registry, group)
    assert (stable, owned) == (1.0, 2.0) and joined_last > joined_again


@pytest.mark.integration
def test_a_member_that_cannot_reach_its_broker_is_exported_as_not_in_the_group(
    members: list[KafkaSource],
) -> None:
    """With no broker listening, the member polls on and reports stable 0, 0 partitions."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    group = f"driftd-test-{uuid.uuid4().hex[:12]}"
    source = _member(f"127.0.0.1:{port}", "events", group, members)
    registry = CollectorRegistry()
    registry.register(KafkaHealthCollector(source))
    for _ in range(3):
        assert source.poll(0.2) == []
    assert _samples(registry, group) == (0.0, 0.0, 0.0)
    assert source.membership.state == "unjoined"


def _join_between_polls(source: KafkaSource, rounds: int) -> None:
    """Polls that return at once, with pauses between them in which a join can finish."""
    for _ in range(rounds):
        source.poll(0.001)
        if source.membership.stable and source.membership.partitions:
            return
        time.sleep(0.5)


@pytest.mark.integration
@pytest.mark.parametrize("fixed", [True, False], ids=["fixed", "kafka-python-as-is"])
def test_a_join_that_finishes_between_two_polls_is_applied(
    kafka_bootstrap: str,
    members: list[KafkaSource],
    monkeypatch: pytest.MonkeyPatch,
    fixed: bool,
) -> None:
    """A join that outlasts its poll is applied by a later one (kafka-python as is: never)."""
    # kafka-python 3.0.12 as is discards a join that completed while no poll waited and
    # sends another, so a member polled briefly never gets in; the "as is" case shows
    # the flaw is still there, so the fix in monitor/kafka/clients.py is still needed.
    if not fixed:
        monkeypatch.setattr(clients, "JOIN_FIX_VERSIONS", frozenset())
    topic = unique_topic()
    create_topic(kafka_bootstrap, topic, partitions=1)
    source = _member(kafka_bootstrap, topic, f"driftd-test-{uuid.uuid4().hex[:12]}", members)
    _join_between_polls(source, rounds=16)
    joined = source.membership
    if fixed:
        assert (joined.state, joined.partitions, joined.generations_joined) == ("stable", 1, 1)
    else:
        assert joined.partitions == 0, joined
