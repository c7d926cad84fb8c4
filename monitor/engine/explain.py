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
from dataclasses import dataclass
from typing import Any

from detectors.base import FloatArray, IntArray
from detectors.binning import Binner
from detectors.explain import TOP_BINS, bin_labels, top_bins
from detectors.report import psi_severity
from detectors.stats import DEFAULT_SMOOTHING
from monitor.engine.decision import Transition
from monitor.engine.windows import ClosedWindows


@dataclass(frozen=True)
class WindowBins:
    """The coarse bin counts of windows that closed together, reference beside current.

    One row per closed window, in the order of the batch's ``WindowResults`` rows;
    ``reference`` and ``current`` are ``(k, F, B)`` counts over the monitored columns,
    where column ``f`` uses its first ``len(labels[columns[f]])`` bins (the coarse PSI
    bins of a numeric column, the categories of a categorical one; missing values are
    in neither). ``reference`` is what the window was compared with: its segment's own
    reference, or the profile.
    """

    segments: tuple[str, ...]
    window_end_ts: FloatArray
    columns: tuple[str, ...]
    labels: Mapping[str, Sequence[str]]
    reference: IntArray
    current: IntArray


class DriftExplainer:
    """Top drifting bins of the windows behind firing transitions."""

    def __init__(self, binner: Binner, smoothing: float = DEFAULT_SMOOTHING) -> None:
        self.binner = binner
        self.smoothing = smoothing
        self.labels = {p.name: bin_labels(p) for p in binner.profiles}
        self.index = {p.name: f for f, p in enumerate(binner.profiles)}

    def window_bins(
        self, closed: ClosedWindows, reference: IntArray, segment_names: Sequence[str]
    ) -> WindowBins:
        """The coarse bins of every window of ``closed`` beside its ``reference`` slot
        counts (``(k, F, stride)``, as ``details`` takes them)."""
        return WindowBins(
            segments=tuple(segment_names[s] for s in closed.segments.tolist()),
            window_end_ts=closed.end_ts,
            columns=tuple(self.index),
            labels=self.labels,
            reference=self.binner.coarsen(reference),
            current=self.binner.coarsen(closed.counts),
        )

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
