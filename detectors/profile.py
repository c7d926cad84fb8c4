"""Reference profiles: the reference data frozen into bin edges and bin counts.

A profile is built once from training data and then shipped as a versioned JSON
artifact. Everything a detector needs at run time is derived from it: the fine
grid used for KS, the coarse bins used for PSI, the categories, and the
reference counts. Counts (not proportions) are stored so that the empirical CDF
of the reference at every fine edge is exact.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.feature_profiles import (
    OTHER,
    CategoricalProfile,
    FeatureProfile,
    NumericProfile,
    feature_from_dict,
)
from detectors.values import check_int, factorize, is_numeric_column

__all__ = [
    "OTHER",
    "SCHEMA",
    "CategoricalProfile",
    "FeatureProfile",
    "NumericProfile",
    "ReferenceProfile",
    "build_profile",
    "feature_from_dict",
]

SCHEMA = 1


def _canonical_json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """All feature profiles of one model, plus optional prediction and label profiles.

    ``version`` is a content hash: the first 16 hex digits of the sha256 of the canonical
    JSON of everything else. Leave it empty to have it computed; a non-empty version that
    does not match the content is refused.
    """

    features: tuple[FeatureProfile, ...]
    prediction: FeatureProfile | None = None
    label: FeatureProfile | None = None
    version: str = ""

    def __post_init__(self) -> None:
        features = tuple(self.features)
        if not features:
            raise ValueError("a reference profile needs at least one feature")
        names = [f.name for f in features]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate feature names: {duplicates}")
        object.__setattr__(self, "features", features)
        content = hashlib.sha256(_canonical_json(self._content()).encode()).hexdigest()[:16]
        if self.version and self.version != content:
            raise ValueError(
                f"profile version mismatch: stored {self.version!r}, content hashes to {content!r}"
            )
        object.__setattr__(self, "version", content)

    @property
    def names(self) -> tuple[str, ...]:
        """Feature names, in column order."""
        return tuple(f.name for f in self.features)

    def feature(self, name: str) -> FeatureProfile:
        """The profile of one feature by name."""
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def _content(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "features": [f.to_dict() for f in self.features],
            "prediction": None if self.prediction is None else self.prediction.to_dict(),
            "label": None if self.label is None else self.label.to_dict(),
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form, including ``schema`` and ``version``."""
        return {**self._content(), "version": self.version}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        """Inverse of ``to_dict``; refuses unknown schemas and content that fails its version."""
        schema = data.get("schema")
        if schema != SCHEMA:
            raise ValueError(
                f"unsupported reference profile schema {schema!r}; "
                f"this driftd reads schema {SCHEMA}"
            )
        version = data.get("version")
        if not isinstance(version, str) or not version:
            raise ValueError("reference profile has no version")
        prediction, label = data.get("prediction"), data.get("label")
        return cls(
            features=tuple(feature_from_dict(f) for f in data["features"]),
            prediction=None if prediction is None else feature_from_dict(prediction),
            label=None if label is None else feature_from_dict(label),
            version=version,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ReferenceProfile) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


def _numeric(name: str, values: npt.ArrayLike, n_fine: int, n_coarse: int) -> NumericProfile:
    x = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(x)
    v = x[finite]
    if v.size == 0:
        raise ValueError(f"column {name!r} has no finite reference values")
    # inverted_cdf puts every edge on a reference value, so tied values collapse into one
    # edge instead of leaving empty interpolated bins between them.
    quantiles = np.quantile(v, np.arange(1, n_fine) / n_fine, method="inverted_cdf")
    edges = np.unique(quantiles)
    # Coarse edges are picked from the fine quantiles, so they are fine edges themselves.
    coarse_at = np.round(np.arange(1, n_coarse) * n_fine / n_coarse).astype(np.int64) - 1
    coarse_edges = np.unique(quantiles[coarse_at])
    starts = np.concatenate([[0], np.searchsorted(edges, coarse_edges) + 1])
    counts = np.bincount(np.searchsorted(edges, v, side="left"), minlength=edges.size + 1)
    return NumericProfile(name, edges, counts, starts, int(x.size - v.size))


def _categorical(name: str, values: npt.ArrayLike, top_k: int) -> CategoricalProfile:
    uniques, inverse, missing = factorize(values)
    if not uniques:
        raise ValueError(f"column {name!r} has no non-missing reference values")
    freq = np.bincount(inverse, minlength=len(uniques))
    # factorize returns values sorted (numbers before strings), so a stable sort breaks
    # ties in frequency by value: the same data always gives the same profile and version.
    top = np.argsort(-freq, kind="stable")[:top_k]
    counts = np.append(freq[top], freq.sum() - freq[top].sum())
    return CategoricalProfile(name, tuple(uniques[k] for k in top), counts, int(missing.sum()))


def build_profile(
    columns: Mapping[str, npt.ArrayLike],
    categorical: Collection[str] | None = None,
    *,
    prediction: str | None = None,
    label: str | None = None,
    n_fine: int = 100,
    n_coarse: int = 10,
    top_k: int = 20,
) -> ReferenceProfile:
    """Profile reference columns.

    ``prediction`` and ``label`` name columns of ``columns`` that are profiled as the
    prediction and the label instead of as features. Columns named in ``categorical``
    are categorical; every other column is numeric if it holds numbers (an object column
    qualifies when all its present values are ints or floats) and categorical otherwise
    (strings, bools, mixed objects).
    """
    n_fine = check_int("n_fine", n_fine, 100, 200)
    n_coarse = check_int("n_coarse", n_coarse, 2, 50)
    top_k = check_int("top_k", top_k, 1, 1000)
    forced = set(categorical or ())
    roles = {name for name in (prediction, label) if name is not None}
    unknown = sorted((forced | roles) - set(columns))
    if unknown:
        raise ValueError(f"unknown column names: {unknown}")
    n_rows: dict[str, int] = {}
    for name, col in columns.items():
        shape = np.shape(col)
        if len(shape) != 1:
            raise ValueError(f"column {name!r} must be one-dimensional, got shape {shape}")
        n_rows[name] = shape[0]
    if len(set(n_rows.values())) > 1:
        first = next(iter(n_rows))
        name = next(n for n, rows in n_rows.items() if rows != n_rows[first])
        raise ValueError(
            f"column {name!r} has {n_rows[name]} rows, "
            f"expected {n_rows[first]} (as column {first!r})"
        )

    def profile(name: str) -> FeatureProfile:
        values = np.asarray(columns[name])
        if name in forced or not is_numeric_column(values):
            return _categorical(name, values, top_k)
        return _numeric(name, values, n_fine, n_coarse)

    features = tuple(profile(n) for n in columns if n not in (prediction, label))
    if not features:
        raise ValueError("columns must hold at least one feature")
    return ReferenceProfile(
        features=features,
        prediction=None if prediction is None else profile(prediction),
        label=None if label is None else profile(label),
    )
