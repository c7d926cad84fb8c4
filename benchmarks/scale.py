"""Memory and time at scale: 1,000 segments x 50 features against a 10-segment control.

Run: ``python -m benchmarks.scale [--quick]``. The parent process writes a reference for
40 numeric and 10 categorical features (plus the prediction) and a pool of event
payloads; each case then runs in a fresh process (so that one case's peak is not the
other's, and neither pays for the generator's memory): it builds the daemon with
``monitor.wiring.build_daemon`` (the live state of ``/api/v1/state`` included, as
``driftd run`` has it; no HTTP server, no checkpoints) and hands it the events as
in-memory records, 5,000 per batch, through ``Daemon.handle``. Segments are drawn
uniformly at random; windows are count windows of 1,100 events, the smallest size
whose KS p-values use the asymptotic distribution (below ``n_eff = 1,000`` every KS
p-value is scipy's exact ``kstwo.sf``, about 1 ms each: that, not the segment count,
then sets the cost of a window, and it loads scipy.stats, about 45 MiB; see
docs/sizing.md).

Reported per case: events/s (wall) and CPU-s per 1,000 events (the process's CPU time
around ``handle`` only), the RSS (``VmRSS``) once every segment has closed a window
(all the per-segment state exists), at two thirds of the run and at the end, the peak
(``ru_maxrss``), and the RSS every 250,000 events. Targets: cost per event at 1,000
segments within 2x of 10 segments; RSS <= 300 MiB at the end, and at its peak; flat: the
RSS grows by at most 2% over the last third of the run. The 1,000-segment case streams
8M events (every segment closes about 7 windows), ``--quick`` 4M (3 windows; the last
third starts after the second round of windows, when every per-segment structure has
reached its size, and so has the heap's free space between them: docs/sizing.md); the
10-segment control 3M, ``--quick`` 1.5M. Nothing the daemon keeps grows with
events, only with segments x columns, so a flat last third stays flat over 10M.

Scrape sizes and times are ``benchmarks.scrape_size``'s, not measured here.
"""

from __future__ import annotations

import math
import multiprocessing
import resource
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from benchmarks._report import Measurement, parse_args, report
from detectors.profile import build_profile
from monitor.config import Settings
from monitor.ingest.source import Record
from monitor.wiring import build_daemon

BENCH = "scale"
NUMERIC = tuple(f"n{i:02d}" for i in range(40))
CATEGORICAL = tuple(f"c{i}" for i in range(10))
CATEGORIES = tuple(f"v{i}" for i in range(8))
BATCH = 5_000
PAYLOADS = 4_000
"""Distinct feature payloads the stream cycles through (each event gets its own id,
time and segment): generating 1M distinct 50-feature JSON objects would take longer
than the run measured."""
REFERENCE_ROWS = 50_000
LARGE, SMALL = 1_000, 10
EVENTS, QUICK_EVENTS = 8_000_000, 4_000_000
"""Events of the 1,000-segment case: every segment closes a window about every 1.1M."""
CONTROL_EVENTS, QUICK_CONTROL_EVENTS = 3_000_000, 1_500_000
"""Events of the 10-segment control (its windows close every 11,000 events)."""
WINDOW_EVENTS = 1_100
MIN_SAMPLES = 500
RSS_EVERY = 250_000
RSS_TARGET_MIB = 300.0
PEAK_TARGET_MIB = RSS_TARGET_MIB
"""The case's process builds only the daemon (the parent writes the reference and the
payloads), so its peak is the steady state plus one batch in flight: the same bound."""
COST_RATIO_TARGET = 2.0
FLAT_GROWTH_TARGET = 0.02


@dataclass(frozen=True)
class Case:
    """One run's sizes."""

    segments: int
    events: int
    window_events: int
    min_samples: int
    reference: Path
    payloads: Path


@dataclass(frozen=True)
class CaseResult:
    """What one run measured."""

    segments: int
    events: int
    windows: int
    wall_s: float
    cpu_s: float
    rss_first_mib: float
    """Once every segment has closed a window."""
    rss_last_third_mib: float
    """At two thirds of the run."""
    rss_end_mib: float
    maxrss_mib: float
    rss_samples: tuple[tuple[int, float], ...]
    """(events so far, RSS in MiB) every ``RSS_EVERY`` events."""


def _feature_columns(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    columns: dict[str, np.ndarray] = {
        name: rng.normal(float(i % 5), 1.0 + (i % 3), n).round(3) for i, name in enumerate(NUMERIC)
    }
    for j, name in enumerate(CATEGORICAL):
        weights = np.arange(1, len(CATEGORIES) + 1, dtype=np.float64) ** (1 + j % 3)
        codes = rng.choice(len(CATEGORIES), n, p=weights / weights.sum())
        columns[name] = np.array(CATEGORIES, dtype=object)[codes]
    return columns


def _payloads(rng: np.random.Generator) -> list[bytes]:
    """JSON of the ``features`` object and prediction: the bulk of each message."""
    columns = _feature_columns(rng, PAYLOADS)
    as_lists = {k: v.tolist() for k, v in columns.items()}
    prediction = (columns[NUMERIC[0]] > 0).astype(np.float64).tolist()
    out = []
    for i in range(PAYLOADS):
        features = {k: as_lists[k][i] for k in as_lists}
        body = orjson.dumps(features)
        out.append(b'"features":' + body + b',"prediction":' + orjson.dumps(prediction[i]))
    return out


def _write_inputs(folder: Path) -> tuple[Path, Path]:
    """The reference profile and the payload pool, as files the cases read."""
    rng = np.random.default_rng(7)
    columns = _feature_columns(rng, REFERENCE_ROWS)
    columns["prediction"] = (columns[NUMERIC[0]] > 0).astype(np.float64)
    profile = build_profile(columns, categorical=list(CATEGORICAL), prediction="prediction")
    reference = folder / "reference.json"
    reference.write_bytes(orjson.dumps(profile.to_dict()))
    payloads = folder / "payloads.txt"
    payloads.write_bytes(b"\n".join(_payloads(rng)))
    return reference, payloads


def _batches(case: Case, payloads: list[bytes], seed: int) -> Iterator[list[Record]]:
    """The stream, one batch of records at a time (made lazily: 1M messages of 50
    features would be a gigabyte held by the benchmark, not the daemon)."""
    rng = np.random.default_rng(seed)
    start = time.time() - case.events * 1e-3
    for lo in range(0, case.events, BATCH):
        n = min(BATCH, case.events - lo)
        segments = rng.integers(0, case.segments, n).tolist()
        picks = rng.integers(0, len(payloads), n).tolist()
        records = []
        for i in range(n):
            offset = lo + i
            head = b'{"id":"e%d","ts":%.3f,"model":"bench","segment":"s%d",' % (
                offset,
                start + offset * 1e-3,
                segments[i],
            )
            records.append(Record(head + payloads[picks[i]] + b"}", "events", 0, offset))
        yield records


def _settings(case: Case, reference: Path, events_file: Path) -> Settings:
    return Settings(
        model="bench",
        source={"type": "file", "path": events_file},  # type: ignore[arg-type]
        checkpoint={"store": "none"},  # type: ignore[arg-type]
        schema={"segment_by": ["segment"], "categorical": list(CATEGORICAL)},  # type: ignore[arg-type]
        segments={  # type: ignore[arg-type]
            "max_segments": max(case.segments, 1),
            "admit_after_events": 0,
            "idle_seconds": None,
        },
        reference={"path": reference},  # type: ignore[arg-type]
        windows={  # type: ignore[arg-type]
            "size_events": case.window_events,
            "min_samples": case.min_samples,
        },
        metrics={"port": 0},  # type: ignore[arg-type]
    )


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_case(case: Case) -> CaseResult:
    """Build a daemon and stream ``case.events`` events through it (in this process)."""
    import logging

    import structlog

    # The stationary stream still pages now and then; the log lines are not measured.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    with tempfile.TemporaryDirectory() as tmp:
        events_file = Path(tmp) / "events.jsonl"
        events_file.write_bytes(b"")
        daemon = build_daemon(_settings(case, case.reference, events_file))
        payloads = case.payloads.read_bytes().split(b"\n")
        closed = daemon.pipeline.results.windows_closed
        cpu = wall = 0.0
        rss_first = math.nan
        samples: list[tuple[int, float]] = []
        for batch in _batches(case, payloads, seed=11):
            wall_start, cpu_start = time.perf_counter(), time.process_time()
            daemon.handle(batch)
            wall += time.perf_counter() - wall_start
            cpu += time.process_time() - cpu_start
            if math.isnan(rss_first) and len(closed) >= case.segments:
                rss_first = _rss_mib()
            done = batch[-1].offset + 1
            if done % RSS_EVERY == 0:
                samples.append((done, _rss_mib()))
        rss_end = _rss_mib()
        third = next(m for e, m in samples if e >= case.events * 2 // 3) if samples else rss_end
        daemon.source.close()
        return CaseResult(
            segments=case.segments,
            events=case.events,
            windows=daemon.stats.windows,
            wall_s=wall,
            cpu_s=cpu,
            rss_first_mib=rss_first,
            rss_last_third_mib=third,
            rss_end_mib=rss_end,
            maxrss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            rss_samples=tuple(samples),
        )


def _in_fresh_process(case: Case) -> CaseResult:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(run_case, (case,))


def main() -> None:
    """Run both cases, each in its own process, and report."""
    args = parse_args(__doc__ or BENCH)
    events = QUICK_EVENTS if args.quick else EVENTS
    control = QUICK_CONTROL_EVENTS if args.quick else CONTROL_EVENTS
    with tempfile.TemporaryDirectory() as tmp:
        reference, payloads = _write_inputs(Path(tmp))
        large, small = (
            _in_fresh_process(Case(segments, n, WINDOW_EVENTS, MIN_SAMPLES, reference, payloads))
            for segments, n in ((LARGE, events), (SMALL, control))
        )
    for r in (large, small):
        print(
            f"{r.segments:>5} segments: {r.events} events, {r.windows} windows closed, "
            f"{r.events / r.wall_s:,.0f} events/s, {r.cpu_s / r.events * 1e3:.4f} CPU-s/1k "
            f"events; RSS once every segment closed a window {r.rss_first_mib:.0f} MiB, "
            f"at 2/3 of the run {r.rss_last_third_mib:.0f} MiB, "
            f"end {r.rss_end_mib:.0f} MiB, "
            f"peak {r.maxrss_mib:.0f} MiB"
        )
    curve = ", ".join(f"{e / 1e6:g}M {m:.0f}" for e, m in large.rss_samples)
    print(f"RSS (MiB) of the {LARGE}-segment run by events: {curve}")
    tag = f"{LARGE}x{len(NUMERIC) + len(CATEGORICAL)}"
    cost_large = large.cpu_s / large.events * 1e3
    cost_small = small.cpu_s / small.events * 1e3
    report(
        [
            Measurement(
                BENCH, f"events_per_s_{tag}", large.events / large.wall_s, "1/s", 0.0, "higher"
            ),
            Measurement(
                BENCH,
                f"events_per_s_{SMALL}x{len(NUMERIC) + len(CATEGORICAL)}",
                small.events / small.wall_s,
                "1/s",
                0.0,
                "higher",
            ),
            Measurement(
                BENCH,
                f"cost_per_event_{tag}_over_{SMALL}_segments",
                cost_large / cost_small,
                "1",
                COST_RATIO_TARGET,
                "lower",
            ),
            Measurement(
                BENCH,
                f"rss_after_{events}_events_{tag}",
                large.rss_end_mib,
                "MiB",
                RSS_TARGET_MIB,
                "lower",
            ),
            Measurement(
                BENCH, f"peak_rss_{tag}", large.maxrss_mib, "MiB", PEAK_TARGET_MIB, "lower"
            ),
            Measurement(
                BENCH,
                f"rss_growth_last_third_{tag}",
                large.rss_end_mib / large.rss_last_third_mib - 1,
                "1",
                FLAT_GROWTH_TARGET,
                "lower",
            ),
        ]
    )


if __name__ == "__main__":
    main()
