"""A realistic ``driftd backtest`` result dict, built in code, for the report tests.

It follows the structure the backtest writes (``--json``): windows with scores,
thresholds and verdicts for every method, label windows with ADWIN, label chi-square
and fairness, performance per label window, transitions and alerts derived from the
verdicts with a simple hysteresis, data-quality counts and distributions. Segment
``west`` drifts in ``income`` (severely) and ``employment_type`` from the middle of
the data; ``income`` drifts back near the end, so one alert resolves and another is
still firing when the data ends. Numbers are seeded, finite and NaN-free.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

START_TS = 1_796_000_000.0
WINDOW_SECONDS = 300.0
SEGMENTS = ("north", "south", "west")
NUMERIC = (
    "income",
    "loan_amount",
    "age",
    "debt_to_income",
    "utilization",
    "tenure_months",
    "num_accounts",
)
CATEGORICAL = ("employment_type", "loan_purpose", "region")
NUMERIC_METHODS = ("psi", "ks")
CATEGORICAL_METHODS = ("chi2", "js")
THRESHOLDS = {"psi": 0.2, "ks": 0.08, "chi2": 0.05, "js": 0.1, "adwin": 1.0, "fairness": 0.1}
PERFORMANCE_METRICS = ("accuracy", "log_loss")
FAIRNESS_COLUMNS = ("employment_type",)
DRIFTING = {("west", "income"): 6.0, ("west", "employment_type"): 2.2}
"""Columns that drift, and how many thresholds over they go at the peak."""
BINS = 10


def verdict_of(ratio: float) -> str:
    """The verdict a score of ``ratio`` times the threshold gets."""
    if ratio >= 2.0:
        return "severe"
    if ratio >= 1.0:
        return "breach"
    return "band" if ratio >= 0.8 else "clear"


def _drift_ratio(segment: str, column: str, i: int, n: int, rng: np.random.Generator) -> float:
    peak = DRIFTING.get((segment, column))
    calm = float(rng.uniform(0.05, 0.7))
    if peak is None or i < n // 2:
        return calm
    if column == "income" and i >= (4 * n) // 5:
        return calm  # income drifts back: its alerts resolve
    return peak * min(1.0, (i - n // 2 + 1) / 3) + calm * 0.2


def _alerts_from(
    model: str, windows: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Fire after two windows over the threshold in a row, resolve after two under it."""
    series: dict[tuple[str, str, str], list[tuple[float, float, float, str]]] = {}
    for w in windows:
        for method, columns in w["scores"].items():
            if method in ("samples", "schema", "share"):
                continue
            for column, score in columns.items():
                key = (w["segment"], column, method)
                series.setdefault(key, []).append(
                    (
                        w["window_end_ts"],
                        score,
                        w["thresholds"][method][column],
                        w["verdicts"][method][column],
                    )
                )
    transitions: list[dict[str, Any]] = []
    alerts: list[dict[str, Any]] = []
    for (segment, column, method), points in sorted(series.items()):
        firing: dict[str, Any] | None = None
        over = under = 0
        for ts, score, threshold, verdict in points:
            is_over = verdict in ("breach", "severe")
            over, under = (over + 1, 0) if is_over else (0, under + 1)
            dedup_key = f"{model}/{segment}/{column}/{method}"
            base = {
                "dedup_key": dedup_key,
                "segment": segment,
                "column": column,
                "method": method,
                "window_end_ts": ts,
                "score": score,
                "threshold": threshold,
            }
            if firing is None and over >= 2:
                firing = {
                    "dedup_key": dedup_key,
                    "segment": segment,
                    "column": column,
                    "method": method,
                    "fired_at_ts": ts,
                    "resolved_at_ts": None,
                    "duration_s": None,
                    "peak_score": score,
                }
                transitions.append({**base, "to": "firing"})
            elif firing is not None:
                firing["peak_score"] = max(firing["peak_score"], score)
                if under >= 2:
                    firing["resolved_at_ts"] = ts
                    firing["duration_s"] = ts - firing["fired_at_ts"]
                    transitions.append({**base, "to": "resolved"})
                    alerts.append(firing)
                    firing = None
        if firing is not None:
            alerts.append(firing)
    transitions.sort(key=lambda t: (t["window_end_ts"], t["dedup_key"]))
    alerts.sort(key=lambda a: (a["fired_at_ts"], a["dedup_key"]))
    return transitions, alerts


def _shares(rng: np.random.Generator, n: int) -> list[float]:
    raw = rng.dirichlet(np.full(n, 4.0))
    return [round(float(x), 6) for x in raw]


def _distributions(
    windows: list[dict[str, Any]], columns: list[str], rng: np.random.Generator
) -> list[dict[str, Any]]:
    """Reference and current shares for each column at its worst window."""
    out = []
    for segment in sorted({w["segment"] for w in windows}):
        own = [w for w in windows if w["segment"] == segment and w["kind"] == "window"]
        for column in columns:
            categorical = column in CATEGORICAL
            methods = CATEGORICAL_METHODS if categorical else NUMERIC_METHODS
            method = methods[0]
            worst = max(own, key=lambda w: w["scores"][method][column] / THRESHOLDS[method])
            n = 5 if categorical else BINS
            reference = _shares(rng, n)
            shift = DRIFTING.get((segment, column), 0.0)
            current = list(reference)
            if shift:
                current = _shares(rng, n)
            entry: dict[str, Any] = {
                "segment": segment,
                "column": column,
                "method": method,
                "window_end_ts": worst["window_end_ts"],
                "kind": "categorical" if categorical else "numeric",
                "reference": reference,
                "current": current,
            }
            if categorical:
                entry["categories"] = [f"{column}_{k}" for k in range(n)]
            else:
                entry["edges"] = [round(10.0 * k, 3) for k in range(1, n)]
            out.append(entry)
    return out


def build_backtest(
    *,
    n_windows: int = 24,
    segments: tuple[str, ...] = SEGMENTS,
    n_extra_numeric: int = 0,
    extra_columns: tuple[str, ...] = (),
    labels: bool = True,
    drift: bool = True,
    seed: int = 7,
) -> dict[str, Any]:
    """A backtest result: ``n_windows`` windows per segment over the demo's features.

    ``n_extra_numeric`` adds calm numeric features ``num_00``...; ``extra_columns``
    adds numeric features with the given names (a hostile name, say). ``labels=False``
    leaves out label windows, performance and fairness; ``drift=False`` keeps every
    column calm, so nothing pages.
    """
    rng = np.random.default_rng(seed)
    model = "credit-risk"
    numeric = [*NUMERIC, *(f"num_{k:02d}" for k in range(n_extra_numeric)), *extra_columns]
    columns = [*numeric, *CATEGORICAL, "__prediction__"]
    windows: list[dict[str, Any]] = []
    performance: list[dict[str, Any]] = []
    for segment in segments:
        for i in range(n_windows):
            ts = START_TS + (i + 1) * WINDOW_SECONDS
            rows = 500 + int(rng.integers(0, 50))
            scores: dict[str, dict[str, float]] = {
                m: {} for m in (*NUMERIC_METHODS, *CATEGORICAL_METHODS)
            }
            thresholds: dict[str, dict[str, float]] = {m: {} for m in scores}
            verdicts: dict[str, dict[str, str]] = {m: {} for m in scores}
            for column in columns:
                methods = CATEGORICAL_METHODS if column in CATEGORICAL else NUMERIC_METHODS
                for method in methods:
                    ratio = _drift_ratio(segment, column, i, n_windows, rng) if drift else 0.3
                    threshold = THRESHOLDS[method] * (1.0 + 20.0 / rows)
                    scores[method][column] = round(ratio * threshold, 6)
                    thresholds[method][column] = round(threshold, 6)
                    skip = segment == "south" and i == 0  # too few rows in its first window
                    verdicts[method][column] = "skip" if skip else verdict_of(ratio)
            scores["samples"] = {c: float(rows) for c in columns}
            thresholds["samples"] = {c: 0.0 for c in columns}
            verdicts["samples"] = {c: "clear" for c in columns}
            windows.append(
                {
                    "kind": "window",
                    "segment": segment,
                    "index": i,
                    "window_end_ts": ts,
                    "rows": rows,
                    "scores": scores,
                    "thresholds": thresholds,
                    "verdicts": verdicts,
                    "missing_rate": {c: round(float(rng.uniform(0, 0.02)), 4) for c in columns},
                }
            )
            if not labels or i % 2:
                continue
            error_ratio = 3.0 if drift and segment == "west" and i >= n_windows // 2 else 0.0
            label_ratio = 1.5 if drift and segment == "west" and i >= n_windows // 2 else 0.4
            fair = {c: round(float(rng.uniform(0.01, 0.06)), 6) for c in FAIRNESS_COLUMNS}
            windows.append(
                {
                    "kind": "label_window",
                    "segment": segment,
                    "index": i // 2,
                    "window_end_ts": ts,
                    "rows": rows // 2,
                    "scores": {
                        "adwin": {"__error__": error_ratio},
                        "chi2": {"__label__": round(label_ratio * THRESHOLDS["chi2"], 6)},
                        "fairness": fair,
                    },
                    "thresholds": {
                        "adwin": {"__error__": 1.0},
                        "chi2": {"__label__": THRESHOLDS["chi2"]},
                        "fairness": {c: 0.1 for c in fair},
                    },
                    "verdicts": {
                        "adwin": {"__error__": verdict_of(error_ratio)},
                        "chi2": {"__label__": verdict_of(label_ratio)},
                        "fairness": {c: verdict_of(v / 0.1) for c, v in fair.items()},
                    },
                    "missing_rate": {"__label__": 0.0},
                }
            )
            accuracy = 0.86 - (0.2 if error_ratio else 0.0) + float(rng.normal(0, 0.01))
            performance.append(
                {
                    "segment": segment,
                    "window_end_ts": ts,
                    "metric": "accuracy",
                    "value": round(accuracy, 6),
                }
            )
            performance.append(
                {
                    "segment": segment,
                    "window_end_ts": ts,
                    "metric": "log_loss",
                    "value": round(-math.log(max(accuracy, 1e-3)), 6),
                }
            )
    transitions, alerts = _alerts_from(model, windows)
    rejected = {"bad_json": 3, "wrong_model": 12, "missing_ts": 1}
    quality: dict[str, Any] = {
        "missing": {s: {c: int(rng.integers(0, 40)) for c in columns[:4]} for s in segments},
        "invalid": {s: {"age": int(rng.integers(0, 5))} for s in segments},
        "unseen": {s: {"loan_purpose": int(rng.integers(0, 30))} for s in segments},
        "rejected": rejected,
    }
    events = sum(w["rows"] for w in windows if w["kind"] == "window")
    labelled = sum(w["rows"] for w in windows if w["kind"] == "label_window")
    return {
        "model": model,
        "reference_version": "ref-2026-11-30",
        "config": {
            "window_size_events": 500,
            "min_consecutive_breaches": 2,
            "source": "events.jsonl",
        },
        "counts": {
            "events_read": events + 16,
            "events_accepted": events,
            "rejected": dict(rejected),
            "labels_read": labelled,
            "labels_joined": labelled,
            "windows": len(windows),
        },
        "windows": windows,
        "performance": performance,
        "transitions": transitions,
        "alerts": alerts,
        "quality": quality,
        "distributions": _distributions(windows, columns, rng),
    }
