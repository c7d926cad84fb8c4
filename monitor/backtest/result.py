"""What a backtest found, as frozen data: the JSON of ``--json`` and the report's input.

``BacktestResult.to_json()`` is the dict documented in docs/backtest.md ("The JSON"); the
HTML report (``monitor.report.render_report``) renders from exactly that dict. Floats
that are not finite become null, so the JSON is strict (no ``NaN`` literals).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from detectors.rules import BAND, BREACH, CLEAR, SEVERE, SKIP

Verdict = Literal["skip", "clear", "band", "breach", "severe"]
VERDICT_NAMES: Mapping[int, Verdict] = {
    SKIP: "skip",
    CLEAR: "clear",
    BAND: "band",
    BREACH: "breach",
    SEVERE: "severe",
}
"""The engine's verdict codes (``detectors.rules``) by name."""
WindowPart = Literal["features", "beside", "performance", "label_drift", "concept"]
OVER_THRESHOLD: frozenset[Verdict] = frozenset({"breach", "severe"})
"""Verdicts of a score on the wrong side of its threshold."""


def finite(x: float) -> float | None:
    """``x``, or None when it is NaN or infinite (JSON has no such numbers)."""
    return x if math.isfinite(x) else None


def _finite_map(scores: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float | None]]:
    return {m: {c: finite(v) for c, v in by_column.items()} for m, by_column in scores.items()}


@dataclass(frozen=True)
class WindowRow:
    """One closed window: a segment's feature window (``window``) or a label-side one
    (``label_window``: performance and fairness, label drift, ADWIN detections)."""

    kind: Literal["window", "label_window"]
    segment: str
    index: int
    """The segment's window number of this kind and part, from 0."""
    window_end_ts: float
    rows: int
    scores: Mapping[str, Mapping[str, float]]
    thresholds: Mapping[str, Mapping[str, float]]
    verdicts: Mapping[str, Mapping[str, Verdict]]
    missing_rate: Mapping[str, float]
    part: WindowPart = "features"
    """What the row holds: ``features`` (a feature window); on the label side
    ``performance`` (a window of ``labels.window_pairs`` joined pairs: the ADWIN hold
    score and the fairness gaps), ``label_drift`` (the label's distribution) or
    ``concept`` (an ADWIN detection on the error stream, at the pair it was found)."""

    def to_json(self) -> dict[str, Any]:
        """The window as JSON-ready data."""
        return {
            "kind": self.kind,
            "part": self.part,
            "segment": self.segment,
            "index": self.index,
            "window_end_ts": self.window_end_ts,
            "rows": self.rows,
            "scores": _finite_map(self.scores),
            "thresholds": _finite_map(self.thresholds),
            "verdicts": {m: dict(v) for m, v in self.verdicts.items()},
            "missing_rate": {c: finite(v) for c, v in self.missing_rate.items()},
        }


@dataclass(frozen=True)
class PerformancePoint:
    """One performance or fairness value of a label window (``fairness_gap:<metric>``)."""

    segment: str
    window_end_ts: float
    metric: str
    value: float

    def to_json(self) -> dict[str, Any]:
        """The point as JSON-ready data."""
        return {
            "segment": self.segment,
            "window_end_ts": self.window_end_ts,
            "metric": self.metric,
            "value": finite(self.value),
        }


@dataclass(frozen=True)
class TransitionRow:
    """An alert transition the daemon would have made."""

    dedup_key: str
    segment: str
    column: str
    method: str
    to: Literal["firing", "resolved"]
    window_end_ts: float
    score: float
    threshold: float

    def to_json(self) -> dict[str, Any]:
        """The transition as JSON-ready data."""
        return {
            "dedup_key": self.dedup_key,
            "segment": self.segment,
            "column": self.column,
            "method": self.method,
            "to": self.to,
            "window_end_ts": self.window_end_ts,
            "score": finite(self.score),
            "threshold": finite(self.threshold),
        }


@dataclass(frozen=True)
class AlertSpan:
    """One page: from its firing to its resolve (None: still firing at the end)."""

    dedup_key: str
    segment: str
    column: str
    method: str
    fired_at_ts: float
    resolved_at_ts: float | None
    peak_score: float

    @property
    def duration_s(self) -> float | None:
        """Event-time seconds from firing to resolve (None while still firing)."""
        return None if self.resolved_at_ts is None else self.resolved_at_ts - self.fired_at_ts

    def to_json(self) -> dict[str, Any]:
        """The alert as JSON-ready data."""
        return {
            "dedup_key": self.dedup_key,
            "segment": self.segment,
            "column": self.column,
            "method": self.method,
            "fired_at_ts": self.fired_at_ts,
            "resolved_at_ts": self.resolved_at_ts,
            "duration_s": self.duration_s,
            "peak_score": finite(self.peak_score),
        }


@dataclass(frozen=True)
class Distribution:
    """Reference against current bin shares of one column at its worst window."""

    segment: str
    column: str
    method: str
    window_end_ts: float
    kind: Literal["numeric", "categorical"]
    bins: tuple[str, ...]
    """Readable bin labels: ``(lo, hi]`` intervals, or the categories."""
    edges: tuple[float, ...]
    """Numeric: the inner bin edges (bin 0 is ``(-inf, edges[0]]``, the last bin
    ``(edges[-1], inf)``); empty for a categorical column."""
    reference: tuple[float, ...]
    current: tuple[float, ...]

    def to_json(self) -> dict[str, Any]:
        """The distribution as JSON-ready data (``edges`` or ``categories`` by kind)."""
        out: dict[str, Any] = {
            "segment": self.segment,
            "column": self.column,
            "method": self.method,
            "window_end_ts": self.window_end_ts,
            "kind": self.kind,
            "bins": list(self.bins),
            "reference": list(self.reference),
            "current": list(self.current),
        }
        if self.kind == "numeric":
            out["edges"] = list(self.edges)
        else:
            out["categories"] = list(self.bins)
        return out


@dataclass(frozen=True)
class Counts:
    """What was read and what became of it."""

    events_read: int
    events_accepted: int
    rejected: Mapping[str, int]
    labels_read: int
    labels_joined: int
    windows: int
    label_windows: int
    late: int

    def to_json(self) -> dict[str, Any]:
        """The counts as JSON-ready data."""
        return {
            "events_read": self.events_read,
            "events_accepted": self.events_accepted,
            "rejected": dict(self.rejected),
            "labels_read": self.labels_read,
            "labels_joined": self.labels_joined,
            "windows": self.windows,
            "label_windows": self.label_windows,
            "late": self.late,
        }


@dataclass(frozen=True)
class Quality:
    """Data-quality counts: per segment and column, values missing, invalid (a bad value
    that became missing) and unseen (a category the reference lacks); rejected events
    by reason."""

    missing: Mapping[str, Mapping[str, int]]
    invalid: Mapping[str, Mapping[str, int]]
    unseen: Mapping[str, Mapping[str, int]]
    rejected: Mapping[str, int]
    rejected_examples: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The quality counts as JSON-ready data."""
        return {
            "missing": {s: dict(c) for s, c in self.missing.items()},
            "invalid": {s: dict(c) for s, c in self.invalid.items()},
            "unseen": {s: dict(c) for s, c in self.unseen.items()},
            "rejected": dict(self.rejected),
            "rejected_examples": dict(self.rejected_examples),
        }


@dataclass(frozen=True)
class BacktestResult:
    """The whole backtest: settings in brief, counts, windows, alerts and the rest."""

    model: str
    reference_version: str | None
    config: Mapping[str, Any]
    counts: Counts
    windows: tuple[WindowRow, ...]
    performance: tuple[PerformancePoint, ...]
    transitions: tuple[TransitionRow, ...]
    alerts: tuple[AlertSpan, ...]
    quality: Quality
    distributions: tuple[Distribution, ...]
    inputs: Mapping[str, str | None] = field(default_factory=dict)
    """The replayed files (``events``, ``labels``)."""
    notifications: Mapping[str, int] = field(default_factory=dict)
    """Per configured alert sink, the notifications it would have been sent."""

    @property
    def paged(self) -> bool:
        """Whether anything would have paged."""
        return bool(self.alerts)

    def to_json(self) -> dict[str, Any]:
        """The documented JSON structure (docs/backtest.md)."""
        return {
            "model": self.model,
            "reference_version": self.reference_version,
            "config": dict(self.config),
            "inputs": dict(self.inputs),
            "counts": self.counts.to_json(),
            "windows": [w.to_json() for w in self.windows],
            "performance": [p.to_json() for p in self.performance],
            "transitions": [t.to_json() for t in self.transitions],
            "alerts": [a.to_json() for a in self.alerts],
            "quality": self.quality.to_json(),
            "distributions": [d.to_json() for d in self.distributions],
            "notifications": dict(self.notifications),
        }
