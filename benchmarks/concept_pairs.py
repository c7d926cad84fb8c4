"""Concept drift: joined pairs from an abrupt error-rate change to the page, and false pages.

One segment of a binary model whose error rate is 10% for the first 20,000 joined
pairs, then 16%. Errors are i.i.d. Bernoulli (a fixed seed per run); an error is a
prediction score on the other side of ``decision_threshold`` 0.5 from its label.
Each batch carries 100 predictions and their labels, through :class:`LabelMonitor`
and a :class:`DecisionBook` with the default configuration, as the pipeline wires
them. Pairs-to-page is counted at the end of the batch that fired the
``__error__``/``adwin`` alert (what an operator sees), so it includes the batch
granularity. The table also shows the pair at which ADWIN detected (no page can
come earlier) and when the window-close path alone (the performance rows, as before
pages came on detection) would have paged.

False pages: the same model on a stationary 10% stream (200,000 pairs per seed),
firing transitions per million joined pairs.

    python -m benchmarks.concept_pairs [--quick]
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass

import numpy as np
import structlog

from benchmarks._report import Measurement, parse_args, report
from monitor.config import Settings
from monitor.engine.decision import DecisionBook, Transition
from monitor.engine.labels.events import LabelBatch
from monitor.engine.labels.monitor import ERROR_COLUMN, LabelMonitor, LabelOutcome
from monitor.ingest.decode import Rejection

BENCH = "concept_pairs"
SEGMENTS = ("s",)
CHANGE_AT = 20_000
AFTER = 20_000
BEFORE_RATE = 0.10
AFTER_RATE = 0.16
BATCH = 100
"""Pairs per batch: a live consumer polls small batches (every pair of a batch is read
at once, so the page counts the whole batch it fired in)."""
STATIONARY_PAIRS = 200_000
START_TS = 1_000.0
LABEL_DELAY = 5.0


@dataclass(frozen=True)
class Stream:
    """One segment's predictions and labels; pair ``i`` is prediction ``i`` with its label."""

    score: np.ndarray
    label: np.ndarray
    ts: np.ndarray

    def __len__(self) -> int:
        return int(self.score.size)

    def pair_of(self, label_ts: float) -> int:
        """The pair whose label carries ``label_ts`` (a transition's ``window_end_ts``)."""
        return round(label_ts - LABEL_DELAY - START_TS)


@dataclass(frozen=True)
class Fed:
    """A transition, with the joined pairs fed up to the end of the batch that made it."""

    pairs: int
    transition: Transition


@dataclass(frozen=True)
class Run:
    """What one stream did: the transitions, those of the window-close-only path
    (the performance rows alone, as before pages came on detection), and every ADWIN
    detection as (segment, pair number)."""

    transitions: list[Fed]
    window_close: list[Fed]
    detections: list[tuple[str, int]]


def error_stream(
    seed: int,
    change_at: int = CHANGE_AT,
    after: int = AFTER,
    before_rate: float = BEFORE_RATE,
    after_rate: float = AFTER_RATE,
) -> Stream:
    """Errors i.i.d. Bernoulli(before_rate) for ``change_at`` pairs, then ``after_rate``."""
    return stepped_stream(seed, [(change_at, before_rate), (after, after_rate)])


def stepped_stream(seed: int, steps: list[tuple[int, float]]) -> Stream:
    """(pairs, error rate) per step; 30% positive labels; errors i.i.d. Bernoulli."""
    rate = np.concatenate([np.full(n, p) for n, p in steps])
    n = rate.size
    rng = np.random.default_rng(seed)
    label = (rng.random(n) < 0.3).astype(np.float64)
    wrong = rng.random(n) < rate
    predicted = (label >= 0.5) != wrong
    score = np.where(predicted, 0.8, 0.2)
    return Stream(score, label, START_TS + np.arange(n, dtype=np.float64))


def settings(**labels: object) -> Settings:
    """Defaults, labels enabled; ``labels`` overrides ``LabelsConfig`` fields."""
    return Settings(model="m", labels={"enabled": True, **labels})  # type: ignore[arg-type]


def feed(monitor: LabelMonitor, stream: Stream, lo: int, hi: int) -> LabelOutcome:
    """One batch: predictions ``lo..hi`` of segment ``s`` and their labels."""
    ids = [f"p{i}" for i in range(lo, hi)]
    predictions = (
        ids,
        np.zeros(hi - lo, dtype=np.int64),
        stream.score[lo:hi],
        stream.ts[lo:hi],
        None,
    )
    labels = LabelBatch(
        ids=ids,
        ts=stream.ts[lo:hi] + LABEL_DELAY,
        label=stream.label[lo:hi],
        source_index=np.arange(hi - lo),
        rejections=list[Rejection](),
    )
    return monitor.process(predictions, labels, SEGMENTS)


def run(stream: Stream, batch: int | list[int] = BATCH, config: Settings | None = None) -> Run:
    """Feed ``stream`` (predictions and their labels in the same batch) through a
    LabelMonitor and a DecisionBook wired as in the pipeline.

    ``batch`` is a batch size, or the sizes of successive batches (cycled). A second
    book sees the performance rows only: the window-close path, for comparison.
    """
    cfg = config if config is not None else settings()
    monitor = LabelMonitor(cfg, None)
    book = DecisionBook(cfg.model, cfg.detectors, cfg.windows.min_samples)
    legacy = DecisionBook(cfg.model, cfg.detectors, cfg.windows.min_samples)
    sizes = [batch] if isinstance(batch, int) else batch
    out = Run([], [], [])
    lo, k = 0, 0
    while lo < len(stream):
        hi = min(len(stream), lo + sizes[k % len(sizes)])
        k += 1
        outcome = feed(monitor, stream, lo, hi)
        out.detections.extend(outcome.detected_at)
        for results in outcome.results:
            out.transitions.extend(Fed(hi, t) for t in book.observe(results))
            if results.columns != (ERROR_COLUMN,):  # not a detection row
                out.window_close.extend(Fed(hi, t) for t in legacy.observe(results))
        lo = hi
    return out


def concept_pages(transitions: list[Fed]) -> list[Fed]:
    """The ``firing`` transitions of the concept-drift alert."""
    return [
        f
        for f in transitions
        if f.transition.current == "firing"
        and f.transition.column == ERROR_COLUMN
        and f.transition.method == "adwin"
    ]


def first_page(transitions: list[Fed], change_at: int) -> int | None:
    """Pairs after ``change_at`` at the end of the batch of the first concept-drift page;
    negative if it fired before the change, None if it never fired."""
    pages = concept_pages(transitions)
    return pages[0].pairs - change_at if pages else None


def pairs_to_page(
    seed: int,
    batch: int = BATCH,
    change_at: int = CHANGE_AT,
    after: int = AFTER,
    before_rate: float = BEFORE_RATE,
    after_rate: float = AFTER_RATE,
    config: Settings | None = None,
) -> int | None:
    """Joined pairs after the change at the end of the batch that fired the first
    concept-drift page; negative if it fired before the change, None if never."""
    stream = error_stream(seed, change_at, after, before_rate, after_rate)
    return first_page(run(stream, batch, config).transitions, change_at)


def false_pages(seed: int, pairs: int = STATIONARY_PAIRS, config: Settings | None = None) -> int:
    """Concept-drift pages on a stationary 10% error stream of ``pairs`` pairs."""
    stream = error_stream(seed, change_at=pairs, after=0)
    return len(concept_pages(run(stream, BATCH, config).transitions))


def _median(values: list[int]) -> float:
    return float(statistics.median(values)) if values else float("inf")


def main() -> None:
    """Run the seeds, print the table and the JSON lines."""
    args = parse_args(__doc__ or "")
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    seeds = range(5 if args.quick else 30)
    print(
        f"{'seed':>5} {'pairs_to_page':>14} {'adwin_detects':>14} {'window_close':>13} {'false':>6}"
    )
    pages: list[int] = []
    detects: list[int] = []
    closes: list[int] = []
    missed = false = 0
    for seed in seeds:
        outcome = run(error_stream(seed))
        page = first_page(outcome.transitions, CHANGE_AT)
        close = first_page(outcome.window_close, CHANGE_AT)
        after = [at + 1 - CHANGE_AT for _, at in outcome.detections if at >= CHANGE_AT]
        fp = false_pages(1_000 + seed)
        false += fp
        if page is None or page < 0:
            missed += 1
        else:
            pages.append(page)
        detects += after[:1]
        closes += [] if close is None else [close]
        print(f"{seed:>5} {page!s:>14} {after[0] if after else None!s:>14} {close!s:>13} {fp:>6}")
    print(
        f"median: page {_median(pages)}, ADWIN detection {_median(detects)}, "
        f"window-close path {_median(closes)} (pairs after the change, batches of {BATCH})"
    )
    if args.quick:
        print("--quick: 5 seeds, so the median is noisy; run without --quick for 30")
    if missed:
        print(f"{missed} of {len(seeds)} runs never paged after the change, or paged before it")
    worst = float(max(pages)) if pages and not missed else float("inf")
    measurements = [
        Measurement(BENCH, "concept_pairs_to_page_median", _median(pages), "pairs", 600.0, "lower"),
        # One performance window: the earliest the window-close path could page.
        Measurement(BENCH, "concept_pairs_to_page_max", worst, "pairs", 2_000.0, "lower"),
        Measurement(
            BENCH,
            "concept_false_pages_per_million_pairs",
            false * 1e6 / (len(seeds) * STATIONARY_PAIRS),
            "1/M",
            1.0,
            "lower",
        ),
    ]
    report(measurements)


if __name__ == "__main__":
    main()
