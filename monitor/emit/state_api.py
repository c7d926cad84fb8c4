"""What driftd thinks now, as JSON: the snapshot behind ``GET /api/v1/state``.

:class:`LiveState` is called on the consumer thread after every batch (it is a batch
callback, like the journal). When the batch closed a window, moved a state machine or
evicted a segment, it rebuilds an immutable snapshot from the latest results and the
decision book and swaps it in with one assignment; the HTTP thread reads that reference
and serialises it without a lock, so a request never waits for a batch and a batch
never waits for a request. The snapshot holds one row per ``(segment, feature,
method)`` with a score, so its size is bounded by the segment cap like ``/metrics``.

Every row's ``state`` is one of:

- ``firing``: the alert is firing (``driftd_drift_active`` is 1);
- ``band``: not firing, but not clear either: breaching windows are being counted
  towards ``detectors.consecutive`` (``breach_streak`` > 0, pending), or the last
  judged window fell in the band between the clear level and the threshold;
- ``ok``: the last judged window was clear, or the row was never judged
  (``threshold`` is then null).

``since`` is the window end (event time, Unix seconds) at which the row entered its
state: exact for ``firing`` and a pending ``band`` (the decision book records it), the
first window driftd saw in the band otherwise, and null for an ``ok`` row that never
left ``ok``. The schema is in docs/state-api.md.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple, overload

import numpy as np
import numpy.typing as npt
import orjson
import structlog

from monitor.engine.decision import DecisionBook, DecisionState
from monitor.engine.outcome import BatchOutcome
from monitor.engine.results import LatestResults, LatestScore, LatestWindow
from monitor.ingest.source import TopicPartition

__all__ = ["API_VERSION", "LiveState", "RowColumns", "SegmentRows", "StateRow", "row_state"]

API_VERSION: Final = 1

BREACH_BELOW: Final = frozenset({"samples"})
"""Methods that breach when the score falls below the threshold (too few values)."""

RowState = Literal["ok", "band", "firing"]
Key = tuple[str, str, str]

_log = structlog.get_logger()


@dataclass(frozen=True)
class StateRow:
    """One ``(segment, feature, method)`` as the API shows it."""

    segment: str
    feature: str
    method: str
    state: RowState
    score: float
    p_value: float
    threshold: float | None
    clear_threshold: float | None
    breach_streak: int
    n: int
    window_rows: int | None
    window_end: float
    since: float | None

    @property
    def ratio(self) -> float | None:
        """How near paging the score is: score over threshold (threshold over score for a
        method in ``BREACH_BELOW``); 1 or more breaches. None without a threshold."""
        if self.threshold is None or not math.isfinite(self.score):
            return None
        if self.method in BREACH_BELOW:
            return self.threshold / max(self.score, 1.0)  # a count of values: 0 is as bad as 1
        return self.score / self.threshold if self.threshold > 0 else None

    def as_json(self) -> dict[str, Any]:
        """The row as JSON-safe values (NaN and infinities become null)."""
        return {
            "segment": self.segment,
            "feature": self.feature,
            "method": self.method,
            "state": self.state,
            "score": _finite(self.score),
            "p_value": _finite(self.p_value),
            "threshold": _finite(self.threshold),
            "clear_threshold": _finite(self.clear_threshold),
            "ratio": _finite(self.ratio),
            "breach_streak": self.breach_streak,
            "n": self.n,
            "window_rows": self.window_rows,
            "window_end": _finite(self.window_end),
            "since": _finite(self.since),
        }


_FLOATS: Final = (
    "score",
    "p_value",
    "threshold",
    "clear_threshold",
    "ratio",
    "window_end",
    "since",
)
"""The row's float fields, held in one array (NaN stands for null: JSON gets null for
both, as ``_finite`` turns NaN and infinities into null)."""
_NO_WINDOW: Final = -1
_STATES: Final[tuple[RowState, ...]] = ("ok", "band", "firing")
_STATE_CODES: Final = {state: code for code, state in enumerate(_STATES)}
_SHARED_NAMES: dict[tuple[str, ...], tuple[str, ...]] = {}
"""One tuple of row names per distinct tuple: every segment's rows usually list the same
(feature, method) pairs, so 1,000 segments share two tuples instead of holding 2,000."""
_SHARED_LIMIT: Final = 256


def _shared(names: tuple[str, ...]) -> tuple[str, ...]:
    found = _SHARED_NAMES.get(names)
    if found is None:
        if len(_SHARED_NAMES) >= _SHARED_LIMIT:  # odd layouts: keep the table bounded
            _SHARED_NAMES.clear()
        found = _SHARED_NAMES.setdefault(names, names)
    return found


class RowColumns(NamedTuple):
    """A segment's rows column by column, as the metrics summary digests them (no dict per
    row). Floats are NaN where the row's JSON has null (``_finite``)."""

    features: tuple[str, ...]
    methods: tuple[str, ...]
    states: tuple[RowState, ...]
    breach_streak: npt.NDArray[np.int64]
    ratio: npt.NDArray[np.float64]
    threshold: npt.NDArray[np.float64]
    clear_threshold: npt.NDArray[np.float64]


class SegmentRows(Sequence[dict[str, Any]]):
    """The rows of one segment, held as arrays; each row is built as a dict when read.

    A snapshot of 1,000 segments x 50 features x 7 methods has ~350k rows: as dicts
    they took ~230 MB, as arrays a few MB. Immutable once built (the HTTP thread and
    the metrics summary read it without a lock). The name tuples are shared between
    segments and the states are one byte each: a segment is rebuilt after every window
    it closes, and what a rebuild allocates is what the heap has to find room for.
    """

    __slots__ = ("_floats", "_ints", "_states", "features", "methods", "segment")

    def __init__(self, segment: str, rows: Sequence[StateRow]) -> None:
        self.segment = segment
        self.features = _shared(tuple(r.feature for r in rows))
        self.methods = _shared(tuple(r.method for r in rows))
        self._states = np.array([_STATE_CODES[r.state] for r in rows], dtype=np.int8)
        floats = np.full((len(rows), len(_FLOATS)), np.nan)
        ints = np.zeros((len(rows), 3), np.int64)
        for i, r in enumerate(rows):
            floats[i] = [
                math.nan if v is None else v
                for v in (
                    r.score,
                    r.p_value,
                    r.threshold,
                    r.clear_threshold,
                    r.ratio,
                    r.window_end,
                    r.since,
                )
            ]
            ints[i] = (r.breach_streak, r.n, _NO_WINDOW if r.window_rows is None else r.window_rows)
        self._floats = floats
        self._ints = ints

    def __len__(self) -> int:
        return len(self.features)

    @property
    def states(self) -> tuple[RowState, ...]:
        """Each row's state."""
        return tuple(_STATES[code] for code in self._states.tolist())

    def columns(self) -> RowColumns:
        """The rows column by column (see :class:`RowColumns`)."""
        floats = self._floats
        finite = np.isfinite(floats)
        nulled = np.where(finite, floats, np.nan)
        return RowColumns(
            features=self.features,
            methods=self.methods,
            states=self.states,
            breach_streak=self._ints[:, 0].copy(),
            ratio=nulled[:, _FLOATS.index("ratio")],
            threshold=nulled[:, _FLOATS.index("threshold")],
            clear_threshold=nulled[:, _FLOATS.index("clear_threshold")],
        )

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return [self._row(i) for i in range(len(self))[index]]
        return self._row(range(len(self))[index])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        floats = self._floats.tolist()
        ints = self._ints.tolist()
        states = self._states.tolist()
        for i in range(len(self)):
            yield self._as_json(i, floats[i], ints[i], states[i])

    def _row(self, i: int) -> dict[str, Any]:
        floats, ints = self._floats[i].tolist(), self._ints[i].tolist()
        return self._as_json(i, floats, ints, int(self._states[i]))

    def _as_json(self, i: int, floats: list[float], ints: list[int], state: int) -> dict[str, Any]:
        """The row as ``StateRow.as_json`` gives it."""
        score, p_value, threshold, clear, ratio, window_end, since = floats
        streak, n, window_rows = ints
        return {
            "segment": self.segment,
            "feature": self.features[i],
            "method": self.methods[i],
            "state": _STATES[state],
            "score": _finite(score),
            "p_value": _finite(p_value),
            "threshold": _finite(threshold),
            "clear_threshold": _finite(clear),
            "ratio": _finite(ratio),
            "breach_streak": streak,
            "n": n,
            "window_rows": None if window_rows == _NO_WINDOW else window_rows,
            "window_end": _finite(window_end),
            "since": _finite(since),
        }

    def since_of(self) -> dict[tuple[str, str], tuple[RowState, float | None, float]]:
        """Per (feature, method): the row's state, since and window end (what the next
        rebuild of the segment compares against)."""
        floats = self._floats[:, [_FLOATS.index("since"), _FLOATS.index("window_end")]]
        return {
            (f, m): (state, None if math.isnan(since) else since, end)
            for f, m, state, (since, end) in zip(
                self.features, self.methods, self.states, floats.tolist(), strict=True
            )
        }


@dataclass(frozen=True)
class _Snapshot:
    """Built on the consumer thread, never changed after: safe to read without a lock."""

    rows: Mapping[str, SegmentRows]
    """The rows of each segment, sorted by feature and method."""
    segments: tuple[dict[str, Any], ...]
    updated_at: float | None


def row_state(decision: DecisionState | None) -> RowState:
    """The API state of a decision state machine (None: never judged, so ``ok``)."""
    if decision is None:
        return "ok"
    if decision.state == "firing":
        return "firing"
    if decision.state == "pending" or decision.streak > 0:
        return "band"
    if decision.verdict is not None:
        return "band" if decision.verdict == "band" else "ok"
    # Restored from a checkpoint and not judged since: the score against the band (empty
    # for ``samples``, which breaches low, with its clear level equal to its threshold).
    return "band" if decision.clear <= decision.score < decision.threshold else "ok"


class LiveState:
    """The snapshot of what driftd thinks now, refreshed after every batch.

    ``lag`` is read when a request comes (the source's lag is thread-safe, as the
    metrics collector reads it too); ``reference_version`` when a snapshot is built.
    """

    def __init__(
        self,
        results: LatestResults,
        decisions: DecisionBook,
        *,
        lag: Callable[[], Mapping[TopicPartition, int]] | None = None,
        reference_version: Callable[[], str | None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if results.model != decisions.model:
            raise ValueError(f"results of {results.model!r}, decisions of {decisions.model!r}")
        self.model = results.model
        self.results = results
        self.decisions = decisions
        self.lag = lag
        self.reference_version = reference_version
        self.clock = clock
        self.events_consumed = 0
        self.events_accepted = 0
        self.events_rejected = 0
        self._reference: str | None = None
        self._before: dict[Key, tuple[RowState, float | None, float]] = {}
        """While a refresh runs: the state, since and window end each rebuilt row had in
        the previous snapshot (read from its rows, so nothing is kept per row besides)."""
        self._transition_keys: set[Key] | None = None
        self._snapshot = _Snapshot({}, (), None)

    # -- consumer thread -----------------------------------------------------------

    def __call__(self, outcome: BatchOutcome) -> None:
        """Count the batch; rebuild the rows of the segments it changed."""
        self.events_consumed += outcome.records
        self.events_accepted += outcome.accepted
        self.events_rejected += len(outcome.rejected)
        changed: set[str] = set(outcome.evicted)
        changed.update(t.segment for t in outcome.transitions)
        if outcome.results is not None:
            changed.update(outcome.results.segments)
        for extra in outcome.extra:
            changed.update(extra.segments)
        if outcome.labels is not None:
            for extra in outcome.labels.results:
                changed.update(extra.segments)
        if self._snapshot.updated_at is None:  # the first batch: all (a restore's too)
            self.refresh()
        elif changed:
            self.refresh(changed)

    def refresh(self, segments: Collection[str] | None = None) -> None:
        """Rebuild the rows of ``segments`` (all when None) and publish a new snapshot.

        Only the segments a batch touched are rebuilt, so the cost of a batch follows
        the windows it closed, not the number of rows.
        """
        self._reference = self.reference_version() or None
        self._transition_keys = None  # read again if a row needs it
        wanted = None if segments is None else frozenset(segments)
        states = {(s.segment, s.column, s.method): s for s in self.decisions.states(wanted)}
        latest: dict[Key, LatestScore] = {
            (s.segment, s.column, s.method): s for s in self.results.scores(wanted)
        }
        windows: dict[str, LatestWindow] = {w.segment: w for w in self.results.windows()}
        previous = self._snapshot.rows
        for segment in previous if wanted is None else wanted:
            before = previous.get(segment)
            if before is not None:
                self._before.update(((segment, f, m), v) for (f, m), v in before.since_of().items())
        by_segment: dict[str, list[StateRow]] = {}
        try:
            for key in sorted(set(states) | set(latest)):
                row = self._row(key, states.get(key), latest.get(key), windows)
                by_segment.setdefault(key[0], []).append(row)
        finally:
            self._before = {}
        rows = dict(previous) if wanted is not None else {}
        for segment in wanted if wanted is not None else ():
            rows.pop(segment, None)
        rows.update((segment, SegmentRows(segment, r)) for segment, r in by_segment.items())
        segments_doc = tuple(
            {
                "segment": w.segment,
                "window_rows": w.rows,
                "window_end": _finite(w.window_end_ts),
                "windows_closed": self.results.windows_closed.get(w.segment, 0),
            }
            for w in sorted(windows.values(), key=lambda w: w.segment)
        )
        self._snapshot = _Snapshot(rows, segments_doc, self.clock())

    def _row(
        self,
        key: Key,
        decision: DecisionState | None,
        score: LatestScore | None,
        windows: Mapping[str, LatestWindow],
    ) -> StateRow:
        """One row: the score as ``/metrics`` exports it, the rest from the decision."""
        segment, feature, method = key
        state = row_state(decision)
        window = windows.get(segment)
        judged = decision is not None and math.isfinite(decision.threshold)
        if score is not None:
            value, p_value, n, end = score.score, score.p_value, score.n, score.window_end_ts
        elif decision is not None:
            value, p_value, n, end = decision.score, decision.p_value, decision.n, decision.last_ts
        else:  # pragma: no cover - every key comes from one of the two
            raise ValueError(f"no score and no decision for {key}")
        return StateRow(
            segment=segment,
            feature=feature,
            method=method,
            state=state,
            score=value,
            p_value=p_value,
            threshold=decision.threshold if decision is not None and judged else None,
            clear_threshold=decision.clear if decision is not None and judged else None,
            breach_streak=decision.streak if decision is not None else 0,
            n=n,
            window_rows=window.rows if window is not None else None,
            window_end=end,
            since=self._since_of(key, state, decision),
        )

    def _since_of(self, key: Key, state: RowState, decision: DecisionState | None) -> float | None:
        """When ``key`` entered ``state`` (see the module doc), from what was seen before."""
        if decision is None:
            return None
        if state == "firing" or decision.state == "pending":
            return decision.since_ts
        before = self._before.get(key)
        if before is not None and before[0] == state:
            return before[1]
        if state == "ok":
            if before is not None and decision.since_ts > before[2]:
                return decision.since_ts  # the machine resolved (or left pending) since
            if before is not None:
                return decision.last_ts  # it left the band by score alone
            return decision.since_ts if self._transitioned(key) else None
        return decision.last_ts  # entered the band by score alone

    def _transitioned(self, key: Key) -> bool:
        """Whether ``key`` ever fired or resolved (asked only of rows first seen ``ok``:
        after a restore, the book knows more than this snapshot has seen)."""
        if self._transition_keys is None:
            counts = self.decisions.transition_counts()
            self._transition_keys = {(s, c, m) for s, c, m, _ in counts}
        return key in self._transition_keys

    # -- HTTP thread ---------------------------------------------------------------

    def document(self) -> dict[str, Any]:
        """The whole state as a JSON-safe dict (the snapshot and the lag at this moment)."""
        snapshot = self._snapshot  # one read: the consumer thread may swap it meanwhile
        doc = self._document(snapshot)
        doc["rows"] = [row for segment in sorted(snapshot.rows) for row in snapshot.rows[segment]]
        return doc

    def _document(self, snapshot: _Snapshot) -> dict[str, Any]:
        """The document of ``snapshot`` with its ``rows`` (the last key) left empty."""
        return {
            "api_version": API_VERSION,
            "model": self.model,
            "reference_version": self._reference,
            "generated_at": self.clock(),
            "updated_at": snapshot.updated_at,
            "events_consumed": self.events_consumed,
            "events_accepted": self.events_accepted,
            "events_rejected": self.events_rejected,
            "consumer_lag": self._lag(),
            "segments": list(snapshot.segments),
            "rows": [],
        }

    def segment_rows(self) -> Mapping[str, SegmentRows]:
        """The rows of each segment now (``StateRow.as_json``, with ``breach_streak``).

        A segment's rows are replaced only when a batch rebuilt it, so a reader can tell
        what changed by identity (the ``metrics.detail: summary`` digest does)."""
        return self._snapshot.rows

    def json_bytes(self) -> bytes:
        """The document, serialised (no lock is held: the snapshot is immutable).

        The same bytes as ``orjson.dumps(self.document())``, serialised a segment at a
        time: the rows exist as dicts for one segment at once, not for the whole state.
        """
        snapshot = self._snapshot
        head = orjson.dumps(self._document(snapshot))
        assert head.endswith(b"[]}"), head[-20:]
        parts = (orjson.dumps(list(snapshot.rows[s]))[1:-1] for s in sorted(snapshot.rows))
        return head[:-2] + b",".join(p for p in parts if p) + b"]}"

    def _lag(self) -> list[dict[str, Any]] | None:
        if self.lag is None:
            return None
        try:
            lag = dict(self.lag())
        except Exception as exc:  # a broker hiccup must not fail the whole document
            _log.warning("state_lag_failed", error=repr(exc))
            return None
        return [
            {"topic": topic, "partition": partition, "lag": int(value)}
            for (topic, partition), value in sorted(lag.items())
        ]


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None
