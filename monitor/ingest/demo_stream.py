"""The built-in demo: a simulated credit-risk model with known, injected changes.

Ten features (seven numeric, three categorical), three regions as segments, and a
logistic scoring model. In the ``west`` segment the feature distribution shifts at
``feature_shift_at`` (incomes fall, card utilisation rises), and at
``prediction_shift_at`` the model's scores shift too (a miscalibrated retrain is
rolled out there). From ``concept_shift_at`` the ``south`` segment's ground truth
changes (card utilisation and debt stop predicting default, unemployment predicts
it more strongly) while its features and the model's scores stay exactly as they
were: only the joined labels can show it, as a rising error rate (concept drift).

Two more episodes, off unless asked for, happen in ``EPISODE_SEGMENT`` (``north``) and
change nothing any single feature, the scores or the default rate can show:

- with ``pair_correlation``, ``months_employed`` is tied to ``age`` by a Gaussian copula
  (older applicants have worked longer) everywhere, each keeping its own distribution;
  between ``correlation_flip_at`` and ``correlation_flip_end`` the tie changes sign in
  ``north``. Neither feature enters the model, so its scores do not move either: only
  a test of the features together (multivariate drift) can see it;
- between ``label_noise_at`` and ``label_noise_end``, ``north``'s labels are swapped in
  pairs (:func:`swap_labels`): a default the model missed while unsure is recorded
  against a loan it is sure is safe. The default rate and the error rate stay exactly
  as they were (label drift and ADWIN see nothing); the labels the model confidently
  disputes rise (the label-noise signal).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from scipy.special import log_ndtr, ndtri

SEGMENTS = ("north", "south", "west")
DRIFTING_SEGMENT = "west"
CONCEPT_SEGMENT = "south"
EPISODE_SEGMENT = "north"
"""The segment of the correlation flip and the label-noise episode."""
TIED_PAIR = ("age", "months_employed")
"""The features ``pair_correlation`` ties together (neither enters the model)."""
SURE_SAFE = 0.15
"""A score at or below this: the model is sure the loan is repaid (well inside the
confident-learning threshold of the negative class, about 0.24 on this model)."""
UNSURE = (0.25, 0.5)
"""Scores in ``[low, high)``: below the 0.5 decision threshold, yet not sure."""
SHOWCASE: Final[Mapping[str, Any]] = MappingProxyType(
    {
        "pair_correlation": 0.8,
        "correlation_flip_at": 120_000,
        "label_noise_at": 125_000,
        "label_noise_end": 155_000,
        "label_noise_share": 0.16,
    }
)
"""The ``DemoStream`` fields ``driftd demo`` sets beyond their defaults (``DemoSource``
streams them by default): ``north``'s two episodes, late enough that ``north`` pages
nothing in the first 130,000 events."""
NUMERIC_FEATURES = (
    "income",
    "loan_amount",
    "age",
    "credit_score",
    "debt_to_income",
    "months_employed",
    "utilization",
)
CATEGORICAL_FEATURES = ("employment_type", "loan_purpose", "region")
EMPLOYMENT = ("salaried", "self_employed", "contract", "unemployed")
PURPOSE = ("home", "car", "education", "business", "debt_consolidation", "other")
MODEL = "credit-risk"
MODEL_VERSION = "v3"


@dataclass(frozen=True)
class DemoBatch:
    """One batch of simulated inference events, as columns."""

    ids: npt.NDArray[np.str_]
    ts: npt.NDArray[np.float64]
    segment: npt.NDArray[np.str_]
    numeric: dict[str, npt.NDArray[np.float64]]
    categorical: dict[str, npt.NDArray[np.str_]]
    prediction: npt.NDArray[np.float64]
    label: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.ts.size)

    def events(self) -> list[dict[str, Any]]:
        """The batch as inference events in the documented JSON contract."""
        # Column by column through ``tolist()``: indexing numpy arrays per value made
        # this the slowest part of producing a test stream.
        numeric = {k: [_json_number(x) for x in v.tolist()] for k, v in self.numeric.items()}
        categorical = {k: [str(x) for x in v.tolist()] for k, v in self.categorical.items()}
        names = (*numeric, *categorical)
        columns = zip(*numeric.values(), *categorical.values(), strict=True)
        out: list[dict[str, Any]] = []
        for event_id, ts, prediction, values in zip(
            self.ids.tolist(), self.ts.tolist(), self.prediction.tolist(), columns, strict=True
        ):
            out.append(
                {
                    "id": str(event_id),
                    "ts": datetime.fromtimestamp(ts, tz=UTC).isoformat(),
                    "model": MODEL,
                    "model_version": MODEL_VERSION,
                    "features": dict(zip(names, values, strict=True)),
                    "prediction": round(prediction, 6),
                }
            )
        return out

    def labels(self) -> list[dict[str, Any]]:
        """Ground-truth label events for this batch (the join key is ``id``)."""
        return [
            {"id": str(self.ids[i]), "ts": float(self.ts[i]), "label": int(self.label[i])}
            for i in range(len(self))
        ]


def _json_number(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 4)


@dataclass
class DemoStream:
    """An endless, seeded stream of credit-risk events at ``rate`` events per second."""

    seed: int = 7
    feature_shift_at: int = 60_000
    prediction_shift_at: int = 120_000
    feature_shift_end: int | None = None
    """Event index where the feature shift is rolled back (recovery); None: never."""
    concept_shift_at: int = 90_000
    pair_correlation: float = 0.0
    """Correlation of the Gaussian copula tying ``months_employed`` to ``age``, in (-1, 1);
    0: independent draws (the stream as it was before the tie existed)."""
    correlation_flip_at: int | None = None
    """Event index from which the tie changes sign in ``EPISODE_SEGMENT``; None: never."""
    correlation_flip_end: int | None = None
    """Event index where the tie is restored; None: never."""
    label_noise_at: int | None = None
    """Event index from which ``EPISODE_SEGMENT``'s labels are swapped in pairs; None: never."""
    label_noise_end: int | None = None
    """Event index where the swaps stop; None: never."""
    label_noise_share: float = 0.16
    """Share of the episode's events whose label is changed (half of them each way)."""
    missing_rate: float = 0.01
    rate: float = 2_000.0
    start_ts: float = 1_795_000_000.0
    produced: int = 0
    _rng: np.random.Generator = field(init=False, repr=False)
    _noise_rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not -1.0 < self.pair_correlation < 1.0:
            raise ValueError(f"pair_correlation must be in (-1, 1), got {self.pair_correlation}")
        if not 0.0 <= self.label_noise_share <= 1.0:
            raise ValueError(f"label_noise_share must be in [0, 1], got {self.label_noise_share}")
        self._rng = np.random.default_rng(self.seed)
        # Apart from the main generator, so an episode changes nothing but its labels.
        self._noise_rng = np.random.default_rng((self.seed, 1))

    def next_batch(self, n: int) -> DemoBatch:
        """The next ``n`` events; drift applies to ``west`` events past the injection points."""
        rng = self._rng
        index = self.produced + np.arange(n)
        segment = np.array(SEGMENTS)[rng.integers(0, len(SEGMENTS), n)]
        west = segment == DRIFTING_SEGMENT
        feature_drift = west & (index >= self.feature_shift_at)
        if self.feature_shift_end is not None:
            feature_drift &= index < self.feature_shift_end
        prediction_drift = west & (index >= self.prediction_shift_at)

        income = rng.lognormal(np.log(52_000), 0.45, n) * np.where(feature_drift, 0.7, 1.0)
        loan_amount = rng.lognormal(np.log(14_000), 0.6, n)
        age_draw = rng.normal(41, 12, n)
        age = np.clip(age_draw, 18, 85).round()
        credit_score = np.clip(rng.normal(690, 60, n), 300, 850).round()
        debt_to_income = rng.beta(2.0, 5.0, n)
        months_employed = rng.exponential(60, n)
        if self.pair_correlation != 0.0:
            flipped = (segment == EPISODE_SEGMENT) & _within(
                index, self.correlation_flip_at, self.correlation_flip_end
            )
            rho = np.where(flipped, -self.pair_correlation, self.pair_correlation)
            months_employed = tie_exponential(months_employed, (age_draw - 41) / 12, rho, 60.0)
        months_employed = months_employed.round()
        utilization = rng.beta(np.where(feature_drift, 4.0, 2.0), 5.0, n)
        employment = np.array(EMPLOYMENT)[
            rng.choice(len(EMPLOYMENT), n, p=[0.62, 0.18, 0.14, 0.06])
        ]
        purpose = np.array(PURPOSE)[rng.choice(len(PURPOSE), n, p=[0.3, 0.25, 0.1, 0.1, 0.2, 0.05])]

        base = (
            -1.2
            - 0.9 * (np.log(income) - np.log(52_000))
            + 0.5 * (np.log(loan_amount) - np.log(14_000))
            - 0.012 * (credit_score - 690)
        )
        unemployed = employment == "unemployed"
        logit = base + 2.2 * (debt_to_income - 0.28) + 1.8 * (utilization - 0.28) + 0.8 * unemployed
        concept = (segment == CONCEPT_SEGMENT) & (index >= self.concept_shift_at)
        # The new world: utilisation and debt flip sign, unemployment weighs far more.
        shifted = (
            base - 6.0 * (debt_to_income - 0.28) - 6.0 * (utilization - 0.28) + 2.5 * unemployed
        )
        truth = 1.0 / (1.0 + np.exp(-np.where(concept, shifted, logit)))
        label = (rng.random(n) < truth).astype(np.int64)
        model_logit = logit + rng.normal(0, 0.35, n) + np.where(prediction_drift, 1.1, 0.0)
        prediction = 1.0 / (1.0 + np.exp(-model_logit))
        if self.label_noise_at is not None:
            noisy = (segment == EPISODE_SEGMENT) & _within(
                index, self.label_noise_at, self.label_noise_end
            )
            label = swap_labels(label, prediction, noisy, self.label_noise_share, self._noise_rng)

        numeric = {
            "income": income,
            "loan_amount": loan_amount,
            "age": age,
            "credit_score": credit_score,
            "debt_to_income": debt_to_income,
            "months_employed": months_employed,
            "utilization": utilization,
        }
        for values in numeric.values():
            values[rng.random(n) < self.missing_rate] = np.nan
        ts = self.start_ts + index / self.rate
        ids = np.char.add("req-", np.char.zfill(index.astype(str), 9))
        self.produced += n
        return DemoBatch(
            ids=ids,
            ts=ts,
            segment=segment,
            numeric=numeric,
            categorical={
                "employment_type": employment,
                "loan_purpose": purpose,
                "region": segment,
            },
            prediction=prediction,
            label=label,
        )


def _within(
    index: npt.NDArray[np.int64], start: int | None, end: int | None
) -> npt.NDArray[np.bool_]:
    """Which event indices fall in ``[start, end)`` (``start`` None: none; ``end`` None: on)."""
    if start is None:
        return np.zeros(index.shape, dtype=np.bool_)
    inside = index >= start
    return inside if end is None else inside & (index < end)


def tie_exponential(
    draws: npt.NDArray[np.float64],
    partner: npt.NDArray[np.float64],
    rho: float | npt.NDArray[np.float64],
    scale: float,
) -> npt.NDArray[np.float64]:
    """Exponential ``draws`` (mean ``scale``, independent of ``partner``) tied to the standard
    normal ``partner`` by a Gaussian copula of correlation ``rho``: still exponential with
    the same mean, whatever ``rho``.

    Each draw's own normal score ``z`` (the quantile of its exponential probability) is
    mixed with the partner's, ``rho * partner + sqrt(1 - rho^2) * z``, which is standard
    normal again, and mapped back through the exponential quantile. Survival forms keep
    the tails exact (no ``1 - p`` rounding to 1).

    >>> rng = np.random.default_rng(0)
    >>> partner, draws = rng.standard_normal(100_000), rng.exponential(60, 100_000)
    >>> tied = tie_exponential(draws, partner, -0.8, 60.0)
    >>> round(float(tied.mean()) / 60, 1), bool(np.corrcoef(partner, tied)[0, 1] < -0.6)
    (1.0, True)
    """
    own = -ndtri(np.exp(-draws / scale))
    mixed = rho * partner + np.sqrt(1.0 - np.square(rho)) * own
    return np.asarray(-scale * log_ndtr(-mixed), dtype=np.float64)


def swap_labels(
    label: npt.NDArray[np.int64],
    prediction: npt.NDArray[np.float64],
    eligible: npt.NDArray[np.bool_],
    share: float,
    rng: np.random.Generator,
) -> npt.NDArray[np.int64]:
    """``label`` with ``share`` of the ``eligible`` events' labels changed, in pairs.

    Each pair moves a default from a loan the model missed while unsure (label 1, score in
    ``UNSURE``) to one it is sure is safe (label 0, score at or below ``SURE_SAFE``): as many
    labels go each way, and as many errors go as come, so the default rate and the error
    rate at the 0.5 threshold stay exactly where they were, while the labels the model
    confidently disputes rise by one per pair. Fewer candidates than asked for: as many
    pairs as there are.

    >>> label = np.array([1, 0, 0, 1])
    >>> swap_labels(label, np.array([0.3, 0.1, 0.9, 0.9]), np.ones(4, bool), 0.5,
    ...             np.random.default_rng(0)).tolist()
    [0, 1, 0, 1]
    """
    low, high = UNSURE
    missed = np.flatnonzero(eligible & (label == 1) & (prediction >= low) & (prediction < high))
    safe = np.flatnonzero(eligible & (label == 0) & (prediction <= SURE_SAFE))
    pairs = min(round(share * int(eligible.sum()) / 2), missed.size, safe.size)
    if pairs == 0:
        return label
    out = label.copy()
    out[rng.choice(missed, pairs, replace=False)] = 0
    out[rng.choice(safe, pairs, replace=False)] = 1
    return out
