"""The Kafka source against a real Apache Kafka broker, on both clients.

Every test that builds a source through ``make_source`` runs twice: on kafka-python
(``KafkaSource``, the reference) and on confluent-kafka (``ConfluentSource``,
``kafka.client: confluent``), with the same assertions.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from pydantic import ValidationError

from monitor.config import KafkaConfig
from monitor.errors import (
    OffsetCommitError,
    PartitionNotAssignedError,
    RebalanceCallbackError,
)
from monitor.ingest.kafka.choice import AnyKafkaSource, kafka_source
from monitor.ingest.kafka.confluent_source import ConfluentSource
from monitor.ingest.kafka.dead_letter import DETAIL_MAX_BYTES
from monitor.ingest.kafka.source import KafkaSource
from monitor.ingest.source import Record, Source, TopicPartition
from monitor.kafka.api import KafkaConsumer
from monitor.kafka.clients import build_client, consumer_settings
from tests.kafka_broker import (
    consume_all,
    create_topic,
    produce,
    unique_topic,
)

pytestmark = pytest.mark.integration

Factory = Callable[..., AnyKafkaSource]

CLIENTS = ["kafka-python", "confluent"]


@pytest.fixture(params=CLIENTS)
def client(request: pytest.FixtureRequest) -> str:
    """The Kafka client a test's sources run on (``kafka.client``)."""
    name: str = request.param
    return name


@pytest.fixture
def make_source(kafka_bootstrap: str, client: str) -> Iterator[Factory]:
    """Build sources on the session broker (unique group unless given); close them all."""
    made: list[AnyKafkaSource] = []

    def make(topics: list[str], **options: object) -> AnyKafkaSource:
        on_assign = options.pop("on_assign", None)
        on_revoke = options.pop("on_revoke", None)
        tuning = {k: options.pop(k) for k in list(options) if k.endswith("_s")}
        settings: dict[str, object] = {
            "client": client,
            "bootstrap_servers": [kafka_bootstrap],
            "topics": topics,
            "group_id": f"driftd-test-{uuid.uuid4().hex[:12]}",
            "dead_letter_topic": None,
            "poll_timeout_ms": 200,
        }
        settings.update(options)
        source = kafka_source(
            KafkaConfig.model_validate(settings),
            on_assign=on_assign,  # type: ignore[arg-type]
            on_revoke=on_revoke,  # type: ignore[arg-type]
            **tuning,  # type: ignore[arg-type]
        )
        made.append(source)
        return source

    yield make
    for source in made:
        source.close()


def free_port() -> int:
    """A local TCP port nothing listens on (a broker that is down)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def poll_until(source: AnyKafkaSource, count: int, timeout: float = 60.0) -> list[Record]:
    """Poll until ``count`` records arrived (fails on timeout)."""
    records: list[Record] = []
    deadline = time.monotonic() + timeout
    while len(records) < count:
        assert time.monotonic() < deadline, f"only {len(records)} of {count} records arrived"
        records.extend(source.poll(0.2))
    return records


def poll_while(source: AnyKafkaSource, done: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll until ``done()`` holds (fails on timeout)."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "condition not reached in time"
        source.poll(0.2)


def test_kafka_source_satisfies_the_source_protocol(kafka_bootstrap: str, client: str) -> None:
    """Either client's source type-checks as a Source, is never exhausted, starts with no lag."""
    cfg = KafkaConfig.model_validate({"bootstrap_servers": [kafka_bootstrap], "client": client})
    source: Source = kafka_source(cfg)
    assert isinstance(source, ConfluentSource if client == "confluent" else KafkaSource)
    try:
        assert source.name == "kafka"
        assert not source.exhausted
        assert source.lag() == {}
    finally:
        source.close()


def test_poll_returns_records_with_topic_partition_and_offset(
    kafka_bootstrap: str,
    make_source: Factory,
) -> None:
    """Messages produced to two partitions come back with their topic, partition and offset."""
    topic = unique_topic()
    create_topic(kafka_bootstrap, topic, partitions=2)
    produce(kafka_bootstrap, topic, [b"a%d" % i for i in range(5)], partition=0)
    produce(kafka_bootstrap, topic, [b"b%d" % i for i in range(7)], partition=1)
    source = make_source([topic])

    records = poll_until(source, 12)

    assert len(records) == 12
    assert {r.topic for r in records} == {topic}
    by_partition = {p: [r for r in records if r.partition == p] for p in (0, 1)}
    assert [(r.offset, r.value) for r in by_partition[0]] == [(i, b"a%d" % i) for i in range(5)]
    assert [(r.offset, r.value) for r in by_partition[1]] == [(i, b"b%d" % i) for i in range(7)]
    assert all(r.timestamp_ms is not None and r.timestamp_ms > 0 for r in records)
    assert source.assignment() == [(topic, 0), (topic, 1)]
    assert source.consecutive_poll_failures == 0
    assert source.last_successful_poll is not None


def test_commit_then_a_new_member_resumes_exactly_there(
    kafka_bootstrap: str,
    make_source: Factory,
) -> None:
    """After commit, a new group member starts at the committed offsets: no gap, no repeat."""
    topic = unique_topic()
    group = f"driftd-test-{uuid.uuid4().hex[:12]}"
    create_topic(kafka_bootstrap, topic, partitions=2)
    produce(kafka_bootstrap, topic, [b"x"] * 10, partition=0)
    produce(kafka_bootstrap, topic, [b"y"] * 10, partition=1)
    first = make_source([topic], group_id=group)
    poll_until(first, 20)
    first.commit({(topic, 0): 4, (topic, 1): 7})
    first.close()

    second = make_source([topic], group_id=group)
    resumed = poll_until(second, 9)
    time.sleep(0.3)
    resumed.extend(second.poll(0.3))

    assert sorted((r.partition, r.offset) for r in resumed) == [(0, o) for o in range(4, 10)] + [
        (1, o) for o in range(7, 10)
    ]


def test_commit_after_exceeding_max_poll_interval_raises_offset_commit_error(
    kafka_bootstrap: str,
    make_source: Factory,
) -> None:
    """A member that stalled past max.poll.interval left the group; its commit raises."""
    topic = unique_topic()
    create_topic(kafka_bootstrap, topic, partitions=2)
    source = make_source([topic], max_poll_interval_s=1.0)
    poll_while(source, lambda: len(source.assignment()) == 2)
    # A stalled pipeline: no poll for longer than max.poll.interval. The client
    # notices on its next heartbeat tick (every 3 s) and leaves the group.
    deadline = time.monotonic() + 30
    with pytest.raises(OffsetCommitError) as caught:
        while time.monotonic() < deadline:
            time.sleep(0.5)
            source.commit({(topic, 0): 0, (topic, 1): 0})

    assert caught.value.offsets == {(topic, 0): 0, (topic, 1): 0}
    assert not caught.value.retriable
    assert "CommitFailedError" in caught.value.message


def test_dead_letter_writes_original_bytes_and_headers(
    kafka_bootstrap: str,
    make_source: Factory,
) -> None:
    """Refused records land on the DLQ byte for byte, with reason, detail and origin headers."""
    source_topic, dlq = unique_topic(), unique_topic("driftd-dlq")
    create_topic(kafka_bootstrap, dlq)
    source = make_source([source_topic], dead_letter_topic=dlq)
    bad = Record(b"\xff\x00not json", source_topic, 3, 41, 1_700_000_000_000)
    worse = Record(b'{"id": 1}', source_topic, 0, 7)
    long_detail = "é" * DETAIL_MAX_BYTES

    source.dead_letter(
        [(bad, "invalid_json", "unexpected byte 0xff"), (worse, "no_ts", long_detail)]
    )

    got = consume_all(kafka_bootstrap, dlq)
    assert [r.value for r in got] == [bad.value, worse.value]
    first, second = (dict(r.headers) for r in got)
    assert first == {
        "driftd-error": b"invalid_json",
        "driftd-error-detail": b"unexpected byte 0xff",
        "driftd-original-topic": source_topic.encode(),
        "driftd-original-partition": b"3",
        "driftd-original-offset": b"41",
        "driftd-original-timestamp": b"1700000000000",
    }
    assert second["driftd-error"] == b"no_ts"
    assert second["driftd-original-partition"] == b"0"
    assert second["driftd-original-offset"] == b"7"
    assert len(second["driftd-error-detail"]) <= DETAIL_MAX_BYTES
    assert second["driftd-error-detail"].decode("utf-8") == "é" * (DETAIL_MAX_BYTES // 2)
    assert got[0].key == f"{source_topic}/3".encode()
    assert source.dead_letter_written == 2
    assert source.dead_letter_counts == {"invalid_json": 1, "no_ts": 1}


def test_dead_letter_too_large_for_the_dlq_is_written_without_its_value(
    kafka_bootstrap: str,
    make_source: Factory,
) -> None:
    """A record over the DLQ topic's size limit is written with a null value and its size."""
    dlq = unique_topic("driftd-dlq")
    create_topic(kafka_bootstrap, dlq, configs={"max.message.bytes": "4096"})
    source = make_source([unique_topic()], dead_letter_topic=dlq)
    huge = Record(b"z" * 20_000, "events", 1, 5)

    source.dead_letter([(huge, "too_big", "20 kB")])

    (got,) = consume_all(kafka_bootstrap, dlq)
    assert got.value is None
    headers = dict(got.headers)
    assert headers["driftd-value-dropped"] == b"20000"
    assert headers["driftd-original-offset"] == b"5"


def test_rebalance_calls_on_assign_then_on_revoke_which_can_commit(
    kafka_bootstrap: str,
    make_source: Factory,
) -> None:
    """on_assign gets the partitions; when a member joins, on_revoke runs first and may commit."""
    topic = unique_topic()
    group = f"driftd-test-{uuid.uuid4().hex[:12]}"
    create_topic(kafka_bootstrap, topic, partitions=2)
    produce(kafka_bootstrap, topic, [b"m"] * 3, partition=0)
    produce(kafka_bootstrap, topic, [b"n"] * 3, partition=1)
    calls: list[tuple[str, list[TopicPartition]]] = []
    first: AnyKafkaSource

    def on_revoke(partitions: list[TopicPartition]) -> None:
        calls.append(("revoke", partitions))
        first.commit({tp: 3 for tp in partitions})  # a blocking call from the callback

    def on_assign(partitions: list[TopicPartition]) -> None:
        calls.append(("assign", partitions))

    first = make_source([topic], group_id=group, on_assign=on_assign, on_revoke=on_revoke)
    poll_until(first, 6)
    assert calls == [("assign", [(topic, 0), (topic, 1)])]

    second = make_source([topic], group_id=group)
    deadline = time.monotonic() + 60
    while len(first.assignment()) != 1 or len(second.assignment()) != 1:
        assert time.monotonic() < deadline, "rebalance did not finish"
        first.poll(0.1)
        second.poll(0.1)

    assert calls[1] == ("revoke", [(topic, 0), (topic, 1)])
    assert calls[2] == ("assign", first.assignment())
    membership = first.membership
    assert (membership.state, membership.partitions) == ("stable", 1)
    assert membership.generations_joined >= 2  # the first assignment, then the rebalance
    assert second.poll(0.5) == []  # the revoked partitions were committed at their end
    assert (topic, 0) not in first.lag() or (topic, 1) not in first.lag()


def test_on_assign_can_seek_to_restored_offsets(
    kafka_bootstrap: str,
    make_source: Factory,
) -> None:
    """Seeking inside on_assign makes the first poll start at the restored offsets."""
    topic = unique_topic()
    create_topic(kafka_bootstrap, topic, partitions=2)
    produce(kafka_bootstrap, topic, [b"s"] * 6, partition=0)
    produce(kafka_bootstrap, topic, [b"t"] * 6, partition=1)
    source: AnyKafkaSource

    def restore(partitions: list[TopicPartition]) -> None:
        source.seek({tp: 2 + tp[1] for tp in partitions})

    source = make_source([topic], on_assign=restore)
    records = poll_until(source, 7)

    assert sorted((r.partition, r.offset) for r in records) == [(0, o) for o in range(2, 6)] + [
        (1, o) for o in range(3, 6)
    ]
    with pytest.raises(PartitionNotAssignedError) as caught:
        source.seek({(topic, 9): 0})
    assert caught.value.partitions == [(topic, 9)]


def test_a_failing_callback_surfaces_from_poll(
    kafka_bootstrap: str,
    make_source: Factory,
) -> None:
    """An exception in on_assign is raised from poll as RebalanceCallbackError."""
    topic = unique_topic()
    create_topic(kafka_bootstrap, topic)

    def broken(partitions: list[TopicPartition]) -> None:
        raise RuntimeError("checkpoint store down")

    source = make_source([topic], on_assign=broken)
    deadline = time.monotonic() + 60
    with pytest.raises(RebalanceCallbackError) as caught:
        while time.monotonic() < deadline:
            source.poll(0.2)
    assert caught.value.callback == "on_assign"
    assert caught.value.partitions == [(topic, 0)]
    assert "checkpoint store down" in caught.value.message


def test_read_lag_is_high_watermark_minus_position(
    kafka_bootstrap: str,
    make_source: Factory,
) -> None:
    """After producing N per partition and polling some, read lag is N minus consumed."""
    topic = unique_topic()
    create_topic(kafka_bootstrap, topic, partitions=2)
    produced = 40
    produce(kafka_bootstrap, topic, [b"l"] * produced, partition=0)
    produce(kafka_bootstrap, topic, [b"l"] * produced, partition=1)
    source = make_source([topic], max_poll_records=7)

    consumed = {0: 0, 1: 0}
    expected: dict[TopicPartition, int] = {}
    for _ in range(30):
        for record in source.poll(0.2):
            consumed[record.partition] += 1
        expected = {(topic, p): produced - consumed[p] for p in (0, 1)}
        if sum(consumed.values()) and source.read_lag() == expected:
            break
    assert source.read_lag() == expected
    assert 0 < sum(consumed.values()) < 2 * produced


def test_lag_counts_from_committed_offsets_not_the_read_position(
    kafka_bootstrap: str,
    make_source: Factory,
) -> None:
    """Everything read but uncommitted is lag; a commit lowers it, a new member sees it too."""
    topic = unique_topic()
    create_topic(kafka_bootstrap, topic)
    produce(kafka_bootstrap, topic, [b"c"] * 40)
    group = f"driftd-test-{uuid.uuid4().hex[:12]}"
    source = make_source([topic], group_id=group)
    poll_until(source, 40)
    poll_while(source, lambda: source.read_lag() == {(topic, 0): 0})

    assert source.lag() == {(topic, 0): 40}  # read, never committed: nothing is safe yet
    source.commit({(topic, 0): 25})
    assert source.lag() == {(topic, 0): 15}
    source.close()

    # A new member of the group starts from the committed offset 25 and reports lag
    # from the group's commit, whatever it has read since.
    second = make_source([topic], group_id=group)
    poll_until(second, 15)
    poll_while(second, lambda: (topic, 0) in second.lag())
    assert second.lag() == {(topic, 0): 15}
    assert second.read_lag() == {(topic, 0): 0}
    assert set(second.kafka_errors.values()) == {0}  # a healthy run counts no failure


def test_group_timeouts_and_reconnect_cap_reach_the_client(
    kafka_bootstrap: str,
) -> None:
    """kafka.session_timeout_ms, heartbeat, max poll interval and retry cap configure the client."""
    cfg = KafkaConfig(
        bootstrap_servers=[kafka_bootstrap],
        session_timeout_ms=7_000,
        heartbeat_interval_ms=2_000,
        max_poll_interval_ms=60_000,
        retry_backoff_max_ms=1_500,
    )
    consumer = build_client(KafkaConsumer, consumer_settings(cfg, connect_timeout_s=10.0))
    try:
        assert consumer.config["session_timeout_ms"] == 7_000
        assert consumer.config["heartbeat_interval_ms"] == 2_000
        assert consumer.config["max_poll_interval_ms"] == 60_000
        assert consumer.config["reconnect_backoff_max_ms"] == 1_500
        assert consumer.config["enable_auto_commit"] is False
    finally:
        consumer.close(autocommit=False)


def test_default_session_timeout_hands_a_crashed_member_s_partitions_over_within_10_s() -> None:
    """The defaults keep kafka-python's 45 s session (and 30 s reconnect backoff) away."""
    settings = consumer_settings(KafkaConfig(), connect_timeout_s=10.0)
    assert settings["session_timeout_ms"] <= 10_000
    assert settings["heartbeat_interval_ms"] * 3 <= settings["session_timeout_ms"]
    assert settings["reconnect_backoff_max_ms"] < 10_000


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"session_timeout_ms": 6_000, "heartbeat_interval_ms": 3_000}, "heartbeat_interval_ms"),
        ({"session_timeout_ms": 60_000, "max_poll_interval_ms": 30_000}, "max_poll_interval_ms"),
    ],
)
def test_group_timeouts_that_cannot_work_are_refused(options: dict[str, int], named: str) -> None:
    """A heartbeat above a third of the session, or a session above max poll, is refused."""
    with pytest.raises(ValidationError, match=named):
        KafkaConfig.model_validate(options)
