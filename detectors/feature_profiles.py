"""Per-feature reference profiles: bin edges or categories, with reference counts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeAlias

import numpy as np
import numpy.typing as npt

from detectors.base import FloatArray, IntArray
from detectors.values import Category, check_int, factorize

OTHER = "__other__"


def _frozen(values: npt.ArrayLike, dtype: type[np.generic]) -> npt.NDArray[Any]:
    # Profiles are shared between detectors; a read-only private copy keeps one
    # detector from corrupting another's reference.
    arr = np.array(values, dtype=dtype)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class NumericProfile:
    """One numeric feature: a fine quantile grid with reference counts, and coarse PSI bins.

    Edges are the distinct reference quantiles at ``1/n_fine .. (n_fine-1)/n_fine`` (each a
    reference value), so discrete features get fewer, tie-free bins.

    Fine bin ``k`` is ``(edges[k-1], edges[k]]`` with open outer bins, so the cumulative
    counts equal the reference ECDF at every edge. Coarse bin ``c`` is the union of fine
    bins ``coarse_starts[c] .. coarse_starts[c+1]-1``: coarse edges are a subset of the fine
    edges and coarse counts are ``np.add.reduceat(counts, coarse_starts)``.
    """

    name: str
    edges: FloatArray
    counts: IntArray
    coarse_starts: IntArray
    n_missing: int

    kind: ClassVar[str] = "numeric"

    def __post_init__(self) -> None:
        edges = _frozen(self.edges, np.float64)
        counts = _frozen(self.counts, np.int64)
        starts = _frozen(self.coarse_starts, np.int64)
        where = f"numeric profile {self.name!r}"
        if edges.ndim != 1 or not np.isfinite(edges).all() or (np.diff(edges) <= 0).any():
            raise ValueError(f"{where}: edges must be finite and strictly increasing")
        if counts.shape != (edges.size + 1,):
            raise ValueError(
                f"{where}: expected {edges.size + 1} counts for {edges.size} edges, "
                f"got {counts.size}"
            )
        if (counts < 0).any():
            raise ValueError(f"{where}: counts must be >= 0")
        if (
            starts.ndim != 1
            or starts.size == 0
            or starts[0] != 0
            or (np.diff(starts) <= 0).any()
            or starts[-1] >= counts.size
        ):
            raise ValueError(
                f"{where}: coarse_starts must increase strictly from 0 and stay below {counts.size}"
            )
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "counts", counts)
        object.__setattr__(self, "coarse_starts", starts)
        object.__setattr__(self, "n_missing", check_int(f"{where}: n_missing", self.n_missing, 0))

    @property
    def n_bins(self) -> int:
        """Number of fine bins (interior edges + 1)."""
        return int(self.counts.size)

    @property
    def n_coarse(self) -> int:
        """Number of coarse (PSI) bins."""
        return int(self.coarse_starts.size)

    @property
    def n_ref(self) -> int:
        """Number of non-missing reference values."""
        return int(self.counts.sum())

    @property
    def coarse_edges(self) -> FloatArray:
        """Interior edges of the coarse bins, a subset of ``edges``."""
        return self.edges[self.coarse_starts[1:] - 1]

    @property
    def coarse_counts(self) -> IntArray:
        """Reference counts per coarse bin."""
        return np.add.reduceat(self.counts, self.coarse_starts)

    @property
    def proportions(self) -> FloatArray:
        """Reference proportions per fine bin."""
        return self.counts / max(self.n_ref, 1)

    @property
    def missing_rate(self) -> float:
        """Share of reference rows where the value was missing, null, NaN or infinite."""
        return self.n_missing / max(self.n_ref + self.n_missing, 1)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form."""
        return {
            "name": self.name,
            "kind": self.kind,
            "edges": self.edges.tolist(),
            "counts": self.counts.tolist(),
            "coarse_starts": self.coarse_starts.tolist(),
            "n_missing": self.n_missing,
        }

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NumericProfile) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, eq=False)
class CategoricalProfile:
    """One categorical feature: the top categories by reference frequency, then ``__other__``.

    Bin ``k < len(categories)`` is ``categories[k]``; the last bin collects every other
    value, including values never seen in the reference.
    """

    name: str
    categories: tuple[Category, ...]
    counts: IntArray
    n_missing: int

    kind: ClassVar[str] = "categorical"
    _index: dict[Category, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        where = f"categorical profile {self.name!r}"
        categories = tuple(self.categories)
        for value in categories:
            if isinstance(value, float) and not np.isfinite(value):
                raise ValueError(f"{where}: categories must be finite, got {value}")
            if not isinstance(value, str | int | float):
                raise ValueError(f"{where}: categories must be str, int or float, got {value!r}")
        index = {value: k for k, value in enumerate(categories)}
        if len(index) != len(categories):
            raise ValueError(f"{where}: categories must be distinct")
        counts = _frozen(self.counts, np.int64)
        if counts.shape != (len(categories) + 1,):
            raise ValueError(
                f"{where}: expected {len(categories) + 1} counts (categories + {OTHER}), "
                f"got {counts.size}"
            )
        if (counts < 0).any():
            raise ValueError(f"{where}: counts must be >= 0")
        object.__setattr__(self, "categories", categories)
        object.__setattr__(self, "counts", counts)
        object.__setattr__(self, "n_missing", check_int(f"{where}: n_missing", self.n_missing, 0))
        object.__setattr__(self, "_index", index)

    @property
    def n_bins(self) -> int:
        """Number of bins: the categories plus ``__other__``."""
        return int(self.counts.size)

    @property
    def n_coarse(self) -> int:
        """Categoricals have no separate coarse grid."""
        return self.n_bins

    @property
    def coarse_starts(self) -> IntArray:
        """Every bin is its own coarse bin."""
        return np.arange(self.n_bins, dtype=np.int64)

    @property
    def coarse_counts(self) -> IntArray:
        """Same as ``counts``."""
        return self.counts

    @property
    def n_ref(self) -> int:
        """Number of non-missing reference values."""
        return int(self.counts.sum())

    @property
    def proportions(self) -> FloatArray:
        """Reference proportions per bin, ``__other__`` last."""
        return self.counts / max(self.n_ref, 1)

    @property
    def missing_rate(self) -> float:
        """Share of reference rows where the value was missing or null."""
        return self.n_missing / max(self.n_ref + self.n_missing, 1)

    @property
    def other_code(self) -> int:
        """Bin code of ``__other__``."""
        return len(self.categories)

    def codes(self, values: npt.ArrayLike) -> FloatArray:
        """Bin codes of raw values as float64: NaN where missing, ``other_code`` if unknown."""
        uniques, inverse, missing = factorize(values)
        other = self.other_code
        lookup = np.array([self._index.get(u, other) for u in uniques], dtype=np.float64)
        out = np.full(missing.shape, np.nan)
        out[~missing] = lookup[inverse]
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form."""
        return {
            "name": self.name,
            "kind": self.kind,
            "categories": list(self.categories),
            "counts": self.counts.tolist(),
            "n_missing": self.n_missing,
        }

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CategoricalProfile) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


FeatureProfile: TypeAlias = NumericProfile | CategoricalProfile


def feature_from_dict(data: Mapping[str, Any]) -> FeatureProfile:
    """Inverse of ``to_dict`` for one feature profile."""
    kind = data.get("kind")
    try:
        if kind == NumericProfile.kind:
            return NumericProfile(
                name=str(data["name"]),
                edges=np.asarray(data["edges"], dtype=np.float64),
                counts=np.asarray(data["counts"], dtype=np.int64),
                coarse_starts=np.asarray(data["coarse_starts"], dtype=np.int64),
                n_missing=data["n_missing"],
            )
        if kind == CategoricalProfile.kind:
            return CategoricalProfile(
                name=str(data["name"]),
                categories=tuple(data["categories"]),
                counts=np.asarray(data["counts"], dtype=np.int64),
                n_missing=data["n_missing"],
            )
    except KeyError as exc:
        raise ValueError(
            f"feature profile {data.get('name')!r} lacks key {exc.args[0]!r}"
        ) from None
    raise ValueError(
        f"feature profile {data.get('name')!r} has unknown kind {kind!r}; "
        f"expected 'numeric' or 'categorical'"
    )
