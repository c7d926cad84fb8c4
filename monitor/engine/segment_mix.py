"""Segment-mix drift in the daemon: windows of the model's traffic split across segments.

Every accepted event counts once, by the name of its segment key, *before* the segment
table admits it: admission, the table's cap and ``__other__`` change which segment an
event's windows go to, not which segment it belongs to. Events are counted into
global windows of ``segment_mix.window_events`` events (all segments together), cut at
exact event counts, never at batch boundaries, so a replay or a restart from a
checkpoint closes the same windows. Each window is tested against the reference's mix
(:func:`detectors.segment_mix.evaluate_mix`) and becomes one row of a
:class:`WindowResults` on segment ``__all__`` and column ``__segments__``, with two
methods that go through the decision book like any other: ``segment_mix`` (Cohen's w of
the chi-square, judged here: calibrated threshold, severe ratio) and ``segment_new``
(the share of events in segments the reference never saw, judged by its fixed
``detectors.segment_new`` thresholds).

A reference without a mix cannot be monitored this way: :func:`start_segment_mix` says
so once (log ``segment_mix_unavailable``; the pipeline keeps the reason for the gauge
``driftd_segment_mix_unavailable``). A warm-up reference gets the mix of its events
(:func:`with_warmup_mix`).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

import numpy as np
import structlog

from detectors.base import FloatArray, IntArray
from detectors.profile import ReferenceProfile
from detectors.rules import BREACH, SEVERE
from detectors.segment_mix import SegmentMix, evaluate_mix
from monitor.config import Settings
from monitor.engine.results import WindowResults
from monitor.errors import CheckpointError
from monitor.ingest.segments import MAX_LABEL_LENGTH, segment_name

MIX_SEGMENT: Final = "__all__"
"""The segment of the model-wide segment-mix rows (no segment name can be ``__x__``)."""
MIX_COLUMN: Final = "__segments__"
"""The column of the segment-mix rows."""
MIX_METHOD: Final = "segment_mix"
NEW_METHOD: Final = "segment_new"
MAX_NEW_COUNTED: Final = 1_000
"""Distinct new segments counted per window at most (``driftd_segments_new``)."""
KEY_CACHE_SIZE: Final = 10_000
"""Segment keys whose cell is remembered; past it the cache starts over (a flood of
distinct keys costs one escaping each, never unbounded memory)."""
STATE_VERSION: Final = 1

log = structlog.get_logger()


@dataclass(frozen=True)
class MixWindow:
    """The latest closed segment-mix window, as the metrics show it."""

    end_ts: float
    events: int
    """Events in the window (every segment)."""
    score: float
    """Cohen's w of the chi-square on the reference's segments (NaN: nothing to test)."""
    threshold: float
    p_value: float
    new_share: float
    """Share of the window's events in segments the reference never saw."""
    new_segments: tuple[str, ...]
    """The first ``segment_mix.max_new_segments`` new segment names, in order of arrival."""
    new_count: int
    """Distinct new segment names in the window (at most ``MAX_NEW_COUNTED``)."""


@dataclass(frozen=True)
class MixStatus:
    """What the metrics read of segment-mix monitoring (a consistent copy)."""

    unavailable: str | None
    """Why the mix is not monitored although ``segment_mix.enabled``; None when it is
    (or when it is switched off, or no ``schema.segment_by`` is configured)."""
    latest: MixWindow | None
    invalid_total: int
    """Segment keys that were no segment name (not text), since the start."""


def mix_status(windows: SegmentMixWindows | None, unavailable: str | None) -> MixStatus:
    """What the metrics show of segment-mix drift (any thread)."""
    if windows is None:
        return MixStatus(unavailable, None, 0)
    latest, invalid = windows.snapshot()
    return MixStatus(None, latest, invalid)


def with_warmup_mix(
    settings: Settings, profile: ReferenceProfile, keys: Sequence[Sequence[str]]
) -> ReferenceProfile:
    """``profile`` with the segment mix of a warm-up's events (their keys, batch by batch),
    as a built reference records the training data's; unchanged when the mix is off."""
    if not settings.segment_mix.enabled or not settings.schema_.segment_by or not keys:
        return profile
    names, counts = np.unique(
        np.concatenate([np.asarray(k, dtype=object) for k in keys]).astype(str), return_counts=True
    )
    if not names.size:
        return profile
    mix = {segment_name(k): int(c) for k, c in zip(names.tolist(), counts.tolist(), strict=True)}
    return replace(profile, segments=SegmentMix.from_counts(mix), version="")


def start_segment_mix(
    settings: Settings, reference: ReferenceProfile, said: str | None
) -> tuple[SegmentMixWindows | None, str | None]:
    """The segment-mix windows of ``reference``, or None and why not.

    Logs ``segment_mix_unavailable`` when the mix is wanted but the reference has none,
    unless ``said`` (the reason given before) is the same: a restore adopting the same
    reference says nothing twice.
    """
    if not settings.segment_mix.enabled or not settings.schema_.segment_by:
        return None, None
    if settings.checkpoint.store == "kafka":
        # Replicas of a group each read some partitions: with a producer keyed by segment
        # each would see a few segments only, and page on a mix that is whole nowhere.
        reason, hint = (
            "partitioned_state",
            "with checkpoint.store: kafka each replica reads only its partitions, not the "
            "model's whole traffic: segment-mix drift is not monitored",
        )
    elif reference.segments is None:
        reason, hint = (
            "reference_has_no_segments",
            "segment-mix drift and new segments are not monitored: build the reference with "
            "`driftd reference build` from training data holding every schema.segment_by "
            "path, or set segment_mix.enabled: false",
        )
    else:
        return SegmentMixWindows(settings, reference.segments), None
    if reason != said:
        log.warning("segment_mix_unavailable", model=settings.model, reason=reason, hint=hint)
    return None, reason


class SegmentMixWindows:
    """The open window's counts per cell of the reference's mix, and its new segments.

    State: ``counts`` ``(mix.n_cells,)`` int64 of the open window, ``events`` its event
    count, ``new_names`` its distinct new segment names in order of arrival (at most
    ``MAX_NEW_COUNTED``), the cumulative ``invalid_total``, and the latest closed
    window (for the metrics after a restart).
    """

    def __init__(self, settings: Settings, mix: SegmentMix) -> None:
        if not isinstance(mix, SegmentMix):
            raise TypeError(f"mix must be a SegmentMix, got {type(mix).__name__}")
        self.model = settings.model
        self.mix = mix
        self.config = settings.segment_mix
        self.clear_ratio = settings.detectors.clear_ratio
        self.severe_ratio = settings.detectors.severe_ratio
        self._lock = threading.Lock()
        self._cache: dict[object, int] = {}
        """Segment key -> its cell; ``_names`` holds its segment name."""
        self._names: dict[str, str] = {}
        self.counts = np.zeros(mix.n_cells, dtype=np.int64)
        self.events = 0
        self.new_names: list[str] = []
        self._new_seen: set[str] = set()
        self.invalid_total = 0
        self.latest: MixWindow | None = None

    # -- counting --------------------------------------------------------------------

    def add(
        self, keys: Sequence[object], ts: FloatArray, skip: IntArray | None = None
    ) -> list[WindowResults]:
        """Count a batch's segment keys (with their event times, in row order) but the rows
        ``skip`` (events refused after decoding); the rows of every window that closed."""
        if len(keys) != len(ts):
            raise ValueError(f"{len(keys)} segment keys but {len(ts)} event times")
        if skip is not None and skip.size:
            keep = np.ones(len(keys), dtype=np.bool_)
            keep[skip] = False
            keys = [k for k, kept in zip(keys, keep.tolist(), strict=True) if kept]
            ts = np.asarray(ts)[keep]
        cells = self._cells(keys)
        out: list[WindowResults] = []
        size = self.config.window_events
        start = 0
        while start < len(keys):
            stop = min(len(keys), start + size - self.events)
            chunk = cells[start:stop]
            self.counts += np.bincount(chunk, minlength=self.mix.n_cells)
            self._note_new(keys, cells, start, stop)
            self.events += stop - start
            start = stop
            if self.events >= size:
                out.append(self._close(float(ts[stop - 1])))
        return out

    def _cells(self, keys: Sequence[object]) -> np.ndarray:
        """The mix cell of every key (escaped as the segment table names it)."""
        cache = self._cache
        try:  # one dict lookup per event: the decoder's keys are always text
            cells = np.array([cache.get(k, -1) for k in keys], dtype=np.int64)
        except TypeError:  # an unhashable value is no key
            cells = np.array(
                [cache.get(k, -1) if isinstance(k, str) else -1 for k in keys], dtype=np.int64
            )
        missed = np.flatnonzero(cells < 0)
        if missed.size:
            fresh = list(dict.fromkeys(k for i in missed.tolist() if isinstance(k := keys[i], str)))
            if len(cache) + len(fresh) > KEY_CACHE_SIZE:
                cache.clear()
                self._names.clear()
            names = [segment_name(k) for k in fresh]
            for key, name, cell in zip(fresh, names, self.mix.cells(names).tolist(), strict=True):
                cache[key] = cell
                self._names[key] = name
            invalid = self.mix.invalid_cell
            # Keys of other types (never from the decoder) are no segment name: INVALID.
            cells[missed] = [
                cache.get(k, invalid) if isinstance(k := keys[i], str) else invalid
                for i in missed.tolist()
            ]
            bad = int(np.count_nonzero(cells[missed] == invalid))
            if bad:
                with self._lock:
                    self.invalid_total += bad
        return cells

    def _note_new(self, keys: Sequence[object], cells: np.ndarray, start: int, stop: int) -> None:
        """Remember the distinct new segment names of ``keys[start:stop]``, in order."""
        if len(self.new_names) >= MAX_NEW_COUNTED:
            return
        rows = start + np.flatnonzero(cells[start:stop] == self.mix.new_cell)
        if not rows.size:
            return
        raw = [keys[i] for i in rows.tolist()]
        for key in dict.fromkeys(raw):  # first appearance order
            name = self._names.get(key) if isinstance(key, str) else None
            name = segment_name(str(key)) if name is None else name
            if name in self._new_seen:
                continue
            self._new_seen.add(name)
            self.new_names.append(name)
            if len(self.new_names) >= MAX_NEW_COUNTED:
                return

    def _close(self, end_ts: float) -> WindowResults:
        """Judge the open window, start the next one; its results row."""
        cfg = self.config
        listed = [n for n in self.new_names if len(n) <= MAX_LABEL_LENGTH]
        listed = listed[: cfg.max_new_segments]
        result = evaluate_mix(
            self.mix,
            self.counts[None, :],
            alpha=cfg.alpha,
            min_effect=cfg.min_effect,
            clear_ratio=self.clear_ratio,
            min_samples=cfg.min_samples,
            new_keys=[listed],
        )
        effect, threshold = float(result.effect[0]), float(result.threshold[0])
        verdict = int(result.verdict[0])
        if verdict == BREACH and effect >= self.severe_ratio * threshold:
            verdict = SEVERE
        valid = int(result.n[0] + result.new[0])
        window = MixWindow(
            end_ts=end_ts,
            events=self.events,
            score=effect,
            threshold=threshold,
            p_value=float(result.p_value[0]),
            new_share=float(result.new_share[0]),
            new_segments=tuple(listed),
            new_count=len(self.new_names),
        )
        with self._lock:
            self.latest = window
        self.counts = np.zeros(self.mix.n_cells, dtype=np.int64)
        self.events = 0
        self.new_names, self._new_seen = [], set()

        def cell(value: float) -> FloatArray:
            return np.array([[value]], dtype=np.float64)

        return WindowResults(
            model=self.model,
            segments=(MIX_SEGMENT,),
            columns=(MIX_COLUMN,),
            window_end_ts=np.array([end_ts]),
            rows=np.array([window.events], dtype=np.int64),
            n=np.array([[valid]], dtype=np.int64),
            missing_rate=cell(0.0),
            scores={MIX_METHOD: cell(effect), NEW_METHOD: cell(window.new_share)},
            p_values={MIX_METHOD: cell(window.p_value)},
            thresholds={MIX_METHOD: cell(threshold)},
            clears={MIX_METHOD: cell(self.clear_ratio * threshold)},
            verdicts={MIX_METHOD: np.array([[verdict]], dtype=np.int8)},
        )

    # -- reading ---------------------------------------------------------------------

    def snapshot(self) -> tuple[MixWindow | None, int]:
        """The latest closed window and the invalid keys so far (any thread)."""
        with self._lock:
            return self.latest, self.invalid_total

    # -- checkpointing ---------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The open window, the latest closed one and the counters, as plain data."""
        latest = self.latest
        return {
            "version": STATE_VERSION,
            "mix": self.mix.to_dict(),
            "counts": self.counts.copy(),
            "events": self.events,
            "new_names": list(self.new_names),
            "invalid_total": self.invalid_total,
            "latest": None if latest is None else _window_dict(latest),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Take back :meth:`state_dict`; ``CheckpointError`` when it does not fit."""
        try:
            if int(state["version"]) != STATE_VERSION:
                raise ValueError(f"version {state['version']}, expected {STATE_VERSION}")
            if SegmentMix.from_dict(state["mix"]) != self.mix:
                raise ValueError("saved against another reference segment mix")
            counts = np.asarray(state["counts"], dtype=np.int64).reshape(-1)
            events = int(state["events"])
            if counts.shape != self.counts.shape or int(counts.sum()) != events:
                raise ValueError("open window counts do not match the mix")
            if events < 0:
                raise ValueError(f"{events} events in the open window")
            names = [str(n) for n in state["new_names"]][:MAX_NEW_COUNTED]
            latest = state["latest"]
            window = None if latest is None else _window_from(latest)
            invalid = int(state["invalid_total"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError("segment_mix", f"state does not fit: {exc}") from None
        if events >= self.config.window_events:
            # segment_mix.window_events was lowered: that window cannot be cut as before.
            log.warning("segment_mix_window_dropped", model=self.model, events=events)
            counts, events, names = np.zeros_like(counts), 0, []
        with self._lock:
            self.counts, self.events = counts.copy(), events
            self.new_names, self._new_seen = names, set(names)
            self.invalid_total, self.latest = invalid, window


def _window_dict(window: MixWindow) -> dict[str, Any]:
    return {
        "end_ts": window.end_ts,
        "events": window.events,
        "score": window.score,
        "threshold": window.threshold,
        "p_value": window.p_value,
        "new_share": window.new_share,
        "new_segments": list(window.new_segments),
        "new_count": window.new_count,
    }


def _window_from(data: Mapping[str, Any]) -> MixWindow:
    return MixWindow(
        end_ts=float(data["end_ts"]),
        events=int(data["events"]),
        score=float(data["score"]),
        threshold=float(data["threshold"]),
        p_value=float(data["p_value"]),
        new_share=float(data["new_share"]),
        new_segments=tuple(str(n) for n in data["new_segments"]),
        new_count=int(data["new_count"]),
    )
