"""Segment-mix drift: false alarms, windows to detect a mix change and a new segment, cost.

Run: ``python -m benchmarks.segment_mix [--quick]``. The reference is a sample of
200,000 events: ten equal segments, and (for the false alarms) a skewed mix of 60
segments whose tail is expected below five events a window, so pooling is exercised.

- **False alarms** per 1,000 stationary decisions (target <= 1), at windows of 500,
  2,000 and 5,000 events drawn from the true mix the reference was sampled from (so
  the reference's own sampling error is in), with the detector's defaults (alpha 1e-4,
  Cohen's w >= 0.05). Window counts are drawn as multinomials, which is what counting
  that many independent events gives. The worst cell is the reported line.
- **Windows to detect** one of ten segments doubling its share (0.1 -> 0.2, the other
  nine shrinking alike) at tumbling windows of 5,000 events, the change starting at a
  random event: window 1 is the one the change starts in. The worst trial is reported
  (target <= 2).
- **Windows to report a new segment** taking 1% of traffic: window 1 is the one holding
  its first event (target 1).
- **Cost per event** of ``SegmentMixDetector.update`` on batches of 5,000 segment names,
  best of several runs (noisy on a shared machine), and of one window's evaluation.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks._report import Measurement, best_of, parse_args, report
from detectors.rules import BREACH
from detectors.segment_mix import SegmentMix, SegmentMixDetector, evaluate_mix

BENCH = "segment_mix"
REFERENCE_EVENTS = 200_000
WINDOW = 5_000
FALSE_ALARM_TARGET = 1.0
"""False alarms per 1,000 stationary decisions, at most."""
DETECT_TARGET = 2.0
COST_TARGET_US = 2.0
"""Microseconds per event for counting segment names, at most: a small share of the
daemon's per-event cost."""


def _reference(p: np.ndarray, rng: np.random.Generator) -> SegmentMix:
    counts = rng.multinomial(REFERENCE_EVENTS, p)
    return SegmentMix.from_counts({f"seg-{i:02d}": int(c) for i, c in enumerate(counts)})


def _skewed(k: int) -> np.ndarray:
    weights = 1.0 / np.arange(1, k + 1) ** 1.3
    return np.asarray(weights / weights.sum(), dtype=np.float64)


def false_alarms(decisions: int, rng: np.random.Generator) -> list[tuple[str, int, float]]:
    """(mix, window, false alarms per 1,000 decisions) for every mix and window size."""
    out = []
    for label, p in (("ten_equal", np.full(10, 0.1)), ("zipf60", _skewed(60))):
        mix = _reference(p, rng)
        order = [int(name.removeprefix("seg-")) for name in mix.names]
        for window in (500, 2_000, 5_000):
            counts = np.zeros((decisions, mix.n_cells), dtype=np.int64)
            counts[:, : len(mix.names)] = rng.multinomial(window, p, size=decisions)[:, order]
            result = evaluate_mix(mix, counts)
            out.append((label, window, 1_000 * float((result.verdict >= BREACH).mean())))
    return out


def _stream(
    p_before: np.ndarray,
    p_after: np.ndarray,
    names: list[str],
    change: int,
    n_windows: int,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """Windows of segment names, the mix switching at event ``change``."""
    total = n_windows * WINDOW
    before = rng.choice(len(names), change, p=p_before)
    after = rng.choice(len(p_after), total - change, p=p_after)
    all_names = np.asarray(names, dtype=object)[np.concatenate([before, after])]
    return [all_names[w * WINDOW : (w + 1) * WINDOW] for w in range(n_windows)]


def windows_to_detect(trials: int, rng: np.random.Generator) -> list[int]:
    """Per trial, windows from the one the doubling starts in to the first breach."""
    p = np.full(10, 0.1)
    mix = _reference(p, rng)
    names = [f"seg-{i:02d}" for i in range(10)]
    doubled = np.full(10, 0.8 / 9)
    doubled[3] = 0.2
    detector = SegmentMixDetector(mix)
    out = []
    for _ in range(trials):
        change = int(rng.integers(2 * WINDOW, 3 * WINDOW))
        found = 99
        for w, window in enumerate(_stream(p, doubled, names, change, 6, rng)):
            detector.reset()
            breach = bool(detector.update(np.zeros(WINDOW, np.int64), window).drift[0])
            if w < change // WINDOW:
                continue
            if breach:
                found = w - change // WINDOW + 1
                break
        out.append(found)
    return out


def windows_to_report_new(trials: int, rng: np.random.Generator) -> list[int]:
    """Per trial, windows from the one holding a new segment's first event to its report."""
    p = np.full(10, 0.1)
    mix = _reference(p, rng)
    names = [f"seg-{i:02d}" for i in range(10)] + ["brand-new"]
    after = np.append(np.full(10, 0.099), 0.01)
    detector = SegmentMixDetector(mix)
    out = []
    for _ in range(trials):
        change = int(rng.integers(WINDOW, 2 * WINDOW))
        first_window = found = None
        for w, window in enumerate(_stream(np.append(p, 0.0), after, names, change, 5, rng)):
            detector.reset()
            result = detector.update(np.zeros(WINDOW, np.int64), window)
            if first_window is None and (window == "brand-new").any():
                first_window = w
            if first_window is not None and result.new_keys[0]:
                found = w - first_window + 1
                break
        out.append(99 if found is None else found)
    return out


def cost_per_event(repeats: int, rng: np.random.Generator) -> tuple[float, float]:
    """Microseconds per event to count names, and per window to evaluate (best of runs)."""
    mix = _reference(_skewed(60), rng)
    names = rng.choice(list(mix.names), 100_000)
    streams = np.zeros(WINDOW, np.int64)
    batches = [names[i : i + WINDOW] for i in range(0, names.size, WINDOW)]
    detector = SegmentMixDetector(mix)

    def count_all() -> None:
        for batch in batches:
            detector.update(streams, batch)

    seconds = best_of(count_all, repeats)
    per_event = 1e6 * seconds / names.size
    counts = detector.counts.copy()
    evaluate_s = best_of(lambda: evaluate_mix(mix, counts), repeats * 5)
    return per_event, 1e6 * evaluate_s


def main() -> None:
    """Run every measurement; print the table and the JSON lines."""
    args = parse_args(__doc__ or "")
    decisions = 20_000 if args.quick else 200_000
    trials = 50 if args.quick else 300
    repeats = 3 if args.quick else 7
    rng = np.random.default_rng(17)
    start = time.perf_counter()
    alarms = false_alarms(decisions, rng)
    detect = windows_to_detect(trials, rng)
    new = windows_to_report_new(trials, rng)
    per_event_us, evaluate_us = cost_per_event(repeats, rng)
    for label, window, rate in alarms:
        print(f"false alarms {label} window {window}: {rate:.2f} per 1,000 of {decisions}")
    print(f"doubling of 1 of 10: windows to detect mean {np.mean(detect):.2f}, max {max(detect)}")
    print(f"new segment at 1%: windows to report, max of {trials} trials {max(new)}")
    print(f"evaluate one window: {evaluate_us:.0f} us; elapsed {time.perf_counter() - start:.1f} s")
    measurements = [
        Measurement(
            BENCH,
            "false_alarms_per_1000",
            max(r for _, _, r in alarms),
            "1/1k",
            FALSE_ALARM_TARGET,
            "lower",
        ),
        Measurement(
            BENCH,
            "windows_to_detect_doubling_max",
            float(max(detect)),
            "win",
            DETECT_TARGET,
            "lower",
        ),
        Measurement(BENCH, "windows_to_report_new_segment", float(max(new)), "win", 1.0, "lower"),
        Measurement(BENCH, "count_us_per_event", per_event_us, "us", COST_TARGET_US, "lower"),
    ]
    report(measurements)


if __name__ == "__main__":
    main()
