"""Cost of the live state behind ``/api/v1/state``: per batch, and per request.

The consumer thread rebuilds the rows of the segments a batch touched
(``LiveState.__call__``); the HTTP thread serialises the whole snapshot per request
(``LiveState.json_bytes``). Measured on a large daemon: 200 segments x 20 columns x 5
methods (psi, ks, chi2, js, missing), 20,000 rows in all, for a batch that closed the
windows of 1 and of 10 segments, against the full rebuild of all 200 as the baseline
(the ratio is how much the per-segment rebuild saves); and one request's serialisation.

    python -m benchmarks.state_snapshot [--quick]
"""

from __future__ import annotations

import logging

import numpy as np
import structlog

from benchmarks._report import Measurement, best_of, parse_args, report
from monitor.config import DetectorsConfig
from monitor.emit.state_api import LiveState
from monitor.engine.decision import DecisionBook
from monitor.engine.outcome import BatchOutcome
from monitor.engine.results import LatestResults, WindowResults

BENCH = "state_snapshot"
SEGMENTS = 200
COLUMNS = 20
METHODS = ("psi", "ks", "chi2", "js", "missing")


def _windows(segments: tuple[str, ...], seed: int) -> WindowResults:
    """One closed window per segment with random scores for every method and column."""
    rng = np.random.default_rng(seed)
    k = len(segments)
    return WindowResults(
        model="m",
        segments=segments,
        columns=tuple(f"feature_{j:02d}" for j in range(COLUMNS)),
        window_end_ts=np.full(k, float(seed)),
        rows=np.full(k, 5_000, dtype=np.int64),
        n=np.full((k, COLUMNS), 5_000, dtype=np.int64),
        missing_rate=np.zeros((k, COLUMNS)),
        scores={m: rng.random((k, COLUMNS)) * 0.3 for m in METHODS},
        p_values={m: rng.random((k, COLUMNS)) for m in ("ks", "chi2")},
    )


def main() -> None:
    """Run and report."""
    args = parse_args(__doc__ or BENCH)
    # The random scores fire alerts; their log lines are not what is measured.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    repeats = 5 if args.quick else 15
    names = tuple(f"segment-{i:03d}" for i in range(SEGMENTS))
    results = LatestResults("m")
    book = DecisionBook("m", DetectorsConfig(), min_samples=100)
    state = LiveState(results, book)
    everything = _windows(names, seed=1)
    results.record(everything)
    book.observe(everything)
    state.refresh()
    rows = len(state.document()["rows"])
    assert rows == SEGMENTS * COLUMNS * len(METHODS), rows

    def batch(segments: tuple[str, ...]) -> BatchOutcome:
        closed = _windows(segments, seed=2)
        results.record(closed)
        return BatchOutcome(
            records=5_000,
            accepted=5_000,
            rejected=[],
            results=closed,
            transitions=book.observe(closed),
        )

    full = best_of(state.refresh, repeats)
    measurements = []
    for touched, target_ms in ((1, 5.0), (10, 25.0)):
        outcome = batch(names[:touched])

        def one_batch(o: BatchOutcome = outcome) -> None:
            state(o)

        per_batch = best_of(one_batch, repeats)
        print(
            f"batch closing {touched} segment(s): {per_batch * 1e3:.2f} ms "
            f"({touched * COLUMNS * len(METHODS)} rows rebuilt of {rows}); "
            f"full rebuild {full * 1e3:.1f} ms"
        )
        measurements += [
            Measurement(
                BENCH, f"batch_ms_{touched}_segments", per_batch * 1e3, "ms", target_ms, "lower"
            ),
            Measurement(
                BENCH,
                f"batch_vs_full_rebuild_{touched}_segments",
                per_batch * 1e3,
                "ms",
                5.0,
                "lower",
                full * 1e3,
            ),
        ]
    serve = best_of(state.json_bytes, repeats)
    size = len(state.json_bytes())
    print(f"one request: {serve * 1e3:.1f} ms for {rows} rows, {size / 1e6:.2f} MB of JSON")
    measurements.append(
        Measurement(BENCH, f"request_ms_{rows}_rows", serve * 1e3, "ms", 100.0, "lower")
    )
    report(measurements)


if __name__ == "__main__":
    main()
