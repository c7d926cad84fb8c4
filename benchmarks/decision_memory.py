"""Memory and read cost of the decision book at 1,000 segments x 51 columns x 6 methods.

The book holds one state machine per (segment, column, method): 306,000 here, the size
of ``benchmarks.scale``'s 1,000-segment daemon. It is filled with two rounds of engine-
judged windows (random verdicts, mostly clear and band) and measured with
``tracemalloc``: the bytes it holds once filled (the state machines, the name tables
and the transition counts), per state machine too. Also timed, best of N: ``states()``
of 20 segments (what the state API and the metrics summary ask after a batch),
``state_dict()`` of the whole book (a checkpoint) and ``load_state_dict`` of it.
``--quick`` fills 200 segments (the memory per state machine is the same).

    python -m benchmarks.decision_memory [--quick]
"""

from __future__ import annotations

import gc
import logging
import tracemalloc

import numpy as np
import structlog

from benchmarks._report import Measurement, best_of, parse_args, report
from detectors.rules import BAND, BREACH, CLEAR, SEVERE
from monitor.config import DetectorsConfig
from monitor.engine.decision import DecisionBook
from monitor.engine.results import WindowResults

BENCH = "decision_memory"
SEGMENTS, QUICK_SEGMENTS = 1_000, 200
COLUMNS = (*(f"f{j:02d}" for j in range(50)), "__prediction__")
METHODS = ("psi", "ks", "chi2", "js", "missing", "range")
BATCH_SEGMENTS = 50
BOOK_TARGET_MIB = 20.0
"""At 1,000 segments (scaled to the segment count under --quick)."""
PER_MACHINE_TARGET_BYTES = 80.0
ASKED = 20
STATES_TARGET_MS = 25.0
"""Building the 6,120 ``DecisionState`` of 20 segments costs ~15 ms by itself; the scan
of every state machine it used to make cost ~110 ms at 1,000 segments."""
VERDICTS = np.array([CLEAR, BAND, BREACH, SEVERE], np.int8)
VERDICT_P = (0.6, 0.35, 0.04, 0.01)


def _windows(segments: list[str], end: float, rng: np.random.Generator) -> WindowResults:
    """One engine-judged window per segment, every column and method scored."""
    shape = (len(segments), len(COLUMNS))
    return WindowResults(
        model="m",
        segments=tuple(segments),
        columns=COLUMNS,
        window_end_ts=np.full(len(segments), end),
        rows=np.full(len(segments), 1_100, np.int64),
        n=np.full(shape, 1_100, np.int64),
        missing_rate=np.zeros(shape),
        scores={m: rng.random(shape) * 0.4 for m in METHODS},
        p_values={m: rng.random(shape) for m in METHODS},
        thresholds={m: np.full(shape, 0.25) for m in METHODS},
        clears={m: np.full(shape, 0.1) for m in METHODS},
        verdicts={m: rng.choice(VERDICTS, shape, p=VERDICT_P) for m in METHODS},
    )


def main() -> None:
    """Run and report."""
    args = parse_args(__doc__ or BENCH)
    # Random verdicts fire alerts; their log lines are not what is measured.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    n_segments = QUICK_SEGMENTS if args.quick else SEGMENTS
    repeats = 3 if args.quick else 5
    rng = np.random.default_rng(1)
    names = [f"segment-{i:04d}" for i in range(n_segments)]
    rounds = [
        _windows(names[lo : lo + BATCH_SEGMENTS], float(end), rng)
        for end in (1, 2)
        for lo in range(0, n_segments, BATCH_SEGMENTS)
    ]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    book = DecisionBook("m", DetectorsConfig(), min_samples=500)
    for results in rounds:
        book.observe(results)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    machines = len(book.states())
    assert machines == n_segments * len(COLUMNS) * len(METHODS), machines
    asked = names[:: max(1, n_segments // ASKED)][:ASKED]
    states_s = best_of(lambda: book.states(asked), repeats)
    state_dict_s = best_of(book.state_dict, repeats)
    saved = book.state_dict()
    restored = DecisionBook("m", DetectorsConfig(), min_samples=500)
    load_s = best_of(lambda: restored.load_state_dict(saved), repeats)
    mib = held / 2**20
    print(
        f"{machines:,} state machines ({n_segments} segments x {len(COLUMNS)} columns x "
        f"{len(METHODS)} methods): {mib:.1f} MiB held, {held / machines:.0f} B each; "
        f"states({len(asked)} segments) {states_s * 1e3:.1f} ms, state_dict "
        f"{state_dict_s:.2f} s, load_state_dict {load_s:.2f} s (best of {repeats})"
    )
    report(
        [
            Measurement(
                BENCH,
                f"book_mib_{n_segments}_segments",
                mib,
                "MiB",
                BOOK_TARGET_MIB * n_segments / SEGMENTS,
                "lower",
            ),
            Measurement(
                BENCH,
                "bytes_per_state_machine",
                held / machines,
                "B",
                PER_MACHINE_TARGET_BYTES,
                "lower",
            ),
            Measurement(
                BENCH,
                f"states_ms_{ASKED}_segments",
                states_s * 1e3,
                "ms",
                STATES_TARGET_MS,
                "lower",
            ),
            Measurement(
                BENCH, f"state_dict_s_{machines}_machines", state_dict_s, "s", 1.0, "lower"
            ),
            Measurement(BENCH, f"load_state_dict_s_{machines}_machines", load_s, "s", 3.0, "lower"),
        ]
    )


if __name__ == "__main__":
    main()
