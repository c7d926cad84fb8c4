"""Label drift: the label prior of each segment's joined pairs against the reference's."""

from __future__ import annotations

import logging

import numpy as np
import structlog

from benchmarks.concept_pairs import LABEL_DELAY, START_TS, Stream, feed, settings
from detectors.profile import build_profile
from detectors.rules import BREACH
from monitor.engine.labels.monitor import LABEL_COLUMN, LabelMonitor
from monitor.engine.results import WindowResults


def _stream(seed: int, positive: list[tuple[int, float]]) -> Stream:
    """Binary labels with the given positive rate per stretch; predictions always right."""
    rng = np.random.default_rng(seed)
    label = np.concatenate([(rng.random(n) < rate).astype(np.float64) for n, rate in positive])
    score = np.where(label == 1.0, 0.8, 0.2)
    return Stream(score, label, START_TS + np.arange(label.size, dtype=np.float64))


def _label_rows(stream: Stream) -> list[WindowResults]:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    labels = np.random.default_rng(1).permutation(np.repeat(["0", "1"], [8_000, 2_000]))
    reference = build_profile({"y": labels}, categorical=["y"])
    monitor = LabelMonitor(settings(), reference.features[0])
    out: list[WindowResults] = []
    for lo in range(0, len(stream), 500):
        outcome = feed(monitor, stream, lo, min(len(stream), lo + 500))
        out += [r for r in outcome.results if r.columns == (LABEL_COLUMN,)]
    return out


def test_label_drift_rows_hold_only_the_label_column_and_judge_the_prior() -> None:
    """Label windows score __label__ alone (no segment rows) and breach when the prior moves."""
    rows = _label_rows(_stream(0, [(20_000, 0.2), (10_000, 0.3)]))
    assert len(rows) == 15  # 30,000 pairs in windows of 2,000
    breached = [bool(r.verdicts["psi"][0, 0] >= BREACH) for r in rows]
    assert not any(breached[:10])  # 20% as in the reference
    assert all(breached[10:])  # 30%: drift in every window
    assert all(r.window_end_ts[0] > START_TS + LABEL_DELAY for r in rows)
