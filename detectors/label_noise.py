"""Label-noise signal: the share of joined pairs whose label the model confidently disputes.

Confident learning (Northcutt et al., as cleanlab does it) sets one confidence threshold
per class from labelled reference data: ``t_c``, the mean predicted probability of class
``c`` over the reference examples labelled ``c``. A pair ``(p, y)`` is *suspicious* when
the model gives some other class ``c`` a probability ``p_c >= t_c`` and more than it gives
the label (``p_c > p_y``); its *margin* ``max_{c != y} p_c - p_y`` ranks how suspicious.

Per segment and window a pair count, a suspicious count and an invalid count are kept
(``(S, 3)``, additive). A rise of the suspicious share is tested one-sided against the
reference's share: under no change the window's suspicious count is binomial with the
reference's rate, which is itself known only from the reference's pairs, so the test is
the beta-binomial predictive of that count (the binomial with a Jeffreys posterior on
the rate), exact and never anti-conservative for any window size.

Probabilities are ``(n,)`` for a binary model (the positive class's) or ``(n, C)``;
labels are class indices. A pair with a non-finite or out-of-range probability, or a
label that is not a class index, is counted as invalid, never scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from detectors.base import BoolArray, DriftResult, FloatArray, IntArray, State, as_segments
from detectors.perf_binomial import beta_binomial_upper_tail
from detectors.perf_calibration import as_floats
from detectors.rules import BAND, BREACH, CLEAR, SKIP
from detectors.values import check_int

DEFAULT_ALPHA: Final = 1e-4
"""One-sided false-alarm rate per decision of the label-noise test."""
_PAIRS, _SUSPICIOUS, _INVALID = range(3)
STATS_WIDTH: Final = 3
"""Columns of the per-segment statistics: pairs scored, suspicious pairs, invalid pairs."""


def class_probabilities(probabilities: npt.ArrayLike, n_classes: int) -> FloatArray:
    """``(n, C)`` probabilities; a binary model's ``(n,)`` positive-class scores become
    ``[1 - p, p]``."""
    arr = as_floats(probabilities)
    if arr.ndim == 1 and n_classes == 2:
        return np.stack([1.0 - arr, arr], axis=1)
    if arr.ndim != 2 or arr.shape[1] != n_classes:
        raise ValueError(
            f"probabilities must have shape (n, {n_classes})"
            + (" or (n,)" if n_classes == 2 else "")
            + f", got {arr.shape}"
        )
    return arr


def _labels(labels: npt.ArrayLike, size: int, n_classes: int) -> tuple[IntArray, BoolArray]:
    num = as_floats(labels)
    if num.shape != (size,):
        raise ValueError(f"labels must have shape ({size},), got {num.shape}")
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(num) & (num == np.round(num)) & (num >= 0) & (num < n_classes)
    return np.where(ok, num, 0).astype(np.int64), np.asarray(ok, dtype=np.bool_)


@dataclass(frozen=True)
class PairMargins:
    """Per pair: ``margin`` (``max_{c != y} p_c - p_y``, NaN if invalid), ``suspicious``
    and ``valid``."""

    margin: FloatArray
    suspicious: BoolArray
    valid: BoolArray


@dataclass(frozen=True)
class ConfidentThresholds:
    """Per-class confidence thresholds and the reference's suspicious share.

    >>> probs = np.array([0.9, 0.7, 0.2, 0.1, 0.8])
    >>> ct = ConfidentThresholds.fit(probs, np.array([1, 1, 0, 0, 0]))
    >>> ct.thresholds.round(3).tolist()  # mean p(0) over label 0, mean p(1) over label 1
    [0.633, 0.8]
    >>> ct.margins(probs, np.array([1, 1, 0, 0, 0])).suspicious.tolist()
    [False, False, False, False, True]
    """

    thresholds: FloatArray
    reference_pairs: int
    reference_suspicious: int

    @classmethod
    def fit(
        cls, probabilities: npt.ArrayLike, labels: npt.ArrayLike, n_classes: int = 2
    ) -> ConfidentThresholds:
        """Fit on labelled reference pairs (invalid ones left out); every class needs at
        least one valid labelled pair."""
        n_classes = check_int("n_classes", n_classes, 2, 10_000)
        probs = class_probabilities(probabilities, n_classes)
        y, ok = _labels(labels, probs.shape[0], n_classes)
        ok &= _valid_rows(probs)
        probs, y = probs[ok], y[ok]
        per_class = np.bincount(y, minlength=n_classes)
        if np.any(per_class == 0):
            missing = np.flatnonzero(per_class == 0).tolist()
            raise ValueError(f"no valid reference pair is labelled with classes {missing}")
        own = probs[np.arange(y.size), y]
        thresholds = np.bincount(y, weights=own, minlength=n_classes) / per_class
        fitted = cls(thresholds, int(y.size), 0)
        suspicious = int(fitted.margins(probs, y).suspicious.sum())
        return cls(thresholds, int(y.size), suspicious)

    @property
    def n_classes(self) -> int:
        """Number of classes ``C``."""
        return int(self.thresholds.size)

    @property
    def reference_share(self) -> float:
        """Suspicious share of the reference's pairs."""
        return self.reference_suspicious / self.reference_pairs

    def margins(self, probabilities: npt.ArrayLike, labels: npt.ArrayLike) -> PairMargins:
        """Margin, suspicion and validity of every pair."""
        scores = as_floats(probabilities)
        if scores.ndim == 1 and self.n_classes == 2:
            return self._binary_margins(scores, labels)
        probs = class_probabilities(scores, self.n_classes)
        y, ok = _labels(labels, probs.shape[0], self.n_classes)
        ok &= _valid_rows(probs)
        rows = np.arange(y.size)
        safe = np.where(ok[:, None], probs, 0.0)
        own = safe[rows, y]
        others = safe.copy()
        others[rows, y] = -np.inf
        confident = (others >= self.thresholds[None, :]) & (others > own[:, None])
        margin = others.max(axis=1) - own
        return PairMargins(
            margin=np.where(ok, margin, np.nan),
            suspicious=np.asarray(ok & confident.any(axis=1), dtype=np.bool_),
            valid=ok,
        )

    def _binary_margins(self, scores: FloatArray, labels: npt.ArrayLike) -> PairMargins:
        """``margins`` of positive-class scores without building the ``(n, 2)`` matrix."""
        y, ok = _labels(labels, scores.size, 2)
        with np.errstate(invalid="ignore"):
            ok &= np.isfinite(scores) & (scores >= 0.0) & (scores <= 1.0)
        own = np.where(y == 1, scores, 1.0 - scores)
        other = 1.0 - own
        confident = (other >= self.thresholds[1 - y]) & (other > own)
        return PairMargins(
            margin=np.where(ok, other - own, np.nan),
            suspicious=np.asarray(ok & confident, dtype=np.bool_),
            valid=np.asarray(ok, dtype=np.bool_),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers, for the saved reference."""
        return {
            "thresholds": self.thresholds.tolist(),
            "reference_pairs": self.reference_pairs,
            "reference_suspicious": self.reference_suspicious,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConfidentThresholds:
        """Rebuild from ``to_dict`` output, checking it."""
        thresholds = np.asarray(data["thresholds"], dtype=np.float64)
        pairs = check_int("reference_pairs", data["reference_pairs"], 1)
        suspicious = check_int("reference_suspicious", data["reference_suspicious"], 0, pairs)
        if thresholds.ndim != 1 or thresholds.size < 2 or not np.all(np.isfinite(thresholds)):
            raise ValueError("thresholds must be finite, one per class, at least 2 classes")
        return cls(thresholds, pairs, suspicious)


def _valid_rows(probs: FloatArray) -> BoolArray:
    with np.errstate(invalid="ignore"):
        inside = np.isfinite(probs) & (probs >= 0.0) & (probs <= 1.0)
    return np.asarray(inside.all(axis=1), dtype=np.bool_)


@dataclass(frozen=True)
class LabelNoiseResult(DriftResult):
    """Per-segment label-noise outcome of a window.

    ``statistic`` is the suspicious share, ``threshold`` the share at which it breaches
    (the smallest count whose one-sided p-value is at most ``alpha``, over ``n``),
    ``clear`` the share below which a firing alert resolves (half-way between the
    reference's share and the threshold), ``suspicious`` and ``invalid`` the counts.
    ``verdict`` is SKIP below ``min_samples`` pairs, else CLEAR, BAND or BREACH.
    """

    suspicious: IntArray
    invalid: IntArray
    reference_share: float
    threshold: FloatArray
    clear: FloatArray
    verdict: npt.NDArray[np.int8]

    @property
    def score(self) -> FloatArray:
        """The suspicious share (alias of ``statistic``)."""
        return self.statistic


class LabelNoiseTest:
    """Thresholds plus alert rules: accumulate, evaluate, rank, serialize.

    >>> rng = np.random.default_rng(0)
    >>> p = rng.beta(0.5, 0.5, 20_000)
    >>> test = LabelNoiseTest.fit(p, (rng.random(20_000) < p).astype(int))
    >>> q = rng.beta(0.5, 0.5, 4_000)
    >>> y = (rng.random(4_000) < q).astype(int)
    >>> seg = np.repeat([0, 1], 2_000)
    >>> flip = (seg == 1) & (rng.random(4_000) < 0.1)  # 10% of segment 1's labels
    >>> result = test.evaluate(test.accumulate(seg, q, np.where(flip, 1 - y, y), 2))
    >>> result.drift.tolist()
    [False, True]
    """

    def __init__(
        self,
        thresholds: ConfidentThresholds,
        alpha: float = DEFAULT_ALPHA,
        min_samples: int = 200,
        clear_ratio: float = 0.5,
    ) -> None:
        if not 0.0 < alpha < 0.5:
            raise ValueError(f"alpha must be in (0, 0.5), got {alpha!r}")
        if not 0.0 <= clear_ratio <= 1.0:
            raise ValueError(f"clear_ratio must be in [0, 1], got {clear_ratio!r}")
        self.thresholds = thresholds
        self.alpha = float(alpha)
        self.min_samples = check_int("min_samples", min_samples, 1)
        self.clear_ratio = float(clear_ratio)
        # Jeffreys posterior of the reference's suspicious rate.
        self._a = thresholds.reference_suspicious + 0.5
        self._b = thresholds.reference_pairs - thresholds.reference_suspicious + 0.5

    @classmethod
    def fit(
        cls,
        probabilities: npt.ArrayLike,
        labels: npt.ArrayLike,
        n_classes: int = 2,
        **rules: Any,
    ) -> LabelNoiseTest:
        """Fit the thresholds on labelled reference pairs; ``rules`` go to ``__init__``."""
        return cls(ConfidentThresholds.fit(probabilities, labels, n_classes), **rules)

    def accumulate(
        self,
        segments: npt.ArrayLike,
        probabilities: npt.ArrayLike,
        labels: npt.ArrayLike,
        n_segments: int,
    ) -> IntArray:
        """``(S, 3)``: valid pairs, suspicious pairs, invalid pairs, per segment."""
        seg = as_segments(segments, n_segments)
        m = self.thresholds.margins(probabilities, labels)
        if m.valid.shape != seg.shape:
            raise ValueError(f"{seg.size} segments for {m.valid.size} pairs")
        out = np.zeros((n_segments, STATS_WIDTH), dtype=np.int64)
        out[:, _PAIRS] = np.bincount(seg, weights=m.valid, minlength=n_segments)
        out[:, _SUSPICIOUS] = np.bincount(seg, weights=m.suspicious, minlength=n_segments)
        out[:, _INVALID] = np.bincount(seg, weights=~m.valid, minlength=n_segments)
        return out

    def evaluate(self, pair_stats: npt.ArrayLike) -> LabelNoiseResult:
        """Suspicious share, one-sided p-value and verdict of every segment's window."""
        counts = np.asarray(pair_stats)
        if counts.ndim != 2 or counts.shape[1] != STATS_WIDTH:
            raise ValueError(f"statistics must have shape (S, {STATS_WIDTH}), got {counts.shape}")
        counts = counts.astype(np.int64, copy=False)
        n, k = counts[:, _PAIRS], counts[:, _SUSPICIOUS]
        p_value, critical = beta_binomial_upper_tail(k, n, self._a, self._b, self.alpha)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(n > 0, k / np.maximum(n, 1), np.nan)
            threshold = np.where(n > 0, critical / np.maximum(n, 1), np.nan)
        reference = self.thresholds.reference_share
        clear = reference + self.clear_ratio * (threshold - reference)
        verdict = np.where(share >= threshold, BREACH, np.where(share < clear, CLEAR, BAND))
        verdict = np.where(n < self.min_samples, SKIP, verdict).astype(np.int8)
        return LabelNoiseResult(
            statistic=share,
            p_value=np.where(n > 0, p_value, np.nan),
            drift=verdict == BREACH,
            n=n,
            suspicious=k,
            invalid=counts[:, _INVALID],
            reference_share=reference,
            threshold=threshold,
            clear=clear,
            verdict=verdict,
        )

    def most_suspicious(
        self,
        segments: npt.ArrayLike,
        probabilities: npt.ArrayLike,
        labels: npt.ArrayLike,
        top_n: int,
    ) -> IntArray:
        """Row indices of each segment's ``top_n`` most suspicious pairs in a batch.

        Ordered by segment, then by margin (largest first), then by row; pairs that are
        not suspicious are never returned.

        >>> test = LabelNoiseTest(ConfidentThresholds(np.array([0.6, 0.6]), 100, 10))
        >>> p = np.array([0.9, 0.95, 0.7, 0.1, 0.99])
        >>> test.most_suspicious([0, 0, 0, 1, 1], p, [0, 0, 0, 1, 1], top_n=2).tolist()
        [1, 0, 3]
        """
        top_n = check_int("top_n", top_n, 0)
        seg = np.asarray(segments)
        m = self.thresholds.margins(probabilities, labels)
        if seg.shape != m.valid.shape:
            raise ValueError(f"{seg.size} segments for {m.valid.size} pairs")
        rows = np.flatnonzero(m.suspicious)
        order = rows[np.lexsort((rows, -m.margin[rows], seg[rows]))]
        group = seg[order]
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]]) if order.size else order
        rank = np.arange(order.size) - np.repeat(starts, np.diff(np.r_[starts, order.size]))
        return np.asarray(order[rank < top_n], dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        """The thresholds and the rules as plain values, for the saved reference."""
        return {
            "thresholds": self.thresholds.to_dict(),
            "alpha": self.alpha,
            "min_samples": self.min_samples,
            "clear_ratio": self.clear_ratio,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabelNoiseTest:
        """Rebuild from ``to_dict`` output."""
        return cls(
            ConfidentThresholds.from_dict(data["thresholds"]),
            alpha=data["alpha"],
            min_samples=data["min_samples"],
            clear_ratio=data["clear_ratio"],
        )


class LabelNoiseDetector:
    """River-shaped label-noise signal over ``n_segments`` segments.

    ``values`` rows are the class probabilities followed by the label: ``(n, C + 1)``,
    or ``(n, 2)`` (positive-class score, label) for a binary model. The result covers
    every pair since construction or ``reset``; windowing is the caller's.

    >>> rng = np.random.default_rng(3)
    >>> p = rng.beta(0.5, 0.5, 10_000)
    >>> detector = LabelNoiseDetector(LabelNoiseTest.fit(p, rng.random(10_000) < p))
    >>> q = rng.beta(0.5, 0.5, 1_000)
    >>> result = detector.update(np.zeros(1_000, dtype=int), np.c_[q, rng.random(1_000) < q])
    >>> result.verdict.tolist()
    [-1]
    """

    def __init__(self, test: LabelNoiseTest, n_segments: int = 1) -> None:
        self.test = test
        self.n_segments = check_int("n_segments", n_segments, 1)
        self.reset()

    def reset(self) -> None:
        """Forget every pair, keeping the segments."""
        self.counts = np.zeros((self.n_segments, STATS_WIDTH), dtype=np.int64)

    def update(self, segments: npt.ArrayLike, values: npt.ArrayLike) -> LabelNoiseResult:
        """Count a batch of pairs and evaluate every segment."""
        rows = as_floats(values)
        c = self.test.thresholds.n_classes
        if rows.ndim != 2 or rows.shape[1] not in {c + 1, 2 if c == 2 else c + 1}:
            raise ValueError(f"values must have shape (n, {c + 1}), got {rows.shape}")
        probs = rows[:, 0] if rows.shape[1] == 2 else rows[:, :-1]
        self.counts += self.test.accumulate(segments, probs, rows[:, -1], self.n_segments)
        return self.test.evaluate(self.counts)

    def state_dict(self) -> State:
        """The pair counts."""
        return {"counts": self.counts.copy()}

    def load_state_dict(self, state: State) -> None:
        """Restore ``state_dict`` output (of a detector with the same segments)."""
        counts = np.asarray(state["counts"], dtype=np.int64)
        if counts.shape != self.counts.shape:
            raise ValueError(f"state shape {counts.shape} does not fit {self.counts.shape}")
        self.counts = counts.copy()
