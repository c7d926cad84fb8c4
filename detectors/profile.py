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
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.base import FloatArray
from detectors.binning import Binner
from detectors.calibration import SPREAD_CHUNKS, chunk_ids
from detectors.embedding import EmbeddingReference
from detectors.engine import DriftEngine
from detectors.feature_profiles import (
    OTHER,
    UNSEEN,
    CategoricalProfile,
    FeatureProfile,
    NumericProfile,
    category_key,
    feature_from_dict,
)
from detectors.label_noise import LabelNoiseTest
from detectors.multivariate import PCAReference
from detectors.performance import PerformanceEstimator
from detectors.segment_mix import SegmentMix
from detectors.sketch import Sketch
from detectors.values import check_int, factorize, is_numeric_column

__all__ = [
    "OTHER",
    "SCHEMA",
    "UNSEEN",
    "CategoricalProfile",
    "FeatureProfile",
    "NumericProfile",
    "ReferenceProfile",
    "build_profile",
    "embeddings_from_dict",
    "feature_from_dict",
    "multivariate_from_dict",
    "performance_from_dict",
]

SCHEMA = 2
READABLE_SCHEMAS = (1, 2)


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
    segments: SegmentMix | None = None
    """The reference's events per segment key, when the training data carried the
    schema's ``segment_by`` paths (saved only when present, so older profiles load
    and keep their version)."""
    performance: Mapping[str, Any] | None = None
    """The score calibration (``"estimator"``: ``PerformanceEstimator.to_dict()``) and the
    confident-learning thresholds (``"noise"``: ``LabelNoiseTest.to_dict()``) of a binary
    classifier, when the training data had probability scores and 0/1 labels (saved only
    when present, like ``segments``)."""
    multivariate: Mapping[str, Any] | None = None
    """The PCA of the numeric features and the held-out law of its reconstruction error
    (``PCAReference.to_dict()``), when the data had two or more numeric features with
    spread (saved only when present, like ``segments``)."""
    embeddings: Mapping[str, Any] | None = None
    """Per vector feature, its embedding model (``EmbeddingReference.to_dict()``), when
    the data had vector features (saved only when present, like ``segments``)."""

    def __post_init__(self) -> None:
        features = tuple(self.features)
        if not features:
            raise ValueError("a reference profile needs at least one feature")
        names = [f.name for f in features]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate feature names: {duplicates}")
        object.__setattr__(self, "features", features)
        if self.performance is not None:
            performance_from_dict(self.performance)  # refuses one that does not load
        if self.multivariate is not None:
            multivariate_from_dict(self.multivariate)
        if self.embeddings is not None:
            embeddings_from_dict(self.embeddings)
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

    @property
    def monitored(self) -> tuple[FeatureProfile, ...]:
        """The columns a window is compared on: the features, then the prediction."""
        return self.features + ((self.prediction,) if self.prediction is not None else ())

    def encode(self, columns: Mapping[str, npt.ArrayLike] | Any) -> FloatArray:
        """A ``(rows, columns)`` float matrix of ``monitored`` columns, ready to bin.

        Numeric columns as float64, categorical ones as their bin codes
        (``CategoricalProfile.encode``); missing values, and columns the data lacks,
        are NaN. ``columns`` is a pandas DataFrame or a mapping of name to values.
        """
        present = [p for p in self.monitored if p.name in columns]
        if not present:
            raise ValueError(f"the data has none of the profiled columns {list(self.names)}")
        n = len(_column(columns, present[0].name))
        out = np.full((n, len(self.monitored)), np.nan)
        for j, p in enumerate(self.monitored):
            if p.name not in columns:
                continue
            values = _column(columns, p.name)
            if values.shape != (n,):
                raise ValueError(f"column {p.name!r} has shape {values.shape}, expected ({n},)")
            if isinstance(p, CategoricalProfile):
                out[:, j] = p.encode(values)
            else:
                try:
                    out[:, j] = np.asarray(values, dtype=np.float64)
                except (TypeError, ValueError):
                    raise ValueError(f"column {p.name!r} must hold numbers") from None
        return out

    def _content(self) -> dict[str, Any]:
        content = {
            "schema": SCHEMA,
            "features": [f.to_dict() for f in self.features],
            "prediction": None if self.prediction is None else self.prediction.to_dict(),
            "label": None if self.label is None else self.label.to_dict(),
        }
        if self.segments is not None:
            content["segments"] = self.segments.to_dict()
        if self.performance is not None:
            content["performance"] = dict(self.performance)
        if self.multivariate is not None:
            content["multivariate"] = dict(self.multivariate)
        if self.embeddings is not None:
            content["embeddings"] = {k: dict(v) for k, v in self.embeddings.items()}
        return content

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form, including ``schema`` and ``version``."""
        return {**self._content(), "version": self.version}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        """Inverse of ``to_dict``; refuses unknown schemas and content that fails its version."""
        schema = data.get("schema")
        if schema not in READABLE_SCHEMAS:
            raise ValueError(
                f"unsupported reference profile schema {schema!r}; "
                f"this driftd reads schema {SCHEMA}"
            )
        version = data.get("version")
        if not isinstance(version, str) or not version:
            raise ValueError("reference profile has no version")
        if schema != SCHEMA:
            # An older layout hashes differently: its content gets a version of today's.
            version = ""
        prediction, label = data.get("prediction"), data.get("label")
        segments = data.get("segments")
        performance = data.get("performance")
        multivariate = data.get("multivariate")
        embeddings = data.get("embeddings")
        return cls(
            features=tuple(feature_from_dict(f) for f in data["features"]),
            prediction=None if prediction is None else feature_from_dict(prediction),
            label=None if label is None else feature_from_dict(label),
            version=version,
            segments=None if segments is None else SegmentMix.from_dict(segments),
            performance=None if performance is None else dict(performance),
            multivariate=None if multivariate is None else dict(multivariate),
            embeddings=None if embeddings is None else dict(embeddings),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ReferenceProfile) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


def performance_from_dict(
    data: Mapping[str, Any],
) -> tuple[PerformanceEstimator, LabelNoiseTest]:
    """The estimator and the label-noise test of a profile's ``performance`` field;
    ValueError when it does not hold them."""
    try:
        return (
            PerformanceEstimator.from_dict(data["estimator"]),
            LabelNoiseTest.from_dict(data["noise"]),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"reference performance field does not load: {exc!r}") from None


def multivariate_from_dict(data: Mapping[str, Any]) -> PCAReference:
    """The reference PCA of a profile's ``multivariate`` field; ValueError when it does not
    hold one."""
    try:
        return PCAReference.from_dict(data)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"reference multivariate field does not load: {exc!r}") from None


def embeddings_from_dict(data: Mapping[str, Any]) -> dict[str, EmbeddingReference]:
    """The embedding model of each vector feature of a profile's ``embeddings`` field;
    ValueError when it does not hold them."""
    try:
        return {str(name): EmbeddingReference.from_dict(model) for name, model in data.items()}
    except (AttributeError, KeyError, TypeError) as exc:
        raise ValueError(f"reference embeddings field does not load: {exc!r}") from None


POINT_MASS = 0.02
"""A single value holding at least this share of the reference gets a bin of its own."""
TAIL = 0.01
"""Coarse (PSI) bins also cut the reference's tails at this quantile on each side."""
MAX_LISTED = 10_000
"""Rare categories listed in a profile at most; beyond, they count as ``__unseen__``."""


def _numeric(name: str, values: npt.ArrayLike, n_fine: int, n_coarse: int) -> NumericProfile:
    x = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(x)
    v = x[finite]
    if v.size == 0:
        raise ValueError(f"column {name!r} has no finite reference values")
    # inverted_cdf puts every edge on a reference value, so tied values collapse into one
    # edge instead of leaving empty interpolated bins between them.
    quantiles = np.quantile(v, np.arange(1, n_fine) / n_fine, method="inverted_cdf")
    lo, hi = float(v.min()), float(v.max())
    # Point masses (the zeros of a zero-inflated feature) get a bin of their own, so a
    # change among the other values is not averaged with them.
    uniques, freq = np.unique(v, return_counts=True)
    heavy = uniques[freq >= POINT_MASS * v.size]
    point_edges = np.concatenate([np.nextafter(heavy, -np.inf), heavy])
    # The outermost fine bins hold what falls outside the reference's range: below its
    # minimum and above its maximum (empty in the reference; see the ``range`` method).
    below = np.nextafter(lo, -np.inf)
    range_edges = np.array([below, hi]) if np.isfinite(below) else np.array([hi])
    edges = np.unique(np.concatenate([quantiles, point_edges, range_edges]))
    edges = edges[np.isfinite(edges)]
    # Coarse edges are fine edges: the n_coarse quantiles, the tails, the point masses.
    coarse_at = np.round(np.arange(1, n_coarse) * n_fine / n_coarse).astype(np.int64) - 1
    tails = np.quantile(v, [TAIL, 1 - TAIL], method="inverted_cdf")
    coarse_edges = np.unique(np.concatenate([quantiles[coarse_at], tails, point_edges]))
    coarse_edges = coarse_edges[(coarse_edges >= edges[0]) & (coarse_edges < edges[-1])]
    starts = np.unique(np.concatenate([[0], np.searchsorted(edges, coarse_edges) + 1]))
    counts = np.bincount(np.searchsorted(edges, v, side="left"), minlength=edges.size + 1)
    return NumericProfile(name, edges, counts, starts, int(x.size - v.size))


def _categorical(name: str, values: npt.ArrayLike, top_k: int) -> CategoricalProfile:
    uniques, inverse, missing = factorize(values)
    if not uniques:
        raise ValueError(f"column {name!r} has no non-missing reference values")
    # Values that are one category under category_key (21, 21.0, "21") are merged.
    keys = [category_key(u) for u in uniques]
    first: dict[str, int] = {}
    merged = np.array([first.setdefault(key, i) for i, key in enumerate(keys)], np.int64)
    freq = np.bincount(merged[inverse], minlength=len(uniques))
    # factorize returns values sorted (numbers before strings), so a stable sort breaks
    # ties in frequency by value: the same data always gives the same profile and version.
    order = np.argsort(-freq, kind="stable")
    order = order[freq[order] > 0]
    top, rest = order[:top_k], order[top_k:]
    listed, unlisted = rest[:MAX_LISTED], rest[MAX_LISTED:]
    counts = np.array([*freq[top], freq[listed].sum(), freq[unlisted].sum()], dtype=np.int64)
    return CategoricalProfile(
        name,
        tuple(uniques[k] for k in top),
        counts,
        int(missing.sum()),
        rare=tuple(uniques[k] for k in listed),
        singletons=int((freq == 1).sum()),
    )


def _column(columns: Any, name: str) -> npt.NDArray[Any]:
    """One column as a numpy array (pandas nullable types become float or object)."""
    values = columns[name]
    if hasattr(values, "to_numpy"):  # a pandas Series
        dtype = values.dtype
        if getattr(dtype, "kind", "O") in "iuf":
            if isinstance(dtype, np.dtype):
                return np.asarray(values.to_numpy())
            # Nullable Int64 / Float64: pd.NA becomes NaN.
            return np.asarray(values.to_numpy(dtype=np.float64, na_value=np.nan))
        present = np.asarray(values.notna().to_numpy(), dtype=np.bool_)
        out = np.asarray(values.to_numpy(dtype=object))
        out[~present] = None
        return out
    return np.asarray(values)


def build_profile(
    columns: Mapping[str, npt.ArrayLike] | Any,
    categorical: Collection[str] | None = None,
    *,
    prediction: str | None = None,
    label: str | None = None,
    timestamp: str | None = None,
    exclude: Collection[str] = (),
    n_fine: int = 100,
    n_coarse: int = 10,
    top_k: int = 20,
    chunks: int = SPREAD_CHUNKS,
) -> ReferenceProfile:
    """Profile reference data: a pandas DataFrame or a mapping of column name to values.

    ``prediction`` and ``label`` name columns profiled as the prediction and the label
    instead of as features. ``timestamp`` names a column that orders the rows in time
    (it is not profiled); without it the rows are taken to be in time order. Columns in
    ``exclude`` are ignored. Columns named in ``categorical`` are categorical; every
    other column is numeric if it holds numbers and categorical otherwise.

    The rows are cut into ``chunks`` time-ordered chunks, and where the chunks differ
    more than random sampling explains (seasons, batches), that spread is recorded per
    method and raises the calibrated thresholds (``detectors.calibration``).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ref = build_profile(
    ...     {"income": rng.lognormal(10, 1, 5_000), "region": rng.choice(["n", "s"], 5_000)},
    ...     categorical=["region"],
    ... )
    >>> ref.names, ref.feature("region").categories
    (('income', 'region'), ('n', 's'))
    """
    n_fine = check_int("n_fine", n_fine, 100, 200)
    n_coarse = check_int("n_coarse", n_coarse, 2, 50)
    top_k = check_int("top_k", top_k, 1, 1000)
    chunks = check_int("chunks", chunks, 1, 1000)
    names = [str(n) for n in columns]
    forced = set(categorical or ())
    roles = {n for n in (prediction, label, timestamp) if n is not None}
    unknown = sorted((forced | roles | set(exclude)) - set(names))
    if unknown:
        raise ValueError(f"unknown column names: {unknown}")
    arrays: dict[str, npt.NDArray[Any]] = {}
    for name in names:
        if name in exclude:
            continue
        arr = _column(columns, name)
        if arr.ndim != 1:
            raise ValueError(f"column {name!r} must be one-dimensional, got shape {arr.shape}")
        arrays[name] = arr
    lengths = {name: a.shape[0] for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        first = next(iter(lengths))
        name = next(n for n, rows in lengths.items() if rows != lengths[first])
        raise ValueError(
            f"column {name!r} has {lengths[name]} rows, "
            f"expected {lengths[first]} (as column {first!r})"
        )
    if timestamp is not None:
        order = np.argsort(_sort_key(arrays.pop(timestamp)), kind="stable")
        arrays = {name: a[order] for name, a in arrays.items()}

    def profile(name: str) -> FeatureProfile:
        values = arrays[name]
        if name in forced or not is_numeric_column(values):
            return _categorical(name, values, top_k)
        return _numeric(name, values, n_fine, n_coarse)

    features = [profile(n) for n in arrays if n not in (prediction, label)]
    if not features:
        raise ValueError("columns must hold at least one feature")
    pred = None if prediction is None else profile(prediction)
    lab = None if label is None else profile(label)
    monitored = [*features, *([pred] if pred is not None else [])]
    spreads = _spreads(monitored, [arrays[p.name] for p in monitored], chunks)
    with_spread = [replace(p, spread=sp) for p, sp in zip(monitored, spreads, strict=True)]
    return ReferenceProfile(
        features=tuple(with_spread[: len(features)]),
        prediction=with_spread[-1] if pred is not None else None,
        label=lab,
    )


def _sort_key(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
    if values.dtype.kind in "iufM":
        return values
    return np.asarray([str(v) for v in values], dtype=object)


def _spreads(
    profiles: list[FeatureProfile], columns: list[npt.NDArray[Any]], chunks: int
) -> list[dict[str, float]]:
    """Each column's chunk spread per method (empty where the chunks agree)."""
    ids = chunk_ids(columns[0].shape[0], chunks) if chunks > 1 else None
    if ids is None:
        return [{} for _ in profiles]
    binner = Binner(profiles)
    matrix = np.column_stack(
        [
            p.encode(col) if isinstance(p, CategoricalProfile) else np.asarray(col, np.float64)
            for p, col in zip(profiles, columns, strict=True)
        ]
    )
    sketch = Sketch(binner, chunks)
    sketch.update(ids, matrix)
    engine = DriftEngine(binner)
    reference = engine.calibrate_chunks(sketch.state_dict()["counts"])
    return [
        {m: round(float(v[f]), 12) for m, v in reference.spread.items() if v[f] > 0}
        for f in range(len(profiles))
    ]
