"""A real Apache Kafka broker for driftd's integration tests, plus small client helpers.

``kafka_broker()`` yields the bootstrap address of a broker for the test session:

* if ``DRIFTDTEST_KAFKA_BOOTSTRAP`` is set (``host:port[,host:port...]``), that cluster is
  used as is, after one metadata round trip proves it answers;
* otherwise ``deploy/kafka/kafka.sh`` fetches the broker classpath (once per cache),
  starts a fresh single-node KRaft broker on free 127.0.0.1 ports with its data in a
  temporary directory, and stops it (and removes that directory) on exit. Set
  ``DRIFTDTEST_KAFKA_KEEP_DATA=1`` to keep the directory and its ``kafka.log``.

The ``kafka_bootstrap`` fixture wraps it at session scope. Without Java or Maven (which
``kafka.sh`` needs) it skips the tests that use it, except under ``make test`` or CI, where
they fail (``require_local_broker_tools``). ``tests/conftest.py`` registers it, once: a test
module must not import it too, since a session fixture imported into a module is a fixture
of that module's own, with a broker of its own that lives until the session ends.

The other helpers are synchronous wrappers over kafka-python for setting up and
checking tests: ``unique_topic``, ``create_topic`` (returns once every partition
has a leader), ``produce`` (returns once every message is acknowledged) and
``consume_all`` (reads each partition from the beginning to its end offset).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from monitor.kafka.api import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from tests.required_tools import missing_tool

__all__ = [
    "BOOTSTRAP_ENV",
    "KAFKA_SH",
    "KafkaBrokerError",
    "Record",
    "consume_all",
    "create_topic",
    "kafka_bootstrap",
    "kafka_broker",
    "produce",
    "require_local_broker_tools",
    "unique_topic",
]

log = logging.getLogger(__name__)

BOOTSTRAP_ENV = "DRIFTDTEST_KAFKA_BOOTSTRAP"
"""Environment variable naming an existing cluster to use instead of starting one."""

KEEP_DATA_ENV = "DRIFTDTEST_KAFKA_KEEP_DATA"
"""Environment variable that, when set to a non-empty value, keeps the broker's data dir."""

KAFKA_SH = Path(__file__).resolve().parent.parent / "deploy" / "kafka" / "kafka.sh"
"""The launcher script that fetches, starts and stops the local broker."""

CLIENT_ID = "driftd-tests"

_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]+")
_MAX_TOPIC_LEN = 249
_START_ATTEMPTS = 3
_PORT_CLASH_MARKERS = ("already in use", "BindException")


class KafkaBrokerError(RuntimeError):
    """The test broker could not be fetched, started or reached."""


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed Kafka record, detached from kafka-python's types."""

    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


def _ms(seconds: float) -> int:
    """Convert a timeout in seconds to whole milliseconds for kafka-python (at least 1)."""
    return max(1, int(seconds * 1000))


def _free_port_pair() -> tuple[int, int]:
    """Return two distinct TCP ports that were free on 127.0.0.1 a moment ago.

    Both sockets are held open together so the kernel cannot hand out the same
    port twice; another process can still take either port before the broker
    binds it, which ``kafka_broker`` handles by retrying on fresh ports.
    """
    with socket.socket() as first, socket.socket() as second:
        first.bind(("127.0.0.1", 0))
        second.bind(("127.0.0.1", 0))
        return int(first.getsockname()[1]), int(second.getsockname()[1])


def _run_kafka_sh(
    command: str, env: Mapping[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run ``kafka.sh <command>`` and return its result without raising on failure."""
    try:
        return subprocess.run(
            ["bash", str(KAFKA_SH), command],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise KafkaBrokerError(f"kafka.sh {command} did not finish within {timeout:.0f} s") from exc


def _describe(result: subprocess.CompletedProcess[str]) -> str:
    """Format a failed kafka.sh run (exit code and output) for an error message."""
    output = "\n".join(part.strip() for part in (result.stdout, result.stderr) if part.strip())
    return f"exit code {result.returncode}:\n{output}"


def _check_reachable(bootstrap: str, timeout: float) -> None:
    """Make one metadata round trip to ``bootstrap`` or raise ``KafkaBrokerError``."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap, client_id=CLIENT_ID, request_timeout_ms=_ms(timeout)
        )
        try:
            admin.describe_cluster()
        finally:
            admin.close()
    except Exception as exc:
        raise KafkaBrokerError(
            f"no Kafka broker answers at {bootstrap} (from ${BOOTSTRAP_ENV}): {exc!r}"
        ) from exc


def require_local_broker_tools() -> None:
    """Skip the test when ``kafka.sh`` lacks Java or Maven (fail under make test or CI)."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    missing = []
    if java is None or not os.access(java, os.X_OK):
        missing.append(f"java ({java_home}/bin/java from JAVA_HOME)" if java_home else "java")
    if shutil.which("mvn") is None:
        missing.append("mvn")
    if missing:
        missing_tool(
            f"{' and '.join(missing)} not found: deploy/kafka/kafka.sh needs Java 17+ and "
            "Maven to run the local Kafka broker (or set $" + BOOTSTRAP_ENV + ")"
        )


def _start_local_broker(stack: ExitStack, start_timeout: float) -> str:
    """Fetch and start a local broker with ``kafka.sh``; register its cleanup on ``stack``."""
    return _start_local_broker_env(stack, start_timeout)[0]


def _start_local_broker_env(stack: ExitStack, start_timeout: float) -> tuple[str, dict[str, str]]:
    """Like ``_start_local_broker``, also returning the ``kafka.sh`` environment."""
    fetch = _run_kafka_sh("fetch", os.environ, timeout=900)
    if fetch.returncode != 0:
        raise KafkaBrokerError(f"kafka.sh fetch failed with {_describe(fetch)}")

    data_dir = Path(tempfile.mkdtemp(prefix="driftd-kafka-"))
    failures: list[str] = []
    for _ in range(_START_ATTEMPTS):
        port, controller_port = _free_port_pair()
        env = {
            **os.environ,
            "DRIFTDTEST_KAFKA_PORT": str(port),
            "DRIFTDTEST_KAFKA_CONTROLLER_PORT": str(controller_port),
            "DRIFTDTEST_KAFKA_DATA": str(data_dir),
            "DRIFTDTEST_KAFKA_START_TIMEOUT": str(max(1, round(start_timeout))),
        }
        started = _run_kafka_sh("start", env, timeout=start_timeout + 60)
        if started.returncode == 0:
            stack.callback(_stop_local_broker, env, data_dir)
            return f"127.0.0.1:{port}", env
        failures.append(_describe(started))
        if not any(marker in started.stderr for marker in _PORT_CLASH_MARKERS):
            break
    raise KafkaBrokerError(
        f"kafka.sh start failed (data and log kept in {data_dir}) with {failures[-1]}"
    )


def _stop_local_broker(env: Mapping[str, str], data_dir: Path) -> None:
    """Stop the broker started with ``env``; remove its data dir unless asked to keep it."""
    stopped = _run_kafka_sh("stop", env, timeout=120)
    if stopped.returncode != 0:
        raise KafkaBrokerError(f"kafka.sh stop failed with {_describe(stopped)}")
    if os.environ.get(KEEP_DATA_ENV):
        log.info("kept Kafka data dir %s", data_dir)
    else:
        shutil.rmtree(data_dir, ignore_errors=True)


@contextmanager
def kafka_broker(*, start_timeout: float = 90.0) -> Iterator[str]:
    """Yield the bootstrap address of a running broker, started here if need be.

    Uses ``DRIFTDTEST_KAFKA_BOOTSTRAP`` when set; otherwise fetches and starts a local
    single-node broker with ``deploy/kafka/kafka.sh`` and stops it on exit.
    Raises ``KafkaBrokerError`` with the launcher's output (including the tail
    of the broker log) when the broker cannot be had.
    """
    external = os.environ.get(BOOTSTRAP_ENV, "").strip()
    if external:
        _check_reachable(external, timeout=min(start_timeout, 30.0))
        yield external
        return
    with ExitStack() as stack:
        yield _start_local_broker(stack, start_timeout)


@dataclass
class PrivateBroker:
    """A broker of one test's own, which the test may stop and resume (outages)."""

    bootstrap: str
    env: dict[str, str]

    def stop(self) -> None:
        """Stop the broker, keeping its data."""
        stopped = _run_kafka_sh("stop", self.env, timeout=120)
        if stopped.returncode != 0:
            raise KafkaBrokerError(f"kafka.sh stop failed with {_describe(stopped)}")

    def resume(self, timeout: float = 90.0) -> None:
        """Start the broker again on the same port and data."""
        resumed = _run_kafka_sh("resume", self.env, timeout=timeout + 60)
        if resumed.returncode != 0:
            raise KafkaBrokerError(f"kafka.sh resume failed with {_describe(resumed)}")


@contextmanager
def private_broker(*, start_timeout: float = 90.0) -> Iterator[PrivateBroker]:
    """A local broker for one test (never the shared or an external one)."""
    require_local_broker_tools()
    with ExitStack() as stack:
        bootstrap, env = _start_local_broker_env(stack, start_timeout)
        yield PrivateBroker(bootstrap, env)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap address of the session's Kafka broker (see ``kafka_broker``)."""
    if not os.environ.get(BOOTSTRAP_ENV, "").strip():
        require_local_broker_tools()
    with kafka_broker() as bootstrap:
        yield bootstrap


def unique_topic(prefix: str = "driftd-test") -> str:
    """Return a topic name that no other test (or earlier run) has used: ``<prefix>-<hex>``."""
    if not _TOPIC_NAME.fullmatch(prefix):
        raise ValueError(f"topic prefix {prefix!r} may only contain ASCII letters, digits, . _ -")
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    if len(name) > _MAX_TOPIC_LEN:
        raise ValueError(f"topic prefix {prefix!r} is too long")
    return name


def create_topic(
    bootstrap: str,
    name: str,
    partitions: int = 1,
    *,
    configs: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> None:
    """Create topic ``name`` and return once every partition has a leader.

    The replication factor is the cluster default (1 on the local broker).
    ``configs`` are topic-level settings such as ``{"retention.ms": "60000"}``.
    Raises kafka-python's ``TopicAlreadyExistsError`` if the topic exists.
    """
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, got {partitions}")
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap, client_id=CLIENT_ID, request_timeout_ms=_ms(timeout)
    )
    try:
        spec = {
            "num_partitions": partitions,
            "replication_factor": -1,
            "configs": dict(configs or {}),
        }
        admin.create_topics({name: spec}, timeout_ms=_ms(timeout))
        admin.wait_for_topics([name], timeout_ms=_ms(timeout))
    finally:
        admin.close()


def produce(
    bootstrap: str,
    topic: str,
    messages: Sequence[bytes],
    partition: int | None = None,
    *,
    key: bytes | None = None,
    timeout: float = 30.0,
) -> list[int]:
    """Send ``messages`` in order, wait until all are acknowledged, and return their offsets.

    With ``partition=None`` the producer's partitioner chooses (by ``key`` if one is
    given). Sends use ``acks=all``; a topic that does not exist is created by the
    broker if it auto-creates topics (the local one does).
    """
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=CLIENT_ID,
        acks="all",
        max_block_ms=_ms(timeout),
        request_timeout_ms=_ms(timeout),
    )
    try:
        futures = [producer.send(topic, value=m, key=key, partition=partition) for m in messages]
        producer.flush(timeout=timeout)
        return [int(future.get(timeout=timeout).offset) for future in futures]
    finally:
        producer.close(timeout=timeout)


def consume_all(bootstrap: str, topic: str, timeout: float = 30.0) -> list[Record]:
    """Read every record of ``topic`` from the beginning up to the end offsets seen at the start.

    Uses no consumer group and commits nothing. Records come back ordered by
    (partition, offset). Records produced after the call began are not included.
    Raises ``TimeoutError`` if the topic is not found, or not read to its end,
    within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        client_id=CLIENT_ID,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=_ms(timeout),
    )
    try:
        partition_ids: set[int] = set(consumer.partitions_for_topic(topic))
        while not partition_ids:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"topic {topic!r} not found within {timeout} s")
            time.sleep(0.1)
            partition_ids = set(consumer.partitions_for_topic(topic))
        tps = [TopicPartition(topic, p) for p in sorted(partition_ids)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end_offsets: dict[int, int] = {
            int(tp.partition): int(offset)
            for tp, offset in consumer.end_offsets(tps, timeout_ms=_ms(timeout)).items()
        }

        def behind(tp: TopicPartition) -> bool:
            """Whether the consumer's position on ``tp`` is short of its end offset."""
            position = consumer.position(tp, timeout_ms=_ms(max(0.1, deadline - time.monotonic())))
            return position is None or int(position) < end_offsets[int(tp.partition)]

        records: list[Record] = []
        pending = {tp for tp in tps if behind(tp)}
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                lagging = sorted(int(tp.partition) for tp in pending)
                raise TimeoutError(
                    f"topic {topic!r}: partitions {lagging} not read to their end "
                    f"within {timeout} s ({len(records)} records read)"
                )
            batches = consumer.poll(timeout_ms=_ms(min(remaining, 0.5)))
            for batch in batches.values():
                for rec in batch:
                    if rec.offset < end_offsets[rec.partition]:
                        records.append(
                            Record(
                                partition=int(rec.partition),
                                offset=int(rec.offset),
                                timestamp_ms=int(rec.timestamp),
                                key=rec.key,
                                value=rec.value,
                                headers=tuple((str(k), bytes(v)) for k, v in rec.headers or ()),
                            )
                        )
            pending = {tp for tp in pending if behind(tp)}
        records.sort(key=lambda r: (r.partition, r.offset))
        return records
    finally:
        consumer.close(autocommit=False)
