"""Size and time of one ``/metrics`` scrape at 1,000 segments x 50 features.

A registry like the daemon's (``DriftCollector`` and ``DaemonMetrics``) is filled with
the latest windows of every segment: 50 numeric features, each scored by the default
methods of a numeric column (psi, ks, missing, range, samples, schema) against
calibrated thresholds that differ per segment, with a small share of (segment,
feature) pairs drifting (psi and ks firing). Reported for ``metrics.detail: summary``
(the default) against the targets of issue 16: at most 10k series, at most 1 MB per
scrape, a render under 100 ms (best of N on a shared machine); the ``full`` export is
the baseline (skipped with ``--quick``: it renders for seconds). Also: a scrape served
from the cache (a copy of bytes), the longest the consumer thread waits during a render
(a stand-in loop on the decision book's lock), and the consumer thread's cost, after a batch that
closed 10 segments' windows, of digesting their new rows (the state API's rows, which
the summary reads, are rebuilt anyway: printed beside it).

    python -m benchmarks.scrape_size [--quick]

:func:`fill` and :func:`measure_scrape` are the reusable parts (``benchmarks.scale``
may call them on a registry of its own).
"""

from __future__ import annotations

import gc
import gzip
import logging
import math
import threading
import time
from dataclasses import dataclass

import numpy as np
import structlog
from prometheus_client import CollectorRegistry

from benchmarks._report import Measurement, best_of, parse_args, report
from detectors.rules import BAND, BREACH, CLEAR
from monitor.config import DetectorsConfig
from monitor.emit.drift_collector import Detail, DriftCollector
from monitor.emit.exposition import ExpositionCache
from monitor.emit.metrics import DaemonMetrics
from monitor.emit.state_api import LiveState
from monitor.engine.decision import DecisionBook
from monitor.engine.outcome import BatchOutcome
from monitor.engine.results import LatestResults, WindowResults

BENCH = "scrape_size"
MODEL = "m"
SEGMENTS = 1_000
FEATURES = 50
METHODS = ("psi", "ks", "missing", "range", "samples", "schema")
"""What the engine scores on a numeric column."""
DRIFTING_SHARE = 0.001
"""(segment, feature) pairs whose psi and ks breach (and fire after two windows)."""
MIN_SAMPLES = 100


@dataclass
class Filled:
    """The daemon's stores after some windows closed, with the state API's rows."""

    results: LatestResults
    decisions: DecisionBook
    rows: LiveState
    segments: tuple[str, ...]
    metrics: DaemonMetrics | None = None


def windows(
    segments: tuple[str, ...], features: int, seed: int, drifting_share: float = DRIFTING_SHARE
) -> WindowResults:
    """One closed window per segment: quiet scores under per-segment calibrated thresholds,
    and ``drifting_share`` of the (segment, feature) pairs breaching on psi and ks."""
    rng = np.random.default_rng(seed)
    k = len(segments)
    shape = (k, features)
    drifting = np.random.default_rng(0).random(shape) < drifting_share  # the same each window
    scores: dict[str, np.ndarray] = {}
    thresholds: dict[str, np.ndarray] = {}
    verdicts: dict[str, np.ndarray] = {}
    for method, level in (("psi", 0.1), ("ks", 0.05), ("missing", 0.02), ("range", 0.01)):
        # Calibrated: each segment's reference and window size give it its own threshold.
        threshold = level * (1 + 0.2 * np.random.default_rng(1).random((k, 1))) * np.ones(shape)
        score = rng.random(shape) * threshold * 0.8
        if method in ("psi", "ks"):
            score = np.where(drifting, threshold * 1.5, score)
        scores[method], thresholds[method] = score, threshold
        verdicts[method] = np.where(
            score >= threshold, BREACH, np.where(score < threshold / 2, CLEAR, BAND)
        ).astype(np.int8)
    scores["samples"] = np.full(shape, 5_000.0)
    thresholds["samples"] = np.full(shape, float(MIN_SAMPLES))
    verdicts["samples"] = np.full(shape, CLEAR, dtype=np.int8)
    scores["schema"] = np.zeros(shape)
    thresholds["schema"] = np.ones(shape)
    verdicts["schema"] = np.full(shape, CLEAR, dtype=np.int8)
    return WindowResults(
        model=MODEL,
        segments=segments,
        columns=tuple(f"feature_{j:02d}" for j in range(features)),
        window_end_ts=np.full(k, float(seed)),
        rows=np.full(k, 5_000, dtype=np.int64),
        n=np.full(shape, 5_000, dtype=np.int64),
        missing_rate=rng.random(shape) * 0.01,
        scores=scores,
        p_values={"ks": np.where(drifting, 1e-9, rng.random(shape))},
        thresholds=thresholds,
        clears={m: t / 2 for m, t in thresholds.items()},
        verdicts=verdicts,
    )


def fill(
    segments: int = SEGMENTS, features: int = FEATURES, registry: CollectorRegistry | None = None
) -> Filled:
    """Two windows of every segment through the stores (so the drifting pairs fire); with
    a ``registry``, its ``DaemonMetrics`` count the closed windows too."""
    names = tuple(f"segment-{i:04d}" for i in range(segments))
    results = LatestResults(MODEL)
    decisions = DecisionBook(MODEL, DetectorsConfig(), min_samples=MIN_SAMPLES)
    metrics = DaemonMetrics(registry, MODEL, version="bench") if registry is not None else None
    for seed in (1, 2):
        closed = windows(names, features, seed)
        results.record(closed)
        transitions = decisions.observe(closed)
        if metrics is not None:
            metrics.record_windows(closed)
            metrics.record_transitions(transitions)
    rows = LiveState(results, decisions)
    rows.refresh()
    return Filled(results, decisions, rows, names, metrics)


def collector(filled: Filled, detail: Detail, top_k: int = 1) -> DriftCollector:
    """The daemon's collector over ``filled``, reading the state API's rows."""
    made = DriftCollector(
        filled.results,
        filled.decisions,
        monitored_columns=lambda: [f"feature_{j:02d}" for j in range(FEATURES)],
        detail=detail,
        top_k=top_k,
        segment_rows=filled.rows.segment_rows,
    )
    made.refresh_summary()
    return made


@dataclass(frozen=True)
class Scrape:
    """One rendered scrape: series, bytes (plain and gzipped), best render time."""

    series: int
    size: int
    gzipped: int
    seconds: float


def measure_scrape(registry: CollectorRegistry, repeats: int) -> Scrape:
    """Render ``registry`` as a scrape does with nothing cached, best of ``repeats``."""
    cache = ExpositionCache(registry, max_age=0)
    seconds = best_of(lambda: cache.render(""), repeats)
    body = cache.render("").body
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    return Scrape(series, len(body), len(gzip.compress(body, 6)), seconds)


def consumer_stall(registry: CollectorRegistry, decisions: DecisionBook) -> float:
    """The longest the consumer thread waits while one scrape renders, in seconds.

    A stand-in consumer loops on the decision book's lock (the pipeline's ``observe``
    takes it for every batch) and records the longest gap between two turns while the
    HTTP side renders: the lock held for a copy of the book, or the GIL held longer
    than its switch interval, show as a long gap.
    """
    longest = [0.0]
    rendering, stop = threading.Event(), threading.Event()

    def consumer() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            decisions.skipped_counts()  # takes the book's lock, as a batch does
            now = time.perf_counter()
            if rendering.is_set():
                longest[0] = max(longest[0], now - last)
            last = now

    thread = threading.Thread(target=consumer, name="consumer-stand-in")
    thread.start()
    time.sleep(0.05)
    rendering.set()
    ExpositionCache(registry, max_age=0).render("")
    stop.set()
    thread.join()
    return longest[0]


def main() -> None:
    """Run and report."""
    args = parse_args(__doc__ or BENCH)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    repeats = 5 if args.quick else 7
    registry = CollectorRegistry()
    filled = fill(registry=registry)
    summary = collector(filled, "summary")
    registry.register(summary)
    gc.collect()  # the fill's garbage is not the scrape's
    scrape = measure_scrape(registry, repeats)
    stall = min(consumer_stall(registry, filled.decisions) for _ in range(repeats))
    cache = ExpositionCache(registry, max_age=60)
    cache.render("")
    cached = best_of(lambda: cache.render("").body[:], repeats)

    touched = filled.segments[:10]
    closed = windows(touched, FEATURES, seed=3)
    filled.results.record(closed)
    outcome = BatchOutcome(
        records=10 * 5_000,
        accepted=10 * 5_000,
        rejected=[],
        results=closed,
        transitions=filled.decisions.observe(closed),
    )
    state_api = best_of(lambda: filled.rows(outcome), repeats)
    digest = math.inf
    for _ in range(repeats):
        filled.rows(outcome)  # new rows for the 10 segments, as after a batch
        start = time.perf_counter()
        summary.refresh_summary()
        digest = min(digest, time.perf_counter() - start)
    full: Scrape | None = None
    full_stall = 0.0
    if not args.quick:
        full_registry = CollectorRegistry()
        DaemonMetrics(full_registry, MODEL, version="bench").record_windows(
            windows(filled.segments, FEATURES, 1)
        )
        full_registry.register(collector(filled, "full"))
        full = measure_scrape(full_registry, 1)
        full_stall = consumer_stall(full_registry, filled.decisions)
    rows = SEGMENTS * FEATURES * len(METHODS)
    print(
        f"{SEGMENTS} segments x {FEATURES} features x {len(METHODS)} methods = {rows} rows; "
        f"summary: {scrape.series} series, {scrape.size / 1e6:.2f} MB "
        f"({scrape.gzipped / 1e3:.0f} kB gzipped), render {scrape.seconds * 1e3:.1f} ms; "
        f"cached scrape {cached * 1e3:.2f} ms; the consumer waited at most "
        f"{stall * 1e3:.1f} ms during a render"
    )
    print(
        f"after a batch closing 10 segments' windows: the summary's digest {digest * 1e3:.1f} ms, "
        f"the state API's rows (which it reads) {state_api * 1e3:.1f} ms"
    )
    if full is not None:
        print(
            f"full: {full.series} series, {full.size / 1e6:.1f} MB "
            f"({full.gzipped / 1e6:.2f} MB gzipped), render {full.seconds:.1f} s; "
            f"the consumer waited {full_stall:.2f} s"
        )

    def baseline(value: float) -> dict[str, object]:
        return {"baseline": value, "target_on_value": True} if full is not None else {}

    report(
        [
            Measurement(
                BENCH,
                "summary_series",
                scrape.series,
                "series",
                10_000,
                "lower",
                **baseline(full.series if full else 0),  # type: ignore[arg-type]
            ),
            Measurement(
                BENCH,
                "summary_bytes",
                scrape.size,
                "B",
                1_000_000,
                "lower",
                **baseline(full.size if full else 0),  # type: ignore[arg-type]
            ),
            Measurement(
                BENCH,
                "summary_render_ms",
                scrape.seconds * 1e3,
                "ms",
                100.0,
                "lower",
                **baseline(full.seconds * 1e3 if full else 0),  # type: ignore[arg-type]
            ),
            Measurement(
                BENCH,
                "consumer_stall_ms",
                stall * 1e3,
                "ms",
                100.0,
                "lower",
                **baseline(full_stall * 1e3),  # type: ignore[arg-type]
            ),
            Measurement(BENCH, "cached_scrape_ms", cached * 1e3, "ms", 100.0, "lower"),
            # 2 ms per closed window of 5,000 events: 0.4 us an event, against some 14 us
            # to decode one (most of it is the state API building its rows as dicts).
            Measurement(BENCH, "digest_10_segments_ms", digest * 1e3, "ms", 20.0, "lower"),
        ]
    )


if __name__ == "__main__":
    main()
