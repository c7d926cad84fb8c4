"""Beyond univariate drift, the scenario benchmark: every target of the methods that see
what no single feature's test sees, in one run.

Run: ``python -m benchmarks.beyond_univariate [--quick]``. The scenarios are those of
``benchmarks.performance_estimation``, ``benchmarks.multivariate_drift`` and
``benchmarks.segment_mix`` (whose docstrings describe the streams), called from here;
each of those modules still runs alone with all its comparisons. Reported:

- **CBPE**: |estimated - realized accuracy| of windows of 2,000 calibrated events, mean
  and 95th percentile (target <= 0.02 each). The realized accuracy of 2,000 events is
  itself a sample (sd about 0.01), which puts a floor near 0.02 under the 95th
  percentile of any estimator's error.
- **Correlation flip** (rho 0.8 -> -0.8, marginals unchanged): windows to the first
  multivariate breach (worst over seeds, target <= 2), and the breaches of the univariate
  methods as the engine runs them (``DriftDetector``: PSI, KS, chi-square, JS at their
  default rules) on the same windows (target 0).
- **Embedding shift** of 0.1 sigma x sqrt(d) along one direction at d = 256: windows to
  the first breach of the daemon's default (Gaussian projection to 32 whitened
  coordinates, Hotelling), worst over seeds and both covariances (target <= 2).
- **Label noise**: 10% of one segment's labels flipped among four segments of a
  confident calibrated model (scores Beta(0.5, 0.5)), windows of 2,000 joined pairs:
  windows to the flipped segment's first breach (worst over seeds, target <= 2) and the
  other segments' breaches over the same windows (target 0). A weak model's numbers
  (Beta(2, 2): few confident pairs to dispute) are printed beside them.
- **False alarms** per 1,000 stationary decisions of each new method, one line each
  (target <= 1): multivariate (10 and 50 mixed features, windows of 500 and 2,000,
  pooled), embedding (isotropic and anisotropic, windows of 500 and 2,000, pooled),
  CBPE's drop test (every metric, windows of 500 to 5,000), label noise, segment mix
  (the worst of its cells) and new segments: windows whose share of events in segments
  the reference never saw reaches the ``segment_new`` threshold (that decision is off
  by default; with it on, these windows would page), on a long-tailed stationary mix
  whose reference sample missed some rare segments (the windows that name a new
  segment, a metric and no alert, are printed).
- **Cost** per event of each method on the real daemon (``build_daemon``, in-memory
  records through ``Daemon.handle``, a reference built by ``build_reference``; see
  ``benchmarks.beyond_cost``) against the same daemon with every new method off, on the
  same records: features only for multivariate, CBPE and segment mix; the same with a
  256-float embedding for embedding drift; with a label per event for label noise.
  Reported: the extra µs per event (target <= 20 µs, as ``multivariate_drift``'s cost
  lines) and its share of the base pipeline's µs per event (target <= 0.25: each new
  method a small part of the daemon's cost, and all five together at most about as
  much again). CPU time, best of N interleaved runs on a shared machine: differences
  under about 0.5 µs are noise, and may come out negative.

``--quick`` runs fewer seeds, decisions and events (under 90 s on a quiet 2-core
machine); the full run takes a few minutes.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks import multivariate_drift as mv
from benchmarks import performance_estimation as pe
from benchmarks import segment_mix as sm
from benchmarks._report import Measurement, parse_args, report
from benchmarks.beyond_cost import METHODS, pipeline_cost
from detectors.label_noise import LabelNoiseTest
from detectors.segment_mix import SegmentMix, evaluate_mix
from monitor.config import DetectorsConfig

BENCH = "beyond_univariate"
FALSE_ALARM_TARGET = 1.0
"""False alarms per 1,000 stationary decisions, at most, for every method."""
WINDOWS_TARGET = 2.0
COST_SHARE_TARGET = 0.25
COST_US_TARGET = 20.0
CBPE_REFERENCE = 50_000
"""Labelled reference pairs the scores are calibrated on."""
LABEL_SEGMENTS = 4
NEW_SEGMENT_KEYS = 500
NEW_SEGMENT_REFERENCE = 20_000
"""A reference sample small enough to miss some of the 500 segments' rare tail."""


def label_flips_in_one_segment(
    rng: np.random.Generator, n_ref: int, seeds: int, model: tuple[float, float], horizon: int
) -> tuple[list[int], int, int]:
    """Windows to the flipped segment's first label-noise breach per seed (``horizon + 1``
    when none), and the other segments' breaches and decisions."""
    found, others, decisions = [], 0, 0
    streams = horizon * LABEL_SEGMENTS  # one row per (window, segment)
    for _ in range(seeds):
        test = LabelNoiseTest.fit(*pe.calibrated_pairs(rng, n_ref, *model))
        stream = np.repeat(np.arange(streams), pe.WINDOW)
        p, y = pe.calibrated_pairs(rng, stream.size, *model)
        flip = (stream % LABEL_SEGMENTS == 0) & (rng.random(stream.size) < 0.1)
        pairs = test.accumulate(stream, p, np.where(flip, 1 - y, y), streams)
        drift = test.evaluate(pairs).drift.reshape(horizon, LABEL_SEGMENTS)
        flipped = drift[:, 0]
        found.append(int(np.argmax(flipped)) + 1 if flipped.any() else horizon + 1)
        others += int(drift[:, 1:].sum())
        decisions += drift[:, 1:].size
    return found, others, decisions


def new_segment_false_alarms(decisions: int, rng: np.random.Generator) -> tuple[float, float]:
    """Per 1,000 stationary windows of 5,000 events over a long tail of segments: those
    whose new-segment share reaches ``segment_new``'s threshold, and those naming one."""
    weights = 1.0 / np.arange(1, NEW_SEGMENT_KEYS + 1) ** 1.1
    p = weights / weights.sum()
    keys = np.asarray([f"seg-{i:03d}" for i in range(NEW_SEGMENT_KEYS)], dtype=object)
    mix = SegmentMix.from_keys(keys[rng.choice(NEW_SEGMENT_KEYS, NEW_SEGMENT_REFERENCE, p=p)])
    cells = mix.cells(keys)  # a segment the reference missed lands in the new cell
    window = rng.multinomial(sm.WINDOW, p, size=decisions)
    to_cell = np.zeros((NEW_SEGMENT_KEYS, mix.n_cells), dtype=np.int64)
    to_cell[np.arange(NEW_SEGMENT_KEYS), cells] = 1
    counts = window @ to_cell
    result = evaluate_mix(mix, counts)
    missed = int((cells == mix.new_cell).sum())
    threshold = DetectorsConfig().segment_new.threshold
    paged = 1_000 * float((result.new_share >= threshold).mean())
    named = 1_000 * float((result.new > 0).mean())
    print(
        f"new segments: the reference of {NEW_SEGMENT_REFERENCE} events missed {missed} of "
        f"{NEW_SEGMENT_KEYS} segments; windows naming one {named / 10:.1f}%, new share "
        f"mean {np.nanmean(result.new_share):.2e} (threshold {threshold})"
    )
    return paged, named


def _quality(quick: bool) -> list[Measurement]:
    """Accuracy, power and false alarms of every method."""
    rng = np.random.default_rng(2026)
    n_ref = 20_000 if quick else 50_000
    seeds = 2 if quick else 5
    m: list[Measurement] = []

    print(f"CBPE, windows of {pe.WINDOW}:")
    # The calibration's reference is the scenario's (``--quick`` only judges fewer
    # windows): a smaller one adds its own calibration error to every estimate.
    errors = pe.estimation_error(rng, CBPE_REFERENCE, 100 if quick else 500)
    for name, value in (("mean", errors.mean()), ("p95", np.quantile(errors, 0.95))):
        metric = f"cbpe_accuracy_abs_error_{name}"
        m.append(Measurement(BENCH, metric, float(value), "", 0.02, "lower"))

    worst, univariate, early = mv.correlation_flip(seeds, 3)
    print(f"correlation flip: clean-window multivariate breaches {early}")
    m.append(
        Measurement(BENCH, "corr_flip_windows_to_detect", worst, "win", WINDOWS_TARGET, "lower")
    )
    m.append(Measurement(BENCH, "corr_flip_univariate_breaches", univariate, "n", 0, "lower"))

    embedding_worst = 0
    for anisotropic in (False, True):
        power = mv.embedding_power(
            mv.VectorSource(anisotropic), mv.EMBEDDING_SHIFT, seeds, 2, (mv.PICKED,)
        )
        embedding_worst = max(embedding_worst, power[mv.PICKED][0])
    m.append(
        Measurement(
            BENCH,
            f"emb_shift_windows_to_detect_d{mv.DIM}",
            embedding_worst,
            "win",
            WINDOWS_TARGET,
            "lower",
        )
    )

    flips = {
        name: label_flips_in_one_segment(rng, n_ref, 10 if quick else 50, model, 6)
        for name, model in (("weak", pe.REFERENCE), ("confident", pe.CONFIDENT))
    }
    for name, (found, others, judged) in flips.items():
        print(
            f"10% label flips in 1 of {LABEL_SEGMENTS} segments, {name} model: windows to "
            f"detect median {np.median(found):.0f}, worst {max(found)}; other segments' "
            f"breaches {others} of {judged} windows"
        )
    # The measured lines are the confident model's (see the module docstring).
    found, others, _ = flips["confident"]
    m.append(
        Measurement(
            BENCH, "label_flip_windows_to_detect", max(found), "win", WINDOWS_TARGET, "lower"
        )
    )
    m.append(Measurement(BENCH, "label_flip_other_segment_breaches", others, "n", 0, "lower"))

    m.extend(_false_alarms(quick, rng, n_ref))
    return m


def _pooled(cells: list[tuple[float, int]]) -> float:
    """Breaches per 1,000 over every cell's decisions, from (rate, decisions) per cell."""
    return sum(rate * n for rate, n in cells) / sum(n for _, n in cells)


def _false_alarms(quick: bool, rng: np.random.Generator, n_ref: int) -> list[Measurement]:
    """One line per method: breaches per 1,000 stationary decisions."""
    # Windows of 2,000 events of 50 features or 256 floats are costly to draw: fewer of
    # them. Counts are multiples of the rounds (50 and 20 segments), so each cell judges
    # exactly that many decisions and the pooled rate is exact.
    small, large = (500, 100) if quick else (5_000, 1_000)
    sizes = ((500, small), (2_000, large))
    recon = _pooled(
        [(mv.reconstruction_false_alarms(f, w, n, f + w), n) for f in (10, 50) for w, n in sizes]
    )
    embedding = _pooled(
        [
            (mv.embedding_false_alarms(mv.VectorSource(a), w, n, w)["mahalanobis"], n)
            for a in (False, True)
            for w, n in sizes
        ]
    )
    drop = pe.drop_false_alarms(rng, n_ref, 3 if quick else 10, 2_000 if quick else 10_000)
    noise = pe.noise_false_alarms(rng, n_ref, 5 if quick else 20, 20_000 if quick else 50_000)
    mix_decisions = 20_000 if quick else 200_000
    mix = max(rate for _, _, rate in sm.false_alarms(mix_decisions, rng))
    new, _ = new_segment_false_alarms(mix_decisions, rng)
    rates = {
        "multivariate": recon,
        "embedding": embedding,
        "perf_drop": drop,
        "label_noise": noise,
        "segment_mix": mix,
        "segment_new": new,
    }
    return [
        Measurement(BENCH, f"false_alarms_per_1000_{method}", float(rate), "/1k", 1.0, "lower")
        for method, rate in rates.items()
    ]


def _cost(quick: bool) -> list[Measurement]:
    """Per method: extra µs per event on the daemon, and its share of the base's."""
    cost = pipeline_cost(20_000 if quick else 40_000, 5 if quick else 7)
    print(
        "daemon µs per event, best of runs: base "
        + ", ".join(f"{k} {v:.2f}" for k, v in cost.base_us.items())
        + "; on: "
        + ", ".join(f"{k} {v:.2f}" for k, v in cost.method_us.items())
    )
    m = []
    for method in METHODS:
        extra, base = cost.extra_us(method), cost.base_of(method)
        m.append(
            Measurement(
                BENCH,
                f"cost_extra_us_per_event_{method}",
                extra,
                "us",
                COST_US_TARGET,
                "lower",
                baseline=base,
                target_on_value=True,
            )
        )
        m.append(
            Measurement(
                BENCH,
                f"cost_share_of_pipeline_{method}",
                extra / base,
                "x",
                COST_SHARE_TARGET,
                "lower",
            )
        )
    return m


def main() -> None:
    """Run every scenario; print the table and the JSON lines."""
    args = parse_args(__doc__ or BENCH)
    start = time.perf_counter()
    measurements = _quality(args.quick)
    quality_s = time.perf_counter() - start
    measurements += _cost(args.quick)
    print(f"({quality_s:.0f} s quality, {time.perf_counter() - start:.0f} s in all)")
    report(measurements)


if __name__ == "__main__":
    main()
