"""Window detectors: PSI, KS, chi-square and Jensen-Shannon against a reference profile.

Each detector keeps a ``Sketch`` of every row since construction or the last
``reset()`` and, on every ``update``, compares it with the reference, for all
segments and features at once. Windowing (tumbling by count or time, panes) is the
caller's business: reset the detector, or ``evaluate`` a window's sketch (for instance
``PaneRing.window()``, or the sketches of several partitions merged).

Results are ``[segment, feature]`` arrays. ``drift`` is never raised for a segment and
feature with fewer than ``min_samples`` non-missing values in the window. Tests with
a p-value also require an effect size, because large windows make harmless shifts
significant (ALGORITHMS.md, "Large samples").
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from detectors.base import BoolArray, DriftResult, FloatArray, IntArray, State
from detectors.binning import Binner
from detectors.feature_profiles import CategoricalProfile, FeatureProfile
from detectors.sketch import Sketch
from detectors.stats import (
    DEFAULT_SMOOTHING,
    chi_square,
    jensen_shannon,
    js_null_threshold,
    ks_from_counts,
    psi,
    psi_null_threshold,
)
from detectors.values import check_int

R = TypeVar("R", bound=DriftResult)


def _positive(name: str, value: npt.ArrayLike, n_features: int) -> FloatArray:
    """A threshold, scalar or one per feature, validated > 0 and broadcast to ``(F,)``."""
    arr = np.asarray(value, dtype=np.float64)
    shown = arr.tolist() if arr.ndim else value
    if not (arr > 0).all() or not np.isfinite(arr).all():
        raise ValueError(f"{name} must be > 0, got {shown}")
    if arr.ndim > 1 or arr.size not in (1, n_features):
        raise ValueError(f"{name} must be a scalar or hold one value per feature ({n_features})")
    return np.broadcast_to(arr, (n_features,)).copy()


def _fraction(name: str, value: float, lo_open: bool = True) -> float:
    ok = (0 < value < 1) if lo_open else (0 <= value <= 1)
    if not ok:
        raise ValueError(f"{name} must be in {'(0, 1)' if lo_open else '[0, 1]'}, got {value}")
    return float(value)


@dataclass(frozen=True)
class KSDriftResult(DriftResult):
    """KS result: ``statistic``/``p_value`` at the lower bound of D (conservative), plus the
    upper bound of D and the p-value there."""

    statistic_upper: FloatArray
    p_value_at_upper: FloatArray


@dataclass(frozen=True)
class ChiSquareDriftResult(DriftResult):
    """Chi-square result plus degrees of freedom and the effect size (Cohen's w)."""

    dof: IntArray
    effect: FloatArray


class _WindowDetector(ABC, Generic[R]):
    """A sketch of the window and the reference counts in the same layout."""

    def __init__(
        self, profiles: Sequence[FeatureProfile], n_segments: int, min_samples: int
    ) -> None:
        binner = Binner(profiles)
        self.sketch = Sketch(binner, n_segments)
        self.min_samples = check_int("min_samples", min_samples, 1)
        reference = Sketch.from_reference(binner)
        self._ref_fine = reference.counts[0]
        self._ref_coarse = reference.coarse_counts()[0]

    @property
    def n_segments(self) -> int:
        """Number of segments evaluated."""
        return self.sketch.n_segments

    def update(self, segments: npt.ArrayLike, values: npt.ArrayLike) -> R:
        """Add a batch of rows (``values[row, feature]``) and evaluate every segment."""
        self.sketch.update(segments, values)
        return self._evaluate(self.sketch)

    def evaluate(self, sketch: Sketch | None = None) -> R:
        """The result for the rows seen so far, or for another sketch on the same profiles
        (a ``PaneRing`` window, or the sketches of several partitions merged)."""
        if sketch is None:
            sketch = self.sketch
        elif sketch.binner.fingerprint != self.sketch.binner.fingerprint:
            raise ValueError("the sketch was built on other profiles than this detector")
        return self._evaluate(sketch)

    @abstractmethod
    def _evaluate(self, sketch: Sketch) -> R: ...

    def ensure_segments(self, n_segments: int) -> None:
        """Grow to at least ``n_segments`` segments."""
        self.sketch.ensure_segments(n_segments)

    def reset(self) -> None:
        """Forget every row, keeping the segments."""
        self.sketch.reset()

    def state_dict(self) -> State:
        """The window's sketch state."""
        return {"sketch": self.sketch.state_dict()}

    def load_state_dict(self, state: State) -> None:
        """Restore ``state_dict`` output."""
        self.sketch.load_state_dict(state["sketch"])

    def _enough(self, n: IntArray) -> BoolArray:
        return n >= self.min_samples


class _ThresholdDetector(_WindowDetector[DriftResult]):
    """A distance without a p-value; drift at or above a threshold per feature."""

    def __init__(
        self,
        profiles: Sequence[FeatureProfile],
        n_segments: int,
        threshold: npt.ArrayLike,
        min_samples: int,
    ) -> None:
        super().__init__(profiles, n_segments, min_samples)
        self.threshold = _positive("threshold", threshold, self.sketch.binner.n_features)

    @abstractmethod
    def _statistic(self, sketch: Sketch) -> FloatArray: ...

    def _evaluate(self, sketch: Sketch) -> DriftResult:
        value = self._statistic(sketch)
        n = sketch.n
        return DriftResult(
            statistic=value,
            p_value=np.full(value.shape, np.nan),
            drift=self._enough(n) & (value >= self.threshold),
            n=n,
        )


class PSIDetector(_ThresholdDetector):
    """PSI on the coarse bins (categoricals: categories + ``__other__``).

    ``threshold`` is a scalar or one value per feature (e.g. from ``null_threshold``);
    drift is ``PSI >= threshold``. The default 0.25 is the customary "significant" level.
    """

    def __init__(
        self,
        profiles: Sequence[FeatureProfile],
        n_segments: int = 1,
        *,
        threshold: npt.ArrayLike = 0.25,
        smoothing: float = DEFAULT_SMOOTHING,
        min_samples: int = 100,
    ) -> None:
        super().__init__(profiles, n_segments, threshold, min_samples)
        self.smoothing = float(_positive("smoothing", smoothing, 1)[0])

    def null_threshold(self, window_n: int, n_sim: int = 1000, seed: int = 0) -> FloatArray:
        """Per-feature PSI thresholds calibrated for windows of ``window_n`` values
        (``psi_null_threshold`` on this detector's reference bins and smoothing)."""
        return psi_null_threshold(
            self._ref_coarse, window_n, n_sim, seed, self.smoothing, self.sketch.binner.n_coarse
        )

    def _statistic(self, sketch: Sketch) -> FloatArray:
        return psi(self._ref_coarse, sketch.coarse_counts(), self.smoothing, sketch.binner.n_coarse)


class JensenShannonDetector(_ThresholdDetector):
    """Jensen-Shannon distance (base 2, in [0, 1]) on the coarse bins.

    Drift is ``distance >= threshold``; the default 0.1 is Evidently's. The null level
    grows with the number of bins over the window size; see ``null_threshold``.
    """

    def __init__(
        self,
        profiles: Sequence[FeatureProfile],
        n_segments: int = 1,
        *,
        threshold: npt.ArrayLike = 0.1,
        min_samples: int = 100,
    ) -> None:
        super().__init__(profiles, n_segments, threshold, min_samples)

    def null_threshold(self, window_n: int, n_sim: int = 1000, seed: int = 0) -> FloatArray:
        """Per-feature thresholds calibrated for windows of ``window_n`` values
        (``js_null_threshold`` on this detector's reference bins)."""
        return js_null_threshold(self._ref_coarse, window_n, n_sim, seed)

    def _statistic(self, sketch: Sketch) -> FloatArray:
        return jensen_shannon(self._ref_coarse, sketch.coarse_counts())


class KSDetector(_WindowDetector[KSDriftResult]):
    """Two-sample KS on the fine grid of numeric features, bracketed from the counts.

    Drift requires ``p_value < alpha`` (the conservative p at the lower bound of D) and
    ``statistic >= min_effect`` (that lower bound of D). No correction for testing many
    segments and features is applied here; that belongs to the decision layer.
    """

    def __init__(
        self,
        profiles: Sequence[FeatureProfile],
        n_segments: int = 1,
        *,
        alpha: float = 0.05,
        min_effect: float = 0.1,
        min_samples: int = 100,
        distribution: Literal["auto", "kstwo", "kstwobign"] = "auto",
    ) -> None:
        categorical = [p.name for p in profiles if isinstance(p, CategoricalProfile)]
        if categorical:
            raise ValueError(f"KS needs numeric features; categorical: {categorical}")
        if distribution not in ("auto", "kstwo", "kstwobign"):
            raise ValueError(
                f"distribution must be 'auto', 'kstwo' or 'kstwobign', got {distribution!r}"
            )
        super().__init__(profiles, n_segments, min_samples)
        self.alpha = _fraction("alpha", alpha)
        self.min_effect = _fraction("min_effect", min_effect, lo_open=False)
        self.distribution = distribution

    def _evaluate(self, sketch: Sketch) -> KSDriftResult:
        ks = ks_from_counts(self._ref_fine, sketch.counts, self.distribution)
        return KSDriftResult(
            statistic=ks.statistic,
            p_value=ks.p_value,
            drift=self._enough(ks.n_cur)
            & (ks.p_value < self.alpha)
            & (ks.statistic >= self.min_effect),
            n=ks.n_cur,
            statistic_upper=ks.statistic_upper,
            p_value_at_upper=ks.p_value_at_upper,
        )


class ChiSquareDetector(_WindowDetector[ChiSquareDriftResult]):
    """Chi-square contingency test of the window against the reference, per feature.

    Meant for categoricals (categories + ``__other__``); numeric features are tested on
    their coarse bins. Drift requires ``p_value < alpha`` and Cohen's w
    ``>= min_effect`` (default 0.1, "small").
    """

    def __init__(
        self,
        profiles: Sequence[FeatureProfile],
        n_segments: int = 1,
        *,
        alpha: float = 0.05,
        min_effect: float = 0.1,
        min_samples: int = 100,
    ) -> None:
        super().__init__(profiles, n_segments, min_samples)
        self.alpha = _fraction("alpha", alpha)
        if not min_effect >= 0:
            raise ValueError(f"min_effect must be >= 0, got {min_effect}")
        self.min_effect = float(min_effect)

    def _evaluate(self, sketch: Sketch) -> ChiSquareDriftResult:
        chi = chi_square(self._ref_coarse, sketch.coarse_counts())
        n = sketch.n
        return ChiSquareDriftResult(
            statistic=chi.statistic,
            p_value=chi.p_value,
            drift=self._enough(n) & (chi.p_value < self.alpha) & (chi.effect >= self.min_effect),
            n=n,
            dof=chi.dof,
            effect=chi.effect,
        )
