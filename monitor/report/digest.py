"""What the report shows, worked out from a backtest's result dict (no plotting here).

The backtest hands over plain JSON-able data (the same dict ``--json`` writes). This
module checks the parts the report reads, and turns them into series per
``(segment, column, method)``, alert spans, the ranking of drifting columns and the
pass/fail rows of the test table. A part of the dict of the wrong shape raises
``ReportError`` naming it, so a hand-edited JSON file gets a clear message.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from itertools import pairwise
from typing import Any

from monitor.errors import ReportError
from monitor.report.parts import (
    COUNT_METHODS,
    DRIFT_METHODS,
    DRIFT_VERDICTS,
    FAIRNESS,
    VERDICT_RANK,
    AlertSpan,
    CheckRow,
    Digest,
    Distribution,
    DistributionPick,
    ScorePoint,
    ScoreSeries,
    SegmentDrift,
)

# -- reading the dict -----------------------------------------------------------------


def _get(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise ReportError("missing", key=f"{where}.{key}" if where else key)
    return _typed(data[key], kind, f"{where}.{key}" if where else key)


def _typed(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    if kind is float or kind == (float,):
        kind = (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ReportError(f"expected {names}, got {type(value).__name__}", key=where)
    if isinstance(value, float) and not math.isfinite(value):
        raise ReportError(f"expected a finite number, got {value}", key=where)
    return value


def _number(data: Mapping[str, Any], key: str, where: str) -> float:
    return float(_get(data, key, (int, float), where))


def _optional_number(data: Mapping[str, Any], key: str, where: str) -> float | None:
    value = data.get(key)
    return None if value is None else float(_typed(value, (int, float), f"{where}.{key}"))


def _counts_table(value: Any, where: str) -> dict[str, int]:
    table = _typed(value, dict, where)
    return {str(k): int(_typed(v, int, f"{where}.{k}")) for k, v in table.items()}


def _nested_counts(value: Any, where: str) -> dict[str, dict[str, int]]:
    outer = _typed(value, dict, where)
    return {str(k): _counts_table(v, f"{where}.{k}") for k, v in outer.items()}


def _method_table(window: Mapping[str, Any], key: str, where: str) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = _typed(window.get(key, {}), dict, f"{where}.{key}")
    for method, columns in table.items():
        _typed(columns, dict, f"{where}.{key}.{method}")
    return table


def _series(windows: list[Any]) -> dict[tuple[str, str, str], ScoreSeries]:
    series: dict[tuple[str, str, str], ScoreSeries] = {}
    for i, window in enumerate(windows):
        where = f"windows[{i}]"
        _typed(window, dict, where)
        segment = str(_get(window, "segment", str, where))
        ts = _number(window, "window_end_ts", where)
        scores = _method_table(window, "scores", where)
        thresholds = _method_table(window, "thresholds", where)
        verdicts = _method_table(window, "verdicts", where)
        for method, columns in scores.items():
            if method in COUNT_METHODS:
                continue
            for column, score in columns.items():
                at = f"{where}.scores.{method}.{column}"
                raw_threshold = thresholds.get(method, {}).get(column)
                if score is None or raw_threshold is None:
                    continue  # not finite (the backtest writes null): nothing to draw or rank
                value = float(_typed(score, (int, float), at))
                threshold = float(
                    _typed(raw_threshold, (int, float), f"{where}.thresholds.{method}.{column}")
                )
                verdict = verdicts.get(method, {}).get(column)
                if verdict is None:  # label-side windows carry scores and thresholds only
                    verdict = "breach" if threshold > 0 and value >= threshold else "clear"
                if verdict not in VERDICT_RANK:
                    raise ReportError(
                        f"unknown verdict {verdict!r} (expected one of {', '.join(VERDICT_RANK)})",
                        key=f"{where}.verdicts.{method}.{column}",
                    )
                key = (segment, str(column), str(method))
                if key not in series:
                    series[key] = ScoreSeries(segment, str(column), str(method))
                series[key].points.append(ScorePoint(ts, value, threshold, verdict))
    for s in series.values():
        s.points.sort(key=lambda p: p.window_end_ts)
    return series


def _alerts(raw: list[Any]) -> list[AlertSpan]:
    spans = []
    for i, alert in enumerate(raw):
        where = f"alerts[{i}]"
        _typed(alert, dict, where)
        spans.append(
            AlertSpan(
                dedup_key=str(_get(alert, "dedup_key", str, where)),
                segment=str(_get(alert, "segment", str, where)),
                column=str(_get(alert, "column", str, where)),
                method=str(_get(alert, "method", str, where)),
                fired_at_ts=_number(alert, "fired_at_ts", where),
                resolved_at_ts=_optional_number(alert, "resolved_at_ts", where),
                duration_s=_optional_number(alert, "duration_s", where),
                peak_score=_optional_number(alert, "peak_score", where),
            )
        )
    return sorted(spans, key=lambda a: (a.segment, a.fired_at_ts, a.dedup_key))


def bin_labels(edges: list[float], n_bins: int, where: str) -> list[str]:
    """Names of numeric bins, as intervals of their edges.

    A numeric profile has either the inner edges (``n_bins - 1`` of them: the first and
    last bins are open) or all of them (``n_bins + 1``); a bin holds values above its
    lower edge up to its upper edge, as driftd bins them.
    """
    fmt = "{:.6g}".format
    if len(edges) == n_bins - 1:
        if n_bins == 1:
            return ["all"]
        inner = [f"({fmt(a)}, {fmt(b)}]" for a, b in pairwise(edges)]
        return [f"(-inf, {fmt(edges[0])}]", *inner, f"({fmt(edges[-1])}, inf)"]
    if len(edges) == n_bins + 1:
        return [f"({fmt(a)}, {fmt(b)}]" for a, b in pairwise(edges)]
    raise ReportError(
        f"{len(edges)} edges do not bound {n_bins} bins (expected {n_bins - 1} or {n_bins + 1})",
        key=f"{where}.edges",
    )


def _distributions(raw: list[Any]) -> list[Distribution]:
    out = []
    for i, entry in enumerate(raw):
        where = f"distributions[{i}]"
        _typed(entry, dict, where)
        kind = str(_get(entry, "kind", str, where))
        reference = [
            float(_typed(v, (int, float), where)) for v in _get(entry, "reference", list, where)
        ]
        current = [
            float(_typed(v, (int, float), where)) for v in _get(entry, "current", list, where)
        ]
        if len(reference) != len(current):
            raise ReportError(
                f"{len(reference)} reference shares but {len(current)} current ones",
                key=f"{where}.current",
            )
        if kind == "categorical":
            labels = [str(c) for c in _get(entry, "categories", list, where)]
            if len(labels) != len(reference):
                raise ReportError(
                    f"{len(labels)} categories for {len(reference)} shares",
                    key=f"{where}.categories",
                )
        elif kind == "numeric" and isinstance(entry.get("bins"), list):
            labels = [str(b) for b in entry["bins"]]  # the backtest's own names of the bins
            if len(labels) != len(reference):
                raise ReportError(
                    f"{len(labels)} bins for {len(reference)} shares", key=f"{where}.bins"
                )
        elif kind == "numeric":
            edges = [
                float(_typed(e, (int, float), where)) for e in _get(entry, "edges", list, where)
            ]
            labels = bin_labels(edges, len(reference), where)
        else:
            raise ReportError(
                f"unknown kind {kind!r} (numeric or categorical)", key=f"{where}.kind"
            )
        out.append(
            Distribution(
                segment=str(_get(entry, "segment", str, where)),
                column=str(_get(entry, "column", str, where)),
                method=str(_get(entry, "method", str, where)),
                window_end_ts=_number(entry, "window_end_ts", where),
                kind=kind,
                labels=labels,
                reference=reference,
                current=current,
            )
        )
    return out


def _performance(raw: list[Any]) -> dict[tuple[str, str], list[tuple[float, float]]]:
    out: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for i, entry in enumerate(raw):
        where = f"performance[{i}]"
        _typed(entry, dict, where)
        key = (str(_get(entry, "segment", str, where)), str(_get(entry, "metric", str, where)))
        value = _optional_number(entry, "value", where)
        if value is not None:  # null: not finite (a metric undefined on this window)
            out[key].append((_number(entry, "window_end_ts", where), value))
    return {k: sorted(v) for k, v in sorted(out.items())}


# -- deciding what to show ------------------------------------------------------------


def _column_rank(series: list[ScoreSeries], paged: set[tuple[str, str, str]]) -> tuple[bool, float]:
    """Paged columns first, then by how far their worst window went over its threshold."""
    pages = any((s.segment, s.column, s.method) in paged for s in series)
    worst = max((w.ratio for s in series if (w := s.worst) is not None), default=0.0)
    return pages, worst


def _segment_drift(
    segment: str,
    series: dict[tuple[str, str, str], ScoreSeries],
    paged: set[tuple[str, str, str]],
    top_columns: int,
) -> SegmentDrift:
    own = {
        (column, method): s
        for (seg, column, method), s in series.items()
        if seg == segment
        and method != FAIRNESS
        and (method in DRIFT_METHODS or (seg, column, method) in paged)
    }
    by_column: dict[str, list[ScoreSeries]] = defaultdict(list)
    for (column, _), s in own.items():
        by_column[column].append(s)
    ranked = sorted(by_column, key=lambda c: (*(-x for x in _column_rank(by_column[c], paged)), c))
    return SegmentDrift(segment, ranked[:top_columns], ranked[top_columns:], own)


def digest(data: Mapping[str, Any], *, top_columns: int = 8) -> Digest:
    """Check ``data`` (a backtest result) and work out every part of the report."""
    _typed(data, dict, "report data")
    windows = _get(data, "windows", list, "")
    series = _series(windows)
    alerts = _alerts(_get(data, "alerts", list, ""))
    paged = {(a.segment, a.column, a.method) for a in alerts}
    quality_raw = _typed(data.get("quality", {}), dict, "quality")
    quality = {
        part: _nested_counts(quality_raw.get(part, {}), f"quality.{part}")
        for part in ("missing", "invalid", "unseen")
    }
    counts = _typed(data.get("counts", {}), dict, "counts")
    rejected = _counts_table(
        quality_raw.get("rejected", counts.get("rejected", {})), "quality.rejected"
    )
    # Segments that paged come first, so the drift a reader is looking for leads.
    paged_segments = {a.segment for a in alerts}
    segments = sorted(
        {str(w["segment"]) for w in windows} | paged_segments,
        key=lambda seg: (seg not in paged_segments, seg),
    )
    times = [float(w["window_end_ts"]) for w in windows]
    checks = [
        CheckRow(
            segment=s.segment,
            column=s.column,
            method=s.method,
            windows_tested=len(s.tested),
            worst_score=worst.score if (worst := s.worst) else None,
            threshold=worst.threshold if worst else None,
            worst_verdict=s.worst_verdict,
            pages=key in paged,
        )
        for key, s in sorted(series.items())
    ]
    status_order = {"fail": 0, "warn": 1, "pass": 2}
    checks.sort(key=lambda t: (status_order[t.status], t.segment, t.column, t.method))
    reference_version = data.get("reference_version")
    return Digest(
        model=str(_get(data, "model", str, "")),
        reference_version=None if reference_version is None else str(reference_version),
        config=dict(_typed(data.get("config", {}), dict, "config")),
        counts=dict(counts),
        first_ts=min(times, default=None),
        last_ts=max(times, default=None),
        segments=segments,
        drift=[_segment_drift(seg, series, paged, top_columns) for seg in segments],
        fairness=[s for (_, _, method), s in sorted(series.items()) if method == FAIRNESS],
        performance=_performance(data.get("performance", [])),
        label_windows=sum(1 for w in windows if w.get("kind") == "label_window"),
        alerts=alerts,
        distributions=_distributions(_typed(data.get("distributions", []), list, "distributions")),
        quality=quality,
        rejected=rejected,
        rejected_examples={
            str(k): str(v)
            for k, v in _typed(
                quality_raw.get("rejected_examples", {}), dict, "quality.rejected_examples"
            ).items()
        },
        inputs={
            str(k): str(v)
            for k, v in _typed(data.get("inputs", {}), dict, "inputs").items()
            if v is not None
        },
        checks=checks,
    )


def worst_distributions(result: Digest, *, per_segment: int = 4) -> list[DistributionPick]:
    """For the most drifting columns of each segment, their distribution at their worst window.

    A column drifts when some window of it went over its threshold. Each gets the entry
    at its worst window when there is one, else its latest entry.
    """
    by_column: dict[tuple[str, str], list[Distribution]] = defaultdict(list)
    for d in result.distributions:
        by_column[(d.segment, d.column)].append(d)
    picks = []
    for drift in result.drift:
        ranked = [*drift.shown, *drift.left_out]
        series = drift.series.values()
        drifting = [
            c
            for c in ranked
            if any(s.column == c and s.worst_verdict in DRIFT_VERDICTS for s in series)
        ]
        chosen, not_recorded = [], []
        for column in drifting[:per_segment]:
            entries = by_column.get((drift.segment, column))
            if not entries:
                not_recorded.append(column)
                continue
            worst = max(
                (w for s in series if s.column == column and (w := s.worst)),
                key=lambda p: p.ratio,
                default=None,
            )
            at_worst = [d for d in entries if worst and d.window_end_ts == worst.window_end_ts]
            chosen.append(at_worst[0] if at_worst else max(entries, key=lambda d: d.window_end_ts))
        picks.append(DistributionPick(drift.segment, chosen, not_recorded, drifting[per_segment:]))
    return picks
