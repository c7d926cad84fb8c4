"""Warnings about training data that would make a poor reference.

Columns that look like ids or times (near-unique text, numbers that rise with the row
order, epoch numbers, ISO dates) drift by construction: new ids and later times are
never in the reference. A reference of few rows gives loose calibrated thresholds.
Both are warnings, not errors: the caller decides (``driftd reference build`` prints
them on stderr).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.calibration import ks_critical, n_effective

SMALL_REFERENCE_ROWS = 1_000
"""Fewer reference rows than this get a warning: thresholds are loose, tails unseen."""
ID_MIN_DISTINCT = 1_000
ID_DISTINCT_SHARE = 0.9
"""A column with more distinct values than both (share of its present values) is id-like."""
MONOTONIC_MIN_DISTINCT = 100
EPOCH_SECONDS = (946_684_800.0, 4_102_444_800.0)
"""2000-01-01 to 2100-01-01: numbers all in here (or 1,000 times it) look like epoch times."""
_ISO_DATE = re.compile(
    r"\d{4}[-/]\d{2}[-/]\d{2}"  # a date, then maybe a time and a zone
    r"([T ]\d{2}:\d{2}(:\d{2}([.,]\d+)?)?)?\s*(Z|[+-]\d{2}:?\d{2})?"
)
_DATE_SAMPLE = 1_000


def suspect_column(name: str, values: npt.NDArray[Any], is_categorical: bool) -> str | None:
    """Why feature ``name`` looks like an id or a time (one line), or None.

    Such a column drifts by construction: new ids and later times are never in the
    reference. Categorical: more than ``ID_MIN_DISTINCT`` distinct values making up more
    than ``ID_DISTINCT_SHARE`` of the present ones, or text that reads as dates. Numeric:
    epoch times (every value in 2000-2100 as seconds or milliseconds), integers all
    distinct (more than ``ID_MIN_DISTINCT``), or near-unique values that only rise (or
    only fall) in row order.
    """
    leave = f"leave it out with --exclude {name}"
    if is_categorical:
        present = [v for v in values if v is not None]
        distinct = len(set(present))
        if distinct > ID_MIN_DISTINCT and distinct > ID_DISTINCT_SHARE * len(present):
            return (
                f"column {name!r} looks like an id: {distinct:,} distinct values in "
                f"{len(present):,} rows; a window's values are new, so it drifts by "
                f"construction ({leave}, or name it as schema.id)"
            )
        sample = present[:_DATE_SAMPLE]
        dates = sum(_ISO_DATE.fullmatch(v.strip()) is not None for v in sample)
        if sample and dates > ID_DISTINCT_SHARE * len(sample):
            return (
                f"column {name!r} looks like a timestamp (values such as {sample[0]!r}); "
                f"event times move on, so it drifts by construction ({leave}, or name it "
                "as schema.timestamp)"
            )
        return None
    finite = values[np.isfinite(values)]
    if len(finite) < 2:
        return None
    distinct = len(np.unique(finite))
    lo, hi = float(finite.min()), float(finite.max())
    epoch = next(
        (
            unit
            for unit, scale in (("seconds", 1.0), ("milliseconds", 1e3))
            if EPOCH_SECONDS[0] * scale <= lo and hi <= EPOCH_SECONDS[1] * scale
        ),
        None,
    )
    if epoch is not None and distinct > 1:
        return (
            f"column {name!r} looks like a timestamp (every value is a time in epoch {epoch}); "
            f"event times move on, so it drifts by construction ({leave}, or name it as "
            "schema.timestamp)"
        )
    integers = bool(np.all(finite == np.floor(finite)))
    if integers and distinct == len(finite) and distinct > ID_MIN_DISTINCT:
        return (
            f"column {name!r} looks like an id: {distinct:,} integers, every one distinct; "
            f"a window's values are new, so it drifts by construction ({leave}, or name it "
            "as schema.id)"
        )
    steps = np.diff(finite)
    monotonic = bool(np.all(steps >= 0) or np.all(steps <= 0))
    if (
        monotonic
        and distinct >= MONOTONIC_MIN_DISTINCT
        and distinct > ID_DISTINCT_SHARE * len(finite)
    ):
        return (
            f"column {name!r} only {'rises' if steps.sum() > 0 else 'falls'} with the row "
            f"order ({distinct:,} distinct values), like a counter, an id or a time; later "
            f"values are never in the reference, so it drifts by construction ({leave})"
        )
    return None


def small_reference_warning(rows: int, *, window: int, alpha: float) -> str | None:
    """A warning for a reference of fewer than ``SMALL_REFERENCE_ROWS`` rows, or None.

    It says what the calibrated KS threshold of a ``window``-event window then is,
    against that of a 100,000-row reference (``detectors.calibration.ks_critical``).
    """
    if rows >= SMALL_REFERENCE_ROWS:
        return None
    small = float(ks_critical(alpha, n_effective(rows, window)))
    large = float(ks_critical(alpha, n_effective(100_000, window)))
    return (
        f"only {rows:,} reference rows (fewer than {SMALL_REFERENCE_ROWS:,}): calibrated "
        f"thresholds follow the reference's size, so they are loose: a {window:,}-event "
        f"window needs a KS distance above {small:.3f} to breach (about {large:.3f} with "
        "100,000 rows), PSI and chi-square likewise, and rare categories and the tails are "
        "barely represented; profile more training data if you can"
    )
