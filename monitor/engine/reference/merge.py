"""Profiles of shards in, one profile out: what ``driftd reference merge`` runs.

The arithmetic is ``detectors.merge.merge_profiles`` (pure); this module reads the
files, names the file and column at fault when the profiles do not share one grid, and
writes the result atomically (``profile_file``). Segment mixes add up
(``detectors.segment_mix.merge_mixes``) when every shard has one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from detectors.merge import ProfileMismatchError, merge_profiles
from detectors.profile import ReferenceProfile
from detectors.segment_mix import merge_mixes
from monitor.engine.reference.profile_file import load_reference, write_reference
from monitor.errors import ReferenceProfileError


def merge_reference_files(inputs: Sequence[Path], output: Path) -> ReferenceProfile:
    """Merge the profiles in ``inputs`` (in time order) and write the result to ``output``.

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
    mixes = [p.segments for p in profiles if p.segments is not None]
    if len(mixes) == len(profiles):  # with a shard lacking one, the whole's mix is unknown
        merged = replace(merged, segments=merge_mixes(mixes), version="")
    write_reference(merged, output)
    return merged
