"""``compare``: a reference profile against a batch of current data, as a drift report.

The notebook path to the daemon's engine: the same statistics, calibrated thresholds
and verdicts, on one DataFrame (or mapping of column name to values) at a time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.detector import DriftDetector
from detectors.explain import bin_labels, top_bins
from detectors.profile import ReferenceProfile
from detectors.rules import BREACH, COUNT_METHODS, SEVERE, SKIP, Rules
from detectors.verdicts import WindowScores

VERDICTS = {SKIP: "skipped", -1: "clear", 0: "band", BREACH: "drift", SEVERE: "severe"}
PSI_CONVENTION = ((0.1, "insignificant"), (0.25, "moderate"), (float("inf"), "significant"))
"""The customary reading of PSI (< 0.1, 0.1-0.25, >= 0.25), reported beside the verdict."""


def psi_severity(value: float) -> str:
    """The conventional PSI band of ``value``: insignificant, moderate or significant."""
    for limit, name in PSI_CONVENTION:
        if value < limit:
            return name
    return PSI_CONVENTION[-1][1]


@dataclass(frozen=True)
class ReportRow:
    """One column and method: the statistic against its threshold, and the verdict."""

    feature: str
    method: str
    statistic: float
    p_value: float | None
    threshold: float
    drift: bool
    verdict: str
    n: int
    top_bins: tuple[dict[str, Any], ...] = ()
    psi_severity: str | None = None


@dataclass(frozen=True)
class DriftReport:
    """The outcome of :func:`compare`: a row per column and method."""

    rows: tuple[ReportRow, ...]
    reference_version: str
    n_rows: int

    @property
    def drifted(self) -> tuple[tuple[str, str], ...]:
        """(feature, method) of every row that drifted."""
        return tuple((r.feature, r.method) for r in self.rows if r.drift)

    @property
    def drifting_share(self) -> float:
        """Share of columns with at least one drifting method (``samples`` aside)."""
        columns = {r.feature for r in self.rows}
        drifting = {r.feature for r in self.rows if r.drift and r.method not in COUNT_METHODS}
        return len(drifting) / len(columns) if columns else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-safe form."""
        return {
            "reference_version": self.reference_version,
            "n_rows": self.n_rows,
            "drifting_share": self.drifting_share,
            "rows": [{**asdict(r), "top_bins": [dict(b) for b in r.top_bins]} for r in self.rows],
        }

    def to_frame(self) -> Any:
        """A pandas DataFrame, one row per column and method (pandas must be installed)."""
        try:
            import pandas as pd  # noqa: PLC0415 - optional, only for this conversion
        except ImportError:  # pragma: no cover - depends on the environment
            raise ImportError("DriftReport.to_frame needs pandas: pip install pandas") from None
        return pd.DataFrame([asdict(r) for r in self.rows])

    def __str__(self) -> str:
        head = f"{'feature':<24} {'method':<8} {'statistic':>10} {'threshold':>10}  verdict"
        lines = [head]
        for r in self.rows:
            lines.append(
                f"{r.feature:<24} {r.method:<8} {r.statistic:>10.4g} {r.threshold:>10.4g}  "
                f"{r.verdict}"
            )
        return "\n".join(lines)


def compare(
    reference: ReferenceProfile,
    current: Mapping[str, npt.ArrayLike] | Any,
    rules: Rules | None = None,
) -> DriftReport:
    """Compare ``current`` data (a DataFrame or a mapping of name to values) with a profile.

    >>> import numpy as np
    >>> from detectors.profile import build_profile
    >>> rng = np.random.default_rng(1)
    >>> train = {"age": rng.normal(40, 10, 20_000), "plan": rng.choice(["a", "b"], 20_000)}
    >>> ref = build_profile(train, categorical=["plan"])
    >>> now = {"age": rng.normal(42, 10, 5_000), "plan": rng.choice(["a", "b", "c"], 5_000)}
    >>> # "c" is new: the unseen test sees it; the shares of "a" and "b" did not move.
    >>> report = compare(ref, now)
    >>> sorted(method for feature, method in report.drifted if feature == "plan")
    ['unseen']
    >>> sorted(method for feature, method in report.drifted if feature == "age")
    ['ks', 'psi']
    >>> report.to_dict()["rows"][0]["feature"], round(report.drifting_share, 2)
    ('age', 1.0)
    """
    detector = DriftDetector(reference, 1, rules)
    matrix = reference.encode(current)
    scores = detector.update(np.zeros(matrix.shape[0], dtype=np.int64), matrix)
    return _report(reference, detector, scores, matrix.shape[0])


def _report(
    reference: ReferenceProfile, detector: DriftDetector, scores: WindowScores, n_rows: int
) -> DriftReport:
    binner = detector.sketch.binner
    cur = binner.coarsen(detector.sketch.state_dict()["counts"])[0]
    ref = binner.coarsen(detector.reference.counts[None])[0]
    rows: list[ReportRow] = []
    for j, profile in enumerate(reference.monitored):
        labels = bin_labels(profile)
        bins = tuple(top_bins(labels, ref[j, : len(labels)], cur[j, : len(labels)]))
        for method in scores.score:
            value = float(scores.score[method][0, j])
            if np.isnan(value):
                continue
            verdict = int(scores.verdict[method][0, j])
            p = float(scores.p_value[method][0, j])
            rows.append(
                ReportRow(
                    feature=profile.name,
                    method=method,
                    statistic=value,
                    p_value=None if np.isnan(p) else p,
                    threshold=float(scores.threshold[method][0, j]),
                    drift=verdict >= BREACH,
                    verdict=VERDICTS[verdict],
                    n=int(scores.n[0, j]),
                    top_bins=bins if method in ("psi", "chi2", "js", "ks") else (),
                    psi_severity=psi_severity(value) if method == "psi" else None,
                )
            )
    return DriftReport(tuple(rows), reference.version, n_rows)
