"""The shared detector contract, applied to every detector."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pytest

from detectors.adwin import ADWINResult, BatchADWIN
from detectors.base import DriftResult
from detectors.detector import DriftDetector
from detectors.profile import FeatureProfile
from detectors.rules import BREACH, MethodRule, Rules
from detectors.verdicts import WindowScores
from tests.detectors.contract import CHECKS, Batch, ContractCase, assert_same_state
from tests.detectors.window_data import numeric_profiles, reference_profile, value_matrix

N_SEGMENTS = 3
PROFILE = reference_profile()
ALL = list(PROFILE.features)
NUMERIC: list[FeatureProfile] = list(numeric_profiles(PROFILE))


def _batches(features: list[FeatureProfile]):
    """Seven batches of 1-40 rows over three segments: reference-like, then shifted, with
    one tricky batch in three and a few non-finite values."""

    def make(rng: np.random.Generator) -> list[Batch]:
        out = []
        for i, size in enumerate(rng.integers(1, 41, 7)):
            seg = rng.integers(0, N_SEGMENTS, size)
            shift = 0.5 * (i > 3)
            out.append((seg, value_matrix(features, rng, int(size), shift, tricky=i % 3 == 2)))
        return out

    return make


def _adwin_batches(rng: np.random.Generator) -> list[Batch]:
    """Eight batches of 1-300 values over three streams, with a mean shift half-way."""
    out = []
    for i, size in enumerate(rng.integers(1, 301, 8)):
        seg = rng.integers(0, N_SEGMENTS, size)
        out.append((seg, rng.normal(0.0, 1.0, size) + 3.0 * (i >= 4)))
    return out


def _adwin_fold(rows: Sequence[DriftResult]) -> DriftResult:
    """Row ``i`` reports its drift at position 0; in the batch that is position ``i``."""
    adwin_rows = [r for r in rows if isinstance(r, ADWINResult)]
    last = adwin_rows[-1]
    return ADWINResult(
        statistic=last.statistic,
        p_value=last.p_value,
        drift=np.logical_or.reduce([r.drift for r in adwin_rows]),
        n=last.n,
        drift_positions=np.concatenate(
            [r.drift_positions + i for i, r in enumerate(adwin_rows)]
        ).astype(np.int64),
        drift_streams=np.concatenate([r.drift_streams for r in adwin_rows]).astype(np.int64),
    )


def _same_scores(a: object, b: object) -> None:
    """Every field of two engine results equal, NaN matching NaN."""
    assert isinstance(a, WindowScores) and isinstance(b, WindowScores)
    assert_same_state(dataclasses.asdict(a), dataclasses.asdict(b))


def _engine(features: list[FeatureProfile], calibrated: bool) -> DriftDetector:
    """All engine methods on ``features``; a small min_samples exercises the verdicts."""
    rules = (
        Rules(min_samples=5, n_sim=60)
        if calibrated
        else Rules(
            methods={
                m: MethodRule(calibrated=False, threshold=0.1, clear=0.05) for m in ("psi", "js")
            },
            min_samples=5,
            n_sim=60,
        )
    )
    return DriftDetector(features, N_SEGMENTS, rules)


CASES = [
    ContractCase(
        "engine-calibrated",
        lambda: _engine(ALL, calibrated=True),
        _batches(ALL),
        assert_same=_same_scores,
    ),
    ContractCase(
        "engine-fixed",
        lambda: _engine(ALL, calibrated=False),
        _batches(ALL),
        assert_same=_same_scores,
    ),
    ContractCase(
        "engine-numeric",
        lambda: _engine(NUMERIC, calibrated=True),
        _batches(NUMERIC),
        assert_same=_same_scores,
    ),
    ContractCase(
        "adwin",
        lambda: BatchADWIN(N_SEGMENTS, clock=4, min_window_length=2, grace_period=5),
        _adwin_batches,
        fold_rows=_adwin_fold,
    ),
]


def _flags(result: object) -> np.ndarray:
    if isinstance(result, WindowScores):
        return np.concatenate([(v >= BREACH).ravel() for v in result.verdict.values()])
    assert isinstance(result, DriftResult)
    return result.drift.ravel()


@pytest.mark.parametrize("check", sorted(CHECKS))
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_detector_contract(case: ContractCase, check: str) -> None:
    """Reset, pickle, state_dict and row-by-row feeding behave as the shared contract says."""
    CHECKS[check](case)


def test_contract_data_exercises_drift_decisions() -> None:
    """The contract batches make every detector both raise and withhold drift."""
    for case in CASES:
        detector = case.factory()
        flags = np.concatenate([_flags(detector.update(*b)) for b in case.data()])
        assert flags.any() and not flags.all(), case.id
