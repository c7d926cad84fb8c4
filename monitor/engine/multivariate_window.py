"""Multivariate drift in the daemon: the reference PCA's reconstruction error, per segment.

The reference carries a PCA of its numeric features (``ReferenceProfile.multivariate``,
fitted by ``driftd reference build`` and by a warm-up: :func:`fit_multivariate`). Each
accepted event's numeric features are standardised, projected onto the components and
back; its squared distance to that reconstruction, capped at the reference's cap, is its
error (:class:`~detectors.multivariate.PCAReference`). A window is judged on its events'
mean error (:class:`~detectors.multivariate.ReconstructionDrift`), two-sided.

So that every judgement covers exactly the events of its feature window, the errors are
counted by a second :class:`~monitor.engine.windows.Windows` fed the same segments,
event times and limits as the feature windows (as the CBPE windows are): it opens,
slides and closes its panes at the same events, refuses the same rows, and restores,
slices and merges like them. Those windows count bins, so each event's capped error is
written as a fixed-point integer ``q`` (``ERROR_STEPS`` steps of the cap) split into
``DIGITS`` base-``BASE`` digits, one column each: a window's error sum is
``sum_d BASE**d * sum_b b * count[d, b]``, exact in integers, and a restart or a
hand-over rebuilds it bit for bit. A last column counts each event's missing cells (filled
with the reference mean). An event with none of the features is missing in every digit
column: counted (``empty``), not scored.

Each closed window becomes one row of a :class:`~monitor.engine.results.WindowResults`
with the column ``__multivariate__`` and the method ``multivariate``, judged here (the
engine-verdict path of the decision book), so it pages, resolves and deduplicates like
every other drift alert.

Without a fitted PCA (fewer than two numeric features with spread, or a reference built
before multivariate drift existed), :func:`start_multivariate` says so once (log
``multivariate_unmonitored``; the pipeline keeps the reason for the gauge
``driftd_multivariate_unmonitored``).
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
from detectors.feature_profiles import NumericProfile
from detectors.multivariate import STAT_COLUMNS, PCAReference, ReconstructionDrift
from detectors.mv_common import UnavailableError
from detectors.profile import ReferenceProfile, multivariate_from_dict
from monitor.config import MultivariateDriftConfig, Settings, WindowsConfig
from monitor.engine.results import WindowResults
from monitor.engine.side_windows import SideWindows, one_column_results
from monitor.engine.windows import Windows

COLUMN: Final = "__multivariate__"
"""The column of the ``multivariate`` decisions (no feature name can be ``__x__``)."""
METHOD: Final = "multivariate"
BASE: Final = 64
"""Bins per digit column."""
DIGITS: Final = 3
ERROR_STEPS: Final = BASE**DIGITS - 1
"""The capped error in steps of ``cap / ERROR_STEPS`` (about 4e-6 of the cap)."""
NO_MODEL: Final = (
    "the reference has no multivariate model: build it with `driftd reference build` from "
    "training data with two or more numeric features with spread and 200 rows (a warm-up "
    "reference fits none)"
)
"""Why a warm-up fits none: it pools every segment and whatever arrived first, drifted
events included, and one joint model calibrated on that pages segments that did not
change (the univariate methods judge each segment against its own warm-up instead)."""

log = structlog.get_logger()


@dataclass(frozen=True)
class SegmentReconstruction:
    """The latest judged window of one segment."""

    segment: str
    n: int
    """Events scored (with at least one of the PCA's features)."""
    missing: int
    """Cells filled with the reference mean."""
    window_end_ts: float
    error: float
    """Mean capped reconstruction error (NaN: no event scored)."""
    threshold: float
    """The upper breach level of the mean."""
    lower: float
    """The lower breach level of the mean."""


def fit_multivariate(
    columns: Mapping[str, Any],
    numeric: Sequence[str],
    cfg: MultivariateDriftConfig,
) -> tuple[dict[str, Any] | None, str | None]:
    """The ``multivariate`` field of a reference whose ``numeric`` columns are given, or
    None and why not (off, fewer than two numeric features with spread, too few rows)."""
    if not cfg.enabled:
        return None, None
    names = sorted(numeric)
    if len(names) < 2:
        return None, f"needs two or more numeric features, the reference has {len(names)}"
    try:
        pca = PCAReference.fit(
            {name: columns[name] for name in names}, names, variance_share=cfg.variance_share
        )
    except UnavailableError as exc:
        return None, exc.reason
    except ValueError as exc:
        return None, str(exc)
    return pca.to_dict(), None


def start_multivariate(
    settings: Settings,
    reference: ReferenceProfile,
    columns: Sequence[str],
    n_segments: int,
    said: str | None = None,
) -> tuple[MultivariateWindows | None, str | None]:
    """The multivariate windows of ``reference`` on the pipeline's matrix ``columns``, or
    None and why not (logged as ``multivariate_unmonitored`` unless ``said``, the reason
    given before, is the same). With ``detectors.multivariate_drift.enabled`` or
    ``detectors.multivariate.enabled`` off: (None, None)."""
    cfg = settings.detectors.multivariate_drift
    if not cfg.enabled or not settings.detectors.multivariate.enabled:
        return None, None
    reason = None
    if reference.multivariate is None:
        reason = NO_MODEL
    else:
        pca = multivariate_from_dict(reference.multivariate)
        absent = [name for name in pca.features if name not in columns]
        if absent:
            reason = f"the reference PCA's features {absent} are not monitored columns"
    if reason is not None:
        if reason != said:
            log.warning(
                "multivariate_unmonitored", model=settings.model, method=METHOD, reason=reason
            )
        return None, reason
    index = np.array([list(columns).index(name) for name in pca.features], dtype=np.int64)
    return (
        MultivariateWindows(
            settings.model,
            pca,
            cfg,
            settings.windows,
            index,
            n_segments,
            clear_ratio=settings.detectors.clear_ratio,
            severe_ratio=settings.detectors.severe_ratio,
        ),
        None,
    )


def count_profile(name: str, n_bins: int) -> NumericProfile:
    """A profile whose fine bin ``k`` holds exactly the value ``k`` (0 .. n_bins - 1)."""
    return NumericProfile(
        name=name,
        edges=np.arange(n_bins - 1, dtype=np.float64) + 0.5,
        counts=np.ones(n_bins, dtype=np.int64),
        coarse_starts=np.zeros(1, dtype=np.int64),
        n_missing=0,
    )


class MultivariateWindows(SideWindows[SegmentReconstruction]):
    """Reconstruction-error windows beside the feature windows (see the module docstring).

    State: the :class:`Windows` of the digit and missing-cell columns (``DIGITS + 1``
    columns; ``BASE`` bins each, the last one ``F + 1``), whatever the stream's length.
    """

    def __init__(
        self,
        model: str,
        pca: PCAReference,
        cfg: MultivariateDriftConfig,
        windows: WindowsConfig,
        feature_index: IntArray,
        n_segments: int = 1,
        *,
        clear_ratio: float = 0.5,
        severe_ratio: float = 3.0,
    ) -> None:
        self.model = model
        self.pca = pca
        self.feature_index = np.asarray(feature_index, dtype=np.int64)
        """The PCA's features as columns of the pipeline's matrix."""
        self.severe_ratio = severe_ratio
        self.detector = ReconstructionDrift(
            pca, alpha=cfg.alpha, min_samples=cfg.min_samples, clear_ratio=clear_ratio
        )
        n_features = len(pca.features)
        profiles = [count_profile(f"__error_digit_{d}__", BASE) for d in range(DIGITS)]
        profiles.append(count_profile("__missing_cells__", n_features + 1))
        super().__init__(Windows(Binner(profiles), windows, n_segments))
        self._unit = pca.cap / ERROR_STEPS if math.isfinite(pca.cap) and pca.cap > 0 else 0.0

    def encode(self, matrix: FloatArray) -> FloatArray:
        """Each event's digit and missing-cell columns (``DIGITS + 1``), from the pipeline's
        matrix."""
        rows = np.asarray(matrix, dtype=np.float64)[:, self.feature_index]
        errors, missing, empty = self.pca.errors(rows)
        capped = np.minimum(errors, self.pca.cap)
        steps = (np.rint(capped / self._unit) if self._unit > 0 else np.zeros(capped.size)).astype(
            np.int64
        )
        steps = np.clip(steps, 0, ERROR_STEPS)
        digits = (steps[:, None] // BASE ** np.arange(DIGITS)) % BASE
        out = np.column_stack([digits.astype(np.float64), missing.astype(np.float64)])
        out[empty, :DIGITS] = np.nan
        return out

    def add(
        self,
        segments: IntArray,
        matrix: FloatArray,
        ts: FloatArray,
        names: tuple[str, ...],
        max_ahead: float | None = None,
        not_before: float = -math.inf,
    ) -> WindowResults | None:
        """Count a batch (the feature windows' rows, matrix and limits); the ``multivariate``
        rows of the windows it closed, or None."""
        closed = self.windows.add(segments, self.encode(matrix), ts, max_ahead, not_before)
        if not len(closed):
            return None
        stats = self.window_stats(closed.counts)
        scores = self.detector.evaluate(stats)
        results = one_column_results(
            self.model,
            closed,
            names,
            COLUMN,
            METHOD,
            scores,
            scores.missing / (np.maximum(closed.rows, 1) * len(self.pca.features)),
            self.severe_ratio,
        )
        return self.publish(
            results,
            lambda row, segment, end_ts: SegmentReconstruction(
                segment=segment,
                n=int(scores.n[row]),
                missing=int(scores.missing[row]),
                window_end_ts=end_ts,
                error=float(scores.statistic[row]),
                threshold=float(scores.threshold[row]),
                lower=float(scores.lower[row]),
            ),
        )

    def window_stats(self, counts: IntArray) -> FloatArray:
        """``ReconstructionDrift`` statistics rows (``STAT_COLUMNS``) of closed windows'
        counts ``(windows, DIGITS + 1, stride)``. ``error_sq_sum`` is not kept (NaN): the
        test uses the reference's spread, not the window's."""
        counts = np.asarray(counts, dtype=np.int64)
        values = np.arange(BASE, dtype=np.int64)
        digit_sums = counts[:, :DIGITS, :BASE] @ values  # (windows, DIGITS)
        steps = digit_sums @ (BASE ** np.arange(DIGITS, dtype=np.int64))
        n_missing = len(self.pca.features) + 1
        missing = counts[:, DIGITS, :n_missing] @ np.arange(n_missing, dtype=np.int64)
        scored = counts[:, 0, :BASE].sum(axis=1)
        empty = counts[:, 0, -1]
        out = np.zeros((counts.shape[0], len(STAT_COLUMNS)))
        out[:, 0] = scored
        out[:, 1] = steps * self._unit
        out[:, 2] = np.nan
        out[:, 3] = missing
        out[:, 4] = empty
        return out
