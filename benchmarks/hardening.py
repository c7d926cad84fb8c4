"""Hostile and unlucky inputs: does the monitor stay sighted, bounded and fast?

Each measurement replays one shape that used to blind driftd, through the real code
(the CLI in a subprocess for memory, the pipeline in-process for the rest):

- ``poisoned_first_message_peak_rss``: a file whose first event carries 20,000 feature
  names, then ordinary demo events, through ``driftd run`` with a warm-up reference.
  Peak RSS of that process (MiB; our Kubernetes example allows 1 GiB), and of a clean
  file of the same events (``clean_run_peak_rss``) to compare.
- ``junk_segment_flood_legit_share``: 100,000 events, each with a distinct junk segment
  value, then demo traffic of three real segments. The share of the real segments that
  get windows of their own (target 1.0).
- ``outlier_timestamp_short_windows``: event-time windows (60 s, min_samples 1,000; about
  4,000 events per segment and window) over demo traffic with one event dated 3,500 s
  ahead. The share of closed windows below
  ``min_samples`` (target 0; one outlier used to close every quiet pane early).
- ``backlog_label_join_share``: all predictions read first, then all their labels (a
  backlog with the event topic read ahead; 200+ s of event time, a 30 s TTL). The share
  of labels joined (target 1.0).
- ``time_windows_watermark_speed``: events/s through the pipeline with event-time
  windows (robust watermark) against the same stream with count windows (ratio target
  0.5).
- ``junk_flood_segment_table_speed``: events/s of the segment table under a flood of
  distinct values against ordinary traffic (ratio target 0.1: junk costs a bounded
  table, not the daemon).

    python -m benchmarks.hardening [--quick]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from benchmarks._report import Measurement, best_of, parse_args, report
from monitor.app import make_results
from monitor.config import Settings
from monitor.engine.pipeline import Pipeline
from monitor.ingest.demo_stream import DemoStream
from monitor.ingest.segments import SegmentTable
from monitor.ingest.source import Record

BENCH = "hardening"
START = 1_795_000_000.0
NOW = START + 50_000
BATCH = 2_000


def _demo_events(n: int, rate: float = 2_000.0) -> list[dict[str, Any]]:
    stream = DemoStream(start_ts=START, rate=rate, feature_shift_at=10**9)
    events: list[dict[str, Any]] = []
    while len(events) < n:
        events.extend(stream.next_batch(min(BATCH, n - len(events))).events())
    return events


def _records(events: list[dict[str, Any]], topic: str = "events") -> list[list[Record]]:
    out = []
    for first in range(0, len(events), BATCH):
        chunk = events[first : first + BATCH]
        out.append([Record(orjson.dumps(e), topic, 0, first + i) for i, e in enumerate(chunk)])
    return out


def _peak_rss_mib(config: dict[str, Any], directory: Path) -> float:
    """Peak RSS (MiB) of one ``driftd run`` over ``config``."""
    path = directory / "driftd.yaml"
    path.write_text(json.dumps(config))
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "run", "-c", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"driftd run exited {proc.returncode} on {path}")
    return usage.ru_maxrss / 1024.0


def poisoned_first_message(n_events: int) -> list[Measurement]:
    """Peak RSS of a run whose first message floods feature names, and of a clean run."""
    events = _demo_events(n_events)
    flood = dict(events[0])
    flood["features"] = {f"junk_{i:05d}": float(i) for i in range(20_000)}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        rss = {}
        for name, stream in (("clean", events), ("poisoned", [flood, *events])):
            data = directory / f"{name}.jsonl"
            data.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in stream))
            config = {
                "model": "credit-risk",
                "source": {"type": "file", "path": str(data), "batch_size": BATCH},
                "schema": {"segment_by": ["features.region"]},
                "reference": {"warmup_events": n_events // 3},
                "windows": {"size_events": 2_000, "min_samples": 500},
                "checkpoint": {"store": "none"},
                "metrics": {"port": 0},
                "logging": {"format": "json"},
            }
            rss[name] = _peak_rss_mib(config, directory)
    return [
        Measurement(
            BENCH, "poisoned_first_message_peak_rss", rss["poisoned"], "MiB", 1024, "lower"
        ),
        Measurement(BENCH, "clean_run_peak_rss", rss["clean"], "MiB", 1024, "lower"),
    ]


def _pipeline(**sections: Any) -> Pipeline:
    settings = Settings.model_validate(
        {
            "model": "credit-risk",
            "schema": {"segment_by": ["features.region"], "max_past_seconds": None},
            "reference": {"warmup_events": 4_000},
            "checkpoint": {"store": "none"},
            **sections,
        }
    )
    return Pipeline(settings, None, make_results(settings))


def junk_segment_flood(n_junk: int) -> Measurement:
    """Share of real segments with windows after a flood of distinct junk values."""
    pipeline = _pipeline(windows={"size_events": 2_000, "min_samples": 500})
    real = _demo_events(40_000)
    junk = []
    for i in range(n_junk):
        event = dict(real[i % len(real)])
        event["features"] = {**event["features"], "region": f"junk-{i}"}
        junk.append(event)
    segments: set[str] = set()
    for batch in _records(junk + real):
        outcome = pipeline.process(batch, now=NOW)
        if outcome.results is not None:
            segments.update(outcome.results.segments)
    wanted = {str(e["features"]["region"]) for e in real}
    share = len(wanted & segments) / len(wanted)
    return Measurement(BENCH, "junk_segment_flood_legit_share", share, "share", 1.0, "higher")


def outlier_timestamp() -> Measurement:
    """Share of event-time windows under min_samples when one event is dated 3,500 s ahead."""
    windows = {"size_events": None, "duration_seconds": 60, "min_samples": 1_000}
    pipeline = _pipeline(windows=windows)
    events = _demo_events(60_000, rate=200.0)
    outlier = dict(events[10_000])
    outlier["ts"] = float(START + 10_000 / 200.0 + 3_500.0)
    outlier["id"] = "outlier"
    events.insert(10_001, outlier)
    rows: list[int] = []
    for batch in _records(events):
        outcome = pipeline.process(batch, now=NOW)
        if outcome.results is not None:
            rows.extend(int(r) for r in outcome.results.rows)
    short = sum(r < 1_000 for r in rows) / max(1, len(rows))
    return Measurement(BENCH, "outlier_timestamp_short_windows", short, "share", 0.0, "lower")


def backlog_label_join(n_events: int) -> Measurement:
    """Share of labels joined when every prediction is read before any label."""
    pipeline = _pipeline(
        kafka={"labels_topic": "labels"},
        windows={"size_events": 2_000, "min_samples": 500},
        labels={"enabled": True, "ttl_seconds": 30.0},
    )
    # 100 events/s: the backlog spans far more event time than the join's TTL.
    stream = DemoStream(start_ts=START, rate=100.0, feature_shift_at=10**9)
    events: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    while len(events) < n_events:
        batch = stream.next_batch(BATCH)
        events.extend(batch.events())
        labels.extend(batch.labels())
    matched = 0
    for chunk in _records(events) + _records(labels, topic="labels"):
        outcome = pipeline.process(chunk, now=NOW)
        if outcome.labels is not None:
            matched += outcome.labels.matched
    share = matched / len(labels)
    return Measurement(BENCH, "backlog_label_join_share", share, "share", 1.0, "higher")


def watermark_speed(n_events: int, repeats: int) -> Measurement:
    """Events/s with event-time windows against count windows, same stream."""
    batches = _records(_demo_events(n_events))

    def run(windows: dict[str, Any]) -> float:
        def once() -> None:
            pipeline = _pipeline(windows=windows)
            for batch in batches:
                pipeline.process(batch, now=NOW)

        return n_events / best_of(once, repeats)

    timed = run({"size_events": None, "duration_seconds": 2.0, "min_samples": 500})
    counted = run({"size_events": 4_000, "min_samples": 500})
    return Measurement(
        BENCH, "time_windows_watermark_speed", timed, "ev/s", 0.5, "higher", baseline=counted
    )


def segment_table_speed(n_events: int, repeats: int) -> Measurement:
    """Events/s of the segment table under distinct junk values against ordinary traffic."""
    rng = np.random.default_rng(0)
    ts = START + np.arange(BATCH, dtype=np.float64)
    ordinary = [rng.choice(["north", "south", "west"], BATCH).astype(object)]
    junk = [
        np.array([f"junk-{b}-{i}" for i in range(BATCH)], dtype=object)
        for b in range(n_events // BATCH)
    ]

    def run(batches: list[Any]) -> float:
        def once() -> None:
            table = SegmentTable(200, admit_after=10, idle_seconds=86_400.0)
            for b in range(n_events // BATCH):
                table.assign(batches[b % len(batches)], ts)

        return n_events / best_of(once, repeats)

    flooded = run(junk)
    normal = run(ordinary)
    return Measurement(
        BENCH, "junk_flood_segment_table_speed", flooded, "ev/s", 0.1, "higher", baseline=normal
    )


def main() -> None:
    """Run every measurement and report it."""
    args = parse_args(__doc__.splitlines()[0] if __doc__ else BENCH)
    quick = args.quick
    started = time.perf_counter()
    measurements = [
        *poisoned_first_message(12_000 if quick else 30_000),
        junk_segment_flood(30_000 if quick else 100_000),
        outlier_timestamp(),
        backlog_label_join(20_000 if quick else 50_000),
        watermark_speed(40_000 if quick else 100_000, 2 if quick else 3),
        segment_table_speed(100_000 if quick else 400_000, 2 if quick else 3),
    ]
    report(measurements)
    print(f"# {time.perf_counter() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
