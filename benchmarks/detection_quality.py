"""Detection quality at the default settings: false alarms when nothing changes, and
how fast each kind of drift pages.

Everything runs through the daemon's own engine: ``monitor.engine.windows.Windows`` (count
windows of 5,000 events per segment), ``monitor.engine.evaluate.Evaluator`` (the drift
engine of ``detectors``) and ``monitor.engine.decision.DecisionBook`` (consecutive windows,
hysteresis), with ``Settings()`` defaults. Only JSON decoding is skipped: events are
generated as columns.

**Stationary streams.** 50 features (normal, lognormal, integer-valued with few
distinct values, heavy ties, zero-inflated, one 85% missing, categorical with 10 and
40 levels) plus a prediction score, 10 segments, 200 windows of 5,000 events each
(``--quick``: 20). Run twice: against a file reference of 50,000 rows, and against a
warm-up reference (the first 5,000 events of each segment, as the daemon builds it).
A decision is one (segment, column, method) verdict on a window that was tested.
Reported: breaching verdicts per 1,000 decisions, and firing transitions (pages) per
100,000 decisions.

**Drift scenarios** (file reference; one segment; drift from its 3rd window): windows
from the first drifted window to the first page of the drifted column, for a 0.2 sigma
mean shift, variance x1.5, 5% outliers at +5 sigma, the non-zero values of a
zero-inflated feature x3, 30% of values going missing, a 5% new category in a
40-level feature, a 2% new category in a 10-level feature, a 0.2 sigma shift of the
prediction, and the shift (in sigma) at the first page of a gradual mean drift from 0
to 1 sigma over 20 windows.

**Concept drift**: joined pairs from an abrupt error-rate change (10% -> 16%) to the
page, from ``benchmarks.concept_pairs`` (median over seeds).

    python -m benchmarks.detection_quality [--quick]
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import structlog

from benchmarks import concept_pairs
from benchmarks._report import Measurement, parse_args, report
from detectors.binning import Binner
from detectors.profile import ReferenceProfile, build_profile
from detectors.rules import BREACH, SKIP
from monitor.config import Settings
from monitor.engine.decision import DecisionBook, Transition
from monitor.engine.evaluate import Evaluator, segment_references
from monitor.engine.results import WindowResults
from monitor.engine.windows import Windows

BENCH = "detection_quality"
WINDOW = 5_000
SEGMENTS = 10
REFERENCE_ROWS = 50_000
DRIFT_FROM = 2  # clean windows before a scenario's drift starts
PREDICTION = "prediction"

Columns = dict[str, np.ndarray]
Drift = Callable[[Columns, np.random.Generator, int], None]
"""Changes one window's columns in place; the int is the drifted window's number (0..)."""


@dataclass(frozen=True)
class Feature:
    """One generated column: its name, how to draw it, and whether it is categorical."""

    name: str
    draw: Callable[[np.random.Generator, int], np.ndarray]
    categorical: bool = False


def _zipf(levels: int) -> np.ndarray:
    p = 1.0 / np.arange(1, levels + 1) ** 0.8
    return np.asarray(p / p.sum(), dtype=np.float64)


def _normal(mu: float, sd: float, r: np.random.Generator, n: int) -> np.ndarray:
    return r.normal(mu, sd, n)


def _lognormal(s: float, r: np.random.Generator, n: int) -> np.ndarray:
    return r.lognormal(3.0, s, n)


def _count(lam: float, r: np.random.Generator, n: int) -> np.ndarray:
    return r.poisson(lam, n).astype(np.float64)


def _ties(step: float, r: np.random.Generator, n: int) -> np.ndarray:
    return np.round(r.normal(0, 1, n) / step) * step


def _zero_inflated(zero: float, r: np.random.Generator, n: int) -> np.ndarray:
    return np.where(r.random(n) < zero, 0.0, r.lognormal(1.0, 0.8, n))


def _mostly_missing(r: np.random.Generator, n: int) -> np.ndarray:
    return np.where(r.random(n) < 0.85, np.nan, r.normal(5.0, 2.0, n))


def _category(p: np.ndarray, r: np.random.Generator, n: int) -> np.ndarray:
    return r.choice(p.size, n, p=p).astype(np.float64)


def _score(r: np.random.Generator, n: int) -> np.ndarray:
    return np.asarray(1 / (1 + np.exp(-r.normal(-1.0, 1.0, n))), dtype=np.float64)


def _features() -> list[Feature]:
    out = [Feature(f"normal_{i}", partial(_normal, 10.0 * i, 1.0 + i)) for i in range(14)]
    out += [Feature(f"lognormal_{i}", partial(_lognormal, 0.5 + 0.15 * i)) for i in range(8)]
    out += [Feature(f"count_{i}", partial(_count, 1.0 + i)) for i in range(5)]
    out += [Feature(f"ties_{i}", partial(_ties, 0.25 + 0.25 * i)) for i in range(5)]
    out += [Feature(f"zero_inflated_{i}", partial(_zero_inflated, 0.4 + 0.1 * i)) for i in range(5)]
    out.append(Feature("mostly_missing", _mostly_missing))
    for levels in (10, 40):
        p = _zipf(levels)
        out += [Feature(f"cat{levels}_{i}", partial(_category, p), True) for i in range(6)]
    out.append(Feature(PREDICTION, _score))
    return out


FEATURES = _features()
CATEGORICAL = [f.name for f in FEATURES if f.categorical]


def draw(rng: np.random.Generator, n: int) -> Columns:
    """``n`` stationary events, one array per column."""
    return {f.name: f.draw(rng, n) for f in FEATURES}


def file_reference(seed: int) -> ReferenceProfile:
    """The profile of 50,000 stationary rows, as ``driftd reference build`` makes it."""
    rng = np.random.default_rng(seed)
    return build_profile(draw(rng, REFERENCE_ROWS), categorical=CATEGORICAL, prediction=PREDICTION)


@dataclass
class Engine:
    """The daemon's windows, evaluator and decision book for one reference."""

    profile: ReferenceProfile
    windows: Windows
    evaluator: Evaluator
    book: DecisionBook
    names: tuple[str, ...]

    @classmethod
    def build(cls, profile: ReferenceProfile, n_segments: int) -> Engine:
        """Wired as the pipeline wires them, on ``Settings()`` defaults."""
        settings = Settings(model="bench")
        binner = Binner(list(profile.monitored))
        windows = Windows(binner, settings.windows, n_segments)
        min_samples = settings.windows.min_samples
        evaluator = Evaluator("bench", binner, settings.detectors, min_samples)
        book = DecisionBook("bench", settings.detectors, min_samples)
        names = tuple(f"s{i}" for i in range(n_segments))
        return cls(profile, windows, evaluator, book, names)

    def matrix(self, columns: Columns) -> np.ndarray:
        """The columns in the engine's order, categories encoded by the profile."""
        return self.profile.encode(columns)

    def feed(
        self, seg: np.ndarray, columns: Columns
    ) -> tuple[WindowResults | None, list[Transition]]:
        """One batch: the windows it closed, scored and decided."""
        ts = np.zeros(seg.size)
        closed = self.windows.add(seg, self.matrix(columns), ts)
        if not len(closed):
            return None, []
        results = self.evaluator.evaluate(closed, self.names)
        return results, self.book.observe(results)


def _interleaved(rng: np.random.Generator, n_segments: int, per_segment: int) -> np.ndarray:
    seg = np.repeat(np.arange(n_segments), per_segment)
    rng.shuffle(seg)
    return seg


@dataclass
class NullCounts:
    """Decisions, breaches and pages on a stationary stream, by method."""

    decisions: dict[str, int]
    breaches: dict[str, int]
    pages: dict[str, int]

    def total(self, field: str) -> int:
        """The sum over methods of one of the three counts."""
        return sum(getattr(self, field).values())


def stationary(engine: Engine, rng: np.random.Generator, windows: int) -> NullCounts:
    """Feed ``windows`` stationary windows per segment; count decisions, breaches, pages."""
    counts = NullCounts({}, {}, {})
    n_seg = len(engine.names)
    for _ in range(windows):
        seg = _interleaved(rng, n_seg, WINDOW)
        results, transitions = engine.feed(seg, draw(rng, seg.size))
        if results is None:
            continue
        for method, verdict in results.verdicts.items():
            tested = verdict != SKIP
            counts.decisions[method] = counts.decisions.get(method, 0) + int(tested.sum())
            counts.breaches[method] = counts.breaches.get(method, 0) + int(
                (verdict >= BREACH).sum()
            )
        for t in transitions:
            if t.current == "firing":
                counts.pages[t.method] = counts.pages.get(t.method, 0) + 1
    return counts


def warmup_engine(rng: np.random.Generator) -> Engine:
    """The daemon's warm-up: the pooled profile of the first 5,000 events of every
    segment, and each segment's own reference from its own events."""
    seg = _interleaved(rng, SEGMENTS, WINDOW)
    columns = draw(rng, seg.size)
    profile = build_profile(columns, categorical=CATEGORICAL, prediction=PREDICTION)
    engine = Engine.build(profile, SEGMENTS)
    own = segment_references(
        engine.evaluator.engine,
        seg,
        engine.matrix(columns),
        SEGMENTS,
        Settings(model="bench").windows.min_samples,
    )
    for segment, reference in own.items():
        engine.evaluator.set_segment_reference(segment, reference)
    return engine


# -- drift scenarios ---------------------------------------------------------------------


def _sd(name: str) -> float:
    return float(
        np.nanstd(
            next(f for f in FEATURES if f.name == name).draw(np.random.default_rng(99), 200_000)
        )
    )


def _shift(name: str, sigmas: float) -> Drift:
    sd = _sd(name)

    def apply(columns: Columns, rng: np.random.Generator, k: int) -> None:
        columns[name] = columns[name] + sigmas * sd

    return apply


def _scale(name: str, factor: float) -> Drift:
    def apply(columns: Columns, rng: np.random.Generator, k: int) -> None:
        x = columns[name]
        mean = np.nanmean(x)
        columns[name] = mean + (x - mean) * factor

    return apply


def _outliers(name: str, share: float, sigmas: float) -> Drift:
    sd = _sd(name)

    def apply(columns: Columns, rng: np.random.Generator, k: int) -> None:
        x = columns[name].copy()
        hit = rng.random(x.size) < share
        x[hit] = np.nanmean(x) + sigmas * sd
        columns[name] = x

    return apply


def _nonzero_times(name: str, factor: float) -> Drift:
    def apply(columns: Columns, rng: np.random.Generator, k: int) -> None:
        x = columns[name]
        columns[name] = np.where(x != 0, x * factor, x)

    return apply


def _go_missing(name: str, share: float) -> Drift:
    def apply(columns: Columns, rng: np.random.Generator, k: int) -> None:
        x = columns[name].copy()
        x[rng.random(x.size) < share] = np.nan
        columns[name] = x

    return apply


def _new_category(name: str, share: float) -> Drift:
    def apply(columns: Columns, rng: np.random.Generator, k: int) -> None:
        x = columns[name].copy()
        x[rng.random(x.size) < share] = 1_000.0  # a level the reference never had
        columns[name] = x

    return apply


def _gradual(name: str, per_window: float) -> Drift:
    sd = _sd(name)

    def apply(columns: Columns, rng: np.random.Generator, k: int) -> None:
        columns[name] = columns[name] + min(1.0, (k + 1) * per_window) * sd

    return apply


SCENARIOS: dict[str, tuple[str, Drift]] = {
    "mean_shift_0.2sd": ("normal_3", _shift("normal_3", 0.2)),
    "variance_x1.5": ("normal_5", _scale("normal_5", 1.5)),
    "outliers_5pct_at_5sd": ("normal_7", _outliers("normal_7", 0.05, 5.0)),
    "zero_inflated_nonzero_x3": ("zero_inflated_2", _nonzero_times("zero_inflated_2", 3.0)),
    "missing_30pct": ("lognormal_2", _go_missing("lognormal_2", 0.30)),
    "new_category_5pct_of_40": ("cat40_1", _new_category("cat40_1", 0.05)),
    "new_category_2pct_of_10": ("cat10_1", _new_category("cat10_1", 0.02)),
    "prediction_shift_0.2sd": (PREDICTION, _shift(PREDICTION, 0.2)),
}
GRADUAL_STEP = 1.0 / 20


def windows_to_page(
    profile: ReferenceProfile, column: str, drift: Drift, rng: np.random.Generator, limit: int
) -> tuple[int | None, list[str]]:
    """Windows from the first drifted one to the first page of ``column`` (1 = that
    window itself), and the methods that paged then; None if none within ``limit``."""
    engine = Engine.build(profile, 1)
    seg = np.zeros(WINDOW, dtype=np.int64)
    for k in range(DRIFT_FROM + limit):
        columns = draw(rng, WINDOW)
        if k >= DRIFT_FROM:
            drift(columns, rng, k - DRIFT_FROM)
        _, transitions = engine.feed(seg, columns)
        pages = [t.method for t in transitions if t.current == "firing" and t.column == column]
        if pages:
            return (k - DRIFT_FROM + 1 if k >= DRIFT_FROM else 0), pages
    return None, []


def main() -> None:
    """Run the stationary streams and the scenarios; print the table and JSON lines."""
    args = parse_args(__doc__ or "")
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    windows = 20 if args.quick else 200
    seeds = 3 if args.quick else 10
    measurements: list[Measurement] = []

    print(
        f"stationary: {len(FEATURES) - 1} features + prediction, {SEGMENTS} segments, "
        f"{windows} windows of {WINDOW}"
    )
    print(f"{'reference':<10} {'method':<9} {'decisions':>10} {'breaches':>9} {'pages':>6}")
    for mode in ("file", "warmup"):
        started = time.perf_counter()
        rng = np.random.default_rng(1 if mode == "file" else 2)
        engine = Engine.build(file_reference(0), SEGMENTS) if mode == "file" else warmup_engine(rng)
        counts = stationary(engine, rng, windows)
        for method in sorted(counts.decisions):
            print(
                f"{mode:<10} {method:<9} {counts.decisions[method]:>10} "
                f"{counts.breaches.get(method, 0):>9} {counts.pages.get(method, 0):>6}"
            )
        decisions = counts.total("decisions")
        print(
            f"{mode:<10} {'all':<9} {decisions:>10} {counts.total('breaches'):>9} "
            f"{counts.total('pages'):>6}   ({time.perf_counter() - started:.0f} s)"
        )
        measurements += [
            Measurement(
                BENCH,
                f"false_breaches_per_1k_decisions_{mode}_reference",
                1_000 * counts.total("breaches") / decisions,
                "1/1k",
                1.0,
                "lower",
            ),
            Measurement(
                BENCH,
                f"false_pages_per_100k_decisions_{mode}_reference",
                100_000 * counts.total("pages") / decisions,
                "1/100k",
                1.0,
                "lower",
            ),
        ]

    print()
    print(f"drift scenarios (file reference, {seeds} seeds): windows to the first page")
    profile = file_reference(0)
    for name, (column, drift) in SCENARIOS.items():
        found = [
            windows_to_page(profile, column, drift, np.random.default_rng(100 + s), 10)
            for s in range(seeds)
        ]
        delays = [d if d is not None else 99 for d, _ in found]
        methods = sorted({m for _, ms in found for m in ms})
        print(
            f"  {name:<28} median {statistics.median(delays):>4}  worst {max(delays):>3}  "
            f"via {','.join(methods)}"
        )
        measurements.append(
            Measurement(
                BENCH, f"windows_to_page_{name}", float(max(delays)), "windows", 2.0, "lower"
            )
        )
    gradual: list[float] = []
    for s in range(seeds):
        delay, _ = windows_to_page(
            profile,
            "normal_9",
            _gradual("normal_9", GRADUAL_STEP),
            np.random.default_rng(200 + s),
            20,
        )
        gradual.append(1.0 if delay is None else min(1.0, delay * GRADUAL_STEP))
    print(
        f"  {'gradual_0_to_1sd_in_20':<28} shift at page: median {statistics.median(gradual):.2f}"
        f" sd, worst {max(gradual):.2f} sd"
    )
    measurements.append(
        Measurement(BENCH, "gradual_drift_shift_at_page", max(gradual), "sd", 0.3, "lower")
    )

    print()
    pairs = [
        concept_pairs.pairs_to_page(seed, batch=concept_pairs.BATCH)
        for seed in range(5 if args.quick else 30)
    ]
    after = [p if p is not None and p >= 0 else 10**9 for p in pairs]
    print(
        f"concept drift 10% -> 16% error: pairs to page, median {statistics.median(after):.0f}"
        f", worst {max(after)} (batches of {concept_pairs.BATCH} pairs)"
    )
    measurements.append(
        Measurement(
            BENCH,
            "concept_pairs_to_page_median",
            float(statistics.median(after)),
            "pairs",
            600.0,
            "lower",
        )
    )
    report(measurements)


if __name__ == "__main__":
    main()
