"""Replay driftd's built-in demo stream into Kafka, in real time, with delayed labels.

The docker compose stack runs it in the driftd image (which has ``monitor`` and
kafka-python installed)::

    python /opt/driftd-compose/produce_demo.py --bootstrap kafka:9092

It creates the topics if they are missing, then sends inference events to ``--topic``
at ``--rate`` events per second (event time = wall time) and each event's ground-truth
label to ``--labels-topic`` ``--label-delay`` seconds later. The stream is the
simulated credit-risk model of ``monitor.ingest.demo_stream``: 'west' drifts at
``--feature-shift-at`` events, its predictions at ``--prediction-shift-at``, and the
labels of 'south' follow a new concept from ``--concept-shift-at``. It runs until
``--events`` are sent (0: forever) or SIGTERM / SIGINT, then flushes and exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Sequence
from typing import Any

from monitor.ingest.demo_stream import DemoStream

with warnings.catch_warnings():  # kafka-python 3.0 reads its resources with a deprecated API
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

log = logging.getLogger("produce_demo")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; every default can also come from a DEMO_* variable."""
    env = os.environ.get
    defaults = DemoStream()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--bootstrap", default=env("DEMO_BOOTSTRAP", "kafka:9092"))
    p.add_argument("--topic", default=env("DEMO_TOPIC", "inference"))
    p.add_argument("--labels-topic", default=env("DEMO_LABELS_TOPIC", "labels"))
    p.add_argument(
        "--dead-letter-topic", default=env("DEMO_DEAD_LETTER_TOPIC", "driftd-dead-letter")
    )
    p.add_argument("--partitions", type=int, default=int(env("DEMO_PARTITIONS", "3")))
    p.add_argument(
        "--rate",
        type=float,
        default=float(env("DEMO_RATE", "500")),
        help="events per second (0: as fast as possible)",
    )
    p.add_argument("--batch", type=int, default=int(env("DEMO_BATCH", "100")))
    p.add_argument("--events", type=int, default=int(env("DEMO_EVENTS", "0")), help="0: forever")
    p.add_argument("--label-delay", type=float, default=float(env("DEMO_LABEL_DELAY", "30")))
    p.add_argument("--feature-shift-at", type=int, default=defaults.feature_shift_at)
    p.add_argument("--prediction-shift-at", type=int, default=defaults.prediction_shift_at)
    p.add_argument(
        "--concept-shift-at", type=int, default=getattr(defaults, "concept_shift_at", 90_000)
    )
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--connect-timeout", type=float, default=120.0)
    args = p.parse_args(argv)
    if args.batch < 1 or args.partitions < 1 or args.rate < 0 or args.events < 0:
        p.error("--batch and --partitions must be >= 1, --rate and --events >= 0")
    return args


def _connect(args: argparse.Namespace) -> KafkaAdminClient:
    """An admin client, retrying while the broker starts (up to --connect-timeout)."""
    deadline = time.monotonic() + args.connect_timeout
    while True:
        try:
            return KafkaAdminClient(
                bootstrap_servers=args.bootstrap,
                client_id="driftd-demo",
                request_timeout_ms=30_000,
            )
        except (KafkaError, OSError):
            if time.monotonic() >= deadline:
                raise
            log.info("waiting for Kafka at %s", args.bootstrap)
            time.sleep(2)


def ensure_topics(args: argparse.Namespace) -> None:
    """Create the inference, labels and dead-letter topics unless they exist."""
    admin = _connect(args)
    try:
        existing = set(admin.list_topics())
        wanted = [
            (args.topic, args.partitions),
            (args.labels_topic, args.partitions),
            (args.dead_letter_topic, 1),
        ]
        new = [
            NewTopic(name, num_partitions=n, replication_factor=-1)
            for name, n in wanted
            if name and name not in existing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):  # another producer won
                admin.create_topics(new)
            admin.wait_for_topics([t.name for t in new], timeout_ms=30_000)
    finally:
        admin.close()


def _dumps(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


def run(args: argparse.Namespace, stop: threading.Event | None = None) -> int:
    """Send the stream until done or ``stop`` is set; return the number of events sent."""
    stop = stop or threading.Event()
    ensure_topics(args)
    stream = DemoStream(
        seed=args.seed,
        feature_shift_at=args.feature_shift_at,
        prediction_shift_at=args.prediction_shift_at,
        rate=args.rate or 2_000.0,
        start_ts=time.time(),
    )
    if hasattr(stream, "concept_shift_at"):
        stream.concept_shift_at = args.concept_shift_at
    producer = KafkaProducer(
        bootstrap_servers=args.bootstrap,
        client_id="driftd-demo",
        acks=1,
        linger_ms=20,
        compression_type=None,
    )
    pending_labels: deque[tuple[float, list[dict[str, Any]]]] = deque()
    sent = 0
    started = time.monotonic()

    def send_due_labels(now: float, everything: bool = False) -> None:
        while pending_labels and (everything or pending_labels[0][0] <= now):
            for label in pending_labels.popleft()[1]:
                producer.send(args.labels_topic, value=_dumps(label), key=label["id"].encode())

    try:
        while not stop.is_set() and (args.events == 0 or sent < args.events):
            n = args.batch if args.events == 0 else min(args.batch, args.events - sent)
            batch = stream.next_batch(n)
            for event in batch.events():
                producer.send(args.topic, value=_dumps(event), key=event["id"].encode())
            if args.labels_topic and hasattr(batch, "labels"):
                pending_labels.append((time.monotonic() + args.label_delay, batch.labels()))
            sent += n
            send_due_labels(time.monotonic())
            if args.rate > 0:  # keep to the rate, measured from the start
                ahead = started + sent / args.rate - time.monotonic()
                if ahead > 0:
                    stop.wait(ahead)
            if sent % 10_000 < n:
                log.info("sent %d events", sent)
        send_due_labels(time.monotonic(), everything=True)
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)
    log.info("done: %d events", sent)
    return sent


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse options, stop cleanly on SIGTERM or SIGINT."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run(args, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
