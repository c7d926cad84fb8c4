"""Training data in, a versioned reference profile out: ``build_reference``.

The training file is read by ``training_data`` and each column made profile input by
``column_values``; prediction and label are profiled as such when present;
``exclude`` and ``leave_out`` drop columns (the CLI passes the label events' id,
timestamp and label paths as ``leave_out``). Features are stored sorted by name, so
the same data gives the same profile (and version) whatever the format or column
order, and ``profile_file`` writes it atomically as the same bytes. Columns that look
like ids or times are reported through ``warn`` (``checks.suspect_column``). When the
data holds every ``schema.segment_by`` path, the profile also records its events per
segment (``segment_counts``), the reference of segment-mix drift. With a probability
prediction and 0/1 labels it also carries the score calibration and the label-noise
thresholds (``labels/calibration_fit``). With two or more numeric features it also
carries the PCA of multivariate drift (``multivariate_window.fit_multivariate``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy.typing as npt

from detectors.feature_profiles import CategoricalProfile, FeatureProfile, NumericProfile
from detectors.merge import profile_on_grid
from detectors.profile import ReferenceProfile, build_profile
from detectors.values import check_int
from monitor.config import EmbeddingDriftConfig, MultivariateDriftConfig, SchemaConfig
from monitor.engine.embedding_window import fit_embeddings
from monitor.engine.labels.calibration_fit import fit_performance
from monitor.engine.multivariate_window import fit_multivariate
from monitor.engine.reference.checks import suspect_column
from monitor.engine.reference.column_values import has_values, profile_values
from monitor.engine.reference.profile_file import write_reference
from monitor.engine.reference.segment_counts import reference_segment_mix
from monitor.engine.reference.training_data import read_training_data
from monitor.errors import ReferenceProfileError


def build_reference(
    input_path: Path,
    output_path: Path,
    *,
    schema: SchemaConfig,
    categorical: Sequence[str] = (),
    n_fine: int = 100,
    n_coarse: int = 10,
    top_k: int = 20,
    exclude: Sequence[str] = (),
    leave_out: Sequence[str] = (),
    warn: Callable[[str], None] | None = None,
    grid: ReferenceProfile | None = None,
    multivariate: MultivariateDriftConfig | None = None,
    embedding: EmbeddingDriftConfig | None = None,
    decision_threshold: float = 0.5,
) -> ReferenceProfile:
    """Profile the training data in ``input_path`` and write it to ``output_path``.

    ``categorical`` names columns to profile as categorical whatever they hold;
    ``exclude`` names columns to leave out (say, an all-empty or a date column), each
    of which must be in the data; ``leave_out`` names feature columns to leave out if
    present. ``warn`` is called with one line per feature that looks like an id or a
    time (see :func:`suspect_column`). ``grid``, a profile, fixes the bins, the top
    categories and the kinds of every column (``n_fine``, ``n_coarse``, ``top_k`` and
    ``categorical`` are then unused): profiles of shards built on one grid merge by
    addition (``detectors.merge``). ``multivariate`` (default: the defaults of
    ``detectors.multivariate_drift``) says whether and how the PCA of the numeric
    features is fitted (with two or more, and no ``grid``: a shard's PCA would not merge),
    ``embedding`` (likewise) that of each ``schema.vector_features`` column, which is left
    out of the profile's columns. ``decision_threshold`` (``labels.decision_threshold``)
    is where the score calibration puts the predicted classes apart; with a ``grid``
    carrying a calibration, the shard is calibrated on the grid's bins and label-noise
    thresholds, so that shards' calibrations merge too.

    Raises ``ReferenceProfileError`` (naming the file at fault) when the input is
    missing, unreadable, empty or cannot be profiled, or the output cannot be written.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    where = str(input_path)
    try:
        # The same bounds build_profile enforces, checked before reading a large file.
        check_int("n_fine", n_fine, 100, 200)
        check_int("n_coarse", n_coarse, 2, 50)
        check_int("top_k", top_k, 1, 1000)
    except ValueError as exc:
        raise ReferenceProfileError(where, str(exc)) from None
    table = read_training_data(input_path, schema)
    if table.n_rows == 0:
        raise ReferenceProfileError(where, "holds no rows")
    roles = {schema.prediction: table.prediction, schema.label: table.label}
    known = set(table.features) | {name for name, col in roles.items() if col is not None}
    for option, names in (("exclude", set(exclude)), ("categorical", set(categorical))):
        unknown = sorted(names - known)
        if unknown:
            raise ReferenceProfileError(
                where,
                f"{option} columns {unknown} are not in the data; "
                f"its columns are {_listing(sorted(known))}",
            )
    for name in exclude:
        table.features.pop(name, None)
        if name in roles:
            roles[name] = None
    for name in leave_out:
        table.features.pop(name, None)
    # Vector features are no columns of the profile: each gets an embedding model below.
    vector_columns: dict[str, list[Any]] = {}
    for name in schema.vector_features:
        column = table.features.pop(name, None)
        if column is not None:
            vector_columns[name] = column if isinstance(column, list) else column.to_pylist()
        elif warn is not None:
            warn(f"vector feature {name!r} (schema.vector_features) is not in the data")
    if not table.features:
        raise ReferenceProfileError(where, "holds no feature columns")
    # schema.categorical may name features of other inputs; only the ones present apply.
    forced = set(categorical) | set(schema.categorical)
    if grid is not None:
        forced = {p.name for p in _grid_parts(grid) if isinstance(p, CategoricalProfile)}
    clash = sorted(set(table.features) & {n for n, col in roles.items() if col is not None})
    if clash:
        raise ReferenceProfileError(
            where, f"feature {clash[0]!r} has the name of the prediction or label path"
        )

    columns: dict[str, npt.NDArray[Any]] = {}
    kinds_categorical: list[str] = []
    for name in sorted(table.features):
        values, is_categorical = profile_values(
            where, name, table.features[name], name in forced, table.from_text
        )
        if not has_values(values, is_categorical):
            raise ReferenceProfileError(
                where,
                f"column {name!r} has no values (every row is empty or null); "
                "leave it out with exclude",
            )
        columns[name] = values
        if is_categorical:
            kinds_categorical.append(name)
        suspicion = suspect_column(name, values, is_categorical) if warn is not None else None
        if suspicion is not None and warn is not None:
            warn(suspicion)
    prediction = label = None
    for role, column in roles.items():
        if column is None:
            continue
        values, is_categorical = profile_values(
            where, role, column, role in forced, table.from_text
        )
        if has_values(values, is_categorical):  # an all-empty role column is as good as none
            columns[role] = values
            if is_categorical:
                kinds_categorical.append(role)
            if role == schema.prediction:
                prediction = role
            else:
                label = role
    try:
        if grid is not None:
            profile = profile_on_grid(columns, grid)
        else:
            profile = build_profile(
                columns,
                categorical=kinds_categorical,
                prediction=prediction,
                label=label,
                n_fine=n_fine,
                n_coarse=n_coarse,
                top_k=top_k,
            )
    except ValueError as exc:
        raise ReferenceProfileError(where, str(exc)) from None
    segments = reference_segment_mix(table.segments, table.n_rows)
    if segments is not None:
        profile = replace(profile, segments=segments, version="")
    if prediction is not None and label is not None:
        # A binary classifier's reference: calibrate its scores (CBPE, label noise).
        performance, why_not = fit_performance(
            columns[prediction],
            columns[label],
            threshold=decision_threshold,
            grid=grid.performance if grid is not None else None,
        )
        if performance is not None:
            profile = replace(profile, performance=performance, version="")
        elif warn is not None:
            warn(f"no score calibration (estimated performance, label noise): {why_not}")
    numeric = [p.name for p in profile.features if isinstance(p, NumericProfile)]
    if grid is None and len(numeric) >= 2:
        # A shard built on a grid is made to be merged, and a PCA does not add up: none.
        cfg = multivariate or MultivariateDriftConfig()
        joint, why_not = fit_multivariate(columns, numeric, cfg)
        if joint is not None:
            profile = replace(profile, multivariate=joint, version="")
        elif why_not is not None and warn is not None:
            warn(f"no multivariate model (multivariate drift is not monitored): {why_not}")
    models, left_out = fit_embeddings(vector_columns, embedding or EmbeddingDriftConfig())
    if models:
        profile = replace(profile, embeddings=models, version="")
    for name, reason in left_out.items():
        if warn is not None:
            warn(f"no embedding model for {name!r} (embedding drift is not monitored): {reason}")
    write_reference(profile, output_path)
    return profile


def _grid_parts(grid: ReferenceProfile) -> list[FeatureProfile]:
    return [*grid.monitored, *([grid.label] if grid.label is not None else [])]


def _listing(names: list[str], limit: int = 20) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")
