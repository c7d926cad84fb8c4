"""Two reference profiles side by side: ``driftd reference diff``.

Each column present in both profiles is scored with the drift library's own statistics
(``detectors.stats``: ``psi``, ``ks_from_counts``, ``chi_square``, ``jensen_shannon``), the
functions the daemon scores its windows with, on counts brought onto one grid:

- **Numeric, same fine edges** (profiles built on one grid, or of the same data), or
  grids sharing at least half of ``a``'s edges (discrete columns, whose edges sit on the
  same values): the counts on the shared edges, where both cumulative counts are exact.
  KS is the daemon's binned lower bound ``D_b``, with its upper bound
  ``D_b + max_k min(p_k, q_k)``; the raw data's KS lies between them.
- **Numeric, other edges** (two independent builds of a continuous column): ``a`` is the
  reference, as in the daemon, and ``b`` is put on ``a``'s fine bins by reading ``b``'s
  cumulative counts at ``a``'s edges, linearly inside ``b``'s fine bins (uniform within a
  bin; ``b``'s outer bins, empty in a built profile, are clamped). The KS from these
  counts is within ``the largest fine-bin share of a + the same of b`` of the raw data's
  KS (about 0.02 with 100 fine bins each), either way: a cumulative count read off
  ``b``'s grid errs by at most one of ``b``'s bins, and the sup between ``a``'s edges by at
  most one of ``a``'s.
- PSI is on ``a``'s coarse bins (those of its coarse edges on the grid used), with ``b``'s
  counts summed into them.
- **Categorical**: the categories in the top list of both profiles, each with its own
  count, and everything else (``__other__``, ``__unseen__``, the categories only one
  side lists on top) in one bucket: the only counts both profiles hold exactly. PSI,
  chi-square (Cohen's w, as the daemon scores it) and Jensen-Shannon run on those bins;
  categories one side has on top and the other never saw are listed as new or gone.
- **missing**: the difference of the two missing shares.

Thresholds are the methods' fixed ``threshold`` values (``detectors.<method>.threshold``,
with ``detectors.overrides``), and KS and chi-square also need ``p < detectors.ks_alpha``,
as in fixed mode: two training sets hold far more rows than a window, and a calibrated
threshold at that size would flag differences too small to matter; a ship gate needs
an effect size. Disabled methods are skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.base import FloatArray
from detectors.feature_profiles import CategoricalProfile, NumericProfile, category_key
from detectors.profile import FeatureProfile, ReferenceProfile
from detectors.stats import chi_square, jensen_shannon, ks_from_counts, psi
from monitor.config import DetectorsConfig

NUMERIC_METHODS: tuple[str, ...] = ("psi", "ks", "missing")
CATEGORICAL_METHODS: tuple[str, ...] = ("psi", "chi2", "js", "missing")
P_VALUE_METHODS = frozenset({"ks", "chi2"})
"""Methods whose breach also needs ``p < detectors.ks_alpha`` (as in fixed mode)."""


@dataclass(frozen=True)
class MethodScore:
    """One method's score on one column, against its threshold."""

    method: str
    score: float
    threshold: float
    p_value: float | None = None
    upper: float | None = None
    """KS on one grid: the upper bound of the raw data's KS (``score`` is the lower one)."""
    error: float | None = None
    """KS across grids: how far the raw data's KS may lie from ``score``, either way."""

    @property
    def over(self) -> bool:
        """At or over its threshold (with ``p`` below ``ks_alpha`` where that applies)."""
        return bool(np.isfinite(self.score) and self.score >= self.threshold)

    @property
    def ratio(self) -> float:
        """Score over threshold."""
        return self.score / self.threshold if np.isfinite(self.score) else 0.0


@dataclass(frozen=True)
class ColumnDiff:
    """One column in both profiles: its scores and what else differs."""

    name: str
    role: str
    kind: str
    rows_a: int
    rows_b: int
    same_grid: bool
    scores: tuple[MethodScore, ...]
    breaches: tuple[str, ...]
    """The methods over threshold."""
    notes: tuple[str, ...] = ()
    """New or gone categories, a change of kind."""

    @property
    def drifted(self) -> bool:
        """Any method over its threshold, or the column changed kind."""
        return bool(self.breaches)

    @property
    def worst(self) -> float:
        """The largest score-to-threshold ratio."""
        return max((s.ratio for s in self.scores), default=0.0)


@dataclass(frozen=True)
class ProfileDiff:
    """Every column of two profiles: scored, added (only in b) or removed (only in a)."""

    version_a: str
    version_b: str
    rows_a: int
    rows_b: int
    columns: tuple[ColumnDiff, ...]
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    thresholds: dict[str, float] = field(default_factory=dict)

    @property
    def drifted(self) -> tuple[ColumnDiff, ...]:
        """The columns over threshold."""
        return tuple(c for c in self.columns if c.drifted)


class _Judge:
    """Thresholds per column and method from the ``detectors`` section."""

    def __init__(self, detectors: DetectorsConfig) -> None:
        self.detectors = detectors

    def threshold(self, column: str, method: str) -> float | None:
        override = self.detectors.overrides.get(column, {}).get(method)
        cfg = override if override is not None else self.detectors.method(method)
        if cfg is None or not cfg.enabled:
            return None
        return float(cfg.threshold)

    def breached(self, score: MethodScore) -> bool:
        if not score.over:
            return False
        if score.method in P_VALUE_METHODS and score.p_value is not None:
            return score.p_value < self.detectors.ks_alpha
        return True


def _rows(profile: FeatureProfile) -> int:
    return profile.n_ref + profile.n_missing


SHARED_EDGES = 0.5
"""Two fine grids sharing at least this share of ``a``'s edges are compared on the shared
edges alone, exactly (discrete columns, whose grids sit on the same values)."""


@dataclass(frozen=True)
class _Grid:
    """Both numeric profiles' fine counts on one set of edges, and the coarse groups."""

    a: FloatArray
    b: FloatArray
    coarse_starts: npt.NDArray[np.int64]
    exact: bool


def _on_edges(profile: NumericProfile, edges: FloatArray) -> FloatArray:
    """The profile's counts on a subset of its own edges (exact)."""
    cumulative = np.cumsum(profile.counts, dtype=np.float64)
    at = cumulative[np.searchsorted(profile.edges, edges)]
    return np.diff(np.concatenate([[0.0], at, [float(profile.n_ref)]]))


def _coarse_starts(edges: FloatArray, coarse_edges: FloatArray) -> npt.NDArray[np.int64]:
    kept = coarse_edges[np.isin(coarse_edges, edges)]
    return np.unique(np.concatenate([[0], np.searchsorted(edges, kept) + 1])).astype(np.int64)


def _common_grid(a: NumericProfile, b: NumericProfile) -> _Grid:
    """Counts of both on one grid: the edges both share when they share most of ``a``'s
    (exact), else ``a``'s edges with ``b`` read onto them (interpolated)."""
    shared = np.intersect1d(a.edges, b.edges)
    if shared.size and shared.size >= SHARED_EDGES * a.edges.size:
        return _Grid(
            _on_edges(a, shared),
            _on_edges(b, shared),
            _coarse_starts(shared, a.coarse_edges),
            exact=True,
        )
    cumulative_b = np.cumsum(b.counts, dtype=np.float64)
    at_a_edges = np.interp(a.edges, b.edges, cumulative_b[:-1])
    b_fine = np.maximum(np.diff(np.concatenate([[0.0], at_a_edges, [float(b.n_ref)]])), 0.0)
    return _Grid(a.counts.astype(np.float64), b_fine, a.coarse_starts, exact=False)


def _max_share(profile: FeatureProfile) -> float:
    return float(profile.counts.max(initial=0) / max(profile.n_ref, 1))


def _numeric_scores(
    a: NumericProfile, b: NumericProfile, smoothing: float
) -> tuple[dict[str, MethodScore], bool]:
    grid = _common_grid(a, b)
    ks = ks_from_counts(grid.a, grid.b)
    coarse_a = np.add.reduceat(grid.a, grid.coarse_starts)
    coarse_b = np.add.reduceat(grid.b, grid.coarse_starts)
    scores = {
        "psi": MethodScore("psi", float(psi(coarse_a, coarse_b, smoothing)), np.nan),
        "ks": MethodScore(
            "ks",
            float(ks.statistic),
            np.nan,
            p_value=float(ks.p_value),
            upper=float(ks.statistic_upper) if grid.exact else None,
            error=None if grid.exact else _max_share(a) + _max_share(b),
        ),
    }
    return scores, bool(grid.exact and np.array_equal(a.edges, b.edges))


def _categorical_table(
    a: CategoricalProfile, b: CategoricalProfile
) -> tuple[FloatArray, FloatArray, list[str], bool]:
    """Counts of both on the categories both list on top, plus one bucket for the rest."""
    b_top = {category_key(c): int(n) for c, n in zip(b.categories, b.counts.tolist(), strict=False)}
    common = [
        (category_key(c), int(n))
        for c, n in zip(a.categories, a.counts.tolist(), strict=False)
        if category_key(c) in b_top
    ]
    a_counts = [n for _, n in common]
    b_counts = [b_top[key] for key, _ in common]
    a_counts.append(a.n_ref - sum(a_counts))
    b_counts.append(b.n_ref - sum(b_counts))
    same = [category_key(c) for c in a.categories] == [category_key(c) for c in b.categories]
    return (
        np.asarray(a_counts, np.float64),
        np.asarray(b_counts, np.float64),
        [key for key, _ in common],
        same,
    )


def _known(profile: CategoricalProfile) -> set[str] | None:
    if profile.rare is None:
        return None
    return {category_key(c) for c in (*profile.categories, *profile.rare)}


def _category_notes(a: CategoricalProfile, b: CategoricalProfile) -> list[str]:
    notes = []
    known_a, known_b = _known(a), _known(b)
    if known_a is not None:
        new = [
            f"{c} ({n / max(b.n_ref, 1):.1%})"
            for c, n in zip(b.categories, b.counts.tolist(), strict=False)
            if category_key(c) not in known_a
        ]
        if new:
            notes.append("new in b: " + ", ".join(new))
    if known_b is not None:
        gone = [
            f"{c} ({n / max(a.n_ref, 1):.1%})"
            for c, n in zip(a.categories, a.counts.tolist(), strict=False)
            if category_key(c) not in known_b
        ]
        if gone:
            notes.append("gone in b: " + ", ".join(gone))
    return notes


def _categorical_scores(
    a: CategoricalProfile, b: CategoricalProfile, smoothing: float
) -> tuple[dict[str, MethodScore], bool]:
    table_a, table_b, _, same = _categorical_table(a, b)
    chi = chi_square(table_a, table_b)
    return {
        "psi": MethodScore("psi", float(psi(table_a, table_b, smoothing)), np.nan),
        "chi2": MethodScore("chi2", float(chi.effect), np.nan, p_value=float(chi.p_value)),
        "js": MethodScore("js", float(jensen_shannon(table_a, table_b)), np.nan),
    }, same


def compare_columns(
    a: FeatureProfile, b: FeatureProfile, role: str, detectors: DetectorsConfig
) -> ColumnDiff:
    """Score one column present in both profiles."""
    judge = _Judge(detectors)
    if a.kind != b.kind:
        return ColumnDiff(
            a.name,
            role,
            a.kind,
            _rows(a),
            _rows(b),
            same_grid=False,
            scores=(),
            breaches=("kind",),
            notes=(f"kind changed: {a.kind} in a, {b.kind} in b",),
        )
    notes: list[str] = []
    if isinstance(a, NumericProfile) and isinstance(b, NumericProfile):
        raw, same = _numeric_scores(a, b, detectors.psi_smoothing)
        methods = NUMERIC_METHODS
    else:
        assert isinstance(a, CategoricalProfile) and isinstance(b, CategoricalProfile)
        raw, same = _categorical_scores(a, b, detectors.psi_smoothing)
        methods = CATEGORICAL_METHODS
        notes = _category_notes(a, b)
    raw["missing"] = MethodScore("missing", abs(a.missing_rate - b.missing_rate), np.nan)
    scores = []
    for method in methods:
        threshold = judge.threshold(a.name, method)
        if threshold is None:
            continue
        s = raw[method]
        scores.append(
            MethodScore(method, s.score, threshold, s.p_value, upper=s.upper, error=s.error)
        )
    breaches = tuple(s.method for s in scores if judge.breached(s))
    return ColumnDiff(
        a.name, role, a.kind, _rows(a), _rows(b), same, tuple(scores), breaches, tuple(notes)
    )


def _columns(profile: ReferenceProfile) -> dict[str, tuple[FeatureProfile, str]]:
    out = {f.name: (f, "feature") for f in profile.features}
    for role, prof in (("prediction", profile.prediction), ("label", profile.label)):
        if prof is not None:
            out[prof.name] = (prof, role)
    return out


def compare_profiles(
    a: ReferenceProfile, b: ReferenceProfile, detectors: DetectorsConfig | None = None
) -> ProfileDiff:
    """Score every column both profiles hold; ``b`` against ``a``, the reference."""
    detectors = detectors if detectors is not None else DetectorsConfig()
    cols_a, cols_b = _columns(a), _columns(b)
    shared = [name for name in cols_a if name in cols_b]
    diffs = [compare_columns(cols_a[n][0], cols_b[n][0], cols_a[n][1], detectors) for n in shared]
    diffs.sort(key=lambda d: (not d.drifted, -d.worst))
    thresholds = {}
    for method in ("psi", "ks", "chi2", "js", "missing"):
        cfg = detectors.method(method)
        if cfg is not None and cfg.enabled:
            thresholds[method] = float(cfg.threshold)
    first_a, first_b = a.features[0], b.features[0]
    return ProfileDiff(
        version_a=a.version,
        version_b=b.version,
        rows_a=_rows(first_a),
        rows_b=_rows(first_b),
        columns=tuple(diffs),
        added=tuple(n for n in cols_b if n not in cols_a),
        removed=tuple(n for n in cols_a if n not in cols_b),
        thresholds=thresholds,
    )


def _json_number(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def diff_as_dict(diff: ProfileDiff) -> dict[str, Any]:
    """Plain data for ``--json``."""
    return {
        "a": {"version": diff.version_a, "rows": diff.rows_a},
        "b": {"version": diff.version_b, "rows": diff.rows_b},
        "thresholds": diff.thresholds,
        "drifted": [c.name for c in diff.drifted],
        "added": list(diff.added),
        "removed": list(diff.removed),
        "columns": [
            {
                "name": c.name,
                "role": c.role,
                "kind": c.kind,
                "rows_a": c.rows_a,
                "rows_b": c.rows_b,
                "same_grid": c.same_grid,
                "drifted": c.drifted,
                "breaches": list(c.breaches),
                "notes": list(c.notes),
                "scores": {
                    s.method: {
                        "score": _json_number(s.score),
                        "threshold": s.threshold,
                        "p_value": _json_number(s.p_value),
                        "upper": _json_number(s.upper),
                        "error": _json_number(s.error),
                    }
                    for s in c.scores
                },
            }
            for c in diff.columns
        ],
    }


_TABLE_METHODS = ("psi", "ks", "chi2", "js", "missing")


def _cell(column: ColumnDiff, method: str) -> str:
    for s in column.scores:
        if s.method == method:
            mark = "*" if method in column.breaches else " "
            return f"{s.score:.4f}{mark}" if np.isfinite(s.score) else "n/a "
    return "-"


def render_diff(diff: ProfileDiff, names: Sequence[str] = ("a", "b")) -> str:
    """The text of ``driftd reference diff``: one row per column, drifting ones first."""
    name_a, name_b = names
    lines = [
        f"a: {name_a} (version {diff.version_a}, {diff.rows_a:,} rows)",
        f"b: {name_b} (version {diff.version_b}, {diff.rows_b:,} rows)",
        "thresholds: " + ", ".join(f"{m} {t:g}" for m, t in diff.thresholds.items()),
        "",
    ]
    width = max(
        [len(c.name) + (len(c.role) + 3 if c.role != "feature" else 0) for c in diff.columns] + [6]
    )
    header = f"{'column':<{width}}  {'kind':<11}" + "".join(f"{m:>10}" for m in _TABLE_METHODS)
    lines.append(header + "  verdict")
    for c in diff.columns:
        label = c.name if c.role == "feature" else f"{c.name} ({c.role})"
        cells = "".join(f"{_cell(c, m):>10}" for m in _TABLE_METHODS)
        verdict = "DRIFT " + ",".join(c.breaches) if c.drifted else "ok"
        lines.append(f"{label:<{width}}  {c.kind:<11}{cells}  {verdict}")
        if not c.same_grid and c.kind == NumericProfile.kind and c.scores:
            ks = next((s for s in c.scores if s.method == "ks"), None)
            if ks is not None and ks.error is not None:
                lines.append(
                    f"{'':<{width}}  (other bins: b read onto a's; ks within ±{ks.error:.3f})"
                )
        lines += [f"{'':<{width}}  {note}" for note in c.notes]
    lines.append("")
    drifted = diff.drifted
    lines.append(
        f"{len(drifted)} of {len(diff.columns)} columns over threshold (marked *)"
        + (": " + ", ".join(c.name for c in drifted) if drifted else "")
    )
    if diff.added:
        lines.append("only in b (added): " + ", ".join(diff.added))
    if diff.removed:
        lines.append("only in a (removed): " + ", ".join(diff.removed))
    return "\n".join(lines)
