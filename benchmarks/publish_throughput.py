"""The model-server publisher: events/s from one thread, and call latency during an outage.

Run: ``python -m benchmarks.publish_throughput [--quick]``. Starts a local broker (or uses
``DRIFTDTEST_KAFKA_BOOTSTRAP``). Events have 20 numeric and 2 categorical features, as
the end-to-end benchmark's, about 650 bytes of JSON each.

* ``events_per_s_to_ack``: one Python thread calls ``EventPublisher.publish`` for N
  events, then ``flush``; the clock stops when the broker has acknowledged every event
  (defaults: up to 100 events per Kafka message, ``acks=all``, no compression). Target
  50,000 events/s.
* Where the time goes, informational (target 0): ``serialise_only_events_per_s``, the
  event built and ``orjson.dumps`` alone, the floor of a ``publish`` call;
  ``publish_calls_per_s``, the loop of ``publish`` calls before the flush (serialise and
  buffer, the sender thread competing for the GIL); ``events_per_s_to_ack_one_per_message``,
  the same run with ``max_events_per_message=1``, kafka-python's per-record cost.
* ``publish_p99_us_broker_down``: the p99 of one ``publish`` call while no broker
  listens, against the same p99 with the broker up as baseline. Calls come in bursts of
  100 with a 5 ms pause (20,000 calls/s at most, a busy model server), so the sender
  thread works between bursts as it would in a server. Target: baseline / value at
  least 0.5 (the outage makes the call no more than twice as slow).

Each run is repeated and the best taken (best throughput, lowest p99), as the other
benchmarks do on this shared machine.
"""

from __future__ import annotations

import random
import socket
import time
from typing import Any

import numpy as np
import orjson

from benchmarks._report import Measurement, parse_args, report
from monitor.publish import EventPublisher
from tests.kafka_broker import create_topic, kafka_broker, unique_topic

BENCH = "publish_throughput"
NUMERIC = [f"f{i:02d}" for i in range(20)]
CATEGORICAL = ["c0", "c1"]
BURST = 100
PAUSE_S = 0.005


def _features(n: int) -> list[dict[str, Any]]:
    rng = random.Random(5)
    out = []
    for _ in range(n):
        features: dict[str, Any] = {name: round(rng.gauss(0, 1), 4) for name in NUMERIC}
        features.update({c: rng.choice("abcd") for c in CATEGORICAL})
        out.append(features)
    return out


def _connected(bootstrap: str, topic: str, **kwargs: Any) -> EventPublisher:
    publisher = EventPublisher(bootstrap, topic, model="bench", model_version="v1", **kwargs)
    deadline = time.monotonic() + 60
    while not publisher.connected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the publisher did not connect to {bootstrap}")
        time.sleep(0.01)
    return publisher


def _throughput(
    bootstrap: str, features: list[dict[str, Any]], n: int, **kwargs: Any
) -> tuple[float, float]:
    """(events/s to the broker's acknowledgement, publish calls/s) for one run."""
    topic = unique_topic("bench-publish")
    create_topic(bootstrap, topic, partitions=2)
    publisher = _connected(bootstrap, topic, max_buffer=max(100_000, n), **kwargs)
    try:
        size = len(features)
        start = time.perf_counter()
        for i in range(n):
            publisher.publish(features[i % size], 0.25)
        published = time.perf_counter()
        if not publisher.flush(120.0):
            raise RuntimeError(f"not every event was acknowledged: {publisher.stats()}")
        acked = time.perf_counter()
    finally:
        publisher.close(timeout=10.0)
    stats = publisher.stats()
    if stats.delivered != n or stats.dropped_total:
        raise RuntimeError(f"events went missing: {stats}")
    return n / (acked - start), n / (published - start)


def _serialise_only(features: list[dict[str, Any]], n: int) -> float:
    size = len(features)
    start = time.perf_counter()
    for i in range(n):
        orjson.dumps(
            {
                "id": f"x-{i:x}",
                "ts": time.time(),
                "model": "bench",
                "model_version": "v1",
                "features": features[i % size],
                "prediction": 0.25,
            },
            option=orjson.OPT_SERIALIZE_NUMPY,
        )
    return n / (time.perf_counter() - start)


def _latency_p99_us(publisher: EventPublisher, features: list[dict[str, Any]], n: int) -> float:
    """p99 of one publish call, in bursts with pauses between them."""
    size = len(features)
    clock = time.perf_counter_ns
    timings = np.empty(n, dtype=np.int64)
    for i in range(n):
        start = clock()
        publisher.publish(features[i % size], 0.25)
        timings[i] = clock() - start
        if i % BURST == BURST - 1:
            time.sleep(PAUSE_S)
    return float(np.percentile(timings, 99)) / 1_000


def _dead_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def main() -> None:
    """Measure and report."""
    args = parse_args(__doc__ or BENCH)
    n, repeats, calls = (100_000, 2, 20_000) if args.quick else (500_000, 3, 100_000)
    features = _features(10_000)
    with kafka_broker() as bootstrap:
        packed = [_throughput(bootstrap, features, n) for _ in range(repeats)]
        single = [
            _throughput(bootstrap, features, n // 4, max_events_per_message=1)
            for _ in range(repeats)
        ]
        up_p99 = []
        for _ in range(repeats):
            topic = unique_topic("bench-publish-latency")
            create_topic(bootstrap, topic)
            publisher = _connected(bootstrap, topic, max_buffer=calls)
            try:
                up_p99.append(_latency_p99_us(publisher, features, calls))
                publisher.flush(60.0)
            finally:
                publisher.close(timeout=10.0)
    down_p99 = []
    down_stats = None
    for _ in range(repeats):
        # The buffer fills within the run, so the outage's drop path is timed too.
        publisher = EventPublisher(_dead_address(), "inference", max_buffer=calls // 2)
        try:
            down_p99.append(_latency_p99_us(publisher, features, calls))
        finally:
            publisher.close(timeout=0.0)
        down_stats = publisher.stats()
    serialise = max(_serialise_only(features, n) for _ in range(repeats))
    print(
        f"{n} events per throughput run, {calls} timed calls per latency run; broker down: "
        f"{down_stats}"
    )
    report(
        [
            Measurement(
                BENCH, "events_per_s_to_ack", max(p[0] for p in packed), "1/s", 50_000, "higher"
            ),
            Measurement(
                BENCH, "publish_calls_per_s", max(p[1] for p in packed), "1/s", 0, "higher"
            ),
            Measurement(BENCH, "serialise_only_events_per_s", serialise, "1/s", 0, "higher"),
            Measurement(
                BENCH,
                "events_per_s_to_ack_one_per_message",
                max(s[0] for s in single),
                "1/s",
                0,
                "higher",
            ),
            Measurement(
                BENCH,
                "publish_p99_us_broker_down",
                min(down_p99),
                "us",
                0.5,
                "lower",
                baseline=min(up_p99),
            ),
        ]
    )


if __name__ == "__main__":
    main()
