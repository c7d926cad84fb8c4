"""Sketch update throughput: 20 numeric features x 50 segments on a 100-bin fine grid.

Measures ``Sketch.update`` (binning + one bincount per batch) on one core, fed in batches
of 50,000 rows and, as a daemon fed small poll batches would, of 1,000 rows. The target
is a guard on the value: >= 50M feature-values/s on one core. The natural per-row Python
loop (``bisect`` over edge lists, nested list counts) is kept as the oracle of the counts
and as an informational line (target 0): its old target, 100x the loop, measured the
loop's slowness rather than what the daemon needs.

    python -m benchmarks.sketch_throughput [--quick]
"""

from __future__ import annotations

import bisect
import math

import numpy as np

from benchmarks._report import Measurement, best_of, parse_args, report
from detectors.profile import NumericProfile, build_profile
from detectors.sketch import Sketch

N_FEATURES = 20
N_SEGMENTS = 50
BATCH_ROWS = 50_000
SMALL_BATCH_ROWS = 1_000
BENCH = "sketch_throughput"
VALUES_PER_S_GUARD = 50e6
"""Feature-values/s of ``Sketch.update`` in 50,000-row batches, at least."""


def _columns(rng: np.random.Generator, n: int, shift: float = 0.0) -> np.ndarray:
    """Feature mix seen in production: normal, log-normal amounts, heavy tails, counts."""
    cols = []
    for f in range(N_FEATURES):
        kind = f % 4
        if kind == 0:
            x = rng.normal(shift, 1.0, n)
        elif kind == 1:
            x = rng.lognormal(3.0 + shift, 1.5, n)
        elif kind == 2:
            x = rng.standard_t(3, n) + shift
        else:
            x = rng.poisson(20.0 + shift, n).astype(np.float64)
        x[rng.random(n) < 0.01] = np.nan
        cols.append(x)
    return np.column_stack(cols)


def python_loop(
    edges: list[list[float]], segments: list[int], rows: list[list[float]]
) -> tuple[list[list[list[int]]], list[list[int]]]:
    """The straightforward per-row version of ``Sketch.update``."""
    counts = [[[0] * (len(e) + 1) for e in edges] for _ in range(N_SEGMENTS)]
    missing = [[0] * len(edges) for _ in range(N_SEGMENTS)]
    for seg, row in zip(segments, rows, strict=True):
        seg_counts, seg_missing = counts[seg], missing[seg]
        for f, value in enumerate(row):
            if math.isfinite(value):
                seg_counts[f][bisect.bisect_left(edges[f], value)] += 1
            else:
                seg_missing[f] += 1
    return counts, missing


def main() -> None:
    """Run and report."""
    args = parse_args(__doc__ or BENCH)
    n_rows = 200_000 if args.quick else 1_000_000
    n_loop = 10_000 if args.quick else 50_000
    repeats = 3 if args.quick else 5
    rng = np.random.default_rng(0)

    reference = _columns(rng, 100_000)
    profile = build_profile({f"f{i}": reference[:, i] for i in range(N_FEATURES)}, n_fine=100)
    features = [f for f in profile.features if isinstance(f, NumericProfile)]
    X = _columns(rng, n_rows, shift=0.1)
    segments = rng.integers(0, N_SEGMENTS, n_rows)
    sketch = Sketch(features, N_SEGMENTS)

    def feed(batch_rows: int) -> None:
        for start in range(0, n_rows, batch_rows):
            sketch.update(segments[start : start + batch_rows], X[start : start + batch_rows])

    seconds = best_of(lambda: feed(BATCH_ROWS), repeats)
    values_per_s = n_rows * N_FEATURES / seconds
    small_seconds = best_of(lambda: feed(SMALL_BATCH_ROWS), repeats)

    edge_lists = [f.edges.tolist() for f in features]
    seg_list, row_list = segments[:n_loop].tolist(), X[:n_loop].tolist()
    loop_seconds = best_of(lambda: python_loop(edge_lists, seg_list, row_list), repeats)
    loop_values_per_s = n_loop * N_FEATURES / loop_seconds

    # Same counts both ways, or the comparison means nothing.
    check = Sketch(features, N_SEGMENTS)
    check.update(segments[:n_loop], X[:n_loop])
    counts, missing = python_loop(edge_lists, seg_list, row_list)
    for s in range(N_SEGMENTS):
        assert missing[s] == check.missing[s].tolist()
        for f, feature in enumerate(features):
            assert counts[s][f] == check.counts[s, f, : feature.n_bins].tolist()

    print(
        f"{n_rows:,} rows x {N_FEATURES} features, {N_SEGMENTS} segments, "
        f"fine bins per feature {min(f.n_bins for f in features)}-"
        f"{max(f.n_bins for f in features)}; batches of {BATCH_ROWS:,} rows unless named; "
        f"python loop on {n_loop:,} rows"
    )
    report(
        [
            Measurement(
                BENCH, "feature_values_per_s", values_per_s, "1/s", VALUES_PER_S_GUARD, "higher"
            ),
            Measurement(BENCH, "events_per_s", n_rows / seconds, "1/s", 1e6, "higher"),
            Measurement(
                BENCH,
                f"feature_values_per_s_batch_{SMALL_BATCH_ROWS}",
                n_rows * N_FEATURES / small_seconds,
                "1/s",
                20e6,
                "higher",
            ),
            Measurement(
                BENCH,
                "feature_values_per_s_vs_python_loop",
                values_per_s,
                "1/s",
                0.0,
                "higher",
                baseline=loop_values_per_s,
            ),
        ]
    )


if __name__ == "__main__":
    main()
