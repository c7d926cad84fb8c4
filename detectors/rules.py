"""The engine's rules: methods, verdicts, thresholds per method and column, BH.

Everything a decision depends on, validated once and frozen (``Rules``), so that the
engine itself only computes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from detectors.base import BoolArray
from detectors.stats import DEFAULT_SMOOTHING
from detectors.values import check_int

METHODS: Final = (
    "psi",
    "ks",
    "chi2",
    "js",
    "missing",
    "range",
    "unseen",
    "samples",
    "schema",
)
DISTRIBUTION_METHODS: Final = frozenset({"psi", "ks", "chi2", "js"})
QUALITY_METHODS: Final = frozenset({"missing", "range", "unseen", "samples", "schema"})
COUNT_METHODS: Final = frozenset({"samples", "schema"})
"""Methods that report whether a column could be tested rather than how far it moved."""

SKIP: Final = -2
"""Verdict: not tested (too few values); the state machine is left alone."""
CLEAR: Final = -1
"""Verdict: below the clear threshold."""
BAND: Final = 0
"""Verdict: between clear and threshold (or significant but not BH-rejected)."""
BREACH: Final = 1
"""Verdict: at or above the threshold."""
SEVERE: Final = 2
"""Verdict: a breach of at least ``severe_ratio`` x threshold: fires at once."""


@dataclass(frozen=True)
class MethodRule:
    """How one method decides.

    ``calibrated`` thresholds come from the null distribution (``Rules.alpha``) and are
    never below ``min_effect``; fixed ones are ``threshold``, with ``clear`` as the
    hysteresis level below which a firing alert resolves.
    """

    enabled: bool = True
    calibrated: bool = True
    threshold: float = 1.0
    clear: float = 0.5
    min_effect: float = 0.0

    def __post_init__(self) -> None:
        for name in ("threshold", "clear"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be finite and > 0, got {value}")
        if self.clear > self.threshold:
            raise ValueError(f"clear ({self.clear}) must not exceed threshold ({self.threshold})")
        if not (np.isfinite(self.min_effect) and self.min_effect >= 0):
            raise ValueError(f"min_effect must be finite and >= 0, got {self.min_effect}")


DEFAULT_RULES: Final[Mapping[str, MethodRule]] = {
    # Fixed thresholds are the customary ones; floors are effects too small to page on
    # however many values a window holds.
    "psi": MethodRule(threshold=0.25, clear=0.1, min_effect=0.01),
    "ks": MethodRule(threshold=0.15, clear=0.08, min_effect=0.02),
    "chi2": MethodRule(threshold=0.2, clear=0.1, min_effect=0.03),
    "js": MethodRule(threshold=0.2, clear=0.1, min_effect=0.02),
    "missing": MethodRule(threshold=0.1, clear=0.05, min_effect=0.01),
    "range": MethodRule(threshold=0.01, clear=0.005, min_effect=0.005),
    "unseen": MethodRule(threshold=0.01, clear=0.005, min_effect=0.005),
    "samples": MethodRule(calibrated=False),
    "schema": MethodRule(calibrated=False),
}


@dataclass(frozen=True)
class Rules:
    """Every decision parameter of the engine (validated here, frozen).

    ``methods`` replaces the defaults of the methods it names; ``overrides`` replaces
    single methods of single columns.
    """

    methods: Mapping[str, MethodRule] = field(default_factory=dict)
    overrides: Mapping[str, Mapping[str, MethodRule]] = field(default_factory=dict)
    alpha: float = 1e-4
    clear_ratio: float = 0.5
    severe_ratio: float = 3.0
    fdr_q: float | None = None
    p_alpha: float = 0.01
    min_samples: int = 500
    smoothing: float = DEFAULT_SMOOTHING
    n_sim: int = 1000
    sim_window: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = sorted(
            set(self.methods) - set(METHODS)
            | {m for per in self.overrides.values() for m in per} - set(METHODS)
        )
        if unknown:
            raise ValueError(f"unknown methods {unknown}; known: {list(METHODS)}")
        object.__setattr__(self, "methods", {**DEFAULT_RULES, **self.methods})
        object.__setattr__(self, "overrides", {c: dict(m) for c, m in self.overrides.items()})
        if not 0 < self.alpha < 0.5:
            raise ValueError(f"alpha must be in (0, 0.5), got {self.alpha}")
        if not 0 < self.clear_ratio <= 1:
            raise ValueError(f"clear_ratio must be in (0, 1], got {self.clear_ratio}")
        if not self.severe_ratio >= 1:
            raise ValueError(f"severe_ratio must be >= 1, got {self.severe_ratio}")
        if self.fdr_q is not None and not 0 < self.fdr_q < 1:
            raise ValueError(f"fdr_q must be in (0, 1), got {self.fdr_q}")
        if not 0 < self.p_alpha < 1:
            raise ValueError(f"p_alpha must be in (0, 1), got {self.p_alpha}")
        if not self.smoothing > 0:
            raise ValueError(f"smoothing must be > 0, got {self.smoothing}")
        check_int("min_samples", self.min_samples, 1)
        check_int("n_sim", self.n_sim, 50)
        check_int("sim_window", self.sim_window, 10)
        check_int("seed", self.seed, 0)

    def rule(self, column: str, method: str) -> MethodRule:
        """The rule of ``method`` on ``column``."""
        return self.overrides.get(column, {}).get(method) or self.methods[method]


def benjamini_hochberg(p_values: npt.ArrayLike, q: float) -> BoolArray:
    """Which hypotheses Benjamini-Hochberg rejects at false discovery rate ``q``.

    NaN p-values are not hypotheses: they are never rejected and do not count in
    ``m``. Matches ``scipy.stats.false_discovery_control(p) <= q`` on the finite ones.

    >>> benjamini_hochberg([0.001, 0.02, 0.04, float("nan"), 0.9], 0.05).tolist()
    [True, True, False, False, False]
    """
    p = np.asarray(p_values, dtype=np.float64).ravel()
    reject = np.zeros(p.shape, dtype=np.bool_)
    finite = np.flatnonzero(~np.isnan(p))
    m = finite.size
    if m == 0:
        return reject
    order = finite[np.argsort(p[finite], kind="stable")]
    below = p[order] <= q * np.arange(1, m + 1, dtype=np.float64) / m
    hits = np.flatnonzero(below)
    if hits.size:
        reject[order[: hits[-1] + 1]] = True
    return reject
