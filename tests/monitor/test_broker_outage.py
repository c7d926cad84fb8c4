"""The broker goes away for over 30 s mid-stream: the daemon keeps serving, then resumes."""

from __future__ import annotations

import gc
import socket
import threading
import time
import urllib.error
import urllib.request

import orjson
import pytest
from prometheus_client import CollectorRegistry

from monitor.app import Daemon, make_results
from monitor.config import Settings
from monitor.demo_stream import DemoStream
from monitor.pipeline import Pipeline
from monitor.sources.kafka_source import KafkaSource
from tests.kafka_broker import create_topic, private_broker, produce, unique_topic

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


def test_daemon_rides_out_a_broker_outage_and_loses_nothing() -> None:
    """During a 32 s outage /metrics and /healthz answer and poll age grows; after, all counts."""
    known_sockets = _sockets()
    with private_broker() as broker:
        topic = unique_topic("driftd-outage")
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
                "group_id": unique_topic("driftd-outage-group"),
                "dead_letter_topic": None,
                "poll_timeout_ms": 200,
            },
            schema={"segment_by": ["features.region"]},  # type: ignore[arg-type]
            reference={"warmup_events": 6_000},  # type: ignore[arg-type]
            windows={"size_events": 2_000, "min_samples": 500},  # type: ignore[arg-type]
            metrics={"host": "127.0.0.1", "port": 0},  # type: ignore[arg-type]
        )
        registry = CollectorRegistry()
        daemon = Daemon(
            settings,
            KafkaSource(settings.kafka),
            Pipeline(settings, None, make_results(settings)),
            registry=registry,
        )
        thread = threading.Thread(target=daemon.run, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 120
            while daemon.stats.records < len(before) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert daemon.stats.records == len(before)
            assert daemon.server is not None
            port = daemon.server.port

            broker.stop()
            time.sleep(OUTAGE_S)
            assert _get(port, "/healthz") == 200
            assert _get(port, "/readyz") == 200  # lenient: it gates the model server's pod
            assert _get(port, "/metrics") == 200
            age = registry.get_sample_value("driftd_seconds_since_last_poll")
            assert age is not None and age > 10, age
            assert thread.is_alive()

            broker.resume()
            produce(broker.bootstrap, topic, after, timeout=120)
            deadline = time.monotonic() + 180
            total = len(before) + len(after)
            while daemon.stats.records < total and time.monotonic() < deadline:
                time.sleep(0.5)
            assert daemon.stats.records == total, "events lost or stuck after the outage"
            assert daemon.pipeline.events_accepted == total  # none counted twice
            age = registry.get_sample_value("driftd_seconds_since_last_poll")
            assert age is not None and age < 10
        finally:
            daemon.should_exit.set()
            thread.join(timeout=60)
        assert not thread.is_alive()
        del daemon, thread, registry
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
