"""What the multivariate and embedding detectors share: their result, verdicts, errors.

Both keep, per segment, a fixed-size row of additive statistics (counts and sums), so a
window's row is the sum of its panes' rows and two partitions merge by addition. Both
score a window by how far a mean of the window sits from the reference's, against the
sampling spread of that mean, and decide at a per-decision false-alarm rate ``alpha``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from detectors.base import DriftResult, FloatArray, IntArray
from detectors.rules import BAND, BREACH, CLEAR, SKIP
from detectors.values import check_int

Int8Array = npt.NDArray[np.int8]


class UnavailableError(ValueError):
    """A method cannot monitor these inputs; ``reason`` says why, ``features`` names the
    inputs that were usable (possibly none)."""

    def __init__(self, method: str, reason: str, features: Sequence[str] = ()) -> None:
        super().__init__(f"{method} is unavailable: {reason}")
        self.method = method
        self.reason = reason
        self.features = tuple(features)


@dataclass(frozen=True)
class JointScores(DriftResult):
    """Per-segment outcome of a multivariate method, indexed ``[segment]``.

    ``statistic`` is the score (exported as a gauge); a window breaches above
    ``threshold`` or below ``lower`` (NaN for a one-sided method) and clears inside
    ``[clear_lower, clear]``. ``verdict`` holds ``SKIP`` (fewer than ``min_samples``
    events), ``CLEAR``, ``BAND`` or ``BREACH``; ``drift`` is ``verdict == BREACH``.
    ``missing`` counts the inputs that could not be used as given (imputed cells, or
    skipped vectors).
    """

    threshold: FloatArray
    lower: FloatArray
    clear: FloatArray
    clear_lower: FloatArray
    verdict: Int8Array
    missing: IntArray

    @property
    def score(self) -> FloatArray:
        """Alias of ``statistic``, in the engine's words."""
        return self.statistic


@dataclass(frozen=True)
class DecisionRule:
    """How a per-segment score becomes a verdict: false-alarm rate per decision,
    events needed before testing, and the hysteresis band as a share of the distance
    from the null centre to the threshold."""

    alpha: float = 1e-4
    min_samples: int = 500
    clear_ratio: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 0.5:
            raise ValueError(f"alpha must be in (0, 0.5), got {self.alpha}")
        check_int("min_samples", self.min_samples, 2)
        if not 0 < self.clear_ratio <= 1:
            raise ValueError(f"clear_ratio must be in (0, 1], got {self.clear_ratio}")


def verdicts(
    score: FloatArray,
    bounds: tuple[FloatArray, FloatArray],
    clear_bounds: tuple[FloatArray, FloatArray],
    enough: npt.NDArray[np.bool_],
) -> Int8Array:
    """``BREACH`` outside ``bounds`` (lower, upper; a NaN bound never breaches), ``CLEAR``
    inside ``clear_bounds``, ``BAND`` between, ``SKIP`` where there are too few events."""
    lower, upper = bounds
    clear_lower, clear_upper = clear_bounds
    with np.errstate(invalid="ignore"):
        breach = (score > upper) | (score < lower)
        cleared = (score <= clear_upper) & ~(score < clear_lower)
    out = np.where(breach, BREACH, np.where(cleared, CLEAR, BAND))
    return np.where(enough, out, SKIP).astype(np.int8)


def add_rows(out: FloatArray, segments: IntArray, rows: FloatArray) -> None:
    """Add ``rows[i]`` to ``out[segments[i]]`` one row after the other.

    ``np.add.at`` is unbuffered and applies the rows in order, so a batch adds up to
    bit for bit what its rows fed one at a time do (the contract suite checks it).
    """
    np.add.at(out, segments, rows)


def segment_count(n_segments: int) -> int:
    """``n_segments`` validated."""
    return check_int("n_segments", n_segments, 1)


def float_list(values: npt.ArrayLike) -> list[float]:
    """An array as a list of Python floats, for ``to_dict``."""
    return [float(v) for v in np.asarray(values, dtype=np.float64).ravel()]


def as_float_array(values: object, shape: tuple[int, ...], name: str) -> FloatArray:
    """``from_dict`` input back as a float array of ``shape``, or a ValueError naming it."""
    out = np.asarray(values, dtype=np.float64)
    if out.size != int(np.prod(shape)):
        raise ValueError(f"{name} must hold {int(np.prod(shape))} values, got {out.size}")
    return out.reshape(shape)
