"""A detectors-only walk through the built-in demo stream (no Kafka, no daemon).

It profiles a warm-up of the simulated credit-risk stream as the reference, then
feeds tumbling windows per segment through PSI, KS and chi-square, and the
misclassification stream of every segment through the batched ADWIN. The ``west``
segment drifts at known points; the table shows which detectors notice, and when.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from detectors.adwin import BatchADWIN
from detectors.profile import build_profile
from detectors.window_detectors import ChiSquareDetector, KSDetector, PSIDetector
from monitor.demo_stream import (
    CATEGORICAL_FEATURES,
    NUMERIC_FEATURES,
    SEGMENTS,
    DemoBatch,
    DemoStream,
)


@dataclass(frozen=True)
class WindowReport:
    """What one closed window per segment showed."""

    events_seen: int
    segment: str
    psi_max: float
    psi_feature: str
    ks_drifted: list[str]
    chi2_drifted: list[str]
    adwin_detections: int


def _columns(batch: DemoBatch) -> dict[str, np.ndarray]:
    cols: dict[str, np.ndarray] = dict(batch.numeric)
    cols.update({k: v for k, v in batch.categorical.items() if k != "region"})
    return cols


def run_demo(
    events: int = 200_000,
    warmup: int = 30_000,
    window: int = 10_000,
    batch_size: int = 5_000,
    emit: Callable[[WindowReport], None] = print,
) -> list[WindowReport]:
    """Stream ``events`` demo events after a warm-up; emit a report per closed window."""
    stream = DemoStream()
    reference = stream.next_batch(warmup)
    categorical = [c for c in CATEGORICAL_FEATURES if c != "region"]
    profile = build_profile(_columns(reference), categorical=categorical)
    features = list(profile.features)
    numeric = [f for f in features if f.name in NUMERIC_FEATURES]
    cats = [f for f in features if f.name in categorical]
    n_seg = len(SEGMENTS)
    psi_det = PSIDetector(features, n_seg, threshold=0.25)
    ks_det = KSDetector(numeric, n_seg, alpha=0.01, min_effect=0.05)
    chi_det = ChiSquareDetector(cats, n_seg, alpha=0.01, min_effect=0.1)
    adwin = BatchADWIN(n_seg)
    order = [f.name for f in features]
    num_idx = [order.index(f.name) for f in numeric]
    cat_idx = [order.index(f.name) for f in cats]

    reports: list[WindowReport] = []
    in_window = 0
    detections = np.zeros(n_seg, dtype=np.int64)
    seen = warmup
    while seen < warmup + events:
        batch = stream.next_batch(batch_size)
        seen += len(batch)
        segment = np.searchsorted(np.array(SEGMENTS), batch.segment).astype(np.int64)
        matrix = np.column_stack(
            [
                batch.numeric[f.name]
                if f.name in NUMERIC_FEATURES
                else f.codes(batch.categorical[f.name])  # type: ignore[union-attr]
                for f in features
            ]
        )
        psi_res = psi_det.update(segment, matrix)
        ks_res = ks_det.update(segment, matrix[:, num_idx])
        chi_res = chi_det.update(segment, matrix[:, cat_idx])
        errors = ((batch.prediction > 0.5) != (batch.label == 1)).astype(np.float64)
        detections += adwin.update(segment, errors).drift
        in_window += len(batch)
        if in_window < window * n_seg:
            continue
        for s, name in enumerate(SEGMENTS):
            worst = int(np.nanargmax(psi_res.statistic[s]))
            report = WindowReport(
                events_seen=seen,
                segment=name,
                psi_max=float(psi_res.statistic[s, worst]),
                psi_feature=order[worst],
                ks_drifted=[numeric[i].name for i in np.flatnonzero(ks_res.drift[s])],
                chi2_drifted=[cats[i].name for i in np.flatnonzero(chi_res.drift[s])],
                adwin_detections=int(detections[s]),
            )
            reports.append(report)
            emit(report)
        for det in (psi_det, ks_det, chi_det):
            det.reset()
        in_window = 0
    return reports


def format_report(report: WindowReport) -> str:
    """One human-readable line per segment window."""
    flag = "DRIFT" if report.psi_max > 0.25 or report.ks_drifted else "ok   "
    return (
        f"{report.events_seen:>8}  {report.segment:<6} {flag}  "
        f"psi_max={report.psi_max:6.3f} ({report.psi_feature:<15}) "
        f"ks={','.join(report.ks_drifted) or '-':<30} "
        f"chi2={','.join(report.chi2_drifted) or '-':<16} "
        f"adwin_detections={report.adwin_detections}"
    )
