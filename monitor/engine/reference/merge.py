"""Profiles of shards in, one profile out: what ``driftd reference merge`` runs.

The arithmetic is ``detectors.merge.merge_profiles`` (pure); this module reads the
files, names the file and column at fault when the profiles do not share one grid, and
writes the result atomically (``profile_file``). The other fields of a profile are
merged where their stored statistics add up, and otherwise left out with a warning that
names the field, the reason and the remedy (``warn``):

- ``segments`` (the segment mix): events per segment add up
  (``detectors.segment_mix.merge_mixes``) when every shard has one.
- ``performance`` (the score calibration and the label-noise thresholds): events and
  positives per score bin, valid and suspicious pairs, add up when the shards were
  calibrated on one grid (``reference build --grid-from`` a profile with a calibration;
  ``labels.calibration_fit.merge_performance``).
- ``multivariate`` (the reference PCA) and ``embeddings`` (one model per vector
  feature): a PCA's components, a whitening and the error law held out for them come
  from each shard's own rows and do not add up. Kept only when every shard carries the
  very same model (the same fit); else left out.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from detectors.merge import ProfileMismatchError, merge_profiles
from detectors.profile import ReferenceProfile
from detectors.segment_mix import merge_mixes
from monitor.engine.labels.calibration_fit import merge_performance
from monitor.engine.reference.profile_file import load_reference, write_reference
from monitor.errors import ReferenceProfileError

REBUILD = "rebuild the reference from the union of the data (driftd reference build)"
"""The remedy whenever a field cannot be merged."""


def merge_reference_files(
    inputs: Sequence[Path],
    output: Path,
    warn: Callable[[str], None] | None = None,
) -> ReferenceProfile:
    """Merge the profiles in ``inputs`` (in time order) and write the result to ``output``.

    ``warn`` is called with one line per field the merged profile leaves out (see the
    module docstring): what is not monitored with it, why, and what to do.

    Raises ``ReferenceProfileError`` naming the file at fault: unreadable, not a profile,
    or built on another grid than the first file (the message names the column).
    """
    paths = [Path(p) for p in inputs]
    profiles = [load_reference(p) for p in paths]
    try:
        merged = merge_profiles(profiles)
    except ProfileMismatchError as exc:
        column = f"feature {exc.feature!r} " if exc.feature is not None else ""
        raise ReferenceProfileError(
            str(paths[exc.index]), f"cannot merge with {paths[0]}: {column}{exc.reason}"
        ) from None
    dropped: list[str] = []
    merged = replace(
        merged,
        segments=_segments(profiles, paths, dropped),
        performance=_performance(profiles, dropped),
        multivariate=_multivariate(profiles, paths, dropped),
        embeddings=_embeddings(profiles, dropped),
        version="",
    )
    write_reference(merged, output)
    if warn is not None:
        for line in dropped:
            warn(line)
    return merged


def _names(paths: Sequence[Path], indices: Sequence[int]) -> str:
    return ", ".join(str(paths[i]) for i in indices)


def _segments(
    profiles: Sequence[ReferenceProfile], paths: Sequence[Path], dropped: list[str]
) -> Any:
    mixes = [p.segments for p in profiles if p.segments is not None]
    if len(mixes) == len(profiles):
        return merge_mixes(mixes)
    if mixes:  # with a shard lacking one, the whole's mix is unknown
        lacking = [i for i, p in enumerate(profiles) if p.segments is None]
        dropped.append(
            f"no segment mix (segment-mix drift is not monitored): {_names(paths, lacking)} "
            "has none (its data lacked a schema.segment_by path); rebuild that shard from "
            "data holding every schema.segment_by path, or " + REBUILD
        )
    return None


def _performance(profiles: Sequence[ReferenceProfile], dropped: list[str]) -> Any:
    field, why_not = merge_performance([p.performance for p in profiles])
    if why_not is not None:
        dropped.append(
            "no score calibration (estimated performance and label noise are not "
            f"monitored): {why_not}; build every shard with --grid-from the same profile "
            "holding a calibration, or " + REBUILD
        )
    return field


def _canonical(field: Mapping[str, Any]) -> str:
    return json.dumps(field, sort_keys=True)


def _multivariate(
    profiles: Sequence[ReferenceProfile], paths: Sequence[Path], dropped: list[str]
) -> Any:
    models = [p.multivariate for p in profiles]
    present = [m for m in models if m is not None]
    if not present:
        return None
    if len(present) == len(models) and len({_canonical(m) for m in present}) == 1:
        return dict(present[0])
    lacking = [i for i, m in enumerate(models) if m is None]
    reason = (
        f"{_names(paths, lacking)} has none (a shard built with --grid-from never has one)"
        if lacking
        else "the shards carry other PCAs"
    )
    dropped.append(
        "no multivariate model (multivariate drift is not monitored): a PCA and its "
        "held-out error law are fitted on each shard's own rows and do not add up, and "
        f"{reason}; " + REBUILD
    )
    return None


def _embeddings(profiles: Sequence[ReferenceProfile], dropped: list[str]) -> Any:
    fields = [p.embeddings or {} for p in profiles]
    names = sorted({name for field in fields for name in field})
    kept: dict[str, Any] = {}
    for name in names:
        models = [field.get(name) for field in fields]
        present = [m for m in models if m is not None]
        if len(present) == len(models) and len({_canonical(m) for m in present}) == 1:
            kept[name] = present[0]
            continue
        lacking = len(models) - len(present)
        reason = (
            f"{lacking} of the {len(models)} shards have none"
            if lacking
            else "the shards carry other models"
        )
        dropped.append(
            f"no embedding model for {name!r} (its embedding drift is not monitored): a "
            "model's centre and whitening are fitted on each shard's own vectors and do not "
            f"add up, and {reason}; " + REBUILD
        )
    return kept or None
