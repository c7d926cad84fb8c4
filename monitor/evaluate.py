"""Closed windows against the reference: PSI, KS, chi-square and JS, all windows at once.

Numeric columns get PSI on the coarse bins and KS on the fine grid; categorical
columns get PSI, chi-square (its score is Cohen's w, an effect size, and it also
carries a p-value) and Jensen-Shannon distance on their categories. Every method
runs once per call, vectorized over ``windows x columns``.
"""

from __future__ import annotations

import numpy as np

from detectors.base import FloatArray, IntArray
from detectors.binning import Binner
from detectors.feature_profiles import NumericProfile
from detectors.stats import chi_square, jensen_shannon, ks_from_counts, psi
from monitor.config import DetectorsConfig
from monitor.results import WindowResults
from monitor.windows import ClosedWindows


class Evaluator:
    """Scores closed windows; the reference is one slot-count row, or one per segment."""

    def __init__(
        self,
        model: str,
        binner: Binner,
        reference: IntArray,
        detectors: DetectorsConfig,
    ) -> None:
        self.model = model
        self.binner = binner
        self.detectors = detectors
        self.columns = tuple(p.name for p in binner.profiles)
        self.numeric = np.array([isinstance(p, NumericProfile) for p in binner.profiles])
        self.pooled = np.asarray(reference, dtype=np.int64)
        self.own: dict[int, IntArray] = {}

    def set_segment_reference(self, segment: int, counts: IntArray) -> None:
        """Give one segment its own reference (from a warm-up); others use the pooled one."""
        self.own[segment] = np.asarray(counts, dtype=np.int64).copy()

    def reference_for(self, segments: IntArray) -> IntArray:
        """The reference slot counts of each of ``segments``, ``(k, F, stride)``."""
        out = np.broadcast_to(self.pooled, (segments.size, *self.pooled.shape)).copy()
        for row, segment in enumerate(segments.tolist()):
            own = self.own.get(segment)
            if own is not None:
                out[row] = own
        return out

    def evaluate(self, closed: ClosedWindows, segment_names: tuple[str, ...]) -> WindowResults:
        """Scores of every closed window, ``(k, columns)`` per method."""
        k = len(closed)
        cols = len(self.columns)
        width = self.binner.width
        cur = closed.counts
        ref = self.reference_for(closed.segments)
        cur_fine, ref_fine = cur[..., :width], ref[..., :width]
        n = cur_fine.sum(axis=-1)
        rows = closed.rows
        with np.errstate(invalid="ignore", divide="ignore"):
            missing_rate = cur[..., width] / np.maximum(rows, 1)[:, None]

        scores: dict[str, FloatArray] = {}
        p_values: dict[str, FloatArray] = {}
        nan = np.full((k, cols), np.nan)
        det = self.detectors
        if det.psi.enabled:
            scores["psi"] = psi(
                self.binner.coarsen(ref),
                self.binner.coarsen(cur),
                smoothing=det.psi_smoothing,
                n_bins=self.binner.n_coarse,
            )
        num = self.numeric
        if det.ks.enabled and num.any():
            ks = ks_from_counts(ref_fine[:, num], cur_fine[:, num])
            score, p = nan.copy(), nan.copy()
            score[:, num], p[:, num] = ks.statistic, ks.p_value
            scores["ks"], p_values["ks"] = score, p
        cat = ~num
        if det.chi2.enabled and cat.any():
            chi = chi_square(ref_fine[:, cat], cur_fine[:, cat])
            score, p = nan.copy(), nan.copy()
            score[:, cat], p[:, cat] = chi.effect, chi.p_value
            scores["chi2"], p_values["chi2"] = score, p
        if det.js.enabled and cat.any():
            score = nan.copy()
            score[:, cat] = jensen_shannon(ref_fine[:, cat], cur_fine[:, cat])
            scores["js"] = score
        return WindowResults(
            model=self.model,
            segments=tuple(segment_names[s] for s in closed.segments.tolist()),
            columns=self.columns,
            window_end_ts=closed.end_ts,
            rows=rows,
            n=n.astype(np.int64),
            missing_rate=np.asarray(missing_rate, dtype=np.float64),
            scores=scores,
            p_values=p_values,
        )
