"""The parts of a report, as plain data: series of scores, alerts, distributions, test rows.

``monitor.report.digest`` makes them from a backtest's result dict; ``page`` and
``charts`` draw them. Nothing here reads the dict or draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

COUNT_METHODS = frozenset({"samples", "schema", "share"})
"""Methods that count rows instead of scoring drift: tabled, never charted."""
DRIFT_METHODS = frozenset({"psi", "ks", "chi2", "js", "adwin"})
"""Methods drawn as score charts; the others (data-quality tests such as ``missing``,
``range``, ``unseen``) are drawn only when they paged, and are always in the test table."""
FAIRNESS = "fairness"
"""Scored on label windows, shown with performance rather than with drift."""
DRIFT_VERDICTS = ("breach", "severe")
"""Verdicts over the threshold: the windows marked on a score chart."""
VERDICT_RANK = {"skip": 0, "clear": 1, "band": 2, "breach": 3, "severe": 4}


@dataclass(frozen=True)
class ScorePoint:
    """One scored window of one ``(segment, column, method)``."""

    window_end_ts: float
    score: float
    threshold: float
    verdict: str

    @property
    def ratio(self) -> float:
        """Score over threshold: 1.0 is the threshold, whatever the method's scale."""
        if self.threshold > 0:
            return self.score / self.threshold
        return math.inf if self.score > 0 else 0.0


@dataclass
class ScoreSeries:
    """The scores of one column by one method in one segment, in window order."""

    segment: str
    column: str
    method: str
    points: list[ScorePoint] = field(default_factory=list)

    @property
    def tested(self) -> list[ScorePoint]:
        """The windows where the method ran (``skip`` means too few rows to test)."""
        return [p for p in self.points if p.verdict != "skip"]

    @property
    def worst(self) -> ScorePoint | None:
        """The tested window furthest over (or closest to) its threshold."""
        tested = self.tested
        return max(tested, key=lambda p: (p.ratio, p.window_end_ts)) if tested else None

    @property
    def worst_verdict(self) -> str:
        """The most severe verdict over all windows."""
        return max((p.verdict for p in self.points), key=VERDICT_RANK.__getitem__, default="skip")


@dataclass(frozen=True)
class AlertSpan:
    """One alert: from firing to resolved (or to the end of the data, still firing)."""

    dedup_key: str
    segment: str
    column: str
    method: str
    fired_at_ts: float
    resolved_at_ts: float | None
    duration_s: float | None
    peak_score: float | None


@dataclass(frozen=True)
class Distribution:
    """Reference and current shares of one column at one window."""

    segment: str
    column: str
    method: str
    window_end_ts: float
    kind: str
    labels: list[str]
    reference: list[float]
    current: list[float]


@dataclass(frozen=True)
class CheckRow:
    """One line of the pass/fail table: a column, a method, its worst window, whether it paged."""

    segment: str
    column: str
    method: str
    windows_tested: int
    worst_score: float | None
    threshold: float | None
    worst_verdict: str
    pages: bool

    @property
    def status(self) -> str:
        """``fail`` when it paged, ``warn`` when it crossed without paging, else ``pass``."""
        if self.pages:
            return "fail"
        return "warn" if self.worst_verdict in DRIFT_VERDICTS else "pass"


@dataclass(frozen=True)
class SegmentDrift:
    """One segment's drifting columns, best first, and what the charts leave out."""

    segment: str
    shown: list[str]
    left_out: list[str]
    series: dict[tuple[str, str], ScoreSeries]
    """The charted series of this segment by ``(column, method)``: drift methods, and
    any other method that paged; fairness is charted with performance."""

    def charted(self) -> list[ScoreSeries]:
        """The series drawn: every drift method of each shown column."""
        return [
            s for column in self.shown for (c, _), s in sorted(self.series.items()) if c == column
        ]


@dataclass
class Digest:
    """Everything the page shows, in the order it shows it."""

    model: str
    reference_version: str | None
    config: dict[str, Any]
    counts: dict[str, Any]
    first_ts: float | None
    last_ts: float | None
    segments: list[str]
    """Every segment seen, those that paged first (then by name)."""
    drift: list[SegmentDrift]
    fairness: list[ScoreSeries]
    performance: dict[tuple[str, str], list[tuple[float, float]]]
    label_windows: int
    alerts: list[AlertSpan]
    distributions: list[Distribution]
    quality: dict[str, dict[str, dict[str, int]]]
    rejected: dict[str, int]
    rejected_examples: dict[str, str]
    """One refused message (or its start) per reason, when the backtest kept one."""
    inputs: dict[str, str]
    """The replayed files by role (``events``, ``labels``); roles without a file left out."""
    checks: list[CheckRow]


@dataclass(frozen=True)
class DistributionPick:
    """What the reference-versus-current section draws for one segment."""

    segment: str
    chosen: list[Distribution]
    """At most the limit's number of drifting columns, each at its worst window."""
    not_recorded: list[str]
    """Drifting columns within the limit that have no recorded distribution."""
    beyond_limit: list[str]
    """Drifting columns past the limit: in the score charts and the test table only."""
