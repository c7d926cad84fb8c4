"""The shared detector contract, applied to every detector."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pytest

from detectors.adwin import ADWINResult, BatchADWIN
from detectors.base import DriftResult
from detectors.detector import DriftDetector
from detectors.embedding import EmbeddingDrift, EmbeddingReference
from detectors.label_noise import LabelNoiseDetector, LabelNoiseTest
from detectors.multivariate import PCAReference, ReconstructionDrift
from detectors.performance import PerformanceDetector, PerformanceEstimator
from detectors.profile import FeatureProfile
from detectors.rules import BREACH, MethodRule, Rules
from detectors.segment_mix import SegmentMix, SegmentMixDetector
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


MIX = SegmentMix.from_counts({"eu": 500, "us": 300, "apac": 150, "latam": 50})


def _segment_mix_batches(rng: np.random.Generator) -> list[Batch]:
    """Seven batches of 1-40 segment names over three streams: the reference mix, then
    mostly latam, with new names, the overflow and a non-name mixed in."""
    out = []
    for i, size in enumerate(rng.integers(1, 41, 7)):
        p = [0.5, 0.3, 0.15, 0.05] if i < 4 else [0.1, 0.1, 0.1, 0.7]
        names = rng.choice(list(MIX.names), size, p=p).astype(object)
        if i % 3 == 2:
            odd = np.array(["mena", "__other__", "oc", None], dtype=object)
            names[rng.integers(0, size, 3)] = rng.choice(odd, 3)
        out.append((rng.integers(0, N_SEGMENTS, size), names))
    return out


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
    ContractCase(
        "segment-mix",
        lambda: SegmentMixDetector(MIX, N_SEGMENTS, min_samples=20, max_new_keys=1),
        _segment_mix_batches,
    ),
]

# Estimated performance and label noise: calibrated binary scores, then scores squeezed
# towards 0.5 (a confidence drop) or labels flipped, with invalid values mixed in.
_PERF_RNG = np.random.default_rng(17)
_REF_SCORES = _PERF_RNG.beta(0.5, 0.5, 5_000)
_REF_LABELS = (_PERF_RNG.random(5_000) < _REF_SCORES).astype(np.int64)
PERFORMANCE = PerformanceEstimator.fit(_REF_SCORES, _REF_LABELS, n_bins=8, min_samples=10)
LABEL_NOISE = LabelNoiseTest.fit(_REF_SCORES, _REF_LABELS, min_samples=10)


def _score_batches(rng: np.random.Generator) -> list[Batch]:
    """Seven batches of 1-40 scores over three segments; from the third, squeezed to 0.5."""
    out = []
    for i, size in enumerate(rng.integers(1, 41, 7)):
        scores = rng.beta(0.5, 0.5, size) if i < 2 else 0.45 + 0.1 * rng.random(size)
        if i % 3 == 2:
            scores[rng.integers(0, size, 2)] = rng.choice([np.nan, np.inf, 1.5], 2)
        out.append((rng.integers(0, N_SEGMENTS, size), scores))
    return out


def _pair_batches(rng: np.random.Generator) -> list[Batch]:
    """Seven batches of 1-40 (score, label) rows; from the third, the labels flipped."""
    out = []
    for i, size in enumerate(rng.integers(1, 41, 7)):
        scores = rng.beta(0.5, 0.5, size)
        labels = (rng.random(size) < scores).astype(np.float64)
        if i >= 2:
            labels = 1.0 - labels
        if i % 3 == 2:
            labels[rng.integers(0, size, 2)] = np.nan
        out.append((rng.integers(0, N_SEGMENTS, size), np.c_[scores, labels]))
    return out


def _same_fields(a: object, b: object) -> None:
    """Same result type and every (nested) field equal, NaN matching NaN."""
    assert type(a) is type(b)
    assert_same_state(dataclasses.asdict(a), dataclasses.asdict(b))  # type: ignore[call-overload]


CASES += [
    ContractCase(
        "performance",
        lambda: PerformanceDetector(PERFORMANCE, N_SEGMENTS),
        _score_batches,
        assert_same=_same_fields,
    ),
    ContractCase(
        "label-noise",
        lambda: LabelNoiseDetector(LABEL_NOISE, N_SEGMENTS),
        _pair_batches,
        assert_same=_same_fields,
    ),
]


# Multivariate and embedding drift: reference-like rows, then rows off the reference's
# principal subspace (or shifted vectors), with missing cells and bad vectors mixed in.
_MV_RNG = np.random.default_rng(19)
_MV_LATENT = _MV_RNG.normal(size=(2_000, 1))
MULTIVARIATE = PCAReference.fit(
    np.c_[_MV_LATENT, _MV_LATENT + 0.3 * _MV_RNG.normal(size=(2_000, 2))], seed=1
)
EMBEDDING = EmbeddingReference.fit(_MV_RNG.normal(size=(1_000, 6)), k=3, seed=1)


def _correlated_batches(rng: np.random.Generator) -> list[Batch]:
    """Seven batches of 1-40 rows of three tied features; from the fifth, untied."""
    out = []
    for i, size in enumerate(rng.integers(1, 41, 7)):
        latent = rng.normal(size=(size, 1))
        rows = latent + (0.3 if i < 4 else 2.0) * rng.normal(size=(size, 3))
        if i % 3 == 2:
            rows[rng.integers(0, size, 2), rng.integers(0, 3, 2)] = np.nan
        out.append((rng.integers(0, N_SEGMENTS, size), rows))
    return out


def _vector_batches(rng: np.random.Generator) -> list[Batch]:
    """Seven batches of 1-40 six-float vectors; from the fifth, shifted; a None, a short
    vector and a NaN mixed into one batch in three."""
    out = []
    for i, size in enumerate(rng.integers(1, 41, 7)):
        vectors = np.empty(size, dtype=object)
        for j, row in enumerate(rng.normal(size=(size, 6)) + 8.0 * (i > 3)):
            vectors[j] = row
        if i % 3 == 2:
            vectors[rng.integers(0, size, 3)] = [None, [1.0, 2.0], np.full(6, np.nan)]
        out.append((rng.integers(0, N_SEGMENTS, size), vectors))
    return out


CASES += [
    ContractCase(
        "multivariate",
        lambda: ReconstructionDrift(MULTIVARIATE, N_SEGMENTS, min_samples=5),
        _correlated_batches,
    ),
    ContractCase(
        "embedding",
        lambda: EmbeddingDrift(EMBEDDING, N_SEGMENTS, min_samples=5),
        _vector_batches,
    ),
    ContractCase(
        "embedding-share",
        lambda: EmbeddingDrift(EMBEDDING, N_SEGMENTS, statistic="share", alpha=1e-3, min_samples=5),
        _vector_batches,
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
