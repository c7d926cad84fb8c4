"""Why a window drifted: its top drifting bins, for the alert's ``custom_details``.

A page that says "PSI 0.41" sends the on-call engineer to a dashboard; one that says
"income (-inf, 21000]: 8% -> 31%" often answers the question on the phone. Bins are
ranked by their share of the PSI sum, ``(p_k - q_k) ln(p_k / q_k)`` with the same
additive smoothing as the score, so the listed contributions add up to (at most) the
PSI itself. Numeric features use the coarse PSI bins, categoricals their categories.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from detectors.base import IntArray
from detectors.binning import Binner
from detectors.explain import TOP_BINS, bin_labels, top_bins
from detectors.report import psi_severity
from detectors.stats import DEFAULT_SMOOTHING
from monitor.engine.decision import Transition
from monitor.engine.windows import ClosedWindows


class DriftExplainer:
    """Top drifting bins of the windows behind firing transitions."""

    def __init__(self, binner: Binner, smoothing: float = DEFAULT_SMOOTHING) -> None:
        self.binner = binner
        self.smoothing = smoothing
        self.labels = {p.name: bin_labels(p) for p in binner.profiles}
        self.index = {p.name: f for f, p in enumerate(binner.profiles)}

    def details(
        self,
        transitions: Sequence[Transition],
        closed: ClosedWindows,
        reference: IntArray,
        segment_names: Sequence[str],
        k: int = TOP_BINS,
    ) -> dict[str, Mapping[str, Any]]:
        """``{dedup_key: {"top_bins": [...]}}`` for each firing transition of ``closed``
        (PSI pages also carry ``psi_severity``: insignificant, moderate or significant).

        ``reference`` holds one slot-count row per closed window, ``(k, F, stride)``.
        """
        coarse_cur = self.binner.coarsen(closed.counts)
        coarse_ref = self.binner.coarsen(reference)
        rows = {
            (segment_names[s], float(ts)): r
            for r, (s, ts) in enumerate(zip(closed.segments.tolist(), closed.end_ts, strict=True))
        }
        out: dict[str, Mapping[str, Any]] = {}
        for t in transitions:
            f = self.index.get(t.column)
            row = rows.get((t.segment, t.window_end_ts))
            if t.current != "firing" or f is None or row is None or math.isnan(t.score):
                continue
            labels = self.labels[t.column]
            nb = len(labels)
            detail: dict[str, Any] = {
                "top_bins": top_bins(
                    labels, coarse_ref[row, f, :nb], coarse_cur[row, f, :nb], k, self.smoothing
                )
            }
            if t.method == "psi":
                # The customary reading many users know, beside the calibrated verdict.
                detail["psi_severity"] = psi_severity(t.score)
            out[t.dedup_key] = detail
        return out
