"""End-to-end events/s through the daemon from a real Kafka broker, against the ceiling.

Run: ``python -m benchmarks.e2e_throughput [--quick]``. Starts a local broker (or uses
``DRIFTD_KAFKA_BOOTSTRAP``), produces JSON events with 20 numeric and 2 categorical
features over 10 segments, then consumes the same topic twice with fresh groups:

* ceiling: the same Kafka source only polling and decoding, no drift work;
* daemon: the full pipeline (segments, windows, evaluation, decisions, metrics,
  commits) through ``Daemon.handle``.

The ratio daemon / ceiling has a target of 0.85. The RSS after the daemon run is
reported too: the resident set of the whole process right after the daemon run.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable

import numpy as np
import orjson
from kafka import KafkaProducer
from prometheus_client import CollectorRegistry

from benchmarks._report import Measurement, parse_args, report
from detectors.profile import build_profile
from monitor.app import Daemon, make_results
from monitor.config import Settings
from monitor.decode import Decoder
from monitor.pipeline import Pipeline
from monitor.sources.base import Record
from monitor.sources.kafka_source import KafkaSource
from tests.kafka_broker import create_topic, kafka_broker, unique_topic

NUMERIC = [f"f{i:02d}" for i in range(20)]
CATEGORICAL = ["c0", "c1"]
N_SEGMENTS = 10


def _chunk(rng: np.random.Generator, first: int, n: int, now: float) -> list[bytes]:
    values = rng.normal(size=(n, len(NUMERIC))).round(4).tolist()
    cats = rng.integers(0, 4, (n, len(CATEGORICAL))).tolist()
    segment = rng.integers(0, N_SEGMENTS, n).tolist()
    out = []
    for i in range(n):
        features: dict[str, object] = dict(zip(NUMERIC, values[i], strict=True))
        features.update({c: "abcd"[k] for c, k in zip(CATEGORICAL, cats[i], strict=True)})
        out.append(
            orjson.dumps(
                {
                    "id": f"r{first + i}",
                    "ts": now + (first + i) * 1e-4,
                    "model": "bench",
                    "segment": f"s{segment[i]}",
                    "features": features,
                    "prediction": float(values[i][0] > 0),
                }
            )
        )
    return out


def _produce(bootstrap: str, topic: str, n: int) -> list[bytes]:
    """Produce ``n`` events chunk by chunk (memory stays flat); return the first chunk."""
    rng = np.random.default_rng(1)
    now = time.time() - n * 1e-4
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20, batch_size=1 << 20)
    first: list[bytes] = []
    for lo in range(0, n, 20_000):
        chunk = _chunk(rng, lo, min(20_000, n - lo), now)
        first = first or chunk
        for i, message in enumerate(chunk):
            producer.send(topic, message, partition=(lo + i) % 2)
    producer.flush()
    producer.close()
    return first


def _reference(messages: list[bytes]) -> dict[str, np.ndarray]:
    events = [orjson.loads(m) for m in messages]
    columns: dict[str, np.ndarray] = {
        name: np.array([e["features"][name] for e in events]) for name in NUMERIC + CATEGORICAL
    }
    columns["prediction"] = np.array([e["prediction"] for e in events])
    return columns


def _rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def _settings(bootstrap: str, topic: str) -> Settings:
    return Settings(
        model="bench",
        kafka={  # type: ignore[arg-type]
            "bootstrap_servers": [bootstrap],
            "topics": [topic],
            "group_id": unique_topic("bench-group"),
            "dead_letter_topic": None,
            "max_poll_records": 10_000,
            "poll_timeout_ms": 500,
        },
        schema={"segment_by": ["segment"], "categorical": CATEGORICAL},  # type: ignore[arg-type]
        reference={"warmup_events": 1_000},  # type: ignore[arg-type]
        windows={"size_events": 10_000, "min_samples": 500},  # type: ignore[arg-type]
    )


def _drain(source: KafkaSource, total: int, handle: Callable[[list[Record]], object]) -> float:
    seen = 0
    start = time.perf_counter()
    idle_since = time.monotonic()
    while seen < total:
        records = source.poll(0.5)
        if not records:
            if time.monotonic() - idle_since > 60:
                raise TimeoutError(f"read {seen} of {total} events")
            continue
        idle_since = time.monotonic()
        handle(records)
        seen += len(records)
    return time.perf_counter() - start


def main() -> None:
    """Produce once, then time the ceiling and the daemon on the same topic."""
    args = parse_args(__doc__ or "")
    n = 200_000 if args.quick else 1_000_000
    with kafka_broker() as bootstrap:
        topic = unique_topic("bench-e2e")
        create_topic(bootstrap, topic, partitions=2)
        started = time.perf_counter()
        columns = _reference(_produce(bootstrap, topic, n))
        produce_s = time.perf_counter() - started

        settings = _settings(bootstrap, topic)
        decoder = Decoder(settings.schema_, NUMERIC, CATEGORICAL)
        with KafkaSource(settings.kafka) as source:
            ceiling_s = _drain(source, n, lambda r: decoder.decode([x.value for x in r]))

        settings = _settings(bootstrap, topic)
        profile = build_profile(columns, categorical=CATEGORICAL, prediction="prediction")
        pipeline = Pipeline(settings, profile, make_results(settings))
        source = KafkaSource(settings.kafka)
        daemon = Daemon(
            settings, source, pipeline, registry=CollectorRegistry(), serve_metrics=False
        )
        rss_before = _rss_mib()
        daemon_s = _drain(source, n, daemon.handle)
        rss_mib = _rss_mib()
        source.close()

    print(
        f"{n} events produced in {produce_s:.1f}s; windows closed: {daemon.stats.windows}, "
        f"commits: {daemon.stats.commits}; RSS before the daemon run {rss_before:.0f} MiB"
    )
    report(
        [
            Measurement(
                "e2e_throughput",
                "ceiling_poll_decode_events_per_s",
                n / ceiling_s,
                "1/s",
                0.0,
                "higher",
            ),
            Measurement(
                "e2e_throughput",
                "daemon_events_per_s",
                n / daemon_s,
                "1/s",
                0.85,
                "higher",
                baseline=n / ceiling_s,
            ),
            Measurement("e2e_throughput", f"rss_after_{n}_events", rss_mib, "MiB", 1024.0, "lower"),
        ]
    )


if __name__ == "__main__":
    main()
