"""Segment-mix drift: how a window's traffic splits across segments, against the reference's.

The reference records how many training events each segment key held
(:class:`SegmentMix`, saved in the reference profile). A window's traffic is counted
into cells (:meth:`SegmentMix.cells`): one per key the reference lists, ``OTHER``
(keys in the reference's unlisted tail, and the daemon's ``__other__`` overflow),
``NEW`` (keys the reference never saw) and ``INVALID`` (values that are no key).
Counts are additive, so a window is the sum of its panes and partitions merge by
addition (:func:`accumulate`).

:func:`evaluate_mix` tests the window's known cells against the reference proportions
with Pearson's chi-square goodness of fit (``scipy.stats.chisquare``), cells expected
below ``MIN_EXPECTED`` pooled into one, and scores it with Cohen's w, which does not
grow with the window: a breach needs both ``p <= alpha`` and ``w >= min_effect``, so a
huge window does not page on a tiny mix change. Traffic in new segments is kept out of
the test and reported on its own (``new_share``, ``new_keys``), because a segment the
reference never saw has no expected share to compare with.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> mix = SegmentMix.from_keys(rng.choice(["eu", "us", "apac"], 20_000, p=[0.5, 0.3, 0.2]))
>>> mix.names
('eu', 'us', 'apac')
>>> detector = SegmentMixDetector(mix)
>>> window = rng.choice(["eu", "us", "apac", "latam"], 5_000, p=[0.3, 0.3, 0.3, 0.1])
>>> result = detector.update(np.zeros(5_000, dtype=np.int64), window)
>>> bool(result.drift[0]), result.new_keys[0], round(float(result.new_share[0]), 2)
(True, ('latam',), 0.1)
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from detectors.base import DriftResult, FloatArray, IntArray, State, as_segments
from detectors.rules import BAND, BREACH, CLEAR, SKIP
from detectors.values import check_int

MAX_SEGMENT_KEYS: Final = 1_000
"""Keys a reference lists with their own count; the rest are summed in ``other``.

Five times the daemon's default ``segments.max_segments`` (200): every segment the
daemon can track by default has its own expected share, and a reference built from
data keyed by user ids (a million keys) stays about 30 KB of JSON."""
MIN_EXPECTED: Final = 5.0
"""Cells expected to hold fewer events than this in a window are pooled into one."""
OVERFLOW_NAME: Final = "__other__"
"""The daemon's segment of events without a segment of their own; counted as ``OTHER``."""


@dataclass(frozen=True, eq=False)
class SegmentMix:
    """The reference's events per segment key: the top keys and the rest summed.

    ``names`` are segment names (as the daemon labels segments), most frequent first
    (ties by name); ``counts[i]`` is the events of ``names[i]``; ``other`` the events of
    the ``other_keys`` keys past ``MAX_SEGMENT_KEYS``. When ``other_keys`` is 0 the
    reference is ``complete``: any key it does not list is new.
    """

    names: tuple[str, ...]
    counts: IntArray
    other: int = 0
    other_keys: int = 0
    _cell_of: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.names)
        counts = np.asarray(self.counts, dtype=np.int64).reshape(-1)
        if len(names) != counts.size:
            raise ValueError(f"{len(names)} segment names but {counts.size} counts")
        if len(set(names)) != len(names):
            raise ValueError("segment names must be distinct")
        if OVERFLOW_NAME in names:
            raise ValueError(f"{OVERFLOW_NAME!r} is the daemon's overflow, not a segment key")
        if counts.size and int(counts.min()) < 1:
            raise ValueError("every listed segment needs at least one reference event")
        check_int("other", self.other, 0)
        check_int("other_keys", self.other_keys, 0)
        if (self.other > 0) != (self.other_keys > 0):
            raise ValueError("other and other_keys must both be 0 or both be > 0")
        if counts.size + self.other == 0:
            raise ValueError("a segment mix needs at least one reference event")
        counts.setflags(write=False)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "counts", counts)
        cell_of = {n: i for i, n in enumerate(names)}
        cell_of[OVERFLOW_NAME] = len(names)
        object.__setattr__(self, "_cell_of", cell_of)

    @classmethod
    def from_keys(cls, keys: npt.ArrayLike, max_keys: int = MAX_SEGMENT_KEYS) -> SegmentMix:
        """Count the segment name of every reference event; keep the top ``max_keys``."""
        arr = np.asarray(keys, dtype=object).reshape(-1)
        uniques, freq = np.unique(arr.astype(str), return_counts=True)
        return cls.from_counts(dict(zip(uniques.tolist(), freq.tolist(), strict=True)), max_keys)

    @classmethod
    def from_counts(cls, counts: Mapping[str, int], max_keys: int = MAX_SEGMENT_KEYS) -> SegmentMix:
        """Keep the ``max_keys`` names with the most events (ties by name), sum the rest."""
        max_keys = check_int("max_keys", max_keys, 1)
        ranked = sorted(((-int(c), str(k)) for k, c in counts.items() if c > 0))
        if not ranked:
            raise ValueError("a segment mix needs at least one reference event")
        top, rest = ranked[:max_keys], ranked[max_keys:]
        return cls(
            names=tuple(k for _, k in top),
            counts=np.asarray([-c for c, _ in top], dtype=np.int64),
            other=-sum(c for c, _ in rest),
            other_keys=len(rest),
        )

    @property
    def n_events(self) -> int:
        """Reference events counted."""
        return int(self.counts.sum()) + self.other

    @property
    def complete(self) -> bool:
        """Whether every reference key is listed (so an unlisted key is new)."""
        return self.other_keys == 0

    @property
    def n_cells(self) -> int:
        """Columns of a statistics array: listed keys, ``OTHER``, ``NEW``, ``INVALID``."""
        return len(self.names) + 3

    @property
    def other_cell(self) -> int:
        """Cell of unlisted reference keys and the daemon's overflow."""
        return len(self.names)

    @property
    def new_cell(self) -> int:
        """Cell of keys the reference never saw."""
        return len(self.names) + 1

    @property
    def invalid_cell(self) -> int:
        """Cell of values that are not segment names (not strings)."""
        return len(self.names) + 2

    @property
    def proportions(self) -> FloatArray:
        """Expected share of each testable cell: listed keys, then ``OTHER``."""
        return np.append(self.counts, self.other).astype(np.float64) / self.n_events

    def cells(self, names: npt.ArrayLike) -> IntArray:
        """The cell of every segment name (see the module docstring)."""
        arr = np.asarray(names, dtype=object).reshape(-1)
        cell_of: dict[str, int] = self._cell_of
        unknown = self.new_cell if self.complete else self.other_cell
        invalid = self.invalid_cell
        # One dict lookup per event: a third of the cost of sorting the names (np.unique).
        found = (cell_of.get(v, unknown) if isinstance(v, str) else invalid for v in arr.tolist())
        return np.fromiter(found, dtype=np.int64, count=arr.size)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (as saved in the reference profile under ``segments``)."""
        return {
            "names": list(self.names),
            "counts": self.counts.tolist(),
            "other": self.other,
            "other_keys": self.other_keys,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SegmentMix:
        """Inverse of ``to_dict``."""
        return cls(
            names=tuple(data["names"]),
            counts=np.asarray(data["counts"], dtype=np.int64),
            other=int(data["other"]),
            other_keys=int(data["other_keys"]),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SegmentMix) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


def merge_mixes(mixes: Sequence[SegmentMix], max_keys: int = MAX_SEGMENT_KEYS) -> SegmentMix:
    """The mix of the union of several references (shards of one training set).

    Counts add up per name. Exact when every mix is ``complete``; otherwise a name in
    one shard's summed tail cannot be attributed, so a listed count is a lower bound,
    ``other_keys`` an upper bound, and the total of events stays exact.

    >>> a, b = SegmentMix.from_keys(["eu", "eu", "us"]), SegmentMix.from_keys(["us", "apac"])
    >>> merge_mixes([a, b]).to_dict()
    {'names': ['eu', 'us', 'apac'], 'counts': [2, 2, 1], 'other': 0, 'other_keys': 0}
    """
    if not mixes:
        raise ValueError("merge_mixes needs at least one mix")
    totals: dict[str, int] = {}
    for mix in mixes:
        for name, count in zip(mix.names, mix.counts.tolist(), strict=True):
            totals[name] = totals.get(name, 0) + count
    merged = SegmentMix.from_counts(totals, max_keys)
    return SegmentMix(
        merged.names,
        merged.counts,
        merged.other + sum(m.other for m in mixes),
        merged.other_keys + sum(m.other_keys for m in mixes),
    )


def new_segments(
    reference: Collection[str], keys: Iterable[object], limit: int | None = None
) -> list[str]:
    """The distinct keys of a batch the reference never saw, in order of first appearance.

    The daemon's overflow name ``__other__`` and non-string values are never new;
    ``limit`` keeps the first that many.

    >>> new_segments({"eu", "us"}, ["us", "latam", "eu", "mena", "latam"])
    ['latam', 'mena']
    """
    if limit is not None:
        limit = check_int("limit", limit, 0)
    seen: set[str] = set()
    out: list[str] = []
    for key in keys:
        if limit is not None and len(out) >= limit:
            break
        if not isinstance(key, str) or key in seen or key in reference or key == OVERFLOW_NAME:
            continue
        seen.add(key)
        out.append(key)
    return out


def accumulate(
    streams: npt.ArrayLike, cells: npt.ArrayLike, n_streams: int, n_cells: int
) -> IntArray:
    """Events per stream and cell, ``(n_streams, n_cells)``; arrays of two batches add up."""
    seg = as_segments(streams, n_streams)
    cell = np.asarray(cells, dtype=np.int64).reshape(-1)
    if cell.shape != seg.shape:
        raise ValueError(f"{seg.size} stream ids but {cell.size} cells")
    if cell.size and (int(cell.min()) < 0 or int(cell.max()) >= n_cells):
        raise ValueError(f"cells must lie in [0, {n_cells})")
    flat = np.bincount(seg * n_cells + cell, minlength=n_streams * n_cells)
    return flat.reshape(n_streams, n_cells).astype(np.int64)


@dataclass(frozen=True)
class SegmentMixResult(DriftResult):
    """Per stream: the chi-square of the segment mix, and traffic in new segments.

    ``statistic`` and ``p_value`` are ``scipy.stats.chisquare`` on the pooled cells;
    ``effect`` is Cohen's w ``sqrt(statistic / n)``, the score to export and compare
    with ``threshold`` (the larger of ``min_effect`` and the w at which p = alpha);
    ``verdict`` is ``SKIP`` (fewer than ``min_samples`` events in known segments),
    ``CLEAR``, ``BAND`` or ``BREACH``; ``drift`` is ``verdict == BREACH``. ``n`` counts
    events in known segments, ``new`` those outside them (new keys, and the daemon's
    overflow when the reference lists every key; ``new_share`` of the valid events, NaN
    with none), ``invalid`` the values that were no segment name. ``new_keys`` are the
    first new names per stream, in order of arrival.
    """

    dof: IntArray
    effect: FloatArray
    threshold: FloatArray
    verdict: npt.NDArray[np.int8]
    new: IntArray
    new_share: FloatArray
    invalid: IntArray
    new_keys: tuple[tuple[str, ...], ...]


def pooled_cells(expected: FloatArray, observed: FloatArray) -> tuple[FloatArray, FloatArray]:
    """One stream's cells with those expected below ``MIN_EXPECTED`` pooled into one cell
    (last); if the pool itself stays below, it joins the smallest other cell."""
    sparse = expected < MIN_EXPECTED
    if not sparse.any():
        return expected, observed
    exp = expected[~sparse]
    obs = observed[~sparse]
    pool_exp, pool_obs = float(expected[sparse].sum()), float(observed[sparse].sum())
    if pool_exp >= MIN_EXPECTED or exp.size == 0:
        return np.append(exp, pool_exp), np.append(obs, pool_obs)
    smallest = int(np.argmin(exp))
    exp, obs = exp.copy(), obs.copy()
    exp[smallest] += pool_exp
    obs[smallest] += pool_obs
    return exp, obs


def evaluate_mix(
    mix: SegmentMix,
    counts: npt.ArrayLike,
    *,
    alpha: float = 1e-4,
    min_effect: float = 0.05,
    clear_ratio: float = 0.5,
    min_samples: int = 500,
    new_keys: Sequence[Sequence[str]] | None = None,
) -> SegmentMixResult:
    """Test each stream's window counts ``(streams, mix.n_cells)`` against the reference."""
    from scipy import stats  # noqa: PLC0415

    table = np.asarray(counts, dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != mix.n_cells:
        raise ValueError(f"counts must have shape (streams, {mix.n_cells}), got {table.shape}")
    n_streams = table.shape[0]
    # OTHER is testable only when the reference put events there.
    known = table[:, : mix.new_cell] if mix.other else table[:, : mix.other_cell]
    p = mix.proportions if mix.other else mix.proportions[:-1]
    unknown = table[:, mix.new_cell] + (0 if mix.other else table[:, mix.other_cell])
    n = known.sum(axis=1)
    statistic = np.full(n_streams, np.nan)
    p_value = np.full(n_streams, np.nan)
    dof = np.zeros(n_streams, dtype=np.int64)
    critical = np.full(n_streams, np.nan)
    for s in np.flatnonzero(n > 0):
        exp, obs = pooled_cells(n[s] * p, known[s].astype(np.float64))
        dof[s] = exp.size - 1
        statistic[s] = float(((obs - exp) ** 2 / exp).sum()) if dof[s] else 0.0
    # One scipy call per array, not per stream: each call costs tens of microseconds.
    free = dof > 0
    p_value[free] = stats.chi2.sf(statistic[free], dof[free])
    p_value[(n > 0) & ~free] = 1.0
    critical[free] = stats.chi2.isf(alpha, dof[free])
    with np.errstate(invalid="ignore", divide="ignore"):
        effect = np.sqrt(statistic / n)
        threshold = np.fmax(np.sqrt(critical / n), min_effect)
    tested = (n >= min_samples) & (dof > 0)
    verdict = np.where(effect < clear_ratio * threshold, CLEAR, BAND)
    verdict = np.where(effect >= threshold, BREACH, verdict)
    verdict = np.where(tested, verdict, SKIP).astype(np.int8)
    valid = n + unknown
    with np.errstate(invalid="ignore", divide="ignore"):
        new_share = np.where(valid > 0, unknown / valid, np.nan)
    keys = tuple(tuple(k) for k in new_keys) if new_keys is not None else ((),) * n_streams
    return SegmentMixResult(
        statistic=statistic,
        p_value=p_value,
        drift=verdict == BREACH,
        n=n.astype(np.int64),
        dof=dof,
        effect=effect,
        threshold=threshold,
        verdict=verdict,
        new=unknown.astype(np.int64),
        new_share=new_share,
        invalid=table[:, mix.invalid_cell].astype(np.int64),
        new_keys=keys,
    )


class SegmentMixDetector:
    """Segment-mix chi-square and new segments per stream, over every event since reset.

    ``update(streams, names)`` takes a stream id per event (a model, or 0) and the event's
    segment name. Windowing is the caller's: ``reset`` at a window's end, or ``evaluate``
    a window's summed pane counts. State: ``counts`` ``(n_streams, mix.n_cells)`` int64
    and, per stream, the first ``max_new_keys`` new names.
    """

    def __init__(
        self,
        mix: SegmentMix,
        n_streams: int = 1,
        *,
        alpha: float = 1e-4,
        min_effect: float = 0.05,
        clear_ratio: float = 0.5,
        min_samples: int = 500,
        max_new_keys: int = 20,
    ) -> None:
        if not isinstance(mix, SegmentMix):
            raise TypeError(f"mix must be a SegmentMix, got {type(mix).__name__}")
        if not 0 < alpha < 0.5:
            raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
        if not (np.isfinite(min_effect) and min_effect >= 0):
            raise ValueError(f"min_effect must be finite and >= 0, got {min_effect}")
        if not 0 < clear_ratio <= 1:
            raise ValueError(f"clear_ratio must be in (0, 1], got {clear_ratio}")
        self.mix = mix
        self.n_streams = check_int("n_streams", n_streams, 1)
        self.alpha, self.min_effect, self.clear_ratio = alpha, min_effect, clear_ratio
        self.min_samples = check_int("min_samples", min_samples, 1)
        self.max_new_keys = check_int("max_new_keys", max_new_keys, 0)
        self.reset()

    def reset(self) -> None:
        """Forget every event."""
        self.counts = np.zeros((self.n_streams, self.mix.n_cells), dtype=np.int64)
        self.new_keys: list[list[str]] = [[] for _ in range(self.n_streams)]

    def update(self, segments: npt.ArrayLike, values: npt.ArrayLike) -> SegmentMixResult:
        """Count a batch: ``segments`` the stream id and ``values`` the segment name per event."""
        streams = as_segments(segments, self.n_streams)
        names = np.asarray(values, dtype=object).reshape(-1)
        cells = self.mix.cells(names)
        self.counts += accumulate(streams, cells, self.n_streams, self.mix.n_cells)
        for s in np.unique(streams[cells == self.mix.new_cell]).tolist():
            listed = self.new_keys[s]
            room = self.max_new_keys - len(listed)
            if room > 0:
                rows = (streams == s) & (cells == self.mix.new_cell)
                listed.extend(new_segments(set(listed), names[rows].tolist(), room))
        return self.evaluate()

    def evaluate(self, counts: npt.ArrayLike | None = None) -> SegmentMixResult:
        """Scores of the events seen so far, or of other counts (a window's summed panes)."""
        own = counts is None
        return evaluate_mix(
            self.mix,
            self.counts if counts is None else counts,
            alpha=self.alpha,
            min_effect=self.min_effect,
            clear_ratio=self.clear_ratio,
            min_samples=self.min_samples,
            new_keys=self.new_keys if own else None,
        )

    def state_dict(self) -> State:
        """The counts and the new names seen."""
        return {"counts": self.counts.copy(), "new_keys": [list(k) for k in self.new_keys]}

    def load_state_dict(self, state: State) -> None:
        """Restore ``state_dict`` output."""
        counts = np.asarray(state["counts"], dtype=np.int64)
        if counts.shape != (self.n_streams, self.mix.n_cells):
            raise ValueError(
                f"counts of shape {counts.shape} do not fit ({self.n_streams}, {self.mix.n_cells})"
            )
        self.counts = counts.copy()
        self.new_keys = [list(k) for k in state["new_keys"]]
