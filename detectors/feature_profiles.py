"""Per-feature reference profiles: bin edges or categories, with reference counts."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, ClassVar, TypeAlias

import numpy as np
import numpy.typing as npt

from detectors.base import FloatArray, IntArray
from detectors.values import Category, check_int, factorize

OTHER = "__other__"
UNSEEN = "__unseen__"
_INTEGRAL_FLOAT_TEXT = re.compile(r"[+-]?[0-9]+\.0+")
_MISSED = -1.0
"""What a categorical value missing from the lookup table reads as (codes are >= 0)."""


def category_key(value: object) -> str:
    """The text a category is matched by: ``21``, ``21.0`` and ``"21"`` are all ``"21"``.

    Strings stay as they are; integral floats lose their ``.0``; booleans are
    ``"True"``/``"False"`` (as the decoder writes them).

    Text that spells an integral float (``"21.0"``, as a float column written to CSV
    reads back) loses its ``.0`` too; other text is kept as it is, leading zeros
    included (``"02139"`` stays a zip code).

    >>> [category_key(v) for v in ("a", 21, 21.0, "21.0", "02139", 2.5, True)]
    ['a', '21', '21', '21', '02139', '2.5', 'True']
    """
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str):
        if _INTEGRAL_FLOAT_TEXT.fullmatch(value):
            return value.split(".", 1)[0].lstrip("+")
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


_BOOLEAN_SPELLINGS: dict[str, tuple[str, ...]] = {
    "True": ("True", "true", "TRUE", "1", "1.0", "yes"),
    "False": ("False", "false", "FALSE", "0", "0.0", "no"),
}
"""How a boolean category may be written in events (``category_key`` of True is "True")."""


def _spread(where: str, spread: Mapping[str, float]) -> dict[str, float]:
    out = {str(k): float(v) for k, v in dict(spread).items()}
    if any(not (np.isfinite(v) and v >= 0) for v in out.values()):
        raise ValueError(f"{where}: spread values must be finite and >= 0, got {out}")
    return out


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
    spread: Mapping[str, float] = field(default_factory=dict)
    """Per method, how far the reference's own time-ordered chunks spread beyond what
    i.i.d. sampling explains (see ``detectors.calibration``); empty when none was seen."""

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
        object.__setattr__(self, "spread", _spread(where, self.spread))

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
            "spread": dict(self.spread),
        }

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NumericProfile) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, eq=False)
class CategoricalProfile:
    """One categorical feature: the top categories by reference frequency, ``__other__`` and
    ``__unseen__``.

    Bin ``k < len(categories)`` is ``categories[k]``. ``__other__`` (bin ``other_code``) holds
    the reference's other, rarer categories, listed in ``rare``. ``__unseen__`` (bin
    ``unseen_code``, the last) holds values the reference never had, so a new category is
    not hidden among the reference's own rare mass; its reference count is the mass of
    categories too many to list (zero unless the column has more than ``MAX_LISTED``
    distinct values). ``singletons`` is the number of reference categories seen exactly
    once: the Good-Turing estimate ``singletons / n_ref`` of how often a stationary stream
    still brings a new value.

    ``rare=None`` (a profile from before rare categories were listed) sends every value
    outside ``categories`` to ``__other__`` and leaves ``__unseen__`` empty.

    Values are matched by :func:`category_key`, so ``21``, ``21.0`` and ``"21"`` are the
    same category.
    """

    name: str
    categories: tuple[Category, ...]
    counts: IntArray
    n_missing: int
    rare: tuple[Category, ...] | None = None
    singletons: int = 0
    spread: Mapping[str, float] = field(default_factory=dict)
    """Per method, how far the reference's own time-ordered chunks spread beyond what
    i.i.d. sampling explains (see ``detectors.calibration``); empty when none was seen."""

    kind: ClassVar[str] = "categorical"
    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        where = f"categorical profile {self.name!r}"
        categories = tuple(self.categories)
        rare = None if self.rare is None else tuple(self.rare)
        for value in (*categories, *(rare or ())):
            if isinstance(value, float) and not np.isfinite(value):
                raise ValueError(f"{where}: categories must be finite, got {value}")
            if not isinstance(value, str | int | float):
                raise ValueError(f"{where}: categories must be str, int or float, got {value!r}")
        index = {category_key(value): k for k, value in enumerate(categories)}
        if len(index) != len(categories):
            raise ValueError(f"{where}: categories must be distinct")
        counts = np.asarray(self.counts, dtype=np.int64)
        if counts.shape == (len(categories) + 1,):  # no __unseen__ bin yet
            counts = np.append(counts, 0)
        if counts.shape != (len(categories) + 2,):
            raise ValueError(
                f"{where}: expected {len(categories) + 2} counts "
                f"(categories + {OTHER} + {UNSEEN}), got {counts.size}"
            )
        if (counts < 0).any():
            raise ValueError(f"{where}: counts must be >= 0")
        other = len(categories)
        if rare is not None:
            for value in rare:
                key = category_key(value)
                if key in index:
                    raise ValueError(f"{where}: rare category {value!r} is also a category")
                index[key] = other
        object.__setattr__(self, "categories", categories)
        object.__setattr__(self, "rare", rare)
        object.__setattr__(self, "counts", _frozen(counts, np.int64))
        object.__setattr__(self, "n_missing", check_int(f"{where}: n_missing", self.n_missing, 0))
        object.__setattr__(
            self, "singletons", check_int(f"{where}: singletons", self.singletons, 0)
        )
        object.__setattr__(self, "spread", _spread(where, self.spread))
        object.__setattr__(self, "_index", index)

    @property
    def n_bins(self) -> int:
        """Number of bins: the categories, ``__other__`` and ``__unseen__``."""
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
        """Reference proportions per bin, ``__other__`` and ``__unseen__`` last."""
        return self.counts / max(self.n_ref, 1)

    @property
    def missing_rate(self) -> float:
        """Share of reference rows where the value was missing or null."""
        return self.n_missing / max(self.n_ref + self.n_missing, 1)

    @property
    def other_code(self) -> int:
        """Bin code of ``__other__``."""
        return len(self.categories)

    @property
    def unseen_code(self) -> int:
        """Bin code of ``__unseen__``."""
        return len(self.categories) + 1

    @property
    def tracks_unseen(self) -> bool:
        """Whether values never seen in the reference are told apart (``rare`` is known)."""
        return self.rare is not None

    def encode(self, values: Iterable[object]) -> FloatArray:
        """Bin codes of raw values as float64: NaN where missing (None, NaN, infinite).

        Accepts a list (the decoder's strings and None), a numpy array or a pandas
        Series. Values are matched by :func:`category_key`; a value outside the
        reference's categories gets ``unseen_code`` (or ``other_code`` when ``rare`` is
        unknown).

        >>> p = CategoricalProfile("color", ("red", 21), [5, 3, 1], 0, rare=("blue",))
        >>> p.encode(["red", "21", 21.0, "blue", "mauve", None]).tolist()
        [0.0, 1.0, 1.0, 2.0, 3.0, nan]
        >>> flag = CategoricalProfile("vip", (False, True), [9, 1, 0], 0, rare=())
        >>> flag.encode(["true", "True", "0", True, 1, None]).tolist()
        [1.0, 1.0, 0.0, 1.0, 1.0, nan]
        """
        unknown = float(self.unseen_code if self.rare is not None else self.other_code)
        if isinstance(values, list):
            # The daemon's fast path: the decoder hands over text or None. Exact text is
            # looked up with no Python call per value (None is in the table, as NaN);
            # only a miss pays for canonicalising ("21.0" -> "21"). Keys are text, so a
            # value of any other type misses too, and takes the general path below.
            lookup = self._lookup()
            codes: FloatArray | None
            try:
                codes = np.fromiter(
                    map(lookup.get, values, repeat(_MISSED)), np.float64, len(values)
                )
            except TypeError:  # an unhashable value
                codes = None
            if codes is not None:
                misses = np.flatnonzero(codes == _MISSED).tolist()
                if all(type(values[i]) is str for i in misses):
                    for i in misses:
                        codes[i] = lookup.get(category_key(values[i]), unknown)
                    return codes
        arr = np.asarray(values, dtype=object) if isinstance(values, list) else np.asarray(values)
        uniques, inverse, missing = factorize(arr)
        lookup = self._lookup()
        codes = np.array([float(lookup.get(category_key(u), unknown)) for u in uniques], np.float64)
        out = np.full(missing.shape, np.nan)
        out[~missing] = codes[inverse]
        return out

    def _lookup(self) -> dict[str | None, float]:
        cached: dict[str | None, float] | None = self.__dict__.get("_text_lookup")
        if cached is None:
            cached = {k: float(v) for k, v in self._index.items()}
            if self.boolean:
                # A boolean column matches the usual spellings of its two values.
                for key, spellings in _BOOLEAN_SPELLINGS.items():
                    if key in self._index:
                        cached.update(dict.fromkeys(spellings, float(self._index[key])))
            cached[None] = np.nan
            object.__setattr__(self, "_text_lookup", cached)
        return cached

    @property
    def boolean(self) -> bool:
        """True when every known category is a boolean (``True`` / ``False``, or that text)."""
        known = {category_key(c) for c in (*self.categories, *(self.rare or ()))}
        return bool(known) and known <= set(_BOOLEAN_SPELLINGS)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form."""
        return {
            "name": self.name,
            "kind": self.kind,
            "categories": list(self.categories),
            "counts": self.counts.tolist(),
            "n_missing": self.n_missing,
            "rare": None if self.rare is None else list(self.rare),
            "singletons": self.singletons,
            "spread": dict(self.spread),
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
                spread=data.get("spread") or {},
            )
        if kind == CategoricalProfile.kind:
            return CategoricalProfile(
                name=str(data["name"]),
                categories=tuple(data["categories"]),
                counts=np.asarray(data["counts"], dtype=np.int64),
                n_missing=data["n_missing"],
                rare=None if data.get("rare") is None else tuple(data["rare"]),
                singletons=data.get("singletons", 0),
                spread=data.get("spread") or {},
            )
    except KeyError as exc:
        raise ValueError(
            f"feature profile {data.get('name')!r} lacks key {exc.args[0]!r}"
        ) from None
    raise ValueError(
        f"feature profile {data.get('name')!r} has unknown kind {kind!r}; "
        f"expected 'numeric' or 'categorical'"
    )
