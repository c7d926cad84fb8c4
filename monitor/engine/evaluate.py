"""Closed windows through the drift engine, with the daemon's per-segment references.

The statistics, thresholds and verdicts are ``detectors.engine``'s: the same code a
library user runs with ``detectors.compare``. This module maps the ``detectors``
config section onto the engine's rules, keeps each segment's reference (the pooled
one, or the segment's own warm-up), and adds the two segment-level columns:

- ``__window__`` / ``samples``: the window had fewer than ``windows.min_samples``
  events, so none of its columns could be tested;
- ``__dataset__`` / ``share``: the share of the window's columns that drift (local
  versus global drift), with an optional alert above ``detectors.share.threshold``.
"""

from __future__ import annotations

import numpy as np

from detectors.base import FloatArray, IntArray
from detectors.binning import Binner
from detectors.calibration import MIN_CHUNK_ROWS, SPREAD_CHUNKS
from detectors.engine import DriftEngine, Reference
from detectors.rules import BAND, BREACH, CLEAR, SKIP, MethodRule, Rules
from detectors.sketch import Sketch
from monitor.config import CALIBRATED_METHODS, DetectorsConfig, MethodConfig
from monitor.engine.results import DATASET_COLUMN, WINDOW_COLUMN, WindowResults
from monitor.engine.windows import ClosedWindows


def segment_references(
    engine: DriftEngine, seg: IntArray, matrix: FloatArray, n_segments: int, min_samples: int
) -> dict[int, Reference]:
    """Each segment's own reference from its warm-up events (rows in arrival order).

    Segments with at least ``min_samples`` events get one, calibrated on the spread
    between the time-ordered chunks of their own events (one chunk, so no spread, when
    they have too few events for chunks).
    """
    n_seg = max(1, n_segments)
    per_segment = np.bincount(seg, minlength=n_seg)
    # Each event's rank within its segment, in arrival order, gives its chunk.
    order = np.argsort(seg, kind="stable")
    starts = np.cumsum(per_segment) - per_segment
    rank = np.empty(seg.size, dtype=np.int64)
    rank[order] = np.arange(seg.size) - np.repeat(starts, per_segment)
    chunk = rank * SPREAD_CHUNKS // np.maximum(per_segment[seg], 1)
    binner = engine.binner
    sketch = Sketch(binner, n_seg * SPREAD_CHUNKS)
    sketch.update(seg * SPREAD_CHUNKS + chunk, matrix)
    shape = (n_seg, SPREAD_CHUNKS, binner.n_features, binner.stride)
    chunks = sketch.state_dict()["counts"].reshape(shape)
    out: dict[int, Reference] = {}
    for s in np.flatnonzero(per_segment >= min_samples).tolist():
        enough = per_segment[s] >= SPREAD_CHUNKS * MIN_CHUNK_ROWS
        counts = chunks[s] if enough else chunks[s].sum(axis=0)[None]
        out[int(s)] = engine.calibrate_chunks(counts)
    return out


def engine_rules(detectors: DetectorsConfig, min_samples: int) -> Rules:
    """The engine's rules from the ``detectors`` config section."""

    def rule(cfg: MethodConfig) -> MethodRule:
        mode = cfg.thresholds or detectors.thresholds
        return MethodRule(
            enabled=cfg.enabled,
            calibrated=mode == "calibrated",
            threshold=cfg.threshold,
            clear=cfg.clear,
            min_effect=cfg.min_effect,
        )

    def cfg(name: str) -> MethodConfig:
        found = detectors.method(name)
        assert found is not None, name  # CALIBRATED_METHODS are all DetectorsConfig fields
        return found

    methods = {m: rule(cfg(m)) for m in CALIBRATED_METHODS}
    for fixed in ("samples", "schema"):
        methods[fixed] = MethodRule(enabled=cfg(fixed).enabled, calibrated=False)
    overrides = {
        column: {m: rule(cfg) for m, cfg in per.items() if m in CALIBRATED_METHODS}
        for column, per in detectors.overrides.items()
    }
    return Rules(
        methods=methods,
        overrides=overrides,
        alpha=detectors.alpha,
        clear_ratio=detectors.clear_ratio,
        severe_ratio=detectors.severe_ratio,
        fdr_q=detectors.fdr_q if detectors.fdr else None,
        p_alpha=detectors.ks_alpha,
        min_samples=min_samples,
        smoothing=detectors.psi_smoothing,
    )


class Evaluator:
    """Scores closed windows; the reference is the pooled one, or a segment's own."""

    def __init__(
        self,
        model: str,
        binner: Binner,
        detectors: DetectorsConfig,
        min_samples: int,
        segment_rows: bool = True,
    ) -> None:
        self.model = model
        self.segment_rows = segment_rows
        """Add the ``__window__`` and ``__dataset__`` columns (the feature windows do;
        label-drift windows, scored by another evaluator, must not overwrite them)."""
        self.binner = binner
        self.detectors = detectors
        self.min_samples = min_samples
        self.engine = DriftEngine(binner, engine_rules(detectors, min_samples))
        self.columns = tuple(p.name for p in binner.profiles)
        self.pooled = self.engine.calibrate_profiles()
        self.own: dict[int, Reference] = {}

    def set_segment_reference(self, segment: int, reference: Reference) -> None:
        """Give one segment its own reference (from a warm-up); others use the pooled one."""
        self.own[segment] = reference

    def forget_segments(self, segments: IntArray) -> None:
        """Drop the own references of ``segments`` (evicted: their ids will be reused)."""
        for segment in segments.tolist():
            self.own.pop(int(segment), None)

    def reference_for(self, segments: IntArray) -> IntArray:
        """The reference slot counts of each of ``segments``, ``(k, F, stride)``."""
        refs = [self.own.get(s, self.pooled).counts for s in segments.tolist()]
        if not refs:
            return np.zeros((0, *self.pooled.counts.shape), dtype=np.int64)
        return np.stack(refs)

    def evaluate(self, closed: ClosedWindows, segment_names: tuple[str, ...]) -> WindowResults:
        """Scores and verdicts of every closed window, ``(k, columns)`` per method."""
        segments = closed.segments.tolist()
        # Only the references these windows use: the engine stacks what it is given, and
        # stacking every segment's own reference per batch would cost O(segments).
        refs = [self.pooled]
        slot: dict[int, int] = {}
        for s in segments:
            if s in self.own and s not in slot:
                slot[s] = len(refs)
                refs.append(self.own[s])
        which = np.array([slot.get(s, 0) for s in segments], dtype=np.int64)
        scores = self.engine.score(closed.counts, refs, which)
        k = len(segments)
        rows = scores.rows
        if not self.segment_rows:
            return WindowResults(
                model=self.model,
                segments=tuple(segment_names[s] for s in segments),
                columns=self.columns,
                window_end_ts=closed.end_ts,
                rows=rows,
                n=scores.n,
                missing_rate=scores.missing_rate,
                scores=scores.score,
                p_values=scores.p_value,
                thresholds=scores.threshold,
                clears=scores.clear,
                verdicts=scores.verdict,
            )

        def widen(values: np.ndarray, fill: float, extra: tuple[float, float]) -> np.ndarray:
            out = np.full((k, len(self.columns) + 2), fill, dtype=values.dtype)
            out[:, : len(self.columns)] = values
            out[:, -2], out[:, -1] = extra
            return out

        nan = np.full(k, np.nan)
        out_scores = {m: widen(v, np.nan, (np.nan, np.nan)) for m, v in scores.score.items()}
        p_values = {m: widen(v, np.nan, (np.nan, np.nan)) for m, v in scores.p_value.items()}
        thresholds = {m: widen(v, np.nan, (np.nan, np.nan)) for m, v in scores.threshold.items()}
        clears = {m: widen(v, np.nan, (np.nan, np.nan)) for m, v in scores.clear.items()}
        verdicts = {m: widen(v, SKIP, (SKIP, SKIP)) for m, v in scores.verdict.items()}
        if self.detectors.samples.enabled:
            limit = float(self.min_samples)
            out_scores["samples"][:, -2] = rows
            thresholds["samples"][:, -2] = clears["samples"][:, -2] = limit
            verdicts["samples"][:, -2] = np.where(rows < self.min_samples, BREACH, CLEAR)
        share_cfg = self.detectors.share
        share = scores.drifting_share
        out_scores["share"] = np.full((k, len(self.columns) + 2), np.nan)
        out_scores["share"][:, -1] = np.where(rows >= self.min_samples, share, nan)
        p_values["share"] = np.full_like(out_scores["share"], np.nan)
        thresholds["share"] = np.full_like(out_scores["share"], np.nan)
        clears["share"] = np.full_like(out_scores["share"], np.nan)
        verdicts["share"] = np.full(out_scores["share"].shape, SKIP, dtype=np.int8)
        if share_cfg.enabled:
            thresholds["share"][:, -1] = share_cfg.threshold
            clears["share"][:, -1] = share_cfg.clear
            verdicts["share"][:, -1] = np.where(
                rows < self.min_samples,
                SKIP,
                np.where(
                    share >= share_cfg.threshold,
                    BREACH,
                    np.where(share < share_cfg.clear, CLEAR, BAND),
                ),
            )
        n = np.concatenate([scores.n, rows[:, None], rows[:, None]], axis=1)
        missing = np.concatenate([scores.missing_rate, np.full((k, 2), np.nan)], axis=1)
        return WindowResults(
            model=self.model,
            segments=tuple(segment_names[s] for s in segments),
            columns=(*self.columns, WINDOW_COLUMN, DATASET_COLUMN),
            window_end_ts=closed.end_ts,
            rows=rows,
            n=n.astype(np.int64),
            missing_rate=missing,
            scores=out_scores,
            p_values=p_values,
            thresholds=thresholds,
            clears=clears,
            verdicts=verdicts,
        )
