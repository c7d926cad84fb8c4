"""End-to-end events/s through the daemon from a real Kafka broker, against the ceiling.

Run: ``python -m benchmarks.e2e_throughput [--quick]``. Starts a local broker (or uses
``DRIFTDTEST_KAFKA_BOOTSTRAP``), produces JSON events with 20 numeric and 2 categorical
features over 10 segments, then consumes the same topic with fresh groups: every
variant below once per round, three rounds, every other one in reverse order. Each
figure is the median of its rounds (the machine is shared, and its speed drifts over
minutes), and every round's rates are printed:

* ceiling: the same Kafka source only polling and decoding, no drift work, as a plain
  loop runs them (the baseline of the 0.85 target); reported beside it, the same loop
  holding the cyclic collector over each turn as the daemon does, and the daemon's
  ratio to that (no target);
* daemon: the full pipeline (segments, windows, evaluation, decisions, metrics,
  commits) through ``Daemon.step``, the turn of the daemon's loop (poll, then handle,
  the cyclic collector held);
* daemon checkpointing every 10 s to the file store (issue: reliability); every daemon
  run ends as a shutdown does, with a last checkpoint and commit inside its timing;
* daemon with labels flowing: a label for every event on a second topic, joined,
  scored and fed to ADWIN (events/s counts inference events only).

Then the same with ``kafka.client: confluent`` (librdkafka, the ``fast`` extra):

* confluent raw consume: a bare librdkafka consumer, the same settings, only reading
  (the baseline of the 0.7 target); reported beside it, the same consumer holding the
  cyclic collector over each ``consume`` as the daemon's loop does (no target: librdkafka
  makes a tracked object per message, and this shows what collections cost a reader);
* confluent ceiling: the confluent source polling and decoding, as a plain loop;
* confluent daemon: the full pipeline checkpointing every 10 s, as ``driftd run`` would.

Ratios: daemon / ceiling (target 0.85); checkpointing / daemon (target 0.9; the
interval is 10 s, 1 s with ``--quick`` so that the short run checkpoints at all). The
confluent daemon has a target of 100,000 events/s and of 0.7 of the raw consume rate.
With labels the consumer reads two records per event, and reading is what bounds
throughput here (kafka-python's record parsing), so the ideal inference events/s is
half the feature-only rate: records/s with labels / without has a target of 0.85
(as daemon / ceiling), events/s with labels / without a target of 0.45 (90% of the
ideal 0.5). The RSS after the daemon run is reported too.
"""

from __future__ import annotations

import resource
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from kafka import KafkaProducer

from benchmarks._report import Measurement, parse_args, report
from detectors.profile import build_profile
from monitor.app import Daemon, collector_paused
from monitor.config import Settings
from monitor.ingest.decode import Decoder
from monitor.ingest.kafka.choice import kafka_source
from monitor.ingest.source import Source, record_values
from monitor.kafka.confluent import StructlogBridge, consumer_config
from monitor.wiring import build_daemon
from tests.kafka_broker import create_topic, kafka_broker, unique_topic

NUMERIC = [f"f{i:02d}" for i in range(20)]
CATEGORICAL = ["c0", "c1"]
N_SEGMENTS = 10
CHECKPOINT_INTERVAL_S = 10.0
QUICK_CHECKPOINT_INTERVAL_S = 1.0
CONFLUENT_TARGET_EVENTS_PER_S = 100_000.0


def event_messages(rng: np.random.Generator, first: int, n: int, now: float) -> list[bytes]:
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


def _produce(bootstrap: str, topic: str, label_topic: str, n: int) -> list[bytes]:
    """Produce ``n`` events and their labels chunk by chunk; return the first chunk."""
    rng = np.random.default_rng(1)
    now = time.time() - n * 1e-4
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20, batch_size=1 << 20)
    first: list[bytes] = []
    for lo in range(0, n, 20_000):
        chunk = event_messages(rng, lo, min(20_000, n - lo), now)
        first = first or chunk
        labels = rng.integers(0, 2, len(chunk)).tolist()
        for i, message in enumerate(chunk):
            producer.send(topic, message, partition=(lo + i) % 2)
            label = {"id": f"r{lo + i}", "ts": now + (lo + i) * 1e-4 + 1.0, "label": labels[i]}
            producer.send(label_topic, orjson.dumps(label), partition=(lo + i) % 2)
    producer.flush()
    producer.close()
    return first


def reference_columns(messages: list[bytes]) -> dict[str, np.ndarray]:
    events = [orjson.loads(m) for m in messages]
    columns: dict[str, np.ndarray] = {
        name: np.array([e["features"][name] for e in events]) for name in NUMERIC + CATEGORICAL
    }
    columns["prediction"] = np.array([e["prediction"] for e in events])
    return columns


def _rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def bench_settings(
    bootstrap: str,
    topic: str,
    reference: Path,
    label_topic: str | None = None,
    state: Path | None = None,
    interval_s: float = CHECKPOINT_INTERVAL_S,
    client: str = "kafka-python",
) -> Settings:
    return Settings(
        model="bench",
        kafka={  # type: ignore[arg-type]
            "client": client,
            "bootstrap_servers": [bootstrap],
            "topics": [topic],
            "labels_topic": label_topic,
            "group_id": unique_topic("bench-group"),
            "dead_letter_topic": None,
            "max_poll_records": 10_000,
            "poll_timeout_ms": 500,
        },
        labels={"enabled": label_topic is not None, "window_pairs": 2_000},  # type: ignore[arg-type]
        checkpoint={  # type: ignore[arg-type]
            "store": "file" if state is not None else "none",
            "directory": state or Path("unused"),
            "interval_s": interval_s,
        },
        schema={"segment_by": ["segment"], "categorical": CATEGORICAL},  # type: ignore[arg-type]
        reference={"path": reference},  # type: ignore[arg-type]
        windows={"size_events": 10_000, "min_samples": 500},  # type: ignore[arg-type]
    )


def _drain(step: Callable[[float], int], total: int) -> float:
    """Seconds for ``step`` (one poll and its handling: the records it took) to take ``total``."""
    seen = 0
    start = time.perf_counter()
    idle_since = time.monotonic()
    while seen < total:
        took = step(0.5)
        if not took:
            if time.monotonic() - idle_since > 60:
                raise TimeoutError(f"read {seen} of {total} events")
            continue
        idle_since = time.monotonic()
        seen += took
    return time.perf_counter() - start


def _decoding(
    source: Source, decoder: Decoder, *, hold_collector: bool = False
) -> Callable[[float], int]:
    """One turn of the ceiling: poll and decode, as a plain loop runs them; with
    ``hold_collector``, the cyclic collector held over the turn as ``Daemon.step`` holds it."""

    def step(timeout_s: float) -> int:
        with collector_paused() if hold_collector else nullcontext():
            records = source.poll(timeout_s)
            if records:
                decoder.decode(record_values(records))
            took = len(records)
            del records
        return took

    return step


def _raw_consume(settings: Settings, total: int, *, hold_collector: bool = False) -> float:
    """Seconds for a bare librdkafka consumer (the source's settings) to read ``total``
    messages, touching each value: the most the confluent source could reach. With
    ``hold_collector`` the cyclic collector is held over each batch, as ``Daemon.step``
    holds it."""
    from confluent_kafka import Consumer

    config = consumer_config(settings.kafka, connect_timeout_s=10.0)
    config.update(StructlogBridge("raw").config())
    consumer = Consumer(config)
    consumer.subscribe(list(settings.kafka.topics))
    batch = settings.kafka.max_poll_records
    seen = 0
    try:
        while not consumer.assignment():  # the group join is not part of the rate
            for message in consumer.consume(1, 0.5):
                seen += message.error() is None
        start = time.perf_counter()
        idle_since = time.monotonic()
        while seen < total:
            with collector_paused() if hold_collector else nullcontext():
                messages = consumer.consume(batch, 0.5)
                for message in messages:
                    if message.error() is None and message.value() is not None:
                        seen += 1
                took = len(messages)
                del messages
            if not took:
                if time.monotonic() - idle_since > 60:
                    raise TimeoutError(f"read {seen} of {total} events")
                continue
            idle_since = time.monotonic()
        return time.perf_counter() - start
    finally:
        consumer.close()


def _daemon_run(settings: Settings, total: int) -> tuple[float, Daemon]:
    """Seconds for a daemon (checkpointing as configured) to process ``total`` records,
    ending as a shutdown does: a last checkpoint, then its commit (inside the timing, so
    a run shorter than the checkpoint interval still pays for one)."""
    daemon = build_daemon(settings, serve_metrics=False)
    try:
        started = time.perf_counter()
        _drain(daemon.step, total)
        daemon.checkpoint()
        daemon.commit_pending()
        return time.perf_counter() - started, daemon
    finally:
        daemon.source.close()
        daemon.checkpointer.close()


ROUNDS = 3
"""Every variant runs once per round (every other round backwards); a figure is the median."""

Variant = Callable[[Path], "tuple[float, int, Daemon | None]"]
"""One way of reading the topic: given a state directory, (seconds, records, its daemon)."""


def _median(values: list[float]) -> float:
    return float(np.median(values))


def main() -> None:
    """Produce once, then time the ceilings and the daemon variants on the same topics,
    ``ROUNDS`` times in turn (the host is shared: a figure is the median of its rounds)."""
    args = parse_args(__doc__ or "")
    n = 200_000 if args.quick else 1_000_000
    rounds = ROUNDS
    interval = QUICK_CHECKPOINT_INTERVAL_S if args.quick else CHECKPOINT_INTERVAL_S
    rates: dict[str, list[float]] = {}
    with kafka_broker() as bootstrap, tempfile.TemporaryDirectory() as tmp:
        topic, label_topic = unique_topic("bench-e2e"), unique_topic("bench-e2e-labels")
        create_topic(bootstrap, topic, partitions=2)
        create_topic(bootstrap, label_topic, partitions=2)
        started = time.perf_counter()
        columns = reference_columns(_produce(bootstrap, topic, label_topic, n))
        produce_s = time.perf_counter() - started

        profile = build_profile(columns, categorical=CATEGORICAL, prediction="prediction")
        reference = Path(tmp) / "reference.json"
        reference.write_bytes(orjson.dumps(profile.to_dict()))
        decoder = Decoder(bench_settings(bootstrap, topic, reference).schema_, NUMERIC, CATEGORICAL)

        def settings(client: str = "kafka-python", **more: Any) -> Settings:
            return bench_settings(bootstrap, topic, reference, client=client, **more)

        def poll_decode(client: str, hold_collector: bool = False) -> Variant:
            def run(_: Path) -> tuple[float, int, Daemon | None]:
                with kafka_source(settings(client).kafka) as source:
                    step = _decoding(source, decoder, hold_collector=hold_collector)
                    return _drain(step, n), n, None

            return run

        def daemon_of(
            client: str = "kafka-python", records: int = n, checkpoint: bool = False, **more: Any
        ) -> Variant:
            def run(state: Path) -> tuple[float, int, Daemon | None]:
                saving = {"state": state / client, "interval_s": interval} if checkpoint else {}
                seconds, daemon = _daemon_run(settings(client, **more, **saving), records)
                return seconds, records, daemon

            return run

        def raw(hold_collector: bool) -> Variant:
            def run(_: Path) -> tuple[float, int, Daemon | None]:
                seconds = _raw_consume(settings("confluent"), n, hold_collector=hold_collector)
                return seconds, n, None

            return run

        variants: dict[str, Variant] = {
            "ceiling": poll_decode("kafka-python"),
            "ceiling_held": poll_decode("kafka-python", hold_collector=True),
            "daemon": daemon_of(),
            "checkpointed": daemon_of(checkpoint=True),
            "labelled": daemon_of(records=2 * n, label_topic=label_topic),
            "raw": raw(hold_collector=False),
            "raw_held": raw(hold_collector=True),
            "fast_ceiling": poll_decode("confluent"),
            "fast": daemon_of("confluent", checkpoint=True),
        }
        daemons: dict[str, Daemon] = {}
        rss_before = rss_mib = 0.0
        for round_ in range(rounds):
            # Every other round runs the variants backwards: a host that speeds up or slows
            # down over the rounds then favours no variant over the one beside it.
            names = list(variants) if round_ % 2 == 0 else list(reversed(variants))
            for name in names:
                first_daemon = name == "daemon" and not rss_before
                rss_before = _rss_mib() if first_daemon else rss_before
                seconds, records, daemon = variants[name](Path(tmp) / f"round-{round_}")
                rss_mib = _rss_mib() if first_daemon else rss_mib
                rates.setdefault(name, []).append(records / seconds)
                if daemon is not None:
                    daemons[name] = daemon
            print(
                f"round {round_ + 1}: "
                + ", ".join(f"{name} {rates[name][-1]:,.0f}/s" for name in variants),
                flush=True,
            )
    daemon, checkpointed = daemons["daemon"], daemons["checkpointed"]
    labelled, fast_daemon = daemons["labelled"], daemons["fast"]
    saves = checkpointed.registry.get_sample_value("driftd_checkpoint_total", {"outcome": "ok"})
    fast_saves = fast_daemon.registry.get_sample_value("driftd_checkpoint_total", {"outcome": "ok"})

    print(
        f"{n} events (+{n} labels) produced in {produce_s:.1f}s; {rounds} rounds, medians "
        f"below; last round: windows closed: "
        f"{daemon.stats.windows}, commits: {daemon.stats.commits}; RSS before the first daemon "
        f"run {rss_before:.0f} MiB; checkpointed run: {saves:.0f} checkpoints, "
        f"{checkpointed.stats.commits} commits; "
        f"labelled run: {labelled.stats.matched} pairs joined; confluent run: "
        f"{fast_saves:.0f} checkpoints, {fast_daemon.stats.commits} commits, "
        f"{fast_daemon.stats.windows} windows"
    )
    rate = {name: _median(values) for name, values in rates.items()}
    report(
        [
            Measurement(
                "e2e_throughput",
                "ceiling_poll_decode_events_per_s",
                rate["ceiling"],
                "1/s",
                0.0,
                "higher",
            ),
            Measurement(
                "e2e_throughput",
                "daemon_events_per_s",
                rate["daemon"],
                "1/s",
                0.85,
                "higher",
                baseline=rate["ceiling"],
            ),
            Measurement(
                "e2e_throughput",
                "ceiling_poll_decode_collector_held_events_per_s",
                rate["ceiling_held"],
                "1/s",
                0.0,
                "higher",
            ),
            Measurement(
                "e2e_throughput",
                "daemon_vs_ceiling_collector_held",
                rate["daemon"],
                "1/s",
                0.0,
                "higher",
                baseline=rate["ceiling_held"],
            ),
            Measurement(
                "e2e_throughput",
                f"daemon_events_per_s_checkpoint_every_{interval:g}s",
                rate["checkpointed"],
                "1/s",
                0.9,
                "higher",
                baseline=rate["daemon"],
            ),
            Measurement(
                "e2e_throughput",
                "daemon_records_per_s_with_labels",
                rate["labelled"],
                "1/s",
                0.85,
                "higher",
                baseline=rate["daemon"],
            ),
            Measurement(
                "e2e_throughput",
                "daemon_events_per_s_with_labels",
                rate["labelled"] / 2,
                "1/s",
                0.45,
                "higher",
                baseline=rate["daemon"],
            ),
            Measurement("e2e_throughput", f"rss_after_{n}_events", rss_mib, "MiB", 1024.0, "lower"),
            Measurement(
                "e2e_throughput",
                "confluent_raw_consume_events_per_s",
                rate["raw"],
                "1/s",
                0.0,
                "higher",
            ),
            Measurement(
                "e2e_throughput",
                "confluent_raw_consume_collector_held_events_per_s",
                rate["raw_held"],
                "1/s",
                0.0,
                "higher",
            ),
            Measurement(
                "e2e_throughput",
                "confluent_ceiling_poll_decode_events_per_s",
                rate["fast_ceiling"],
                "1/s",
                0.0,
                "higher",
            ),
            Measurement(
                "e2e_throughput",
                f"confluent_daemon_events_per_s_checkpoint_every_{interval:g}s",
                rate["fast"],
                "1/s",
                CONFLUENT_TARGET_EVENTS_PER_S,
                "higher",
            ),
            Measurement(
                "e2e_throughput",
                "confluent_daemon_vs_raw_consume",
                rate["fast"],
                "1/s",
                0.7,
                "higher",
                baseline=rate["raw"],
            ),
        ]
    )


if __name__ == "__main__":
    main()
