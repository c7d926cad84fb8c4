"""Multivariate drift: the reconstruction error of a reference PCA, per segment.

NannyML's method, made streaming and mergeable. The reference's numeric features are
standardised, and a PCA keeps the components explaining ``variance_share`` of their
variance. Each event is standardised, projected onto those components and back; its
squared distance to that reconstruction is its error. A change in how features move
together (a correlation flip with the marginals unchanged, say) moves events off the
reference's principal subspace, so the window's mean error moves while every single
feature's distribution stays put.

Calibration is held out: the PCA is fitted on a seeded half of the reference and the
error's distribution is measured on the other half (errors of the rows a PCA was fitted
on are biased low). Per-event errors are capped at a high quantile of the held-out
errors, which bounds their tails, and the window mean of the capped error is tested
against a gamma-shaped (Pearson III) law matching its mean, variance and skewness at the
window's size, two-sided: errors falling is a change too (features locking together).

Per segment the state is five additive numbers: events scored, sum of capped error, sum
of its square, missing cells (imputed with the reference mean, i.e. zero after
standardising) and events with no value at all (not scored).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> def correlated(rho, n):
...     cov = [[1, rho, 0], [rho, 1, 0], [0, 0, 1]]
...     return rng.multivariate_normal([0, 0, 0], cov, n)
>>> reference = PCAReference.fit(correlated(0.8, 20_000), ["a", "b", "c"])
>>> reference.n_components, reference.features
(2, ('a', 'b', 'c'))
>>> detector = ReconstructionDrift(reference, n_segments=2)
>>> segments = np.repeat([0, 1], 2_000)
>>> rows = np.vstack([correlated(0.8, 2_000), correlated(-0.8, 2_000)])
>>> result = detector.update(segments, rows)
>>> result.drift.tolist()  # segment 1's correlation flipped; its marginals did not move
[False, True]
>>> bool(result.score[1] > result.threshold[1])
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

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
from detectors.mv_laws import Pearson3, sample_skew
from detectors.rules import BREACH
from detectors.values import check_int

METHOD: Final = "multivariate reconstruction error"
STAT_COLUMNS: Final = ("n", "error_sum", "error_sq_sum", "missing", "empty")
"""The per-segment statistics row, in order; every entry adds across panes."""
_N, _SUM, _SQ, _MISSING, _EMPTY = range(len(STAT_COLUMNS))
MIN_REFERENCE_ROWS: Final = 200


def _columns(
    reference: Mapping[str, npt.ArrayLike] | npt.ArrayLike, features: Sequence[str] | None
) -> tuple[list[str], FloatArray]:
    """The reference as names and an ``(n, F)`` float matrix (non-numeric -> NaN)."""
    if isinstance(reference, Mapping):
        names = list(features) if features is not None else list(reference)
        matrix = np.column_stack([_numeric(reference[name], name) for name in names])
        return names, matrix
    matrix = np.asarray(reference, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"the reference must be a 2-D (rows, features) array, got {matrix.shape}")
    names = list(features) if features is not None else [f"x{i}" for i in range(matrix.shape[1])]
    if len(names) != matrix.shape[1]:
        raise ValueError(f"{len(names)} feature names for {matrix.shape[1]} columns")
    return names, matrix


def _numeric(column: npt.ArrayLike, name: str) -> FloatArray:
    try:
        return np.asarray(column, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise UnavailableError(METHOD, f"feature {name!r} is not numeric") from err


@dataclass(frozen=True)
class PCAReference:
    """A PCA of the standardised reference and the held-out law of its per-event error.

    ``components`` is ``(k, F)`` with orthonormal rows (sign fixed: the largest entry of
    each is positive); ``mean`` and ``scale`` standardise the ``features`` columns.
    ``cap`` is the level per-event errors are capped at; ``error_mean``, ``error_sd``
    and ``error_skew`` describe the capped error over ``n_calibration`` held-out rows.
    """

    features: tuple[str, ...]
    mean: FloatArray
    scale: FloatArray
    components: FloatArray
    explained_variance_ratio: FloatArray
    cap: float
    error_mean: float
    error_sd: float
    error_skew: float
    n_calibration: int

    @property
    def n_components(self) -> int:
        """Principal components kept."""
        return int(self.components.shape[0])

    @classmethod
    def fit(
        cls,
        reference: Mapping[str, npt.ArrayLike] | npt.ArrayLike,
        features: Sequence[str] | None = None,
        *,
        variance_share: float = 0.9,
        cap_quantile: float = 0.99,
        seed: int = 0,
    ) -> PCAReference:
        """Fit on a reference: a ``{name: column}`` mapping or an ``(n, F)`` matrix.

        Features without spread (constant, or fewer than two values) are left out; with
        fewer than two left, :class:`UnavailableError` says which were unusable and why.
        Deterministic given ``seed`` (it picks the fit and calibration halves).
        """
        if not 0 < variance_share < 1:
            raise ValueError(f"variance_share must be in (0, 1), got {variance_share}")
        if not 0.5 < cap_quantile <= 1:
            raise ValueError(f"cap_quantile must be in (0.5, 1], got {cap_quantile}")
        check_int("seed", seed, 0)
        names, matrix = _columns(reference, features)
        finite = np.isfinite(matrix)
        present = finite.sum(axis=0)
        filled = np.where(finite, matrix, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            col_mean = filled.sum(axis=0) / present
            spread = np.where(finite, matrix - col_mean, 0.0)
            col_sd = np.sqrt((spread**2).sum(axis=0) / (present - 1))
        usable = (present >= 2) & (col_sd > 0) & np.isfinite(col_sd)
        if usable.sum() < 2:
            bad = [
                f"{name!r} ({'no spread' if present[i] >= 2 else 'fewer than two values'})"
                for i, name in enumerate(names)
                if not usable[i]
            ]
            kept = [n for n, u in zip(names, usable, strict=True) if u]
            reason = f"needs two or more numeric features with spread, got {len(kept)}"
            raise UnavailableError(
                METHOD, reason + (f"; unusable: {', '.join(bad)}" if bad else ""), kept
            )
        keep = np.flatnonzero(usable)
        matrix = matrix[:, keep]
        if matrix.shape[0] < MIN_REFERENCE_ROWS:
            raise ValueError(
                f"the reference needs at least {MIN_REFERENCE_ROWS} rows, got {matrix.shape[0]}"
            )
        order = np.random.default_rng(seed).permutation(matrix.shape[0])
        half = matrix.shape[0] // 2
        fit_rows, calibration_rows = matrix[order[:half]], matrix[order[half:]]
        return cls.fit_halves(
            tuple(names[i] for i in keep), fit_rows, calibration_rows, variance_share, cap_quantile
        )

    @classmethod
    def fit_halves(
        cls,
        features: tuple[str, ...],
        fit_rows: FloatArray,
        calibration_rows: FloatArray,
        variance_share: float,
        cap_quantile: float,
    ) -> PCAReference:
        """Fit the standardisation and PCA on ``fit_rows`` and the error's law on
        ``calibration_rows`` (both ``(n, F)`` on ``features``, already checked)."""
        finite = np.isfinite(fit_rows)
        present = np.maximum(finite.sum(axis=0), 1)
        mean = np.where(finite, fit_rows, 0.0).sum(axis=0) / present
        centred = np.where(finite, fit_rows - mean, 0.0)
        scale = np.sqrt((centred**2).sum(axis=0) / np.maximum(present - 1, 1))
        # A feature constant on the fit half only: unit scale keeps it harmless.
        scale = np.where(scale > 0, scale, 1.0)
        standard = centred / scale
        _, singular, vt = np.linalg.svd(standard, full_matrices=False)
        variance = singular**2
        ratio = variance / variance.sum()
        n_features = standard.shape[1]
        wanted = int(np.searchsorted(np.cumsum(ratio), variance_share - 1e-12)) + 1
        k = min(max(wanted, 1), n_features - 1)
        components = vt[:k]
        flip = np.sign(components[np.arange(k), np.argmax(np.abs(components), axis=1)])
        components = components * flip[:, None]
        partial = cls(features, mean, scale, components, ratio[:k], np.inf, 0.0, 0.0, 0.0, 0)
        errors, _, empty = partial.errors(calibration_rows)
        errors = errors[~empty]
        if errors.size < 2:
            raise ValueError("the calibration rows need at least two rows with a value")
        cap = float(np.quantile(errors, cap_quantile))
        capped = np.minimum(errors, cap)
        sd = float(capped.std(ddof=1))
        skew = sample_skew(capped) if sd > 0 else 0.0
        return cls(
            features,
            mean,
            scale,
            components,
            ratio[:k],
            cap,
            float(capped.mean()),
            sd,
            skew,
            int(capped.size),
        )

    def errors(self, rows: npt.ArrayLike) -> tuple[FloatArray, IntArray, npt.NDArray[np.bool_]]:
        """Per row of ``rows[event, feature]`` (the ``features`` columns): the squared
        reconstruction error (uncapped), the number of missing cells imputed, and whether
        the row had no value at all (its error is then 0 and meaningless)."""
        x = np.asarray(rows, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.features):
            raise ValueError(
                f"rows must be (events, {len(self.features)}) for features "
                f"{list(self.features)}, got shape {x.shape}"
            )
        finite = np.isfinite(x)
        standard = np.where(finite, (np.where(finite, x, 0.0) - self.mean) / self.scale, 0.0)
        # einsum, not matmul: BLAS may round a row differently depending on the rows
        # beside it, and a batch must score exactly like its rows fed one at a time.
        scores = np.einsum("ef,kf->ek", standard, self.components)
        residual = standard - np.einsum("ek,kf->ef", scores, self.components)
        missing = (~finite).sum(axis=1).astype(np.int64)
        return (residual**2).sum(axis=1), missing, missing == x.shape[1]

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers (JSON-able); :meth:`from_dict` restores it exactly."""
        return {
            "features": list(self.features),
            "mean": float_list(self.mean),
            "scale": float_list(self.scale),
            "components": float_list(self.components),
            "explained_variance_ratio": float_list(self.explained_variance_ratio),
            "cap": self.cap,
            "error_mean": self.error_mean,
            "error_sd": self.error_sd,
            "error_skew": self.error_skew,
            "n_calibration": self.n_calibration,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PCAReference:
        """Restore :meth:`to_dict` output."""
        features = tuple(str(f) for f in data["features"])
        f = len(features)
        k = len(data["explained_variance_ratio"])
        if f < 2 or not 1 <= k < f:
            raise ValueError(f"{k} components of {f} features is not a reference PCA")
        return cls(
            features,
            as_float_array(data["mean"], (f,), "mean"),
            as_float_array(data["scale"], (f,), "scale"),
            as_float_array(data["components"], (k, f), "components"),
            as_float_array(data["explained_variance_ratio"], (k,), "explained_variance_ratio"),
            float(data["cap"]),
            float(data["error_mean"]),
            float(data["error_sd"]),
            float(data["error_skew"]),
            check_int("n_calibration", data["n_calibration"], 2),
        )


@dataclass(frozen=True)
class ReconstructionScores(JointScores):
    """:class:`JointScores` of the mean capped reconstruction error per segment, with
    ``z`` (its distance from the reference's mean in standard errors) and ``empty``
    (events without any value, not scored)."""

    z: FloatArray
    empty: IntArray


class ReconstructionDrift:
    """Reconstruction-error drift per segment against a :class:`PCAReference`.

    ``update`` adds a batch into the per-segment statistics (``stats``: one row of
    ``STAT_COLUMNS`` per segment) and scores everything seen since construction or
    ``reset``; ``accumulate`` and ``evaluate`` are the two halves for windows built
    elsewhere (panes summed, partitions merged).
    """

    def __init__(
        self,
        reference: PCAReference,
        n_segments: int = 1,
        *,
        alpha: float = 1e-4,
        min_samples: int = 500,
        clear_ratio: float = 0.5,
    ) -> None:
        self.reference = reference
        self.rule = DecisionRule(alpha, min_samples, clear_ratio)
        self.stats = np.zeros((segment_count(n_segments), len(STAT_COLUMNS)))

    @property
    def n_segments(self) -> int:
        """Number of segments evaluated."""
        return int(self.stats.shape[0])

    def accumulate(
        self, segments: npt.ArrayLike, rows: npt.ArrayLike, out: FloatArray | None = None
    ) -> FloatArray:
        """The statistics of a batch (added into ``out`` if given), ``(segments, 5)``."""
        seg = as_segments(segments, self.n_segments)
        if out is None:
            out = np.zeros((self.n_segments, len(STAT_COLUMNS)))
        errors, missing, empty = self.reference.errors(rows)
        if seg.size != errors.size:
            raise ValueError(f"{seg.size} segment ids for {errors.size} rows")
        capped = np.where(empty, 0.0, np.minimum(errors, self.reference.cap))
        per_row = np.column_stack([~empty, capped, capped**2, missing, empty]).astype(np.float64)
        add_rows(out, seg, per_row)
        return out

    def evaluate(self, stats_rows: npt.ArrayLike) -> ReconstructionScores:
        """Score per-segment statistics rows (``accumulate`` output, summed as needed)."""
        table = np.asarray(stats_rows, dtype=np.float64).reshape(-1, len(STAT_COLUMNS))
        ref = self.reference
        n = table[:, _N]
        enough = n >= self.rule.min_samples
        safe_n = np.maximum(n, 1.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            score = np.where(n > 0, table[:, _SUM] / safe_n, np.nan)
        # The window mean against the held-out mean: both means' sampling errors count.
        inv_n, inv_ref = 1.0 / safe_n, 1.0 / ref.n_calibration
        se = ref.error_sd * np.sqrt(inv_n + inv_ref)
        third = ref.error_skew * ref.error_sd**3 * (inv_n**2 - inv_ref**2)
        skew = np.where(se > 0, third / np.maximum(se, 1e-300) ** 3, 0.0)
        law = Pearson3(skew, ref.error_mean, np.maximum(se, 1e-300))
        half = self.rule.alpha / 2
        upper, lower = law.isf(half), law.ppf(half)
        ratio = self.rule.clear_ratio
        clear = ref.error_mean + ratio * (upper - ref.error_mean)
        clear_lower = ref.error_mean - ratio * (ref.error_mean - lower)
        with np.errstate(invalid="ignore", divide="ignore"):
            z = (score - ref.error_mean) / se
            p = np.minimum(1.0, 2 * np.minimum(law.cdf(score), law.sf(score)))
        verdict = verdicts(score, (lower, upper), (clear_lower, clear), enough)
        return ReconstructionScores(
            statistic=score,
            p_value=np.where(n > 0, p, np.nan),
            drift=verdict == BREACH,
            n=n.astype(np.int64),
            threshold=upper,
            lower=lower,
            clear=clear,
            clear_lower=clear_lower,
            verdict=verdict,
            missing=table[:, _MISSING].astype(np.int64),
            z=z,
            empty=table[:, _EMPTY].astype(np.int64),
        )

    def update(self, segments: npt.ArrayLike, values: npt.ArrayLike) -> ReconstructionScores:
        """Add a batch of rows (``values[event, feature]``) and score every segment."""
        self.accumulate(segments, values, out=self.stats)
        return self.evaluate(self.stats)

    def ensure_segments(self, n_segments: int) -> None:
        """Grow to at least ``n_segments`` segments."""
        grow = segment_count(n_segments) - self.n_segments
        if grow > 0:
            self.stats = np.vstack([self.stats, np.zeros((grow, len(STAT_COLUMNS)))])

    def reset(self) -> None:
        """Forget every row, keeping the segments."""
        self.stats = np.zeros_like(self.stats)

    def state_dict(self) -> State:
        """The statistics and the reference they are scored against."""
        return {"stats": self.stats.copy(), "reference": self.reference.to_dict()}

    def load_state_dict(self, state: State) -> None:
        """Restore ``state_dict`` output."""
        stats_rows = np.asarray(state["stats"], dtype=np.float64)
        if stats_rows.ndim != 2 or stats_rows.shape[1] != len(STAT_COLUMNS):
            raise ValueError(
                f"stats must be (segments, {len(STAT_COLUMNS)}), got {stats_rows.shape}"
            )
        self.reference = PCAReference.from_dict(state["reference"])
        self.stats = stats_rows.copy()
