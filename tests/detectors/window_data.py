"""Seeded reference data and value matrices shared by the window-detector tests."""

from __future__ import annotations

import numpy as np

from detectors.profile import CategoricalProfile, NumericProfile, ReferenceProfile, build_profile

COLORS = np.array(["red", "green", "blue", "cyan", "magenta", "yellow", "black"], dtype=object)


def reference_columns(rng: np.random.Generator, n: int = 2000) -> dict[str, np.ndarray]:
    """A normal, a heavy-tailed, a discrete (ties) and a categorical column, some missing."""
    normal = rng.normal(10.0, 2.0, n)
    normal[rng.random(n) < 0.02] = np.nan
    color = rng.choice(COLORS, size=n, p=[0.3, 0.25, 0.2, 0.1, 0.1, 0.04, 0.01])
    color[rng.random(n) < 0.03] = None
    return {
        "normal": normal,
        "cauchy": rng.standard_cauchy(n),
        "poisson": rng.poisson(3.0, n).astype(np.float64),
        "color": color,
    }


def reference_profile(seed: int = 0, top_k: int = 5) -> ReferenceProfile:
    """The profile of ``reference_columns`` (colors beyond ``top_k`` go to ``__other__``)."""
    return build_profile(reference_columns(np.random.default_rng(seed)), top_k=top_k)


def numeric_profiles(profile: ReferenceProfile) -> list[NumericProfile]:
    """The numeric feature profiles only."""
    return [f for f in profile.features if isinstance(f, NumericProfile)]


def value_matrix(
    profiles: list[NumericProfile | CategoricalProfile],
    rng: np.random.Generator,
    n: int,
    shift: float = 0.0,
    dirty: float = 0.05,
    tricky: bool = True,
) -> np.ndarray:
    """Rows for ``profiles``; a ``dirty`` share of each column is NaN, +inf or -inf.

    ``tricky`` rows mix shifted normal draws with exact edges, values just past edges and
    values far outside the range, and categorical codes of raw colors (unknown colors and
    None included). Otherwise rows resemble the reference: numeric values are reference
    quantiles moved by ``shift`` times the central spread, and categories are drawn with
    the reference proportions.
    """
    X = np.empty((n, len(profiles)))
    for j, p in enumerate(profiles):
        if isinstance(p, CategoricalProfile):
            if tricky:
                X[:, j] = p.encode(rng.choice(np.append(COLORS, ["purple", None]), size=n))
            else:
                X[:, j] = rng.choice(p.n_bins, size=n, p=p.proportions)
                X[rng.random(n) < shift, j] = 0.0
        elif not tricky:
            spread = float(np.subtract(*np.quantile(p.edges, [0.75, 0.25]))) + 1e-9
            X[:, j] = rng.choice(p.edges, n) + shift * spread
        else:
            centre, spread = (float(np.median(p.edges)), float(np.ptp(p.edges)) / 4 + 1.0)
            x = rng.normal(centre + shift * spread, spread, n)
            kind = rng.integers(0, 4, n)
            picks = rng.choice(p.edges, n) if p.edges.size else np.zeros(n)
            x = np.where(kind == 1, picks, x)
            x = np.where(kind == 2, np.nextafter(picks, np.inf), x)
            x = np.where(kind == 3, rng.choice([-1e300, 1e300, -1e9, 1e9], n), x)
            X[:, j] = x
        bad = rng.random(n) < dirty
        X[bad, j] = rng.choice([np.nan, np.inf, -np.inf], int(bad.sum()))
    return X
