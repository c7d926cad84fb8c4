"""The built-in demo: a simulated credit-risk model with a known, injected drift.

Ten features (seven numeric, three categorical), three regions as segments, and a
logistic scoring model. In the ``west`` segment the feature distribution shifts at
``feature_shift_at`` (incomes fall, card utilisation rises), and at
``prediction_shift_at`` the model's scores shift too (a miscalibrated retrain is
rolled out there). From ``concept_shift_at`` the ``south`` segment's ground truth
changes (card utilisation and debt stop predicting default, unemployment predicts
it more strongly) while its features and the model's scores stay exactly as they
were: only the joined labels can show it, as a rising error rate (concept drift).
The other segments stay stationary, so a correct monitor pages for feature drift
in ``west`` and concept drift in ``south`` only, and only after the injection points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

SEGMENTS = ("north", "south", "west")
DRIFTING_SEGMENT = "west"
CONCEPT_SEGMENT = "south"
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
    missing_rate: float = 0.01
    rate: float = 2_000.0
    start_ts: float = 1_795_000_000.0
    produced: int = 0
    _rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

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
        age = np.clip(rng.normal(41, 12, n), 18, 85).round()
        credit_score = np.clip(rng.normal(690, 60, n), 300, 850).round()
        debt_to_income = rng.beta(2.0, 5.0, n)
        months_employed = rng.exponential(60, n).round()
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
