"""Estimated performance before labels (CBPE-style) and the label-noise signal: accuracy
of the estimate, false alarms, power and cost.

Streams are calibrated binary classifiers: scores p ~ Beta(a, b), labels y ~ Bernoulli(p).
The reference (50,000 pairs, Beta(2, 2); ``--quick``: 20,000) calibrates the scores
(``detectors.PerformanceEstimator``, 50 bins) and fits the confident-learning thresholds
(``detectors.LabelNoiseTest``); both run at their default alpha (1e-4).

**Estimation error.** Windows of 2,000 events whose scores follow the reference's
distribution or a shifted one (Beta(0.5, 0.5), Beta(1, 3), Beta(3, 1): covariate shift
with P(y | score) unchanged, where the estimate must follow the score distribution):
|estimated - realized accuracy| per window, mean and 95th percentile. The realized
accuracy of 2,000 events is itself noisy (sd about 0.01), so the 95th percentile cannot
go much below 0.02 for any estimator.

**False alarms** per 1,000 stationary decisions, for windows of 500, 2,000 and 5,000:
the drop test of every metric (accuracy, precision, recall, F1, ROC AUC) and the
label-noise test, each over fresh references. The estimator sees only bin counts and the
label-noise test only (pairs, suspicious pairs), so a stationary window is drawn as
exactly those: multinomial bin counts from the score distribution's true bin
probabilities, and a binomial suspicious count at the exact suspicious rate of the fitted
thresholds (a Beta integral). This is the same distribution as simulating the events.

**Power.** Windows (of 2,000 joined pairs, simulated pair by pair) to the first
label-noise breach after 10% of one segment's labels are flipped, over seeds. Only pairs
the model is confident about can look mislabelled, so power depends on the model: the
measured line is a confident model (scores Beta(0.5, 0.5), accuracy 0.82); a weak one
(Beta(2, 2), accuracy 0.69) is printed beside it.

**Cost** per event of accumulate + evaluate (best of 5, 1,000,000 events over 100
segments): scores for the estimate, (score, label) pairs for the label-noise signal.

    python -m benchmarks.performance_estimation [--quick]
"""

from __future__ import annotations

import time

import numpy as np
from scipy import stats

from benchmarks._report import Measurement, best_of, parse_args, report
from detectors.label_noise import LabelNoiseTest
from detectors.perf_metrics import PERFORMANCE_METRICS
from detectors.performance import PerformanceEstimator

BENCH = "performance_estimation"
WINDOW = 2_000
REFERENCE = (2.0, 2.0)
CONFIDENT = (0.5, 0.5)
SHIFTS = {"reference": (2.0, 2.0), "u-shaped": (0.5, 0.5), "low": (1.0, 3.0), "high": (3.0, 1.0)}
FALSE_ALARM_WINDOWS = (500, 2_000, 5_000)


def calibrated_pairs(
    rng: np.random.Generator, n: int, a: float, b: float
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` scores p ~ Beta(a, b) and labels y ~ Bernoulli(p): a calibrated classifier."""
    p = rng.beta(a, b, n)
    return p, (rng.random(n) < p).astype(np.int64)


def estimation_error(rng: np.random.Generator, n_ref: int, windows: int) -> np.ndarray:
    """|estimated - realized accuracy| of every window of every score distribution."""
    est = PerformanceEstimator.fit(*calibrated_pairs(rng, n_ref, *REFERENCE))
    errors = []
    for name, (a, b) in SHIFTS.items():
        seg = np.repeat(np.arange(windows), WINDOW)
        p, y = calibrated_pairs(rng, seg.size, a, b)
        pairs = est.realized(est.accumulate_outcomes(seg, p, y, windows))
        err = np.abs(pairs.estimated.accuracy - pairs.realized.accuracy)
        print(
            f"  {name:<10} Beta({a:g}, {b:g}): realized accuracy "
            f"{pairs.realized.accuracy.mean():.3f}, |error| mean {err.mean():.4f}, "
            f"p95 {np.quantile(err, 0.95):.4f}"
        )
        errors.append(err)
    return np.concatenate(errors)


def drop_false_alarms(rng: np.random.Generator, n_ref: int, refs: int, windows: int) -> float:
    """Breaches per 1,000 stationary decisions of the drop test, all metrics and sizes."""
    fired = total = 0
    for metric in PERFORMANCE_METRICS:
        per_metric = 0
        for _ in range(refs):
            est = PerformanceEstimator.fit(*calibrated_pairs(rng, n_ref, *REFERENCE), metric=metric)
            truth = np.diff(stats.beta.cdf(est.calibration.edges, *REFERENCE))
            for n in FALSE_ALARM_WINDOWS:
                counts = rng.multinomial(n, truth / truth.sum(), size=windows)
                result = est.evaluate(np.c_[counts, np.zeros(windows, dtype=np.int64)])
                per_metric += int(result.drift.sum())
                total += windows
        fired += per_metric
        print(f"  drop test {metric:<9}: {per_metric} breaches")
    return 1_000 * fired / total


def _suspicious_rate(thresholds: np.ndarray, a: float, b: float) -> float:
    """Exact suspicious rate of calibrated Beta(a, b) binary pairs under the thresholds."""
    mean = a / (a + b)
    hi = max(thresholds[1], 0.5)  # label 0, p >= t1 and p > 1 - p
    lo = min(1.0 - thresholds[0], 0.5)  # label 1, 1 - p >= t0 and 1 - p > p
    zero = (1 - stats.beta.cdf(hi, a, b)) - mean * (1 - stats.beta.cdf(hi, a + 1, b))
    return float(zero + mean * stats.beta.cdf(lo, a + 1, b))


def noise_false_alarms(rng: np.random.Generator, n_ref: int, refs: int, windows: int) -> float:
    """Breaches per 1,000 stationary decisions of the label-noise test."""
    fired = total = 0
    for _ in range(refs):
        test = LabelNoiseTest.fit(*calibrated_pairs(rng, n_ref, *REFERENCE))
        rate = _suspicious_rate(test.thresholds.thresholds, *REFERENCE)
        for n in FALSE_ALARM_WINDOWS:
            k = rng.binomial(n, rate, windows)
            result = test.evaluate(np.c_[np.full(windows, n), k, np.zeros(windows, np.int64)])
            fired += int(result.drift.sum())
            total += windows
    return 1_000 * fired / total


def windows_to_detect_flips(
    rng: np.random.Generator, n_ref: int, seeds: int, model: tuple[float, float]
) -> list[int]:
    """Windows of 2,000 pairs to the first breach once 10% of labels are flipped."""
    out = []
    horizon = 10
    for _ in range(seeds):
        test = LabelNoiseTest.fit(*calibrated_pairs(rng, n_ref, *model))
        seg = np.repeat(np.arange(horizon), WINDOW)
        p, y = calibrated_pairs(rng, seg.size, *model)
        flip = rng.random(seg.size) < 0.1
        drift = test.evaluate(test.accumulate(seg, p, np.where(flip, 1 - y, y), horizon)).drift
        out.append(int(np.argmax(drift)) + 1 if drift.any() else horizon + 1)
    return out


def cost_per_event(rng: np.random.Generator) -> tuple[float, float]:
    """Microseconds per event of accumulate + evaluate, estimate and label noise."""
    n, segments = 1_000_000, 100
    est = PerformanceEstimator.fit(*calibrated_pairs(rng, 20_000, *REFERENCE))
    test = LabelNoiseTest.fit(*calibrated_pairs(rng, 20_000, *REFERENCE))
    seg = rng.integers(0, segments, n)
    p, y = calibrated_pairs(rng, n, *REFERENCE)
    perf = best_of(lambda: est.evaluate(est.accumulate_scores(seg, p, segments)), 5)
    noise = best_of(lambda: test.evaluate(test.accumulate(seg, p, y, segments)), 5)
    return 1e6 * perf / n, 1e6 * noise / n


def main() -> None:
    args = parse_args(__doc__ or "")
    rng = np.random.default_rng(2026)
    quick = args.quick
    n_ref = 20_000 if quick else 50_000
    start = time.perf_counter()
    print(f"estimation error, windows of {WINDOW}:")
    errors = estimation_error(rng, n_ref, 100 if quick else 500)
    drop_fa = drop_false_alarms(rng, n_ref, 3 if quick else 10, 2_000 if quick else 10_000)
    noise_fa = noise_false_alarms(rng, n_ref, 5 if quick else 20, 20_000 if quick else 50_000)
    for name, model in (("weak model", REFERENCE), ("confident model", CONFIDENT)):
        flips = windows_to_detect_flips(rng, n_ref, 20 if quick else 100, model)
        print(
            f"10% label flips, {name}: windows to detect, median {np.median(flips):.0f}, "
            f"worst {max(flips)}, first window in {np.mean(np.array(flips) == 1):.0%} of seeds"
        )
    perf_us, noise_us = cost_per_event(rng)
    print(f"({time.perf_counter() - start:.0f} s)")
    report(
        [
            Measurement(
                BENCH, "cbpe_accuracy_abs_error_mean", float(errors.mean()), "", 0.02, "lower"
            ),
            Measurement(
                BENCH,
                "cbpe_accuracy_abs_error_p95",
                float(np.quantile(errors, 0.95)),
                "",
                0.025,
                "lower",
            ),
            Measurement(BENCH, "perf_drop_false_alarms_per_1000", drop_fa, "", 1.0, "lower"),
            Measurement(BENCH, "label_noise_false_alarms_per_1000", noise_fa, "", 1.0, "lower"),
            Measurement(
                BENCH, "label_flip_windows_to_detect_worst", float(max(flips)), "win", 2.0, "lower"
            ),
            Measurement(BENCH, "cbpe_cost_per_event", perf_us, "us", 0.5, "lower"),
            Measurement(BENCH, "label_noise_cost_per_event", noise_us, "us", 1.0, "lower"),
        ]
    )


if __name__ == "__main__":
    main()
