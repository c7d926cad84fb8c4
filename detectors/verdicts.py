"""What the engine returns, and how per-test verdicts are assembled (BH included)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from detectors.base import BoolArray, FloatArray, IntArray
from detectors.rules import BAND, BREACH, CLEAR, COUNT_METHODS, SEVERE, SKIP, benjamini_hochberg


@dataclass(frozen=True)
class WindowScores:
    """Every method's outcome on ``k`` windows x ``F`` columns.

    ``score``, ``p_value``, ``threshold``, ``clear`` and ``verdict`` map a method to a
    ``(k, F)`` array; scores are NaN where the method does not apply to a column,
    p-values NaN where it has none. ``verdict`` holds ``SKIP``, ``CLEAR``, ``BAND``,
    ``BREACH`` or ``SEVERE``.
    """

    columns: tuple[str, ...]
    rows: IntArray
    n: IntArray
    missing_rate: FloatArray
    score: dict[str, FloatArray]
    p_value: dict[str, FloatArray]
    threshold: dict[str, FloatArray]
    clear: dict[str, FloatArray]
    verdict: dict[str, npt.NDArray[np.int8]]

    def __len__(self) -> int:
        return int(self.rows.size)

    @property
    def drifting(self) -> BoolArray:
        """``(k, F)``: columns with a breach of a distribution or data-quality method."""
        out = np.zeros(self.n.shape, dtype=np.bool_)
        for method, verdict in self.verdict.items():
            if method not in COUNT_METHODS:
                out |= verdict >= BREACH
        return out

    @property
    def drifting_share(self) -> FloatArray:
        """``(k,)``: the share of columns drifting in each window."""
        if not self.columns:
            return np.zeros(len(self))
        return np.asarray(self.drifting.mean(axis=1), dtype=np.float64)


class VerdictBuilder:
    """Collects per-method arrays, applies BH across a window's tests, builds the result.

    Used by the engine only; public so that no module reaches into another's privates.
    """

    def __init__(self, k: int, f: int) -> None:
        self.k, self.f = k, f
        self.score: dict[str, FloatArray] = {}
        self.p_value: dict[str, FloatArray] = {}
        self.threshold: dict[str, FloatArray] = {}
        self.clear: dict[str, FloatArray] = {}
        self.verdict: dict[str, npt.NDArray[np.int8]] = {}
        self.rule: dict[str, tuple[BoolArray, FloatArray]] = {}
        """Per tested method: which cells are calibrated, and the effect floors."""

    def put(
        self,
        method: str,
        on: BoolArray,
        score: FloatArray,
        p: FloatArray,
        thr: FloatArray,
        clear: FloatArray,
        verdict: npt.NDArray[np.int8],
    ) -> None:
        nan = np.nan
        self.score[method] = np.where(on, score, nan)
        self.p_value[method] = np.where(on, p, nan)
        self.threshold[method] = np.where(on, np.broadcast_to(thr, (self.k, self.f)), nan)
        self.clear[method] = np.where(on, np.broadcast_to(clear, (self.k, self.f)), nan)
        self.verdict[method] = np.where(on, verdict, SKIP).astype(np.int8)

    def apply_fdr(self, q: float, severe_ratio: float) -> None:
        """Benjamini-Hochberg over each window's tests (columns x methods with a p-value).

        A calibrated breach then needs the rejection and the method's effect floor (the
        rejection replaces the per-test alpha); a fixed one needs the rejection on top of
        its own rule.
        """
        methods = [m for m in self.verdict if m in self.rule]
        if not methods or not self.k:
            return
        p = np.stack([self.p_value[m] for m in methods], axis=-1)  # (k, F, M)
        tested = np.stack([self.verdict[m] != SKIP for m in methods], axis=-1)
        family = np.where(tested, p, np.nan)
        reject = np.stack(
            [benjamini_hochberg(family[row], q).reshape(family[row].shape) for row in range(self.k)]
        )
        for j, method in enumerate(methods):
            v, s = self.verdict[method], self.score[method]
            thr, clear = self.threshold[method], self.clear[method]
            calibrated, floor = self.rule[method]
            breach = np.where(calibrated, s >= floor, v >= BREACH) & reject[..., j]
            new = np.where(s < clear, CLEAR, BAND)
            new = np.where(breach, BREACH, new)
            new = np.where(breach & (s >= severe_ratio * thr), SEVERE, new)
            self.verdict[method] = np.where(v == SKIP, SKIP, new).astype(np.int8)

    def defer_to_schema(self) -> None:
        """A column the window does not carry at all pages once, as ``schema``: its
        ``missing`` and ``samples`` breaches say the same and are left untested."""
        schema = self.verdict.get("schema")
        if schema is None:
            return
        absent = schema >= BREACH
        for method in ("missing", "samples"):
            if method in self.verdict:
                self.verdict[method] = np.where(absent, SKIP, self.verdict[method]).astype(np.int8)

    def build(
        self, columns: tuple[str, ...], rows: IntArray, n: IntArray, missing_rate: FloatArray
    ) -> WindowScores:
        return WindowScores(
            columns=columns,
            rows=np.asarray(rows, dtype=np.int64),
            n=np.asarray(n, dtype=np.int64),
            missing_rate=np.asarray(missing_rate, dtype=np.float64),
            score=self.score,
            p_value=self.p_value,
            threshold=self.threshold,
            clear=self.clear,
            verdict=self.verdict,
        )
