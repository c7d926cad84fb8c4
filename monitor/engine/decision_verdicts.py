"""How one window's score counts towards its state machine: the verdict codes.

The engine's own verdicts (``detectors.rules``) are translated; rows it did not judge
(ADWIN, fairness) are classified here by their method's fixed thresholds, per column
(``detectors.overrides``), a whole row of columns at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from detectors.rules import SEVERE, SKIP
from monitor.config import DetectorsConfig, MethodConfig
from monitor.engine.decision_store import ENGINE_VERDICTS, VERDICT_CODES
from monitor.engine.decision_types import Verdict

P_VALUE_METHODS: Final = frozenset({"ks", "chi2"})
"""Methods whose fixed-threshold breach also needs ``p_value < detectors.ks_alpha``."""

SEVERE_CODE, BREACH_CODE, BAND_CODE, CLEAR_CODE = (VERDICT_CODES[v.value] for v in Verdict)
SKIPPED: Final = -1
"""The code of a window the engine skipped (too few samples)."""
_ENGINE_LOOKUP: Final = np.full(SEVERE - SKIP + 1, SKIPPED, np.int8)
"""Engine verdict - SKIP -> verdict code here."""
for _engine, _code in ENGINE_VERDICTS.items():
    _ENGINE_LOOKUP[_engine - SKIP] = _code


@dataclass(frozen=True)
class ColumnConfigs:
    """One method's configuration in each column of a window."""

    enabled: npt.NDArray[np.bool_]
    threshold: npt.NDArray[np.float64]
    clear: npt.NDArray[np.float64]
    needed: npt.NDArray[np.int64]
    """Consecutive breaching windows that fire."""


def method_config(detectors: DetectorsConfig, column: str, method: str) -> MethodConfig | None:
    """Thresholds for ``column`` and ``method``, or None when it is not evaluated."""
    override = detectors.overrides.get(column, {}).get(method)
    cfg = override if override is not None else detectors.method(method)
    if not isinstance(cfg, MethodConfig) or not cfg.enabled:
        return None
    return cfg


def column_configs(
    detectors: DetectorsConfig, columns: tuple[str, ...], method: str
) -> ColumnConfigs:
    """``method``'s configuration in each of ``columns`` (disabled: NaN thresholds)."""
    cfgs = [method_config(detectors, c, method) for c in columns]
    return ColumnConfigs(
        enabled=np.array([c is not None for c in cfgs], np.bool_),
        threshold=np.array([np.nan if c is None else c.threshold for c in cfgs]),
        clear=np.array([np.nan if c is None else c.clear for c in cfgs]),
        needed=np.array(
            [
                0
                if c is None
                else detectors.consecutive
                if c.consecutive is None
                else c.consecutive
                for c in cfgs
            ],
            np.int64,
        ),
    )


def engine_verdicts(
    engine: npt.NDArray[np.integer], judged: npt.NDArray[np.bool_]
) -> npt.NDArray[np.int8]:
    """The engine's verdicts as codes here (``SKIPPED`` for SKIP); KeyError on a code the
    engine does not have in a ``judged`` column."""
    codes = engine.astype(np.int64)
    bad = codes[judged & ((codes < SKIP) | (codes > SEVERE))]
    if bad.size:
        raise KeyError(int(bad[0]))
    return _ENGINE_LOOKUP[np.clip(codes, SKIP, SEVERE) - SKIP]


def classify(
    method: str,
    score: npt.NDArray[np.float64],
    p: npt.NDArray[np.float64],
    cfg: ColumnConfigs,
    ks_alpha: float,
) -> npt.NDArray[np.int8]:
    """Fixed thresholds, for rows the engine did not judge (ADWIN, fairness)."""
    with np.errstate(invalid="ignore"):
        breach = score >= cfg.threshold
        if method in P_VALUE_METHODS:
            breach &= p < ks_alpha  # False for NaN
        clear = ~breach & (score < cfg.clear)
    verdict = np.full(len(score), BAND_CODE, np.int8)
    verdict[breach] = BREACH_CODE
    verdict[clear] = CLEAR_CODE
    return verdict
