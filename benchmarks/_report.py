"""Shared reporting for benchmarks: a human table plus one JSON line per measurement.

Every JSON line has the keys bench, metric, value, unit, baseline, ratio, target and
better. The convention: the ``target`` applies to the ``ratio`` where there is one,
else to the ``value``, and ``better`` names the direction of that number. A ratio is
always oriented so that higher is better (value / baseline for a rate, baseline / value
for a time or a size), so a line with a ratio says ``"better": "higher"``; a line
without one says the value's own direction. With ``BENCHMARK_LINES=FILE`` in the
environment, :func:`report` also appends the JSON lines to FILE, which
``python -m benchmarks.summary FILE`` reads (``make bench`` does).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Direction = Literal["higher", "lower"]
LINES_FILE_VARIABLE = "BENCHMARK_LINES"
"""The environment variable naming the file :func:`report` appends its JSON lines to."""


@dataclass(frozen=True)
class Measurement:
    """One measured number, optionally against a baseline measured in the same run.

    ``better`` is the direction of the ``value`` itself (a time: lower). With a
    ``baseline`` the target applies to the ratio, oriented so that higher is better,
    unless ``target_on_value``: then the baseline is reported beside the value and the
    line carries no ratio (``startup``: seconds against ``python -c pass``).
    """

    bench: str
    metric: str
    value: float
    unit: str
    target: float
    better: Direction
    baseline: float | None = None
    target_on_value: bool = False

    def __post_init__(self) -> None:
        if self.on_ratio and (self.baseline == 0 or (self.better == "lower" and self.value == 0)):
            raise ValueError(
                f"{self.bench} {self.metric}: a ratio target needs a non-zero baseline "
                f"(and value, for a lower-is-better value); got value {self.value}, "
                f"baseline {self.baseline}"
            )

    @property
    def on_ratio(self) -> bool:
        """Whether the target applies to the ratio (else to the value)."""
        return self.baseline is not None and not self.target_on_value

    @property
    def ratio(self) -> float | None:
        """value / baseline for 'higher' values, baseline / value for 'lower' ones; None
        when the target is on the value."""
        if not self.on_ratio:
            return None
        assert self.baseline is not None
        if self.better == "higher":
            return self.value / self.baseline
        return self.baseline / self.value

    @property
    def target_better(self) -> Direction:
        """The direction of the number the target applies to: the JSON line's ``better``."""
        return "higher" if self.on_ratio else self.better

    @property
    def met(self) -> bool:
        """Whether the target (on the ratio if any, else on the value) is reached."""
        return target_met(self.ratio, self.value, self.target, self.target_better)

    def as_json(self) -> str:
        """The machine-readable line, per the module's convention."""
        return json.dumps(
            {
                "bench": self.bench,
                "metric": self.metric,
                "value": self.value,
                "unit": self.unit,
                "baseline": self.baseline,
                "ratio": self.ratio,
                "target": self.target,
                "better": self.target_better,
            }
        )


def target_met(ratio: float | None, value: float, target: float, better: Direction) -> bool:
    """The convention read back: the target on ``ratio`` if any, else on ``value``."""
    subject = value if ratio is None else ratio
    return subject >= target if better == "higher" else subject <= target


def parse_args(description: str) -> argparse.Namespace:
    """Common flags: --quick for a run under a minute."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, under a minute")
    return parser.parse_args()


def best_of(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``repeats`` calls: the least noisy estimate on a shared machine."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def report(measurements: list[Measurement]) -> None:
    """Print the table, then the JSON lines (also appended to ``$BENCHMARK_LINES``)."""
    header = ("bench", "metric", "value", "baseline", "ratio", "target")
    print("{:<22} {:<34} {:>14} {:>14} {:>9} {:>10}  ok".format(*header))
    for m in measurements:
        base = "-" if m.baseline is None else f"{m.baseline:.4g}"
        ratio = "-" if m.ratio is None else f"{m.ratio:.1f}x"
        target = f"{'>=' if m.target_better == 'higher' else '<='}{m.target:.4g}"
        target += "x" if m.on_ratio else ""
        print(
            f"{m.bench:<22} {m.metric:<34} {m.value:>10.4g} {m.unit:<3} {base:>14} {ratio:>9} "
            f"{target:>10}  {'yes' if m.met else 'NO'}"
        )
    lines = [m.as_json() for m in measurements]
    for line in lines:
        print(line)
    path = os.environ.get(LINES_FILE_VARIABLE)
    if path:
        with Path(path).open("a", encoding="utf-8") as out:
            out.writelines(line + "\n" for line in lines)
