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
thread-safe so the metrics collector can read it while the consumer thread writes. The
state machines are held as arrays (:mod:`monitor.engine.decision_store`).
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import structlog

from monitor.config import DetectorsConfig, MethodConfig
from monitor.engine.decision_checkpoint import (
    STATE_VERSION,
    checkpoint_entries,
    nan_to_none,
    parse,
)
from monitor.engine.decision_store import (
    CLEAR_LEVEL,
    FIRING,
    LAST_TS,
    OK,
    P_VALUE,
    PENDING,
    SCORE,
    SINCE_TS,
    STATE_NAMES,
    THRESHOLD,
    MachineStore,
    SegmentMachines,
)
from monitor.engine.decision_types import (
    DecisionState,
    Key,
    StateName,
    Transition,
    TransitionName,
    Verdict,
    dedup_key,
)
from monitor.engine.decision_verdicts import (
    BREACH_CODE,
    CLEAR_CODE,
    P_VALUE_METHODS,
    SEVERE_CODE,
    SKIPPED,
    ColumnConfigs,
    classify,
    column_configs,
    engine_verdicts,
    method_config,
)
from monitor.engine.results import WindowResults
from monitor.errors import CheckpointError

__all__ = [
    "P_VALUE_METHODS",
    "STATE_VERSION",
    "DecisionBook",
    "DecisionState",
    "Key",
    "StateName",
    "Transition",
    "TransitionName",
    "Verdict",
    "dedup_key",
]

_log = structlog.get_logger()


class DecisionBook:
    """The state machines of one model, fed with every :class:`WindowResults`."""

    def __init__(self, model: str, detectors: DetectorsConfig, min_samples: int) -> None:
        if min_samples < 1:
            raise ValueError(f"min_samples must be >= 1, got {min_samples}")
        self.model = model
        self.detectors = detectors
        self.min_samples = min_samples
        self._lock = threading.Lock()
        self._store = MachineStore()
        self._transitions: dict[tuple[str, str, str, TransitionName], int] = {}
        self._skipped: dict[str, int] = {}
        self._unknown_methods: set[str] = set()
        self._configs: dict[tuple[tuple[str, ...], str], ColumnConfigs] = {}
        self._configs_of = detectors

    # -- configuration -------------------------------------------------------------

    def method_config(self, column: str, method: str) -> MethodConfig | None:
        """Thresholds for ``column`` and ``method``, or None when it is not evaluated."""
        return method_config(self.detectors, column, method)

    def _column_configs(self, columns: tuple[str, ...], method: str) -> ColumnConfigs:
        if self._configs_of is not self.detectors:
            self._configs, self._configs_of = {}, self.detectors
        found = self._configs.get((columns, method))
        if found is None:
            found = self._configs[(columns, method)] = column_configs(
                self.detectors, columns, method
            )
        return found

    # -- evaluation ----------------------------------------------------------------

    def observe(self, results: WindowResults) -> list[Transition]:
        """Advance the state machines with every window in ``results``, in row order."""
        if results.model != self.model:
            raise ValueError(f"results for model {results.model!r} fed to {self.model!r}")
        out: list[Transition] = []
        with self._lock:
            for row in range(len(results)):
                self._observe_row(results, row, out)
        for t in out:
            self._log_transition(t)
        return out

    def _observe_row(self, results: WindowResults, row: int, out: list[Transition]) -> None:
        """One window: each method's columns at once (each its own state machine)."""
        segment = results.segments[row]
        end = float(results.window_end_ts[row])
        n_row = np.broadcast_to(
            results.n[row] if results.n.ndim == 2 else results.n[row : row + 1],
            (len(results.columns),),
        ).astype(np.int64)
        columns = self._store.column_indices(results.columns)
        distinct = len(set(results.columns)) == len(results.columns)
        for method, scores in results.scores.items():
            score = np.asarray(scores[row], np.float64)
            valid = ~np.isnan(score)
            if not valid.any():
                continue
            cfg = self._column_configs(results.columns, method)
            if (valid & ~cfg.enabled).any():
                self._note_unknown(method)
            valid &= cfg.enabled
            p_values = results.p_values.get(method)
            p = (
                np.full(len(score), np.nan)
                if p_values is None
                else np.asarray(p_values[row], np.float64)
            )
            engine = results.verdicts.get(method)
            if engine is not None:
                # The engine judged it (calibrated or fixed thresholds, BH, floors).
                verdict = engine_verdicts(np.asarray(engine[row]), valid)
                skip = valid & (verdict == SKIPPED)
            else:
                skip = valid & (n_row < self.min_samples)
                verdict = classify(method, score, p, cfg, self.detectors.ks_alpha)
            skipped = int(np.count_nonzero(skip))
            if skipped:
                self._skipped[segment] = self._skipped.get(segment, 0) + skipped
            picked = np.flatnonzero(valid & ~skip)
            if not picked.size:
                continue
            if engine is not None:
                threshold = np.asarray(results.thresholds[method][row], np.float64)
                clear = np.asarray(results.clears[method][row], np.float64)
            else:
                threshold, clear = cfg.threshold, cfg.clear
            blocks = [picked] if distinct else [picked[i : i + 1] for i in range(len(picked))]
            for at in blocks:
                slots = self._store.slots(columns[at], self._store.method_index(method))
                machines = self._store.machines(segment)  # after slots() numbered new ones
                step = (verdict[at], cfg.needed[at], end)
                judged_values = (score[at], p[at], threshold[at], clear[at], n_row[at])
                self._step(segment, machines, slots, step, judged_values, out)

    def _step(
        self,
        segment: str,
        machines: SegmentMachines,
        slots: npt.NDArray[np.int64],
        step: tuple[npt.NDArray[np.int8], npt.NDArray[np.int64], float],
        judged: tuple[npt.NDArray[Any], ...],
        out: list[Transition],
    ) -> None:
        """Advance the state machines at ``slots`` of one segment by one window each."""
        verdict, needed, end = step
        score, p, threshold, clear, n = judged
        new = machines.seq[slots] < 0
        if new.any():
            self._store.create(machines, slots[new], end)
        values = machines.values
        values[SCORE, slots], values[P_VALUE, slots] = score, p
        values[THRESHOLD, slots], values[CLEAR_LEVEL, slots] = threshold, clear
        values[LAST_TS, slots] = end
        machines.set_n(slots, n)
        machines.verdict[slots] = verdict
        previous = machines.state[slots]
        streak = machines.streak[slots]
        severe = verdict == SEVERE_CODE
        breach = severe | (verdict == BREACH_CODE)
        cleared = verdict == CLEAR_CODE
        after = np.where(breach, streak + 1, np.where(cleared, 0, streak))
        machines.streak[slots] = after
        fire = breach & (previous != FIRING) & ((after >= needed) | severe)
        pending = slots[breach & (previous == OK) & ~fire]
        machines.state[pending], values[SINCE_TS, pending] = PENDING, end
        back = slots[cleared & (previous == PENDING)]
        machines.state[back], values[SINCE_TS, back] = OK, end
        resolve = cleared & (previous == FIRING)
        for i in np.flatnonzero(fire | resolve).tolist():
            to: TransitionName = "firing" if fire[i] else "resolved"
            out.append(self._move(segment, machines, int(slots[i]), to, end, int(streak[i])))

    def _move(
        self,
        segment: str,
        machines: SegmentMachines,
        slot: int,
        to: TransitionName,
        end: float,
        streak_before: int,
    ) -> Transition:
        """Move one state machine to ``to`` at ``end``; ``resolved`` reports the streak the
        episode counted (``streak_before``), ``firing`` the streak now."""
        column, method = self._store.names(slot)
        previous = STATE_NAMES[machines.state[slot]]
        machines.state[slot] = FIRING if to == "firing" else OK
        machines.values[SINCE_TS, slot] = end
        counter = (segment, column, method, to)
        self._transitions[counter] = self._transitions.get(counter, 0) + 1
        values = machines.values[:, slot].tolist()
        return Transition(
            model=self.model,
            segment=segment,
            column=column,
            method=method,
            previous=previous,
            current=to,
            score=values[SCORE],
            threshold=values[THRESHOLD],
            clear=values[CLEAR_LEVEL],
            p_value=values[P_VALUE],
            n=int(machines.n[slot]),
            window_end_ts=end,
            dedup_key=dedup_key(self.model, segment, column, method),
            consecutive=int(machines.streak[slot]) if to == "firing" else streak_before,
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
            "p_value": nan_to_none(t.p_value),
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
            rows = self._store.rows(self._asked(segments))
        return [DecisionState(*row) for row in rows]

    def _asked(self, segments: Collection[str] | None) -> list[str]:
        """The held segments among ``segments`` (all when None)."""
        held = self._store.segments
        if segments is None:
            return list(held)
        return [s for s in dict.fromkeys(segments) if s in held]

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
            asked = self._asked(segments)
            for segment, machines, slot in self._store.firing(asked):
                streak = int(machines.streak[slot])
                out.append(self._move(segment, machines, slot, "resolved", end, streak))
            for segment in asked:
                self._store.forget(segment)
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
            rows = self._store.rows(list(self._store.segments))
            return {
                "version": STATE_VERSION,
                "model": self.model,
                "entries": checkpoint_entries(rows),
                "transitions": [[*k, v] for k, v in self._transitions.items()],
                "skipped": dict(self._skipped),
            }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Replace the book with ``state_dict`` output.

        Entries whose method is no longer enabled for their column are dropped (a
        firing one is logged as ``drift_state_dropped``: its alert is left open).
        Raises ``CheckpointError`` if the data is malformed or for another model.
        """
        entries, transitions, skipped = parse(state, self.model)
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
        store = MachineStore()
        try:
            store.restore(list(entries.values()))
        except OverflowError as exc:
            raise CheckpointError("decision_state", f"malformed: {exc!r}") from exc
        with self._lock:
            self._store = store
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
