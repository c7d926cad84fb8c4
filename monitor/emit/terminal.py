"""A plain-text live view for ``driftd demo``: per-segment drift as windows close."""

from __future__ import annotations

import math
import sys
from typing import TextIO

from monitor.engine.outcome import BatchOutcome

COUNT_METHODS = frozenset({"samples", "schema", "share"})
"""Rows that count things rather than measure drift; the window line leaves them out."""


class TerminalView:
    """Prints one line per closed window and one per alert transition."""

    def __init__(self, out: TextIO | None = None, columns: int = 3) -> None:
        self.out = out or sys.stdout
        self.columns = columns
        self.events = 0

    def __call__(self, outcome: BatchOutcome) -> None:
        """Called by the daemon after every batch."""
        self.events += outcome.accepted
        results = outcome.results
        if results is not None:
            for row, segment in enumerate(results.segments):
                # Ranked by score over threshold: scores of different methods do not
                # compare, their distance to their own thresholds does.
                worst: list[tuple[float, str, str, float]] = []
                for method, scores in results.scores.items():
                    thresholds = results.thresholds.get(method)
                    if thresholds is None or method in COUNT_METHODS:
                        continue
                    for j, column in enumerate(results.columns):
                        value, limit = float(scores[row, j]), float(thresholds[row, j])
                        if not (math.isnan(value) or math.isnan(limit)) and limit > 0:
                            worst.append((value / limit, method, column, value))
                worst.sort(reverse=True)
                shown = "  ".join(
                    f"{m}:{c}={v:.3g} ({r:.1f}x)" for r, m, c, v in worst[: self.columns]
                )
                print(
                    f"{self.events:>9} events  window {segment:<14} "
                    f"rows={int(results.rows[row]):>6}  {shown}",
                    file=self.out,
                    flush=True,
                )
        if outcome.labels is not None:
            for extra in outcome.labels.results:
                if "adwin" not in extra.scores:
                    continue
                for row, segment in enumerate(extra.segments):
                    detections = int(extra.scores["adwin"][row, 0])
                    print(
                        f"{self.events:>9} events  labels {segment:<14} "
                        f"pairs={int(extra.rows[row]):>6}  adwin detections={detections}",
                        file=self.out,
                        flush=True,
                    )
        for t in outcome.transitions:
            marker = "FIRING  " if t.current == "firing" else "RESOLVED"
            print(
                f"{self.events:>9} events  {marker} {t.dedup_key}  "
                f"score={t.score:.3f} threshold={t.threshold:.3f}",
                file=self.out,
                flush=True,
            )
