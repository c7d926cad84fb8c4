"""An append-only JSON-lines journal of closed windows and alert transitions.

For audits and offline analysis ("what did driftd see on Tuesday?"), and for the
crash tests, which compare a killed-and-restarted run against an uninterrupted one.
After a crash the windows closed since the last checkpoint close again on replay,
identical, so a reader keeps the first line of each ``(kind, segment, columns,
window_end_ts, ...)`` identity. Each line is written and flushed after its batch
has been processed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import IO, Any

import orjson

from monitor.pipeline import BatchOutcome
from monitor.results import WindowResults


def _number(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 9)


def window_lines(kind: str, results: WindowResults) -> list[dict[str, Any]]:
    """One JSON-safe dict per closed window in ``results``."""
    out = []
    for row, segment in enumerate(results.segments):
        scores = {
            method: {
                column: _number(float(values[row, j]))
                for j, column in enumerate(results.columns)
                if not math.isnan(float(values[row, j]))
            }
            for method, values in results.scores.items()
        }
        out.append(
            {
                "kind": kind,
                "segment": segment,
                "window_end_ts": float(results.window_end_ts[row]),
                "rows": int(results.rows[row]),
                "scores": scores,
            }
        )
    return out


class Journal:
    """The ``on_batch`` callback that appends a batch's windows and transitions."""

    def __init__(self, path: Path, model: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.model = model
        self._file: IO[bytes] = path.open("ab")

    def __call__(self, outcome: BatchOutcome) -> None:
        """Append what ``outcome`` closed and decided."""
        lines: list[dict[str, Any]] = []
        if outcome.results is not None:
            lines += window_lines("window", outcome.results)
        if outcome.labels is not None:
            for extra in outcome.labels.results:
                lines += window_lines("label_window", extra)
        for t in outcome.transitions:
            lines.append(
                {
                    "kind": "transition",
                    "dedup_key": t.dedup_key,
                    "to": t.current,
                    "window_end_ts": t.window_end_ts,
                    "score": _number(t.score),
                }
            )
        if lines:
            self._file.write(b"".join(orjson.dumps(line) + b"\n" for line in lines))
            self._file.flush()

    def close(self) -> None:
        """Close the file."""
        self._file.close()
