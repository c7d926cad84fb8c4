"""The reference's segment mix: its events per segment, named as the daemon names them.

Each row's key is built by the decoder's own ``segment_keys`` and named by
``segment_name``, so a reference segment and a live one with the same values share a
name. Training data without every ``segment_by`` path gets no mix (``training_data``
leaves the columns out): a key missing one of its parts would match no live segment.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from detectors.segment_mix import MAX_SEGMENT_KEYS, SegmentMix
from monitor.ingest.columns import Problems
from monitor.ingest.segment_keys import segment_keys
from monitor.ingest.segments import segment_name


def reference_segment_mix(
    columns: list[tuple[str, list[Any]]], n_rows: int, max_keys: int = MAX_SEGMENT_KEYS
) -> SegmentMix | None:
    """The events per segment name of the training rows, or None without segment columns.

    ``columns`` are (path, values) in ``schema.segment_by`` order, as ``TrainingTable``
    holds them. A value nested too deep to be a key counts as missing, as the decoder
    counts it.
    """
    if not columns or n_rows == 0:
        return None
    problems: Problems = {}
    keys = segment_keys(columns, n_rows, problems)
    uniques, freq = np.unique(np.asarray(keys, dtype=str), return_counts=True)
    # segment_name is injective, so distinct keys keep distinct names.
    counts = {segment_name(k): int(c) for k, c in zip(uniques.tolist(), freq.tolist(), strict=True)}
    return SegmentMix.from_counts(counts, max_keys)
