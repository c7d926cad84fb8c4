"""FileSource and DemoSource, and the parts of KafkaSource that need no broker."""

from __future__ import annotations

import base64
import io
import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import structlog
from pydantic import ValidationError

from monitor.config import KafkaConfig, kafka_tls_errors
from monitor.errors import ConfigError, DeadLetterError, OffsetCommitError
from monitor.ingest.demo_source import DemoSource
from monitor.ingest.file_source import FileSource, dead_letter_path
from monitor.ingest.kafka.source import KafkaSource
from monitor.ingest.source import Record, Source
from monitor.kafka.clients import connection_settings, security_settings


def free_port() -> int:
    """A local TCP port nothing listens on (a broker that is down)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def drain(source: Source, timeout: float = 0.0) -> list[Record]:
    """Poll a finite source until it is exhausted."""
    records: list[Record] = []
    for _ in range(10_000):
        if source.exhausted:
            return records
        records.extend(source.poll(timeout))
    raise AssertionError("source never exhausted")


# ------------------------------------------------------------------ FileSource


@pytest.fixture
def jsonl(tmp_path: Path) -> Path:
    """A JSONL file with a blank line, a CRLF line and no newline at the end."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"a": 1}\n\n{"a": 2}\r\n   \n{"a": 3}\n{"a": 4}')
    return path


def test_file_records_carry_line_numbers_as_offsets(jsonl: Path) -> None:
    """Each non-empty line is a record on partition 0 whose offset is its 1-based line number."""
    source = FileSource(jsonl, batch_size=100)
    records = drain(source)
    source.close()
    assert [(r.offset, r.value) for r in records] == [
        (1, b'{"a": 1}'),
        (3, b'{"a": 2}'),
        (5, b'{"a": 3}'),
        (6, b'{"a": 4}'),
    ]
    assert {(r.topic, r.partition) for r in records} == {("file:events.jsonl", 0)}
    assert source.name == "file:events.jsonl"


def test_file_source_batches_and_exhausts_at_eof(jsonl: Path) -> None:
    """Polls return at most batch_size records, then [] with exhausted set at end of file."""
    source = FileSource(jsonl, batch_size=3)
    first = source.poll(0)
    assert [r.offset for r in first] == [1, 3, 5]
    before_eof = source.exhausted
    assert [r.offset for r in source.poll(0)] == [6]
    assert not before_eof
    assert source.exhausted
    assert source.poll(0) == []
    assert source.lag() == {}
    source.commit({("file:events.jsonl", 0): 7})  # a no-op
    source.close()


def test_file_source_reads_lines_longer_than_a_chunk(tmp_path: Path) -> None:
    """Lines spanning several read chunks come back whole and in order."""
    path = tmp_path / "big.jsonl"
    lines = [b'{"v": "' + bytes([65 + i]) * 700_000 + b'"}' for i in range(4)]
    path.write_bytes(b"\n".join(lines) + b"\n")
    source = FileSource(path, batch_size=2)
    assert [r.value for r in drain(source)] == lines
    source.close()


def test_file_dead_letters_go_to_a_jsonl_file_beside_the_input(jsonl: Path) -> None:
    """Refused lines are appended to <input>.dead-letter.jsonl with reason, detail and bytes."""
    source = FileSource(jsonl, batch_size=100)
    records = drain(source)
    assert not dead_letter_path(jsonl).exists()
    source.dead_letter([(records[0], "bad_ts", "ts missing")])
    source.dead_letter([(records[2], "bad_json", "line 5 \u00e9")])
    source.close()

    target = jsonl.with_name("events.jsonl.dead-letter.jsonl")
    assert dead_letter_path(jsonl) == target
    entries = [orjson.loads(line) for line in target.read_bytes().splitlines()]
    assert entries == [
        {
            "reason": "bad_ts",
            "detail": "ts missing",
            "source": "file:events.jsonl",
            "offset": 1,
            "value_b64": base64.b64encode(b'{"a": 1}').decode(),
        },
        {
            "reason": "bad_json",
            "detail": "line 5 \u00e9",
            "source": "file:events.jsonl",
            "offset": 5,
            "value_b64": base64.b64encode(b'{"a": 3}').decode(),
        },
    ]
    assert source.dead_letter_written == 2
    assert source.dead_letter_counts == {"bad_ts": 1, "bad_json": 1}


def test_file_dead_letter_that_cannot_be_written_is_only_counted(jsonl: Path) -> None:
    """If the dead-letter file cannot be opened, records are counted and nothing raises."""
    dead_letter_path(jsonl).mkdir()
    source = FileSource(jsonl, batch_size=100)
    records = drain(source)
    source.dead_letter([(records[0], "bad", "d")])
    source.dead_letter([(records[1], "bad", "d")])
    source.close()
    assert source.dead_letter_counts == {"bad": 2}
    assert source.dead_letter_written == 0


class _Stdin:
    """Stands in for sys.stdin: only ``buffer`` is used."""

    def __init__(self, buffer: io.BufferedReader) -> None:
        self.buffer = buffer


@pytest.fixture
def stdin_pipe(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """Replace stdin by a pipe; yield the write end."""
    read_fd, write_fd = os.pipe()
    reader = os.fdopen(read_fd, "rb")
    monkeypatch.setattr("sys.stdin", _Stdin(reader))
    yield write_fd
    reader.close()
    with pytest.raises(OSError):
        os.close(write_fd)  # closed by the test


def test_stdin_poll_honours_its_timeout_and_reads_until_eof(stdin_pipe: int) -> None:
    """On a quiet pipe poll returns [] within its timeout; lines arrive later; EOF exhausts."""
    source = FileSource(None, batch_size=10)
    assert source.name == "stdin"
    started = time.monotonic()
    assert source.poll(0.05) == []
    assert time.monotonic() - started < 1.0
    os.write(stdin_pipe, b'{"x": 1}\n{"x": ')
    assert [(r.topic, r.offset, r.value) for r in source.poll(0.5)] == [("stdin", 1, b'{"x": 1}')]
    os.write(stdin_pipe, b"2}\n")
    os.close(stdin_pipe)
    assert [r.value for r in drain(source, 0.5)] == [b'{"x": 2}']
    source.dead_letter([(Record(b"x", "stdin", 0, 2), "bad", "d")])
    assert source.dead_letter_counts == {"bad": 1}
    assert source.dead_letter_written == 0
    source.close()


# ------------------------------------------------------------------ DemoSource


def test_demo_records_are_contract_events_with_running_offsets() -> None:
    """Demo records are orjson inference events on topic demo, offsets counting from 0."""
    source = DemoSource(batch_size=50, total_events=120, start_ts=1_800_000_000.0)
    records = drain(source)
    assert [r.offset for r in records] == list(range(120))
    assert {(r.topic, r.partition) for r in records} == {("demo", 0)}
    event = orjson.loads(records[0].value)
    assert set(event) == {"id", "ts", "model", "model_version", "features", "prediction"}
    assert event["ts"].startswith("2027-01-15T")
    assert records[0].timestamp_ms == 1_800_000_000_000
    assert source.name == "demo"
    assert source.lag() == {}


def test_demo_source_exhausts_at_total_events_with_a_partial_last_batch() -> None:
    """Batches are batch_size long until total_events, then exhausted with [] polls."""
    source = DemoSource(batch_size=40, total_events=100)
    assert [len(source.poll(0)) for _ in range(4)] == [40, 40, 20, 0]
    assert source.exhausted
    unbounded = DemoSource(batch_size=10)
    assert len(unbounded.poll(0)) == 10
    assert not unbounded.exhausted


def test_demo_source_is_deterministic_for_a_seed() -> None:
    """The same seed and start time give the same bytes; another seed differs."""
    a = DemoSource(batch_size=30, total_events=30, seed=3, start_ts=1_800_000_000.0)
    b = DemoSource(batch_size=30, total_events=30, seed=3, start_ts=1_800_000_000.0)
    c = DemoSource(batch_size=30, total_events=30, seed=4, start_ts=1_800_000_000.0)
    first, second, other = a.poll(0), b.poll(0), c.poll(0)
    assert [r.value for r in first] == [r.value for r in second]
    assert [r.value for r in first] != [r.value for r in other]


def test_demo_event_time_starts_now_by_default() -> None:
    """Without start_ts the first event is stamped with the current time."""
    record = DemoSource(batch_size=1).poll(0)[0]
    assert record.timestamp_ms is not None
    assert abs(record.timestamp_ms / 1000 - time.time()) < 5


def test_demo_rate_paces_events_against_the_wall_clock() -> None:
    """With rate=1000/s about 300 events come out in 0.3 s, and poll keeps its timeout."""
    source = DemoSource(batch_size=100_000, rate=1000.0)
    started = time.monotonic()
    count = 0
    while time.monotonic() - started < 0.3:
        batch = source.poll(0.05)
        assert len(batch) <= 150
        count += len(batch)
    assert 200 <= count <= 400
    stamps = [r.timestamp_ms for r in source.poll(0.2)]
    assert [b - a for a, b in itertools.pairwise(stamps) if a is not None and b is not None] == [
        1
    ] * (len(stamps) - 1)


def test_demo_dead_letters_are_counted() -> None:
    """Refused demo records are counted by reason (nothing is stored)."""
    source = DemoSource(batch_size=2)
    records = source.poll(0)
    source.dead_letter([(records[0], "bad", "d"), (records[1], "bad", "d")])
    assert source.dead_letter_counts == {"bad": 2}


# ------------------------------------------------------- KafkaSource, no broker


def test_every_source_satisfies_the_source_protocol(jsonl: Path) -> None:
    """FileSource, DemoSource and KafkaSource type-check as Source."""
    sources: list[Source] = [
        FileSource(jsonl, batch_size=1),
        DemoSource(batch_size=1),
        KafkaSource(KafkaConfig()),
    ]
    assert [s.name for s in sources] == ["file:events.jsonl", "demo", "kafka"]
    for source in sources:
        source.close()


def test_dead_letter_failure_raises_so_the_caller_does_not_commit() -> None:
    """When the DLQ cannot be reached, dead_letter raises DeadLetterError and leaks no thread."""
    settings = KafkaConfig(bootstrap_servers=[f"127.0.0.1:{free_port()}"], dead_letter_topic="dlq")
    source = KafkaSource(settings, connect_timeout_s=0.5, dead_letter_timeout_s=1.0)
    threads = threading.active_count()
    record = Record(b"x", "events", 0, 1)
    try:
        with pytest.raises(DeadLetterError) as caught:
            source.dead_letter([(record, "r", "d"), (record, "r", "d")])
        assert threading.active_count() == threads
    finally:
        source.close()
    assert caught.value.count == 2
    assert caught.value.sink == "dlq"
    assert source.dead_letter_written == 0
    assert source.dead_letter_counts == {"r": 2}


def test_an_unreachable_broker_counts_failures_and_never_raises() -> None:
    """With no broker, poll returns [] and reports failures, backing off without leaking threads."""
    settings = KafkaConfig(bootstrap_servers=[f"127.0.0.1:{free_port()}"], topics=["t"])
    source = KafkaSource(settings, connect_timeout_s=0.5)
    threads = threading.active_count()
    try:
        assert source.poll(0.1) == []
        assert source.consecutive_poll_failures == 1
        assert source.last_poll_error is not None
        assert "no bootstrap server accepts connections" in source.last_poll_error
        started = time.monotonic()
        assert source.poll(0.1) == []  # within the backoff: no new attempt
        assert time.monotonic() - started < 0.5
        assert source.consecutive_poll_failures == 1
        assert source.last_successful_poll is None
        assert threading.active_count() == threads
        with pytest.raises(OffsetCommitError) as caught:
            source.commit({("t", 0): 1})
        assert caught.value.retriable
    finally:
        source.close()


def test_invalid_topic_names_never_reach_the_source() -> None:
    """A topic name Kafka would refuse is refused by the config model, naming the key."""
    with pytest.raises(ValidationError) as caught:
        KafkaConfig(dead_letter_topic="bad/topic")
    assert [e["loc"] for e in caught.value.errors()] == [("dead_letter_topic",)]


def test_dead_letter_without_a_topic_only_counts() -> None:
    """With dead_letter_topic unset, refused records are counted by reason and nothing is sent."""
    source = KafkaSource(KafkaConfig(dead_letter_topic=None))
    record = Record(b"x", "t", 0, 1)
    source.dead_letter([(record, "bad", "d"), (record, "bad", "d"), (record, "worse", "d")])
    assert source.dead_letter_counts == {"bad": 2, "worse": 1}
    assert source.dead_letter_discarded == 3
    assert source.dead_letter_written == 0
    source.close()


def test_missing_tls_file_fails_fast_naming_the_key(tmp_path: Path) -> None:
    """A missing TLS file is a ConfigError naming its key, found by the config checks."""
    settings = KafkaConfig(security_protocol="SSL", ssl_cafile=tmp_path / "nope.pem")
    (error,) = kafka_tls_errors(settings)
    assert isinstance(error, ConfigError)
    assert error.key == "kafka.ssl_cafile"


def test_sasl_password_reaches_the_client_but_never_the_log() -> None:
    """The SecretStr password is unwrapped for kafka-python only; no log event carries it."""
    secret = "s3cr3t-value"
    settings = KafkaConfig(
        bootstrap_servers=[f"127.0.0.1:{free_port()}"],
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username="driftd",
        sasl_plain_password=secret,  # type: ignore[arg-type]
    )
    assert connection_settings(settings, 1.0)["sasl_plain_password"] == secret
    source = KafkaSource(settings, connect_timeout_s=0.5)
    with structlog.testing.capture_logs() as logs:
        source.poll(0.05)
        with pytest.raises(DeadLetterError) as caught:
            source.dead_letter([(Record(b"x", "t", 0, 1), "bad", "d")])
        source.close()
    assert secret not in str(caught.value)
    assert logs
    assert secret not in repr(logs)


def test_security_settings_carry_tls_and_sasl_but_not_the_servers() -> None:
    """The checkpoint store's clients get the source's TLS and SASL settings, nothing else."""
    kafka = KafkaConfig(
        security_protocol="SASL_SSL",
        sasl_mechanism="PLAIN",
        sasl_plain_username="driftd",
        sasl_plain_password="s3cret",  # type: ignore[arg-type]
    )
    settings = security_settings(kafka)
    assert settings["security_protocol"] == "SASL_SSL"
    assert settings["sasl_mechanism"] == "PLAIN"
    assert settings["sasl_plain_password"] == "s3cret"
    assert "bootstrap_servers" not in settings and "bootstrap_timeout_ms" not in settings
