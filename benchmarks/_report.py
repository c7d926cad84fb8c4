"""Shared reporting for benchmarks: a human table plus one JSON line per measurement."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Measurement:
    """One measured number, optionally against a baseline measured in the same run."""

    bench: str
    metric: str
    value: float
    unit: str
    target: float
    better: Literal["higher", "lower"]
    baseline: float | None = None

    @property
    def ratio(self) -> float | None:
        """value / baseline for 'higher' metrics, baseline / value for 'lower' ones."""
        if self.baseline is None or self.baseline == 0 or self.value == 0:
            return None
        if self.better == "higher":
            return self.value / self.baseline
        return self.baseline / self.value

    @property
    def met(self) -> bool:
        """Whether the target (on ratio if any, else on value) is reached."""
        subject = self.ratio if self.ratio is not None else self.value
        if self.ratio is not None or self.better == "higher":
            return subject >= self.target
        return subject <= self.target

    def as_json(self) -> str:
        """The machine-readable line the brief fixes."""
        return json.dumps(
            {
                "bench": self.bench,
                "metric": self.metric,
                "value": self.value,
                "unit": self.unit,
                "baseline": self.baseline,
                "ratio": self.ratio,
                "target": self.target,
                "better": self.better,
            }
        )


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
    """Print the table, then the JSON lines."""
    header = ("bench", "metric", "value", "baseline", "ratio", "target")
    print("{:<22} {:<34} {:>14} {:>14} {:>9} {:>8}  ok".format(*header))
    for m in measurements:
        base = "-" if m.baseline is None else f"{m.baseline:.4g}"
        ratio = "-" if m.ratio is None else f"{m.ratio:.1f}x"
        print(
            f"{m.bench:<22} {m.metric:<34} {m.value:>10.4g} {m.unit:<3} {base:>14} {ratio:>9} "
            f"{m.target:>8.4g}  {'yes' if m.met else 'NO'}"
        )
    for m in measurements:
        print(m.as_json())
