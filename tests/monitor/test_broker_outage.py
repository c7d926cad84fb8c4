"""The broker goes away for over 30 s mid-stream: the daemon says so in its metrics, keeps
serving, and resumes within seconds of the broker's return."""

from __future__ import annotations

import gc
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from monitor.config import Settings
from monitor.ingest.demo_stream import DemoStream
from monitor.ingest.kafka.metrics import kafka_collectors
from monitor.ingest.kafka.source import KafkaSource
from monitor.kafka.api import KafkaConsumer, TopicPartition
from monitor.wiring import build_daemon
from tests.kafka_broker import (
    PrivateBroker,
    create_topic,
    private_broker,
    produce,
    unique_topic,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
]

OUTAGE_S = 32.0


def _get(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _sockets() -> set[int]:
    return {id(o) for o in gc.get_objects() if isinstance(o, socket.socket)}


def _close_refused_sockets(before: set[int]) -> int:
    """Close the unconnected sockets kafka-python kept from refused reconnects.

    kafka-python 3.0.12 keeps the socket of every refused connect alive through the
    traceback of the error it stores; it is closed only when the garbage collector
    gets to it, in some later test, which then fails on the ResourceWarning.
    """
    closed = 0
    for o in gc.get_objects():
        if not isinstance(o, socket.socket) or id(o) in before or o.fileno() == -1:
            continue
        try:
            o.getpeername()
        except OSError:
            o.close()
            closed += 1
    return closed


def _scrape(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """``/metrics`` over HTTP, as {sample name: {sorted labels: value}}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode("utf-8")
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[labels] = sample.value
    return samples


def _total(samples: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str) -> float:
    return sum(samples.get(name, {}).values())


def _poll_errors(samples: dict[str, dict[tuple[tuple[str, str], ...], float]]) -> float:
    return samples["driftd_kafka_errors_total"][(("kind", "poll"),)]


def _committed(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    """The sum of the group's committed offsets on ``topic`` (0 where none)."""
    consumer = KafkaConsumer(bootstrap_servers=[bootstrap], group_id=group)
    try:
        return sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in range(partitions))
    finally:
        consumer.close(autocommit=False)


def _note_first_accept(bootstrap: str, at: list[float], timeout: float = 120.0) -> None:
    """Append the monotonic time at which ``bootstrap`` first accepts a TCP connection."""
    host, _, port = bootstrap.rpartition(":")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, int(port)), timeout=1):
                at.append(time.monotonic())
                return
        except OSError:
            time.sleep(0.05)


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def _ride_out_an_outage(broker: PrivateBroker) -> None:
    """Consume a backlog, stop the broker, check the metrics, resume, consume more."""
    topic = unique_topic("driftd-outage")
    group = unique_topic("driftd-outage-group")
    create_topic(broker.bootstrap, topic, partitions=2)
    stream = DemoStream()
    stream.start_ts = time.time() - 40_000 / stream.rate
    before = [orjson.dumps(e) for e in stream.next_batch(20_000).events()]
    after = [orjson.dumps(e) for e in stream.next_batch(20_000).events()]
    produce(broker.bootstrap, topic, before)

    settings = Settings(
        model="credit-risk",
        kafka={  # type: ignore[arg-type]
            "bootstrap_servers": [broker.bootstrap],
            "topics": [topic],
            "group_id": group,
            "dead_letter_topic": None,
            "poll_timeout_ms": 200,
            # The first batch commits, the rest waits an hour: read but uncommitted
            # events that a lag from the read position would not show.
            "commit_interval_ms": 3_600_000,
        },
        schema={"segment_by": ["features.region"]},  # type: ignore[arg-type]
        reference={"warmup_events": 6_000},  # type: ignore[arg-type]
        windows={"size_events": 2_000, "min_samples": 500},  # type: ignore[arg-type]
        metrics={"host": "127.0.0.1", "port": 0},  # type: ignore[arg-type]
        checkpoint={"store": "none"},  # type: ignore[arg-type]
    )
    source = KafkaSource(settings.kafka)
    registry = CollectorRegistry()
    for collector in kafka_collectors(source, settings.model):
        registry.register(collector)
    daemon = build_daemon(settings, source=source, registry=registry)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        _wait(lambda: daemon.stats.records == len(before), 120, "backlog not consumed")
        assert daemon.server is not None
        port = daemon.server.port
        uncommitted = len(before) - _committed(broker.bootstrap, group, topic, 2)
        assert 0 < uncommitted < len(before)
        _wait(
            lambda: _total(_scrape(port), "driftd_consumer_lag") == uncommitted,
            30,
            "driftd_consumer_lag is not the events past the committed offsets",
        )
        healthy = _scrape(port)
        assert _total(healthy, "driftd_consumer_read_lag") == 0  # everything was read
        assert _poll_errors(healthy) == 0

        broker.stop()
        time.sleep(OUTAGE_S / 2)
        early = _scrape(port)
        time.sleep(OUTAGE_S / 2)
        assert _get(port, "/healthz") == 200
        assert _get(port, "/readyz") == 200  # lenient: it gates the model server's pod
        late = _scrape(port)
        early_age = _total(early, "driftd_seconds_since_last_poll")
        late_age = _total(late, "driftd_seconds_since_last_poll")
        assert late_age > early_age + OUTAGE_S / 4, (early_age, late_age)
        assert late_age > OUTAGE_S / 2
        assert _poll_errors(late) > _poll_errors(early) > 0
        assert _total(late, "driftd_consumer_lag") == uncommitted  # still reported
        assert thread.is_alive()

        listening: list[float] = []
        watcher = threading.Thread(target=_note_first_accept, args=(broker.bootstrap, listening))
        watcher.start()
        broker.resume()
        watcher.join(timeout=60)
        assert listening, "the broker did not come back"
        back = listening[0]
        _wait(
            lambda: (source.last_successful_poll or 0.0) > back,
            60,
            "no successful poll after the broker returned",
        )
        resumed_s = (source.last_successful_poll or 0.0) - back
        print(f"consumption resumed {resumed_s:.1f} s after the broker accepted connections")
        # The retry cap (2 s) and the client's reconnect cap keep this within 10 s on
        # an idle machine; the slack absorbs a loaded CI runner.
        assert resumed_s < 20, resumed_s
        produce(broker.bootstrap, topic, after, timeout=120)
        total = len(before) + len(after)
        _wait(lambda: daemon.stats.records >= total, 180, "events stuck after the outage")
        assert daemon.stats.records == total, "events read twice after the outage"
        assert daemon.pipeline.events_accepted == total  # none counted twice
        assert _total(_scrape(port), "driftd_seconds_since_last_poll") < 10
    finally:
        daemon.should_exit.set()
        thread.join(timeout=60)
    assert not thread.is_alive()


# The refused-connect sockets kafka-python keeps (see _close_refused_sockets) may also be
# finalised by a garbage collection that runs during the outage, inside this test: their
# warnings are the library's leak, which the test asserts below, not the daemon's.
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning"
)
def test_daemon_rides_out_a_broker_outage_and_loses_nothing() -> None:
    """A 32 s outage shows in /metrics (poll age, poll errors, committed lag); resume is fast."""
    known_sockets = _sockets()
    with private_broker() as broker:
        _ride_out_an_outage(broker)
        assert _close_refused_sockets(known_sockets) > 0  # the library leak this works around
    # The clients' I/O threads may still be winding down reconnects to the broker now
    # stopped: wait for them, then close what they left and collect here, so that no
    # unclosed socket is finalised in a later test.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(
        t.name.startswith("kafka-io") for t in threading.enumerate()
    ):
        time.sleep(0.2)
    time.sleep(1.0)
    _close_refused_sockets(known_sockets)
    gc.collect()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_a_broker_down_from_the_start_shows_in_metrics_through_the_cli(tmp_path: Path) -> None:
    """`driftd run` with no broker: the poll age grows from the start and poll errors count."""
    port = _free_port()
    config = tmp_path / "driftd.yaml"
    config.write_text(
        "model: credit-risk\n"
        f"kafka: {{bootstrap_servers: ['127.0.0.1:{_free_port()}'], dead_letter_topic: null}}\n"
        f"metrics: {{host: 127.0.0.1, port: {port}}}\n"
        f"checkpoint: {{directory: '{tmp_path / 'state'}'}}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("DRIFTD_")}
    driftd = subprocess.Popen(
        [str(Path(sys.executable).with_name("driftd")), "run", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        scrapes: list[dict[str, dict[tuple[tuple[str, str], ...], float]]] = []
        deadline = time.monotonic() + 60
        while len(scrapes) < 2 and time.monotonic() < deadline:
            time.sleep(3)
            with suppress(OSError):
                scrapes.append(_scrape(port))
        assert len(scrapes) == 2, "no /metrics from driftd"
        first, second = scrapes
        age = _total(second, "driftd_seconds_since_last_poll")
        assert age >= 3 and age > _total(first, "driftd_seconds_since_last_poll"), age
        assert _poll_errors(second) > 0
        assert driftd.poll() is None  # still running: an outage is reported, not fatal
    finally:
        driftd.send_signal(signal.SIGTERM)
        driftd.wait(timeout=60)
