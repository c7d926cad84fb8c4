"""``kafka.client: confluent`` without a broker: its settings, its logs, its absence.

librdkafka itself is the oracle of the settings: a ``Consumer`` / ``Producer`` refuses a
property it does not know or a TLS file it cannot load, so every mapped config is handed
to the real client here, not only compared with a dict.
"""

from __future__ import annotations

import pickle
import socket
import sys
import time
from pathlib import Path
from typing import ClassVar

import confluent_kafka
import pytest
import structlog
from confluent_kafka import Consumer, KafkaError, Message, Producer
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.cli import main
from monitor.config import KafkaConfig
from monitor.ingest.kafka.choice import kafka_source
from monitor.ingest.kafka.confluent_source import ConfluentSource
from monitor.ingest.kafka.lag import LagTracker
from monitor.ingest.source import Record, RecordBatch
from monitor.kafka.confluent import (
    StructlogBridge,
    consumer_config,
    dead_letter_producer_config,
)

TLS = Path(__file__).resolve().parent / "fixtures" / "tls"


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_tls_sasl_and_group_settings_map_to_librdkafka_properties() -> None:
    """Every TLS, SASL and group key reaches its librdkafka property, and librdkafka takes them."""
    kafka = KafkaConfig(
        client="confluent",
        bootstrap_servers=["b1:9093", "b2:9093"],
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username="driftd",
        sasl_plain_password="s3cret",  # type: ignore[arg-type]
        ssl_cafile=TLS / "cert.pem",
        ssl_certfile=TLS / "cert.pem",
        ssl_keyfile=TLS / "key.pem",
        ssl_check_hostname=False,
        session_timeout_ms=7_000,
        heartbeat_interval_ms=2_000,
        max_poll_interval_ms=60_000,
        retry_backoff_max_ms=1_500,
        auto_offset_reset="latest",
    )
    config = consumer_config(kafka, connect_timeout_s=5.0)

    assert config["bootstrap.servers"] == "b1:9093,b2:9093"
    assert config["security.protocol"] == "sasl_ssl"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (config["sasl.username"], config["sasl.password"]) == ("driftd", "s3cret")
    assert config["ssl.ca.location"] == str(TLS / "cert.pem")
    assert config["ssl.certificate.location"] == str(TLS / "cert.pem")
    assert config["ssl.key.location"] == str(TLS / "key.pem")
    assert config["ssl.endpoint.identification.algorithm"] == "none"
    assert config["enable.auto.commit"] is False
    assert config["enable.auto.offset.store"] is False
    assert config["auto.offset.reset"] == "latest"
    assert config["isolation.level"] == "read_committed"
    assert (config["session.timeout.ms"], config["heartbeat.interval.ms"]) == (7_000, 2_000)
    assert config["max.poll.interval.ms"] == 60_000
    assert config["reconnect.backoff.max.ms"] == 1_500
    Consumer(config).close()  # librdkafka accepts every property and loads the TLS files
    producer_config = dead_letter_producer_config(kafka, 5.0, 10.0)
    assert producer_config["acks"] == "all"
    assert producer_config["enable.idempotence"] is False
    Producer(producer_config).flush(0)


def test_tls_without_a_ca_file_checks_hostnames_against_the_system_cas() -> None:
    """With TLS and no CA file: https endpoint identification and the system's CA store."""
    kafka = KafkaConfig(client="confluent", security_protocol="SSL")
    config = consumer_config(kafka, 5.0)
    assert config["ssl.endpoint.identification.algorithm"] == "https"
    assert config["ssl.ca.location"] == "probe"  # no CA file: the system's, as kafka-python
    Consumer(config).close()


def test_choosing_confluent_without_the_package_is_one_line_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """check-config with kafka.client: confluent and no confluent-kafka: exit 2, one line."""
    config = tmp_path / "driftd.yaml"
    config.write_text("kafka:\n  client: confluent\n")
    monkeypatch.setitem(sys.modules, "confluent_kafka", None)  # as if not installed

    assert main(["check-config", "-c", str(config)]) == 2

    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "kafka.client" in err
    assert "driftd[fast]" in err


def test_the_client_key_picks_the_source() -> None:
    """kafka.client chooses the class; kafka-python stays the default."""
    with (
        kafka_source(KafkaConfig()) as reference,
        kafka_source(KafkaConfig(client="confluent")) as fast,
    ):
        assert type(reference).__name__ == "KafkaSource"
        assert isinstance(fast, ConfluentSource)


def test_librdkafka_logs_and_broker_outage_go_to_structlog_not_stderr(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """With no broker, librdkafka's complaints arrive as structlog events and the poll fails."""
    kafka = KafkaConfig(
        client="confluent",
        bootstrap_servers=[f"127.0.0.1:{_dead_port()}"],
        dead_letter_topic=None,
        retry_backoff_max_ms=100,
    )
    source = ConfluentSource(kafka, connect_timeout_s=1.0)
    with structlog.testing.capture_logs() as logs:
        deadline = time.monotonic() + 30
        while source.consecutive_poll_failures == 0:
            assert time.monotonic() < deadline, "the outage was never noticed"
            assert source.poll(0.2) == []
        source.close()

    events = {entry["event"] for entry in logs}
    assert "kafka_client_error" in events
    assert "kafka_poll_failed" in events
    assert source.kafka_errors["poll"] >= 1
    assert source.last_poll_error is not None
    assert capfd.readouterr().err == ""


def test_structlog_bridge_maps_levels() -> None:
    """A librdkafka warning is a structlog warning; a debug line stays at debug."""
    bridge = StructlogBridge("consumer")
    with structlog.testing.capture_logs() as logs:
        bridge.log(30, "%s [%s] %s", "FAIL", "rdkafka#consumer-1", "connection refused")
        bridge.log(10, "%s [%s] %s", "FETCH", "rdkafka#consumer-1", "fetching")
    assert [(e["log_level"], e["line"]) for e in logs] == [
        ("warning", "FAIL [rdkafka#consumer-1] connection refused"),
        ("debug", "FETCH [rdkafka#consumer-1] fetching"),
    ]


class _ScriptedConsumer:
    """A librdkafka consumer stand-in: ``consume`` hands out scripted messages."""

    script: ClassVar[list[list[Message]]] = []

    def __init__(self, config: dict[str, object]) -> None:
        self.config = config

    def subscribe(self, topics: list[str], **callbacks: object) -> None:
        self.topics = topics

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        return self.script.pop(0) if self.script else []

    def assignment(self) -> list[object]:
        return []

    def list_topics(self, topic: str, timeout: float) -> None:
        return None

    def close(self) -> None:
        return None


def _scripted_source(
    monkeypatch: pytest.MonkeyPatch, script: list[list[Message]]
) -> ConfluentSource:
    monkeypatch.setattr(confluent_kafka, "Consumer", _ScriptedConsumer)
    monkeypatch.setattr(_ScriptedConsumer, "script", script)
    return ConfluentSource(KafkaConfig(client="confluent", topics=["events"]))


def test_per_message_errors_count_as_poll_errors_and_spare_their_batch_mates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each message carrying an error counts as one poll error; its batch-mates are read."""
    missing = KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, "Subscribed topic not available")
    good = Message(topic="events", partition=0, offset=7, value=b"{}", timestamp=(1, 5))
    source = _scripted_source(monkeypatch, [[Message(error=missing), good, Message(error=missing)]])
    with structlog.testing.capture_logs() as logs:
        records = source.poll(0.0)
    source.close()

    assert records == [Record(b"{}", "events", 0, 7, 5)]
    assert source.kafka_errors["poll"] == 2
    assert sum(entry["event"] == "kafka_consume_error" for entry in logs) == 1  # once per kind


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([("events", 0), ("events", 1), ("labels", 0)]),
            st.sampled_from([(1, 1_700), (0, -1), (2, -5)]),
            st.booleans(),
            st.integers(1, 3),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_records_are_grouped_by_partition_in_offset_order_like_one_loop(
    messages: list[tuple[tuple[str, int], tuple[int, int], bool, int]],
) -> None:
    """Runs or interleaved: records grouped, commits and first offsets as a loop gives."""
    next_offset: dict[tuple[str, int], int] = {}
    script = []
    for (topic, partition), stamp, tombstone, step in messages:  # gaps: a compacted topic
        offset = next_offset[topic, partition] = next_offset.get((topic, partition), -1) + step
        value = None if tombstone else f"{topic}{partition}@{offset}".encode()
        script.append(
            Message(topic=topic, partition=partition, offset=offset, value=value, timestamp=stamp)
        )
    expected = [
        Record(
            m.value() or b"",
            m.topic() or "",
            m.partition() or 0,
            m.offset() or 0,
            m.timestamp()[1] if m.timestamp()[0] and m.timestamp()[1] >= 0 else None,
        )
        for tp in dict.fromkeys((m.topic(), m.partition()) for m in script)
        for m in script
        if (m.topic(), m.partition()) == tp
    ]
    firsts: dict[tuple[str, int], int] = {}
    for m in script:
        firsts.setdefault((m.topic() or "", m.partition() or 0), m.offset() or 0)
    noted: list[dict[tuple[str, int], int]] = []
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(LagTracker, "note_first_offsets", lambda _, f: noted.append(dict(f)))
        source = _scripted_source(monkeypatch, [script])
        records = source.poll(0.0)
        source.close()

    assert isinstance(records, RecordBatch)
    assert records.next_offsets() == {tp: offset + 1 for tp, offset in next_offset.items()}
    assert noted == [firsts]
    assert records == expected
    assert pickle.loads(pickle.dumps(records)) == expected
    assert source.kafka_errors["poll"] == 0
