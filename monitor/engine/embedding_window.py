"""Embedding drift in the daemon: each vector feature's window mean, per segment.

The reference carries, per vector feature, an embedding model
(``ReferenceProfile.embeddings``: :class:`~detectors.embedding.EmbeddingReference`, fitted
by ``driftd reference build`` on the features listed in ``schema.vector_features``): a
seeded random projection of the centred vector to ``k`` coordinates, whitened on the
reference. A window is judged on the mean of its vectors' coordinates
(:class:`~detectors.embedding.EmbeddingDrift`, Hotelling's T-squared).

As the multivariate windows do (:mod:`monitor.engine.multivariate_window`), the sums are
counted by a second :class:`~monitor.engine.windows.Windows` fed the feature windows'
rows and limits, so every judgement covers exactly the events of a feature window, and
restores, slices and merges like it. Each coordinate, clipped to ``[-CLIP, CLIP]``
reference standard deviations (no reference vector comes near), is written as a
fixed-point integer of ``EMBED_DIGITS`` base-``EMBED_BASE`` digits, one column each:
``k * EMBED_DIGITS`` columns of ``EMBED_BASE`` bins, whatever the vectors' length. A
missing vector (absent, or refused by the decoder and counted there) is missing in every
column: counted, not scored.

Each closed window becomes one row of a :class:`~monitor.engine.results.WindowResults`
with the vector feature's name as its column and the method ``embedding``, judged here.
A vector feature listed in ``schema.vector_features`` that the reference has no model for
is not monitored, and :func:`start_embeddings` says so once per feature (log
``embedding_unmonitored``; gauge ``driftd_embedding_unmonitored``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import structlog

from detectors.base import FloatArray, IntArray
from detectors.binning import Binner
from detectors.embedding import COUNT_COLUMNS, EmbeddingDrift, EmbeddingReference
from detectors.mv_common import UnavailableError
from detectors.profile import ReferenceProfile, embeddings_from_dict
from monitor.config import EmbeddingDriftConfig, Settings, WindowsConfig
from monitor.engine.multivariate_window import count_profile
from monitor.engine.results import WindowResults
from monitor.engine.side_windows import SideWindows, one_column_results
from monitor.engine.windows import Windows

METHOD: Final = "embedding"
EMBED_BASE: Final = 16
EMBED_DIGITS: Final = 5
EMBED_STEPS: Final = EMBED_BASE**EMBED_DIGITS - 1
CLIP: Final = 16.0
"""Whitened coordinates are clipped to this many reference standard deviations."""
NO_MODEL: Final = (
    "the reference has no embedding model for it: build the reference with `driftd "
    "reference build` from training data holding it, listed in schema.vector_features "
    "(a warm-up reference fits none)"
)

log = structlog.get_logger()


@dataclass(frozen=True)
class SegmentEmbedding:
    """The latest judged window of one segment and vector feature."""

    segment: str
    feature: str
    n: int
    """Vectors scored."""
    missing: int
    """Events without a usable vector."""
    window_end_ts: float
    distance: float
    """Distance of the window mean from the reference mean, in reference standard
    deviations (NaN: no vector scored)."""
    threshold: float


def fit_embeddings(
    columns: Mapping[str, Sequence[Any]], cfg: EmbeddingDriftConfig, seed: int = 0
) -> tuple[dict[str, Any], dict[str, str]]:
    """The ``embeddings`` field of a reference whose vector ``columns`` (name -> one value
    per row: an array of numbers or None) are given, and why each feature left out is."""
    models: dict[str, Any] = {}
    why_not: dict[str, str] = {}
    if not cfg.enabled:
        return models, why_not
    for name, values in columns.items():
        lengths = [len(v) for v in values if isinstance(v, list | tuple)]
        if not lengths:
            why_not[name] = "no row holds an array of numbers"
            continue
        dim = max(set(lengths), key=lengths.count)  # the usual length; others are refused
        rows = np.full((len(values), dim), np.nan)
        for i, value in enumerate(values):
            if isinstance(value, list | tuple) and len(value) == dim:
                try:
                    rows[i] = np.asarray(value, dtype=np.float64)
                except (TypeError, ValueError):
                    continue
        try:
            model = EmbeddingReference.fit(rows, k=min(cfg.dimensions, dim), seed=seed)
        except (UnavailableError, ValueError) as exc:
            why_not[name] = str(exc)
            continue
        models[name] = model.to_dict()
    return models, why_not


def start_embeddings(
    settings: Settings,
    reference: ReferenceProfile,
    n_segments: int,
    said: Mapping[str, str] | None = None,
) -> tuple[dict[str, EmbeddingWindows], dict[str, str]]:
    """The embedding windows of every vector feature the reference has a model for, and why
    each listed vector feature without one is not monitored (logged as
    ``embedding_unmonitored``, once per feature and reason: ``said`` holds those given)."""
    cfg = settings.detectors.embedding_drift
    if not cfg.enabled or not settings.detectors.embedding.enabled:
        return {}, {}
    models = embeddings_from_dict(reference.embeddings or {})
    unavailable = {
        name: NO_MODEL for name in settings.schema_.vector_features if name not in models
    }
    for name, reason in unavailable.items():
        if (said or {}).get(name) != reason:
            log.warning(
                "embedding_unmonitored",
                model=settings.model,
                feature=name,
                method=METHOD,
                reason=reason,
            )
    windows = {
        name: EmbeddingWindows(
            settings.model,
            name,
            model,
            cfg,
            settings.windows,
            n_segments,
            clear_ratio=settings.detectors.clear_ratio,
            severe_ratio=settings.detectors.severe_ratio,
        )
        for name, model in sorted(models.items())
    }
    return windows, unavailable


class EmbeddingWindows(SideWindows[SegmentEmbedding]):
    """Whitened-coordinate windows of one vector feature (see the module docstring).

    State: the :class:`Windows` of ``k * EMBED_DIGITS`` columns of ``EMBED_BASE`` bins.
    """

    def __init__(
        self,
        model: str,
        feature: str,
        reference: EmbeddingReference,
        cfg: EmbeddingDriftConfig,
        windows: WindowsConfig,
        n_segments: int = 1,
        *,
        clear_ratio: float = 0.5,
        severe_ratio: float = 3.0,
    ) -> None:
        self.model = model
        self.feature = feature
        self.reference = reference
        self.severe_ratio = severe_ratio
        self.detector = EmbeddingDrift(
            reference, alpha=cfg.alpha, min_samples=cfg.min_samples, clear_ratio=clear_ratio
        )
        profiles = [
            count_profile(f"__{feature}_{j}_{d}__", EMBED_BASE)
            for j in range(reference.k)
            for d in range(EMBED_DIGITS)
        ]
        super().__init__(Windows(Binner(profiles), windows, n_segments))
        self._unit = 2 * CLIP / EMBED_STEPS

    @property
    def dim(self) -> int:
        """The vectors' length."""
        return self.reference.dim

    def encode(self, vectors: FloatArray) -> FloatArray:
        """Each event's ``k * EMBED_DIGITS`` digit columns (NaN for a missing vector)."""
        rows = np.asarray(vectors, dtype=np.float64)
        ok = np.isfinite(rows).all(axis=1)
        out = np.full((rows.shape[0], self.reference.k * EMBED_DIGITS), np.nan)
        if ok.any():
            z = np.clip(self.reference.coordinates(rows[ok]), -CLIP, CLIP)
            steps = np.clip(np.rint((z + CLIP) / self._unit), 0, EMBED_STEPS).astype(np.int64)
            digits = (steps[:, :, None] // EMBED_BASE ** np.arange(EMBED_DIGITS)) % EMBED_BASE
            out[ok] = digits.reshape(int(ok.sum()), -1)
        return out

    def window_stats(self, counts: IntArray) -> FloatArray:
        """``EmbeddingDrift`` statistics rows of closed windows' counts: ``n``, ``missing``,
        0 malformed and 0 non-finite (the decoder counted those, as missing here), then the
        sum of each coordinate."""
        counts = np.asarray(counts, dtype=np.int64)
        w, k = counts.shape[0], self.reference.k
        digit_sums = counts[:, :, :EMBED_BASE] @ np.arange(EMBED_BASE, dtype=np.int64)
        steps = digit_sums.reshape(w, k, EMBED_DIGITS) @ (
            EMBED_BASE ** np.arange(EMBED_DIGITS, dtype=np.int64)
        )
        n = counts[:, 0, :EMBED_BASE].sum(axis=1)
        out = np.zeros((w, len(COUNT_COLUMNS) + k))
        out[:, 0] = n
        out[:, 1] = counts[:, 0, -1]
        out[:, len(COUNT_COLUMNS) :] = steps * self._unit - CLIP * n[:, None]
        return out

    def add(
        self,
        segments: IntArray,
        vectors: FloatArray,
        ts: FloatArray,
        names: tuple[str, ...],
        max_ahead: float | None = None,
        not_before: float = -math.inf,
    ) -> WindowResults | None:
        """Count a batch's vectors (the feature windows' rows and limits); the ``embedding``
        rows of the windows it closed, or None."""
        closed = self.windows.add(segments, self.encode(vectors), ts, max_ahead, not_before)
        if not len(closed):
            return None
        scores = self.detector.evaluate(self.window_stats(closed.counts))
        results = one_column_results(
            self.model,
            closed,
            names,
            self.feature,
            METHOD,
            scores,
            scores.missing / np.maximum(closed.rows, 1),
            self.severe_ratio,
        )
        return self.publish(
            results,
            lambda row, segment, end_ts: SegmentEmbedding(
                segment=segment,
                feature=self.feature,
                n=int(scores.n[row]),
                missing=int(scores.missing[row]),
                window_end_ts=end_ts,
                distance=float(scores.statistic[row]),
                threshold=float(scores.threshold[row]),
            ),
        )
