"""Embedding drift: vectors projected to ``k`` whitened dimensions, their window mean tested.

An event's vector (64-1,024 floats) is centred on the reference mean and reduced to
``k`` dimensions by a fixed projection: a seeded Gaussian random projection (the
default: it sees a shift in any direction) or the reference's top-``k`` principal
directions (it sees only shifts along the reference's large-variance directions). The
projection is then whitened with the reference's covariance of it, so that reference
events have mean 0 and identity covariance in the ``k`` coordinates.

Per segment the state is ``k + 4`` additive numbers whatever the dimension: events
scored, vectors missing, malformed (wrong length, not numbers) and non-finite (all
counted and skipped), and the sum of each whitened coordinate. From them a window gets:

* ``mahalanobis`` (the default, picked by ``benchmarks.multivariate_drift``): the
  distance of the window mean from the reference mean in reference standard deviations,
  ``sqrt(|mean|^2)``; ``|mean|^2 / (1/n + 1/N)`` is Hotelling's T^2 with the reference's
  covariance, tested with its F law (a linear-kernel MMD, standardised);
* ``share``: the share of the ``k`` coordinates whose mean moved (two-sided z-test at
  5%), Evidently's "share of drifted components"; the coordinates are independent once
  whitened, so the count is tested with a binomial law.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> reference = EmbeddingReference.fit(rng.normal(size=(5_000, 64)), k=16, seed=1)
>>> reference.dim, reference.k
(64, 16)
>>> detector = EmbeddingDrift(reference, n_segments=2)
>>> shift = 0.1 * np.sqrt(64) * np.eye(64)[0]  # 0.1 sigma x sqrt(d), along one axis
>>> vectors = np.vstack([rng.normal(size=(2_000, 64)), rng.normal(size=(2_000, 64)) + shift])
>>> result = detector.update(np.repeat([0, 1], 2_000), vectors)
>>> result.drift.tolist()
[False, True]
>>> detector.update([0, 1], [[1.0, 2.0], None]).missing.tolist()  # counted, never a crash
[1, 1]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from detectors.base import FloatArray, IntArray, State, as_segments
from detectors.mv_common import (
    DecisionRule,
    JointScores,
    UnavailableError,
    add_rows,
    as_float_array,
    float_list,
    segment_count,
    verdicts,
)
from detectors.mv_laws import binom_sf, f_isf, f_sf, normal_isf
from detectors.mv_vectors import sort_vectors
from detectors.rules import BREACH
from detectors.values import check_int

METHOD: Final = "embedding drift"
Projection = Literal["gaussian", "pca"]
Statistic = Literal["mahalanobis", "share"]
PROJECTIONS: Final = ("gaussian", "pca")
STATISTICS: Final = ("mahalanobis", "share")
COUNT_COLUMNS: Final = ("n", "missing", "malformed", "nonfinite")
"""The first columns of a per-segment statistics row; the ``k`` coordinate sums follow."""
_N, _MISSING, _MALFORMED, _NONFINITE = range(len(COUNT_COLUMNS))
COMPONENT_LEVEL: Final = 0.05
"""Two-sided level at which one whitened coordinate counts as drifted (``share``)."""
MIN_REFERENCE_ROWS: Final = 100
_RELATIVE_RANK_FLOOR = 1e-9


def _projection_matrix(
    centred: FloatArray, k: int, projection: Projection, seed: int
) -> tuple[FloatArray, int]:
    """``(d, k)``: the raw projection; and the rank the reference gives it."""
    d = centred.shape[1]
    if projection == "pca":
        cov = centred.T @ centred / (centred.shape[0] - 1)
        values, vectors = np.linalg.eigh(cov)
        top = vectors[:, ::-1][:, :k]
        # Sign fixed so that the same reference always gives the same matrix.
        signs = np.sign(top[np.argmax(np.abs(top), axis=0), np.arange(k)])
        return np.asarray(top * signs, dtype=np.float64), int(np.sum(values > 0))
    gaussian = np.random.default_rng(seed).normal(0.0, 1.0 / np.sqrt(d), size=(d, k))
    return gaussian, k


@dataclass(frozen=True)
class EmbeddingReference:
    """A fixed whitening projection of ``dim``-long vectors to ``k`` coordinates.

    ``center`` is the reference mean (``dim``,); ``projection`` is ``(dim, k)`` and
    maps a centred vector to coordinates with identity covariance on the reference.
    ``n_reference`` rows fitted it (their mean's own sampling error enters every test).
    """

    dim: int
    center: FloatArray
    projection: FloatArray
    n_reference: int
    method: str

    @property
    def k(self) -> int:
        """Coordinates kept (at most the ``k`` asked: fewer if the reference has fewer
        directions with variance)."""
        return int(self.projection.shape[1])

    @classmethod
    def fit(
        cls,
        reference: npt.ArrayLike,
        *,
        k: int = 32,
        projection: Projection = "gaussian",
        seed: int = 0,
    ) -> EmbeddingReference:
        """Fit on ``(rows, dim)`` reference vectors (rows with a non-finite value are
        left out). Deterministic given ``seed`` (the random projection's)."""
        check_int("k", k, 1)
        check_int("seed", seed, 0)
        if projection not in PROJECTIONS:
            raise ValueError(f"projection must be one of {PROJECTIONS}, got {projection!r}")
        matrix = np.asarray(reference, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] < 2:
            raise UnavailableError(
                METHOD, f"needs (rows, dim >= 2) reference vectors, got shape {matrix.shape}"
            )
        matrix = matrix[np.isfinite(matrix).all(axis=1)]
        if matrix.shape[0] < MIN_REFERENCE_ROWS:
            raise ValueError(
                f"the reference needs at least {MIN_REFERENCE_ROWS} finite vectors, "
                f"got {matrix.shape[0]}"
            )
        dim = int(matrix.shape[1])
        k = min(k, dim)
        center = matrix.mean(axis=0)
        centred = matrix - center
        raw, _ = _projection_matrix(centred, k, projection, seed)
        projected = centred @ raw
        cov = projected.T @ projected / (projected.shape[0] - 1)
        values, vectors = np.linalg.eigh(cov)
        keep = values > _RELATIVE_RANK_FLOOR * max(float(values.max()), 0.0)
        if not keep.any():
            raise UnavailableError(METHOD, "the reference vectors have no spread")
        whiten = vectors[:, keep] / np.sqrt(values[keep])
        # Largest-variance whitened direction first; signs fixed for reproducibility.
        whiten = whiten[:, ::-1]
        signs = np.sign(whiten[np.argmax(np.abs(whiten), axis=0), np.arange(whiten.shape[1])])
        return cls(dim, center, raw @ (whiten * signs), int(matrix.shape[0]), projection)

    def coordinates(self, vectors: FloatArray) -> FloatArray:
        """``(rows, k)`` whitened coordinates of finite ``(rows, dim)`` vectors."""
        # einsum, not matmul: BLAS may round a row differently depending on the rows
        # beside it, and a batch must add up exactly like its rows fed one at a time.
        out = np.einsum("ed,dk->ek", vectors - self.center, self.projection)
        return np.asarray(out, dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers (JSON-able); :meth:`from_dict` restores it exactly."""
        return {
            "dim": self.dim,
            "k": self.k,
            "center": float_list(self.center),
            "projection": float_list(self.projection),
            "n_reference": self.n_reference,
            "method": self.method,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EmbeddingReference:
        """Restore :meth:`to_dict` output."""
        dim = check_int("dim", data["dim"], 2)
        k = check_int("k", data["k"], 1, dim)
        method = str(data["method"])
        if method not in PROJECTIONS:
            raise ValueError(f"method must be one of {PROJECTIONS}, got {method!r}")
        return cls(
            dim,
            as_float_array(data["center"], (dim,), "center"),
            as_float_array(data["projection"], (dim, k), "projection"),
            check_int("n_reference", data["n_reference"], 2),
            method,
        )


@dataclass(frozen=True)
class EmbeddingScores(JointScores):
    """:class:`JointScores` of one embedding per segment. ``statistic`` is the chosen
    statistic's score; ``distance`` (Mahalanobis distance of the window mean) and
    ``drifted_share`` (share of coordinates whose mean moved) are both always given, with
    their p-values. ``missing`` counts every skipped vector, of which ``malformed`` and
    ``nonfinite`` say how many had the wrong length or type, or a NaN or infinity."""

    distance: FloatArray
    distance_p_value: FloatArray
    drifted_share: FloatArray
    share_p_value: FloatArray
    malformed: IntArray
    nonfinite: IntArray


class EmbeddingDrift:
    """Embedding drift per segment against an :class:`EmbeddingReference`.

    ``statistic`` picks what decides: ``"mahalanobis"`` (default) or ``"share"``.
    ``update`` adds a batch (a ``(rows, dim)`` array, or a sequence of vectors with
    None for a missing one) into ``stats`` (one row of ``COUNT_COLUMNS`` then ``k``
    sums per segment) and scores everything seen since construction or ``reset``.
    """

    def __init__(
        self,
        reference: EmbeddingReference,
        n_segments: int = 1,
        *,
        statistic: Statistic = "mahalanobis",
        alpha: float = 1e-4,
        min_samples: int = 500,
        clear_ratio: float = 0.5,
    ) -> None:
        if statistic not in STATISTICS:
            raise ValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}")
        self.reference = reference
        self.statistic: Statistic = statistic
        self.rule = DecisionRule(alpha, min_samples, clear_ratio)
        if statistic == "share" and _share_threshold(reference.k, alpha) > 1:
            raise UnavailableError(
                METHOD,
                f"no share of {reference.k} coordinates is unlikely enough for "
                f"alpha={alpha}: use more coordinates (k) or the mahalanobis statistic",
            )
        self.stats = np.zeros((segment_count(n_segments), self.width))

    @property
    def width(self) -> int:
        """Length of one segment's statistics row: ``len(COUNT_COLUMNS) + k``."""
        return len(COUNT_COLUMNS) + self.reference.k

    @property
    def n_segments(self) -> int:
        """Number of segments evaluated."""
        return int(self.stats.shape[0])

    def accumulate(
        self, segments: npt.ArrayLike, values: object, out: FloatArray | None = None
    ) -> FloatArray:
        """The statistics of a batch (added into ``out`` if given), ``(segments, width)``."""
        seg = as_segments(segments, self.n_segments)
        batch = sort_vectors(values, self.reference.dim)
        if seg.size != batch.ok.size:
            raise ValueError(f"{seg.size} segment ids for {batch.ok.size} vectors")
        if out is None:
            out = np.zeros((self.n_segments, self.width))
        per_row = np.zeros((seg.size, self.width))
        per_row[:, _N] = batch.ok
        per_row[:, _MISSING] = batch.missing
        per_row[:, _MALFORMED] = batch.malformed
        per_row[:, _NONFINITE] = batch.nonfinite
        per_row[batch.ok, len(COUNT_COLUMNS) :] = self.reference.coordinates(batch.vectors)
        add_rows(out, seg, per_row)
        return out

    def evaluate(self, stats_rows: npt.ArrayLike) -> EmbeddingScores:
        """Score per-segment statistics rows (``accumulate`` output, summed as needed)."""
        table = np.asarray(stats_rows, dtype=np.float64).reshape(-1, self.width)
        k, n_ref = self.reference.k, self.reference.n_reference
        n = table[:, _N]
        enough = n >= self.rule.min_samples
        safe_n = np.maximum(n, 1.0)
        mean = table[:, len(COUNT_COLUMNS) :] / safe_n[:, None]
        variance = 1.0 / safe_n + 1.0 / n_ref  # of each whitened coordinate's mean gap
        squared = (mean**2).sum(axis=1)
        # One-sample Hotelling T^2 with the covariance estimated on n_ref rows.
        to_f = (n_ref - k) / (k * (n_ref - 1)) if n_ref > k else 1.0
        f_df = max(n_ref - k, 1)
        distance_p = f_sf(squared / variance * to_f, k, f_df)
        critical = f_isf(self.rule.alpha, k, f_df) / to_f
        drifted = (mean**2 / variance[:, None] > normal_isf(COMPONENT_LEVEL / 2) ** 2).sum(axis=1)
        share_p = binom_sf(drifted - 1, k, COMPONENT_LEVEL)
        # The hysteresis band starts from the score's typical value under no drift (a
        # chi-like distance is far from 0 then), not from 0.
        if self.statistic == "mahalanobis":
            score = np.sqrt(squared)
            upper = np.sqrt(critical * variance)
            centre = np.sqrt(f_isf(0.5, k, f_df) / to_f * variance)
        else:
            score = drifted / k
            upper = np.full(n.shape, _share_threshold(k, self.rule.alpha) - 0.5 / k)
            centre = np.full(n.shape, COMPONENT_LEVEL)
        clear = centre + self.rule.clear_ratio * (upper - centre)
        score = np.where(n > 0, score, np.nan)
        nan = np.full(n.shape, np.nan)
        verdict = verdicts(score, (nan, upper), (nan, clear), enough)
        skipped = table[:, _MISSING] + table[:, _MALFORMED] + table[:, _NONFINITE]
        return EmbeddingScores(
            statistic=score,
            p_value=np.where(
                n > 0, distance_p if self.statistic == "mahalanobis" else share_p, np.nan
            ),
            drift=verdict == BREACH,
            n=n.astype(np.int64),
            threshold=upper,
            lower=nan,
            clear=clear,
            clear_lower=nan,
            verdict=verdict,
            missing=skipped.astype(np.int64),
            distance=np.where(n > 0, np.sqrt(squared), np.nan),
            distance_p_value=np.where(n > 0, distance_p, np.nan),
            drifted_share=np.where(n > 0, drifted / k, np.nan),
            share_p_value=np.where(n > 0, share_p, np.nan),
            malformed=table[:, _MALFORMED].astype(np.int64),
            nonfinite=table[:, _NONFINITE].astype(np.int64),
        )

    def update(self, segments: npt.ArrayLike, values: object) -> EmbeddingScores:
        """Add a batch of vectors and score every segment."""
        self.accumulate(segments, values, out=self.stats)
        return self.evaluate(self.stats)

    def ensure_segments(self, n_segments: int) -> None:
        """Grow to at least ``n_segments`` segments."""
        grow = segment_count(n_segments) - self.n_segments
        if grow > 0:
            self.stats = np.vstack([self.stats, np.zeros((grow, self.width))])

    def reset(self) -> None:
        """Forget every vector, keeping the segments."""
        self.stats = np.zeros_like(self.stats)

    def state_dict(self) -> State:
        """The statistics, the reference and the statistic deciding."""
        return {
            "stats": self.stats.copy(),
            "reference": self.reference.to_dict(),
            "statistic": self.statistic,
        }

    def load_state_dict(self, state: State) -> None:
        """Restore ``state_dict`` output."""
        reference = EmbeddingReference.from_dict(state["reference"])
        statistic = state["statistic"]
        if statistic not in STATISTICS:
            raise ValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}")
        stats_rows = np.asarray(state["stats"], dtype=np.float64)
        width = len(COUNT_COLUMNS) + reference.k
        if stats_rows.ndim != 2 or stats_rows.shape[1] != width:
            raise ValueError(f"stats must be (segments, {width}), got {stats_rows.shape}")
        self.reference, self.statistic, self.stats = reference, statistic, stats_rows.copy()


def _share_threshold(k: int, alpha: float) -> float:
    """The smallest share of drifted coordinates whose binomial tail is at most
    ``alpha`` (above 1 when no share is that unlikely)."""
    counts = np.arange(k + 1)
    tail = binom_sf(counts - 1, k, COMPONENT_LEVEL)
    hits = np.flatnonzero(tail <= alpha)
    return float(hits[0] / k) if hits.size else 1.0 + 1.0 / k
