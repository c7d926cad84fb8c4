"""Batched ADWIN on 100 streams against 100 river ADWINs updated element by element.

Run: ``python -m benchmarks.adwin_speed [--quick]``. Both sides see the same Bernoulli
error streams (a 0.1 -> 0.3 shift half-way through each), with river's defaults. The
detections must be identical (checked, and printed); the ratio is river's time over ours.

The target is a regression guard, >= 1.5x river's ADWIN (a Rust core): ADWIN is under 5%
of the daemon's cost per event, so a faster ADWIN no longer buys throughput (the old
target, 10x, measured the wrong thing). What matters is that it stays identical.
"""

from __future__ import annotations

import time

import numpy as np
from river.drift import ADWIN

from benchmarks._report import Measurement, parse_args, report
from detectors.adwin import BatchADWIN

N_STREAMS = 100
SPEED_GUARD = 1.5
"""Batched updates/s over river's, at least: a regression guard, not a goal."""


def _river(streams: list[int], values: list[float]) -> tuple[float, list[int]]:
    detectors = [ADWIN() for _ in range(N_STREAMS)]
    found: list[int] = []
    start = time.perf_counter()
    for i, (s, v) in enumerate(zip(streams, values, strict=True)):
        det = detectors[s]
        det.update(v)
        if det.drift_detected:
            found.append(i)
    return time.perf_counter() - start, found


def _batched(streams: np.ndarray, values: np.ndarray, batch: int) -> tuple[float, list[int]]:
    detector = BatchADWIN(N_STREAMS)
    found: list[int] = []
    start = time.perf_counter()
    for lo in range(0, values.size, batch):
        result = detector.update(streams[lo : lo + batch], values[lo : lo + batch])
        found.extend((result.drift_positions + lo).tolist())
    return time.perf_counter() - start, found


def main() -> None:
    """Measure both sides on the same data, best of a few repeats each."""
    args = parse_args(__doc__ or "")
    n = 200_000 if args.quick else 1_000_000
    repeats = 2 if args.quick else 3
    rng = np.random.default_rng(42)
    streams = rng.integers(0, N_STREAMS, n)
    p = np.where(np.arange(n) < n // 2, 0.1, 0.3)
    values = (rng.random(n) < p).astype(np.float64)

    river_runs = [_river(streams.tolist(), values.tolist()) for _ in range(repeats)]
    river_time = min(t for t, _ in river_runs)
    expected = river_runs[0][1]

    measurements = [
        Measurement("adwin_speed", "river_updates_per_s", n / river_time, "1/s", 0.0, "higher")
    ]
    for batch in (10_000, 50_000):
        runs = [_batched(streams, values, batch) for _ in range(repeats)]
        ours = min(t for t, _ in runs)
        identical = all(found == expected for _, found in runs)
        measurements.append(
            Measurement(
                "adwin_speed",
                f"batched_updates_per_s_batch{batch}",
                n / ours,
                "1/s",
                SPEED_GUARD,
                "higher",
                baseline=n / river_time,
            )
        )
        measurements.append(
            Measurement(
                "adwin_speed",
                f"identical_detections_batch{batch}",
                1.0 if identical else 0.0,
                "bool",
                1.0,
                "higher",
            )
        )
    print(f"{len(expected)} detections over {n} values, {N_STREAMS} streams")
    for m in measurements:
        if m.metric.startswith("identical_detections"):
            verdict = "identical to" if m.value == 1.0 else "DIFFERENT from"
            print(f"{m.metric.removeprefix('identical_detections_')}: detections {verdict} river's")
    report(measurements)


if __name__ == "__main__":
    main()
