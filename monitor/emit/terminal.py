"""A plain-text live view for ``driftd demo`` and ``driftd run --view``.

It leads with what a person watches for: one line per closed feature window (its
tests closest to, or furthest past, their thresholds, with the multivariate and
embedding tests of the same window when they breach) and one per alert transition.
The label side, whose performance windows close every ``labels.window_pairs`` pairs
per segment, would drown those lines, so it prints only when ADWIN detects a change
in a segment's error stream; the label windows and joined pairs are counted for the
closing summary, which lists the alerts that fired, by kind.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from detectors.rules import QUALITY_METHODS
from monitor.engine.decision import Transition
from monitor.engine.labels.monitor import ERROR_COLUMN, LABEL_COLUMN
from monitor.engine.outcome import BatchOutcome
from monitor.engine.results import DATASET_COLUMN, WINDOW_COLUMN, WindowResults
from monitor.engine.segment_mix import MIX_METHOD, NEW_METHOD

COUNT_METHODS = frozenset({"samples", "schema", "share"})
"""Rows that count things rather than measure drift; the window line leaves them out."""

KINDS = (
    "feature drift",
    "multivariate drift",
    "embedding drift",
    "estimated performance",
    "concept drift",
    "label drift",
    "label noise",
    "fairness",
    "data quality",
    "dataset drift",
    "segment mix",
    "new segment",
)
"""The kinds of alert the summary groups by, in the order it lists them."""

METHOD_KINDS = {
    # The engine's names for these methods (the emit side may not import their modules;
    # tests/test_cli_demo.py holds them equal).
    "multivariate": "multivariate drift",
    "embedding": "embedding drift",
    "perf_drop": "estimated performance",
    "label_noise": "label noise",
    MIX_METHOD: "segment mix",
    NEW_METHOD: "new segment",
}
"""Methods whose alerts are a kind of their own, whatever their column."""


def alert_kind(column: str, method: str) -> str:
    """The kind of alert a ``(column, method)`` state machine raises (one of ``KINDS``)."""
    if method in METHOD_KINDS:  # before the columns: label noise is on ``__label__`` too
        return METHOD_KINDS[method]
    if column == ERROR_COLUMN:
        return "concept drift"
    if column == LABEL_COLUMN:
        return "label drift"
    if method == "fairness":
        return "fairness"
    if method in QUALITY_METHODS or column == WINDOW_COLUMN:
        return "data quality"
    if column == DATASET_COLUMN:
        return "dataset drift"
    return "feature drift"


@dataclass
class Episode:
    """One alert from firing to resolved (``resolved_at`` None: still firing)."""

    fired_at: int
    resolved_at: int | None = None


@dataclass
class FiredAlert:
    """Every episode of one alert (one dedup key) during the run."""

    segment: str
    column: str
    method: str
    episodes: list[Episode] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """See :func:`alert_kind`."""
        return alert_kind(self.column, self.method)

    @property
    def firing(self) -> bool:
        """Whether the last episode is still open."""
        return bool(self.episodes) and self.episodes[-1].resolved_at is None


Explain = Callable[[str, str], str | None]
"""(segment, kind) -> one line saying why such an alert fired, or None when unknown."""


class TerminalView:
    """Prints feature windows, ADWIN detections and alert transitions as batches pass;
    :meth:`summary` gives the closing lines."""

    def __init__(self, out: TextIO | None = None, columns: int = 3) -> None:
        self.out = out or sys.stdout
        self.columns = columns
        self.events = 0
        self.windows = 0
        self.label_windows = 0
        self.pairs = 0
        self.detections = 0
        self.transitions = 0
        self.fired: dict[str, FiredAlert] = {}

    def __call__(self, outcome: BatchOutcome) -> None:
        """Called by the daemon after every batch."""
        self.events += outcome.accepted
        results = outcome.results
        if results is not None:
            self.windows += len(results)
            # Multivariate and embedding rows close with the same segment windows: past
            # their thresholds they join their segment's line. Not below: their score is
            # a level (a mean error, a distance), near its threshold on every quiet window.
            beside: dict[str, list[tuple[float, str, str, float]]] = {}
            for extra in outcome.extra:
                for row, segment in enumerate(extra.segments):
                    breaches = [r for r in _ranked(extra, row) if r[0] >= 1.0]
                    beside.setdefault(segment, []).extend(breaches)
            for row, segment in enumerate(results.segments):
                worst = _ranked(results, row) + beside.get(segment, [])
                worst.sort(reverse=True)
                shown = "  ".join(
                    f"{m}:{c}={v:.3g} ({r:.1f}x)" for r, m, c, v in worst[: self.columns]
                )
                self._line(f"window {segment:<14} rows={int(results.rows[row]):>6}  {shown}")
        if outcome.labels is not None:
            self._labels(outcome)
        for t in outcome.transitions:
            self._transition(t)

    def _labels(self, outcome: BatchOutcome) -> None:
        labels = outcome.labels
        assert labels is not None
        self.pairs += labels.matched
        for extra in labels.results:
            if ERROR_COLUMN in extra.columns:  # performance windows (and detection rows)
                self.label_windows += len(extra)
        by_segment: dict[str, list[int]] = {}
        for segment, pair in labels.detected_at:
            by_segment.setdefault(segment, []).append(pair)
        for segment, pairs in sorted(by_segment.items()):
            self.detections += len(pairs)
            at = ", ".join(f"{p + 1:,}" for p in pairs)
            self._line(
                f"labels {segment:<14} ADWIN detected a change in the error rate "
                f"(at joined pair {at} of the segment)"
            )

    def _transition(self, t: Transition) -> None:
        self.transitions += 1
        marker = "FIRING  " if t.current == "firing" else "RESOLVED"
        self._line(f"{marker} {t.dedup_key}  score={t.score:.3f} threshold={t.threshold:.3f}")
        alert = self.fired.get(t.dedup_key)
        if t.current == "firing":
            if alert is None:
                alert = self.fired[t.dedup_key] = FiredAlert(t.segment, t.column, t.method)
            alert.episodes.append(Episode(self.events))
        elif alert is not None and alert.firing:
            alert.episodes[-1].resolved_at = self.events

    def _line(self, text: str) -> None:
        print(f"{self.events:>9} events  {text}", file=self.out, flush=True)

    # -- the closing summary ---------------------------------------------------------

    def summary(self, explain: Explain | None = None) -> list[str]:
        """The closing lines: counts, then per kind and segment the alerts that fired,
        when, and (with ``explain``) why."""
        lines = [
            f"{self.events:,} events, {self.windows:,} feature windows, "
            f"{self.label_windows:,} performance windows ({self.pairs:,} labels joined, "
            f"{self.detections:,} ADWIN detections), {self.transitions:,} alert transitions"
        ]
        if not self.fired:
            lines.append("no alert fired")
            return lines
        groups: dict[tuple[str, str], list[FiredAlert]] = {}
        for alert in self.fired.values():
            groups.setdefault((alert.kind, alert.segment), []).append(alert)
        lines.append("alerts that fired:")
        order = {kind: i for i, kind in enumerate(KINDS)}
        for kind, segment in sorted(groups, key=lambda g: (order.get(g[0], len(KINDS)), g[1])):
            alerts = sorted(groups[(kind, segment)], key=lambda a: (a.column, a.method))
            names = ", ".join(f"{a.column}/{a.method}" for a in alerts)
            lines.append(f"  {kind} in {segment}: {names}; {_when(alerts)}")
            if explain is not None:
                why = explain(segment, kind)
                lines.append(
                    f"    why: {why}"
                    if why is not None
                    else "    why: not something the stream injected (unexpected)"
                )
        return lines


def _ranked(results: WindowResults, row: int) -> list[tuple[float, str, str, float]]:
    """(score / threshold, method, column, score) of one row's tests, counts left out.

    Ranked by score over threshold: scores of different methods do not compare, their
    distance to their own thresholds does."""
    out: list[tuple[float, str, str, float]] = []
    for method, scores in results.scores.items():
        thresholds = results.thresholds.get(method)
        if thresholds is None or method in COUNT_METHODS:
            continue
        for j, column in enumerate(results.columns):
            value, limit = float(scores[row, j]), float(thresholds[row, j])
            if not (math.isnan(value) or math.isnan(limit)) and limit > 0:
                out.append((value / limit, method, column, value))
    return out


def _when(alerts: list[FiredAlert]) -> str:
    """When a group of alerts fired and resolved, in events, episode by episode."""
    spans = sorted(
        {(e.fired_at, e.resolved_at) for a in alerts for e in a.episodes},
        key=lambda s: (s[0], math.inf if s[1] is None else s[1]),
    )
    parts = [
        f"fired at {start:,} events, " + ("still firing" if end is None else f"resolved at {end:,}")
        for start, end in spans
    ]
    return "; ".join(parts)
