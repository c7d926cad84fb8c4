"""The decision layer: from window scores to alert transitions.

One state machine per ``(model, segment, column, method)``::

    ok --breach--> pending --(consecutive breaches)--> firing --clear--> resolved (then ok)

Every evaluated window is classified as one verdict:

- **breach**: the score reached its threshold. For the drift engine's methods
  (``detectors.engine``: PSI, KS, chi-square, JS, missing, range, unseen, samples,
  plus the ``__window__`` and ``__dataset__`` rows) the engine judges: calibrated
  thresholds that follow the window's size, effect floors, Benjamini-Hochberg over
  the window's tests with ``detectors.fdr``. Rows it did not judge (ADWIN, fairness)
  use their method's fixed ``threshold``.
- **severe**: a breach of at least ``detectors.severe_ratio`` times its threshold; it
  fires at once instead of waiting for ``consecutive`` windows.
- **clear**: the score fell below the clear level (a p-value never clears).
- **band**: anything else. A band window is neutral: a firing alert stays firing, and
  a pending streak holds, neither advancing nor resetting. So a score flapping inside
  the band never pages and never resolves, and ``consecutive`` counts breaching
  windows with no *clear* window between them.

A window the engine skipped (fewer than ``min_samples`` values; its ``samples`` row
says so) leaves the state untouched and is counted as skipped. NaN scores (the
method does not apply to the column) are ignored. Disabled methods, per column too
through ``detectors.overrides[column][method]``, and methods without a configuration
are ignored.

Only ``firing`` and ``resolved`` are reported as :class:`Transition`; ``pending`` is
visible through :meth:`DecisionBook.states` (and the metrics built on it).

The book is pure: no I/O besides structlog events for each transition. It is
thread-safe so the metrics collector can read it while the consumer thread writes.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final, Literal

import numpy as np
import structlog

from detectors.rules import BAND, BREACH, CLEAR, SEVERE, SKIP
from monitor.config import DetectorsConfig, MethodConfig
from monitor.engine.results import WindowResults
from monitor.errors import CheckpointError

StateName = Literal["ok", "pending", "firing"]
TransitionName = Literal["firing", "resolved"]

STATE_VERSION: Final = 1
P_VALUE_METHODS: Final = frozenset({"ks", "chi2"})
"""Methods whose fixed-threshold breach also needs ``p_value < detectors.ks_alpha``."""

_log = structlog.get_logger()

Key = tuple[str, str, str]
"""(segment, column, method)"""


def dedup_key(model: str, segment: str, column: str, method: str) -> str:
    """The alert deduplication key shared by every sink."""
    return f"driftd/{model}/{segment}/{column}/{method}"


class Verdict(Enum):
    """How one window's score counts towards the state machine."""

    SEVERE = "severe"
    BREACH = "breach"
    BAND = "band"
    CLEAR = "clear"


_VERDICTS: Final = {
    SEVERE: Verdict.SEVERE,
    BREACH: Verdict.BREACH,
    BAND: Verdict.BAND,
    CLEAR: Verdict.CLEAR,
}


@dataclass(frozen=True)
class Transition:
    """An alert transition: a state machine started firing, or resolved.

    ``consecutive`` is the breach streak behind it: for ``firing`` the breaching
    windows that fired it (``detectors.consecutive``); for ``resolved`` the breaching
    windows the episode counted before the clearing window.
    """

    model: str
    segment: str
    column: str
    method: str
    previous: StateName
    current: TransitionName
    score: float
    threshold: float
    clear: float
    p_value: float
    n: int
    window_end_ts: float
    dedup_key: str
    consecutive: int


@dataclass(frozen=True)
class DecisionState:
    """The current state of one state machine, for metrics and introspection.

    ``score``, ``p_value``, ``n``, ``threshold`` and ``clear`` are those of the last
    evaluated window; ``since_ts`` is the window end (event time) at which ``state``
    was entered, ``last_ts`` that of the last evaluated window.
    """

    segment: str
    column: str
    method: str
    state: StateName
    streak: int
    score: float
    p_value: float
    threshold: float
    clear: float
    n: int
    since_ts: float
    last_ts: float
    verdict: str | None = None
    """How the last judged window counted (``severe``, ``breach``, ``band``, ``clear``);
    None when unknown (restored from a checkpoint written before it was kept)."""


@dataclass
class _Entry:
    state: StateName
    streak: int
    score: float
    p_value: float
    threshold: float
    clear: float
    n: int
    since_ts: float
    last_ts: float
    verdict: str | None = None


def _nan_to_none(x: float) -> float | None:
    return None if math.isnan(x) else x


def _none_to_nan(x: Any) -> float:
    return float("nan") if x is None else float(x)


class DecisionBook:
    """The state machines of one model, fed with every :class:`WindowResults`."""

    def __init__(self, model: str, detectors: DetectorsConfig, min_samples: int) -> None:
        if min_samples < 1:
            raise ValueError(f"min_samples must be >= 1, got {min_samples}")
        self.model = model
        self.detectors = detectors
        self.min_samples = min_samples
        self._lock = threading.Lock()
        self._entries: dict[Key, _Entry] = {}
        self._transitions: dict[tuple[str, str, str, TransitionName], int] = {}
        self._skipped: dict[str, int] = {}
        self._unknown_methods: set[str] = set()

    # -- configuration -------------------------------------------------------------

    def method_config(self, column: str, method: str) -> MethodConfig | None:
        """Thresholds for ``column`` and ``method``, or None when it is not evaluated."""
        override = self.detectors.overrides.get(column, {}).get(method)
        cfg = override if override is not None else self.detectors.method(method)
        if not isinstance(cfg, MethodConfig) or not cfg.enabled:
            return None
        return cfg

    # -- evaluation ----------------------------------------------------------------

    def observe(self, results: WindowResults) -> list[Transition]:
        """Advance the state machines with every window in ``results``, in row order."""
        if results.model != self.model:
            raise ValueError(f"results for model {results.model!r} fed to {self.model!r}")
        out: list[Transition] = []
        with self._lock:
            for row in range(len(results)):
                out.extend(self._observe_row(results, row))
        for t in out:
            self._log_transition(t)
        return out

    def _observe_row(self, results: WindowResults, row: int) -> Iterator[Transition]:
        segment = results.segments[row]
        end = float(results.window_end_ts[row])
        n_row = np.broadcast_to(
            results.n[row] if results.n.ndim == 2 else results.n[row : row + 1],
            (len(results.columns),),
        )
        enough = n_row >= self.min_samples
        for method, scores in results.scores.items():
            p_values = results.p_values.get(method)
            verdicts = results.verdicts.get(method)
            for j, column in enumerate(results.columns):
                score = float(scores[row, j])
                if math.isnan(score):
                    continue
                cfg = self.method_config(column, method)
                if cfg is None:
                    self._note_unknown(method)
                    continue
                p = float(p_values[row, j]) if p_values is not None else float("nan")
                if verdicts is not None:
                    # The engine judged it (calibrated or fixed thresholds, BH, floors).
                    code = int(verdicts[row, j])
                    if code == SKIP:
                        self._skipped[segment] = self._skipped.get(segment, 0) + 1
                        continue
                    verdict = _VERDICTS[code]
                    threshold = float(results.thresholds[method][row, j])
                    clear = float(results.clears[method][row, j])
                else:
                    if not enough[j]:
                        self._skipped[segment] = self._skipped.get(segment, 0) + 1
                        continue
                    verdict = self._classify(method, cfg, score, p)
                    threshold, clear = cfg.threshold, cfg.clear
                transition = self._step(
                    (segment, column, method),
                    verdict,
                    cfg,
                    (score, p, threshold, clear),
                    int(n_row[j]),
                    end,
                )
                if transition is not None:
                    yield transition

    def _classify(self, method: str, cfg: MethodConfig, score: float, p: float) -> Verdict:
        """Fixed thresholds, for rows the engine did not judge (ADWIN, fairness)."""
        if score >= cfg.threshold:
            if method not in P_VALUE_METHODS:
                return Verdict.BREACH
            if p < self.detectors.ks_alpha:  # False for NaN
                return Verdict.BREACH
        if score < cfg.clear:
            return Verdict.CLEAR
        return Verdict.BAND

    def _step(
        self,
        key: Key,
        verdict: Verdict,
        cfg: MethodConfig,
        judged: tuple[float, float, float, float],
        n: int,
        end: float,
    ) -> Transition | None:
        score, p, threshold, clear = judged
        entry = self._entries.get(key)
        if entry is None:
            entry = _Entry("ok", 0, score, p, threshold, clear, n, end, end)
            self._entries[key] = entry
        entry.score, entry.p_value, entry.n, entry.last_ts = score, p, n, end
        entry.threshold, entry.clear = threshold, clear
        entry.verdict = verdict.value
        previous = entry.state
        if verdict in (Verdict.BREACH, Verdict.SEVERE):
            entry.streak += 1
            if previous == "firing":
                return None
            needed = cfg.consecutive if cfg.consecutive is not None else self.detectors.consecutive
            if entry.streak >= needed or verdict is Verdict.SEVERE:
                return self._move(key, entry, "firing", end)
            if previous == "ok":
                entry.state, entry.since_ts = "pending", end
            return None
        if verdict is Verdict.BAND:
            return None
        # clear
        streak, entry.streak = entry.streak, 0
        if previous == "firing":
            return self._move(key, entry, "resolved", end, streak)
        if previous == "pending":
            entry.state, entry.since_ts = "ok", end
        return None

    def _move(
        self,
        key: Key,
        entry: _Entry,
        to: TransitionName,
        end: float,
        streak: int | None = None,
    ) -> Transition:
        segment, column, method = key
        previous = entry.state
        entry.state = "firing" if to == "firing" else "ok"
        entry.since_ts = end
        counter = (segment, column, method, to)
        self._transitions[counter] = self._transitions.get(counter, 0) + 1
        return Transition(
            model=self.model,
            segment=segment,
            column=column,
            method=method,
            previous=previous,
            current=to,
            score=entry.score,
            threshold=entry.threshold,
            clear=entry.clear,
            p_value=entry.p_value,
            n=entry.n,
            window_end_ts=end,
            dedup_key=dedup_key(self.model, segment, column, method),
            consecutive=entry.streak if streak is None else streak,
        )

    def _note_unknown(self, method: str) -> None:
        if method in self._unknown_methods or self.detectors.method(method) is not None:
            return
        self._unknown_methods.add(method)
        _log.debug("drift_method_not_configured", model=self.model, method=method)

    def _log_transition(self, t: Transition) -> None:
        log = _log.bind(model=t.model, segment=t.segment, column=t.column, method=t.method)
        fields = {
            "score": t.score,
            "threshold": t.threshold,
            "clear": t.clear,
            "p_value": _nan_to_none(t.p_value),
            "n": t.n,
            "consecutive": t.consecutive,
            "window_end_ts": t.window_end_ts,
            "dedup_key": t.dedup_key,
        }
        if t.current == "firing":
            log.warning("drift_firing", **fields)
        else:
            log.info("drift_resolved", **fields)

    # -- introspection -------------------------------------------------------------

    def states(self, segments: Collection[str] | None = None) -> list[DecisionState]:
        """A consistent copy of every state machine's current state (of ``segments`` only,
        when given)."""
        with self._lock:
            return [
                DecisionState(
                    segment=s,
                    column=c,
                    method=m,
                    state=e.state,
                    streak=e.streak,
                    score=e.score,
                    p_value=e.p_value,
                    threshold=e.threshold,
                    clear=e.clear,
                    n=e.n,
                    since_ts=e.since_ts,
                    last_ts=e.last_ts,
                    verdict=e.verdict,
                )
                for (s, c, m), e in self._entries.items()
                if segments is None or s in segments
            ]

    def transition_counts(self) -> dict[tuple[str, str, str, TransitionName], int]:
        """Transitions so far, by (segment, column, method, to)."""
        with self._lock:
            return dict(self._transitions)

    def skipped_counts(self) -> dict[str, int]:
        """Evaluations skipped for fewer than ``min_samples`` samples, by segment."""
        with self._lock:
            return dict(self._skipped)

    def forget_segments(self, segments: Collection[str], end: float) -> list[Transition]:
        """Drop the state machines and counts of ``segments`` (evicted for being idle).

        A firing alert of theirs is resolved at event time ``end`` (its transition
        returned, so the sinks close it) rather than left open with nothing to clear it.
        """
        out: list[Transition] = []
        with self._lock:
            for key in [k for k in self._entries if k[0] in segments]:
                entry = self._entries.pop(key)
                if entry.state == "firing":
                    out.append(self._move(key, entry, "resolved", end, entry.streak))
            self._transitions = {k: v for k, v in self._transitions.items() if k[0] not in segments}
            for segment in segments:
                self._skipped.pop(segment, None)
        for t in out:
            _log.info(
                "drift_resolved_segment_evicted",
                model=t.model,
                segment=t.segment,
                column=t.column,
                method=t.method,
                dedup_key=t.dedup_key,
            )
        return out

    # -- checkpointing -------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The whole book as plain, JSON-safe data (NaN is stored as None)."""
        with self._lock:
            return {
                "version": STATE_VERSION,
                "model": self.model,
                "entries": [
                    {
                        "segment": s,
                        "column": c,
                        "method": m,
                        "state": e.state,
                        "streak": e.streak,
                        "score": _nan_to_none(e.score),
                        "p_value": _nan_to_none(e.p_value),
                        "threshold": e.threshold,
                        "clear": e.clear,
                        "n": e.n,
                        "since_ts": e.since_ts,
                        "last_ts": e.last_ts,
                        "verdict": e.verdict,
                    }
                    for (s, c, m), e in self._entries.items()
                ],
                "transitions": [[*k, v] for k, v in self._transitions.items()],
                "skipped": dict(self._skipped),
            }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Replace the book with ``state_dict`` output.

        Entries whose method is no longer enabled for their column are dropped (a
        firing one is logged as ``drift_state_dropped``: its alert is left open).
        Raises ``CheckpointError`` if the data is malformed or for another model.
        """
        where = "decision_state"
        if state.get("version") != STATE_VERSION:
            raise CheckpointError(where, f"unsupported version {state.get('version')!r}")
        if state.get("model") != self.model:
            raise CheckpointError(where, f"state of model {state.get('model')!r}")
        try:
            entries = {
                (str(d["segment"]), str(d["column"]), str(d["method"])): _Entry(
                    state=_state_name(d["state"]),
                    streak=int(d["streak"]),
                    score=_none_to_nan(d["score"]),
                    p_value=_none_to_nan(d["p_value"]),
                    threshold=float(d["threshold"]),
                    clear=float(d["clear"]),
                    n=int(d["n"]),
                    since_ts=float(d["since_ts"]),
                    last_ts=float(d["last_ts"]),
                    verdict=_verdict_name(d.get("verdict")),
                )
                for d in _seq(state["entries"])
            }
            transitions = {
                (str(s), str(c), str(m), _transition_name(to)): int(v)
                for s, c, m, to, v in _seq(state["transitions"])
            }
            skipped = {str(k): int(v) for k, v in dict(state["skipped"]).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(where, f"malformed: {exc!r}") from exc
        for key in [k for k in entries if self.method_config(k[1], k[2]) is None]:
            dropped = entries.pop(key)
            if dropped.state == "firing":
                _log.warning(
                    "drift_state_dropped",
                    model=self.model,
                    segment=key[0],
                    column=key[1],
                    method=key[2],
                    dedup_key=dedup_key(self.model, *key),
                )
        with self._lock:
            self._entries = entries
            self._transitions = transitions
            self._skipped = skipped

    # -- hand-over: one partition's segments move to another replica ---------------

    def slice(self, segments: Collection[str]) -> list[dict[str, Any]]:
        """The state machines of ``segments`` alone (``state_dict`` entries)."""
        wanted = set(segments)
        return [e for e in self.state_dict()["entries"] if e["segment"] in wanted]

    def merge(self, entries: Sequence[Mapping[str, Any]]) -> None:
        """Add a :meth:`slice` made elsewhere; a state machine known here wins."""
        book = self.state_dict()
        known = {(e["segment"], e["column"], e["method"]) for e in book["entries"]}
        book["entries"] += [
            dict(e) for e in entries if (e["segment"], e["column"], e["method"]) not in known
        ]
        self.load_state_dict(book)

    def drop(self, segments: Collection[str]) -> None:
        """Forget the state machines of ``segments`` (handed over to their next owner)."""
        unwanted = set(segments)
        book = self.state_dict()
        book["entries"] = [e for e in book["entries"] if e["segment"] not in unwanted]
        self.load_state_dict(book)


def _seq(x: Any) -> Sequence[Any]:
    if not isinstance(x, list | tuple):
        raise TypeError(f"expected a list, got {type(x).__name__}")
    return x


def _state_name(x: Any) -> StateName:
    if x == "ok":
        return "ok"
    if x == "pending":
        return "pending"
    if x == "firing":
        return "firing"
    raise ValueError(f"unknown state {x!r}")


def _verdict_name(x: Any) -> str | None:
    """A saved verdict; absent (older checkpoints) is None."""
    if x is None:
        return None
    return Verdict(x).value  # ValueError on anything else


def _transition_name(x: Any) -> TransitionName:
    if x == "firing":
        return "firing"
    if x == "resolved":
        return "resolved"
    raise ValueError(f"unknown transition {x!r}")
