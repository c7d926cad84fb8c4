"""Mergeable profiles: profile data on a fixed grid, and add profiles of shards together.

A profile built by :func:`detectors.profile.build_profile` puts its bin edges at its own
data's quantiles and keeps its own top categories, so two shards of one training set get
different grids and their counts cannot be added. Profiled on one shared grid (the bins
and categories of a *grid* profile, say of a sample or of the first shard) with
:func:`profile_on_grid`, they can: :func:`merge_profiles` adds them, and the result is
the profile of the concatenated data on that grid.

What adds up exactly: bin counts, missing counts, ``__other__`` counts and the list of
rare categories (a grid-built profile lists every category outside the grid's top ones,
sorted by :func:`~detectors.feature_profiles.category_key`, and never moves mass to
``__unseen__``). Two parts are not sums of the shards:

- ``singletons`` (the categories seen once, for the Good-Turing unseen rate): merged as
  the sum of the shards', an upper bound of the whole's (a value seen once in each of
  two shards counts twice), exact when no shard's single-seen value occurs in another
  shard. A profile does not keep the count of each rare category, so nothing better can
  be recovered.
- ``spread`` (the reference's own time-chunk spread, see ``detectors.calibration``):
  measured again *between* the shards, taken as time-ordered chunks in the order given,
  the way a build measures it between the chunks of the whole. When the shards are the
  ``SPREAD_CHUNKS`` (10) equal time-ordered chunks of the whole, it is the whole's
  spread exactly; other shardings measure the same thing on other chunks. The shards'
  own spreads are not carried over: measured on chunks a tenth of a shard, they would
  add each shard's chance of a spurious spread (``SPREAD_P`` per test) to the result.
  Only when the shards hold too few rows to be chunks (fewer than ``MIN_CHUNK_ROWS`` per
  shard on average) is the largest shard spread kept.

Grid profiles need no quantiles merged: a profile stores none besides its fine edges,
which are the grid's.

>>> import numpy as np
>>> from detectors.profile import build_profile
>>> rng = np.random.default_rng(0)
>>> data = {"x": rng.normal(size=4_000), "plan": rng.choice(["a", "b", "c"], 4_000)}
>>> grid = build_profile({k: v[:1_000] for k, v in data.items()}, chunks=1)
>>> halves = [profile_on_grid({k: v[s] for k, v in data.items()}, grid, chunks=1)
...           for s in (slice(0, 2_000), slice(2_000, None))]
>>> merge_profiles(halves) == profile_on_grid(data, grid, chunks=1)
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.binning import Binner
from detectors.calibration import MIN_CHUNK_ROWS, SPREAD_CHUNKS, chunk_ids
from detectors.engine import DriftEngine
from detectors.feature_profiles import (
    CategoricalProfile,
    FeatureProfile,
    NumericProfile,
    category_key,
)
from detectors.profile import ReferenceProfile
from detectors.sketch import Sketch
from detectors.values import Category, check_int, factorize, is_numeric_column

__all__ = ["ProfileMismatchError", "merge_profiles", "profile_on_grid"]

_SPREAD_DIGITS = 12  # as build_profile stores spreads: the same data, the same version


class ProfileMismatchError(ValueError):
    """Profiles that cannot be added: ``index`` is the position of the one at fault in the
    sequence given (0 when the first one is), ``feature`` the column (None when the
    profiles differ in their columns as a whole), ``reason`` what differs."""

    def __init__(self, index: int, feature: str | None, reason: str) -> None:
        where = f"feature {feature!r}: " if feature is not None else ""
        super().__init__(f"profile {index}: {where}{reason}")
        self.index = index
        self.feature = feature
        self.reason = reason


# -- profiling on a grid ----------------------------------------------------------------


def profile_on_grid(
    columns: Mapping[str, npt.ArrayLike] | Any,
    grid: ReferenceProfile,
    *,
    chunks: int = SPREAD_CHUNKS,
) -> ReferenceProfile:
    """Profile ``columns`` on the bins and top categories of ``grid``.

    ``columns`` must hold exactly the grid's features, prediction and label (by name);
    rows are taken to be in time order for the chunk spread (``chunks`` as in
    ``build_profile``). Numeric values beyond the grid's range count in its open outer
    bins. Every category outside the grid's top ones is listed as rare.
    """
    chunks = check_int("chunks", chunks, 1, 1000)
    parts: list[tuple[str, FeatureProfile]] = [("feature", f) for f in grid.features]
    for role, prof in (("prediction", grid.prediction), ("label", grid.label)):
        if prof is not None:
            parts.append((role, prof))
    wanted = {p.name for _, p in parts}
    given = {str(n) for n in columns}
    if given != wanted:
        missing, extra = sorted(wanted - given), sorted(given - wanted)
        detail = "; ".join(
            text
            for text in (
                f"lacks {missing}" if missing else "",
                f"has columns the grid has not: {extra}" if extra else "",
            )
            if text
        )
        raise ValueError(f"the data does not fit the grid's columns: {detail}")
    arrays = {p.name: _as_column(columns[p.name], p.name) for _, p in parts}
    lengths = {a.shape[0] for a in arrays.values()}
    if len(lengths) > 1:
        raise ValueError(f"columns differ in length: {sorted(lengths)}")
    profiled = [_on_grid(p, arrays[p.name]) for _, p in parts]
    n_monitored = len(grid.monitored)
    monitored = profiled[:n_monitored]
    ids = chunk_ids(next(iter(lengths)), chunks) if chunks > 1 else None
    if ids is not None:
        binner = Binner(monitored)
        matrix = np.column_stack([_encoded(p, arrays[p.name]) for p in monitored])
        sketch = Sketch(binner, chunks)
        sketch.update(ids, matrix)
        spreads = _chunk_spreads(binner, sketch.state_dict()["counts"])
        monitored = [replace(p, spread=s) for p, s in zip(monitored, spreads, strict=True)]
    return _assemble(grid, [*monitored, *profiled[n_monitored:]])


def _as_column(values: Any, name: str) -> npt.NDArray[Any]:
    if hasattr(values, "to_numpy"):  # a pandas Series: nulls become None or NaN
        arr = np.asarray(values.to_numpy(dtype=object))
        arr[np.asarray(values.isna().to_numpy(), dtype=np.bool_)] = None
    else:
        arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"column {name!r} must be one-dimensional, got shape {arr.shape}")
    return arr


def _encoded(profile: FeatureProfile, values: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    if isinstance(profile, CategoricalProfile):
        return profile.encode(values)
    return np.asarray(values, dtype=np.float64)


def _on_grid(grid: FeatureProfile, values: npt.NDArray[Any]) -> FeatureProfile:
    if isinstance(grid, NumericProfile):
        if not is_numeric_column(values):
            raise ValueError(f"column {grid.name!r} is numeric in the grid but holds non-numbers")
        x = np.asarray(values, dtype=np.float64)
        finite = np.isfinite(x)
        counts = np.bincount(
            np.searchsorted(grid.edges, x[finite], side="left"), minlength=grid.n_bins
        )
        return NumericProfile(
            grid.name, grid.edges, counts, grid.coarse_starts, int(x.size - finite.sum())
        )
    uniques, inverse, missing = factorize(values)
    top = {category_key(c) for c in grid.categories}
    freq = np.bincount(inverse, minlength=len(uniques))
    by_key: dict[str, tuple[Category, int]] = {}
    for value, n in zip(uniques, freq.tolist(), strict=True):
        key = category_key(value)
        first, seen = by_key.get(key, (value, 0))
        by_key[key] = (first, seen + n)
    rare = {key: vn for key, vn in by_key.items() if key not in top}
    shape = CategoricalProfile(
        grid.name, grid.categories, np.zeros(grid.n_bins, np.int64), 0, rare=_sorted_rare(rare)
    )
    codes = shape.encode(values)
    present = np.isfinite(codes)
    counts = np.bincount(codes[present].astype(np.int64), minlength=grid.n_bins)
    singletons = sum(1 for _, n in by_key.values() if n == 1)
    return replace(shape, counts=counts, n_missing=int(missing.sum()), singletons=singletons)


def _sorted_rare(
    rare: Mapping[str, tuple[Category, int]] | Mapping[str, Category],
) -> tuple[Category, ...]:
    out: list[Category] = []
    for key in sorted(rare):
        item = rare[key]
        out.append(item[0] if isinstance(item, tuple) else item)
    return tuple(out)


# -- merging ----------------------------------------------------------------------------


def merge_profiles(profiles: Sequence[ReferenceProfile]) -> ReferenceProfile:
    """The profile of the shards' data taken together: counts added, rare categories
    united, ``singletons`` summed (an upper bound) and ``spread`` measured between the
    shards (see the module docstring). The shards are in time order.

    All profiles must share their columns (names, order, kinds, prediction and label),
    numeric bin edges and coarse bins, and top categories, as profiles built on one grid
    do (:func:`profile_on_grid`); else a :class:`ProfileMismatchError` names the first
    profile and column that differ from the first profile. The result is deterministic:
    the same shards in the same order give the same profile and version.
    """
    shards = list(profiles)
    if not shards:
        raise ValueError("merge_profiles needs at least one profile")
    first = shards[0]
    for index, shard in enumerate(shards[1:], start=1):
        _check_same_grid(first, shard, index)
    if len(shards) == 1:
        return first
    parts = _parts(first)
    merged: list[FeatureProfile] = []
    for position, base in enumerate(parts):
        column = [_parts(s)[position] for s in shards]
        merged.append(_merge_feature(base, column))
    n_monitored = len(first.monitored)
    monitored = merged[:n_monitored]
    if _chunkable(shards):
        slots = np.stack([Binner(s.monitored).reference_slots() for s in shards])
        spreads = _chunk_spreads(Binner(monitored), slots)
    else:  # too few rows for chunks: keep the largest spread any shard found on its own
        spreads = [_larger(*(s.monitored[f].spread for s in shards)) for f in range(n_monitored)]
    monitored = [replace(p, spread=s) for p, s in zip(monitored, spreads, strict=True)]
    return _assemble(first, [*monitored, *merged[n_monitored:]])


def _parts(profile: ReferenceProfile) -> list[FeatureProfile]:
    """Features, prediction, label: the ``monitored`` columns first, then the label."""
    return [*profile.monitored, *([profile.label] if profile.label is not None else [])]


def _assemble(grid: ReferenceProfile, parts: list[FeatureProfile]) -> ReferenceProfile:
    n = len(grid.features)
    prediction = parts[n] if grid.prediction is not None else None
    label = parts[-1] if grid.label is not None else None
    return ReferenceProfile(features=tuple(parts[:n]), prediction=prediction, label=label)


def _check_same_grid(first: ReferenceProfile, other: ReferenceProfile, index: int) -> None:
    if other.names != first.names:
        names_a, names_b = set(first.names), set(other.names)
        if names_a == names_b:
            reason = "the same features in another order"
        else:
            reason = "other features: " + ", ".join(
                part
                for part in (
                    f"lacks {sorted(names_a - names_b)}" if names_a - names_b else "",
                    f"adds {sorted(names_b - names_a)}" if names_b - names_a else "",
                )
                if part
            )
        raise ProfileMismatchError(index, None, reason)
    for role in ("prediction", "label"):
        ours: FeatureProfile | None = getattr(first, role)
        theirs: FeatureProfile | None = getattr(other, role)
        if ours is None and theirs is None:
            continue
        if ours is None or theirs is None:
            name = (ours or theirs).name  # type: ignore[union-attr]
            raise ProfileMismatchError(
                index, name, f"is the {role} in one profile and not in the other"
            )
        if ours.name != theirs.name:
            raise ProfileMismatchError(
                index, theirs.name, f"is the {role}, where the first profile has {ours.name!r}"
            )
    for mine, yours in zip(_parts(first), _parts(other), strict=True):
        difference = _grid_difference(mine, yours)
        if difference is not None:
            raise ProfileMismatchError(index, mine.name, difference)


def _grid_difference(mine: FeatureProfile, yours: FeatureProfile) -> str | None:
    if mine.kind != yours.kind:
        return f"is {yours.kind}, not {mine.kind} as in the first profile"
    if isinstance(mine, NumericProfile) and isinstance(yours, NumericProfile):
        if mine.edges.shape != yours.edges.shape or not np.array_equal(mine.edges, yours.edges):
            return (
                f"has other bin edges ({yours.edges.size} edges from {yours.edges[0]:.6g} to "
                f"{yours.edges[-1]:.6g}; the first profile: {mine.edges.size} from "
                f"{mine.edges[0]:.6g} to {mine.edges[-1]:.6g}); build the shards on one grid"
            )
        if not np.array_equal(mine.coarse_starts, yours.coarse_starts):
            return "has other coarse (PSI) bins; build the shards on one grid"
        return None
    assert isinstance(mine, CategoricalProfile) and isinstance(yours, CategoricalProfile)
    if [category_key(c) for c in mine.categories] != [category_key(c) for c in yours.categories]:
        return (
            f"has other top categories ({len(yours.categories)}; the first profile: "
            f"{len(mine.categories)}); build the shards on one grid"
        )
    if (mine.rare is None) != (yours.rare is None):
        return "lists its rare categories in one profile and not in the other"
    return None


def _merge_feature(base: FeatureProfile, column: list[FeatureProfile]) -> FeatureProfile:
    counts = np.sum([p.counts for p in column], axis=0)
    n_missing = sum(p.n_missing for p in column)
    if isinstance(base, NumericProfile):
        return NumericProfile(base.name, base.edges, counts, base.coarse_starts, n_missing)
    cats = [p for p in column if isinstance(p, CategoricalProfile)]
    rare: tuple[Category, ...] | None = None
    if base.rare is not None:
        united: dict[str, Category] = {}
        for p in cats:
            for value in p.rare or ():
                united.setdefault(category_key(value), value)
        rare = _sorted_rare(united)
    return CategoricalProfile(
        base.name,
        base.categories,
        counts,
        n_missing,
        rare=rare,
        singletons=sum(p.singletons for p in cats),
    )


def _chunkable(shards: Sequence[ReferenceProfile]) -> bool:
    """Whether the shards are chunks enough for a spread, as ``chunk_ids`` asks of a build's."""
    first = shards[0].features[0]
    rows = [s.feature(first.name).n_ref + s.feature(first.name).n_missing for s in shards]
    return len(shards) >= 2 and sum(rows) >= len(shards) * MIN_CHUNK_ROWS


def _chunk_spreads(binner: Binner, chunk_counts: npt.ArrayLike) -> list[dict[str, float]]:
    """Each column's spread per method over time-ordered chunk counts ``(K, F, stride)``,
    as ``build_profile`` records it (rounded, zeros left out)."""
    reference = DriftEngine(binner).calibrate_chunks(chunk_counts)
    return [
        {m: round(float(v[f]), _SPREAD_DIGITS) for m, v in reference.spread.items() if v[f] > 0}
        for f in range(binner.n_features)
    ]


def _larger(*spreads: Mapping[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for spread in spreads:
        for method, value in spread.items():
            out[method] = max(out.get(method, 0.0), float(value))
    return {m: out[m] for m in sorted(out)}
