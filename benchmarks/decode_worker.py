"""Would a decode worker on the second core pay? The prototype, against one process.

Run: ``python -m benchmarks.decode_worker [--quick]``. The events of
``benchmarks.e2e_throughput`` (20 numeric and 2 categorical features, 10 segments,
JSON) as records in memory, batches of 10,000, through ``Daemon.handle`` twice, with the
same settings and a fresh daemon each time:

* one process: the daemon decodes each batch itself, as it does today;
* decode worker: a second process (forked, holding the same decoder) decodes batch k+1
  while the main process runs the engine on batch k; the values go to it and the decoded
  columns come back pickled through a pipe, and the pipeline takes them in place of its
  own decode. Offsets, checkpoints and commits stay with the main process.

Both runs must close the same windows with the same scores and hand back the same next
offsets (checked here; the benchmark fails otherwise). Target: the worker at >= 1.6x the
single process on this 2-core machine (issue: "Both cores"); below that the worker is not
shipped. Without a broker the measurement leaves the second core free of librdkafka's
fetch thread, so it is an upper bound on what the worker would give from Kafka.
"""

from __future__ import annotations

import multiprocessing
import tempfile
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from benchmarks._report import Measurement, parse_args, report
from benchmarks.e2e_throughput import CATEGORICAL, bench_settings, event_messages, reference_columns
from detectors.profile import build_profile
from monitor.app import Daemon
from monitor.config import Settings
from monitor.engine.outcome import BatchOutcome
from monitor.ingest.decode import DecodedBatch, Decoder
from monitor.ingest.source import Record, make_records
from monitor.wiring import build_daemon

BATCH = 10_000
REPEATS = 3


class _PreDecoded:
    """Stands in for the pipeline's decoder: ``decode`` hands back the worker's batch."""

    def __init__(self, decoder: Decoder) -> None:
        self.decoder = decoder
        self.next: DecodedBatch | None = None

    def decode(self, messages: Sequence[bytes], **_: Any) -> DecodedBatch:
        batch, self.next = self.next, None
        assert batch is not None and len(messages) >= len(batch)
        return batch

    def __getattr__(self, name: str) -> Any:
        return getattr(self.decoder, name)


def _worker(settings: Settings, first: list[Record], conn: Connection) -> None:
    """Build the daemon's decoder as the main process does, then decode every list of
    values received; stop at None. Forked before the main process builds its daemon, so
    that neither touches pages the other still shares (copy-on-write)."""
    decoder = _daemon(settings, [first]).pipeline.decoder
    assert decoder is not None
    conn.send("ready")
    while (values := conn.recv()) is not None:
        conn.send(decoder.decode(values))


def _daemon(settings: Settings, batches: list[list[Record]]) -> Daemon:
    daemon = build_daemon(settings, serve_metrics=False)
    daemon.handle(batches[0])  # the reference and the decoder are loaded
    return daemon


def _one_process(daemon: Daemon, batches: list[list[Record]]) -> tuple[float, list[Any]]:
    started = time.perf_counter()
    outcomes = [daemon.handle(batch) for batch in batches[1:]]
    return time.perf_counter() - started, [_summary(o) for o in outcomes]


def _with_worker(settings: Settings, batches: list[list[Record]]) -> tuple[float, float, list[Any]]:
    """Seconds for all batches, seconds the main process waited for the worker, outcomes."""
    context = multiprocessing.get_context("fork")
    here, there = context.Pipe()
    worker = context.Process(target=_worker, args=(settings, batches[0], there))
    worker.start()
    daemon = _daemon(settings, batches)
    decoder = daemon.pipeline.decoder
    assert decoder is not None
    stand_in = _PreDecoded(decoder)
    try:
        daemon.pipeline.decoder = stand_in  # type: ignore[assignment]
        outcomes: list[BatchOutcome] = []
        waited = 0.0
        todo = batches[1:]
        assert here.recv() == "ready"
        started = time.perf_counter()
        here.send([r.value for r in todo[0]])
        for k, batch in enumerate(todo):
            waiting = time.perf_counter()
            stand_in.next = here.recv()  # batch k decoded
            waited += time.perf_counter() - waiting
            if k + 1 < len(todo):  # the worker decodes the next one meanwhile
                here.send([r.value for r in todo[k + 1]])
            outcomes.append(daemon.handle(batch))
        elapsed = time.perf_counter() - started
    finally:
        here.send(None)
        worker.join(10)
        daemon.pipeline.decoder = decoder
    return elapsed, waited, [_summary(o) for o in outcomes]


def _summary(outcome: BatchOutcome) -> Any:
    """What must not change: the offsets, the windows and their scores."""
    results = outcome.results
    scores = (
        None
        if results is None
        else {method: np.nan_to_num(s).tolist() for method, s in sorted(results.scores.items())}
    )
    windows = None if results is None else (results.segments, results.n.tolist())
    return (sorted(outcome.next_offsets.items()), outcome.accepted, windows, scores)


def main() -> None:
    """Both ways on the same records, alternating, best of ``REPEATS``."""
    args = parse_args(__doc__ or "")
    n = 100_000 if args.quick else 400_000
    rng = np.random.default_rng(1)
    values = event_messages(rng, 0, n + BATCH, time.time() - (n + BATCH) * 1e-4)
    with tempfile.TemporaryDirectory() as tmp:
        profile = build_profile(
            reference_columns(values[:20_000]), categorical=CATEGORICAL, prediction="prediction"
        )
        reference = Path(tmp) / "reference.json"
        reference.write_bytes(orjson.dumps(profile.to_dict()))
        settings = bench_settings("127.0.0.1:9", "bench-worker", reference)
        # No broker here: no commits either (both runs alike), so no failed-commit logs.
        kafka = settings.kafka.model_copy(update={"commit_interval_ms": 10**9})
        settings = settings.model_copy(update={"kafka": kafka})
        partitions = [(i // 500) % 2 for i in range(len(values))]
        records = make_records(
            values,
            ["bench-worker"] * len(values),
            partitions,
            range(len(values)),
            [None] * len(values),
        )
        batches = [records[i : i + BATCH] for i in range(0, len(records), BATCH)]
        single, worker, waits = [], [], []
        for _ in range(REPEATS):
            seconds, expected = _one_process(_daemon(settings, batches), batches)
            single.append(seconds)
            seconds, waited, got = _with_worker(settings, batches)
            worker.append(seconds)
            waits.append(waited / seconds)
            if got != expected:
                raise AssertionError("the decode worker changed the windows or the offsets")
    print(
        f"{n} events in batches of {BATCH}, best of {REPEATS} alternating runs: one process "
        f"{n / min(single):,.0f} events/s, with a decode worker {n / min(worker):,.0f} "
        f"events/s, the main process waiting for the worker {min(waits):.0%} of the time "
        f"at best; same offsets and window scores in both"
    )
    report(
        [
            Measurement(
                "decode_worker", "one_process_events_per_s", n / min(single), "1/s", 0.0, "higher"
            ),
            Measurement(
                "decode_worker",
                "decode_worker_events_per_s",
                n / min(worker),
                "1/s",
                1.6,
                "higher",
                baseline=n / min(single),
            ),
        ]
    )


if __name__ == "__main__":
    main()
