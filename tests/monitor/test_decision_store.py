"""The array-held decision book behaves exactly as the object-per-state-machine one did.

``ReferenceBook`` below is the book before :mod:`monitor.engine.decision_store`: one
dataclass per (segment, column, method) in a dict. Both are fed the same random
windows; every transition, state, count, log event and checkpoint must be identical,
in the same order.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
from collections.abc import Collection, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from detectors.rules import BAND, BREACH, CLEAR, SEVERE, SKIP
from monitor.config import DetectorsConfig, MethodConfig
from monitor.engine import decision_store
from monitor.engine.decision import (
    P_VALUE_METHODS,
    STATE_VERSION,
    DecisionBook,
    DecisionState,
    Key,
    StateName,
    Transition,
    TransitionName,
    Verdict,
    dedup_key,
)
from monitor.engine.results import WindowResults

_log = structlog.get_logger()
_VERDICTS: Final = {
    SEVERE: Verdict.SEVERE,
    BREACH: Verdict.BREACH,
    BAND: Verdict.BAND,
    CLEAR: Verdict.CLEAR,
}
MIN = 100
COLUMNS = ("a", "b", "c", "d", "__window__")
SEGMENTS = tuple(f"s{i}" for i in range(6))
ENGINE_METHODS = ("psi", "missing")
"""Judged by the engine (verdict codes given); the others by their fixed thresholds."""
FIXED_METHODS = ("ks", "chi2", "js", "mystery")
DETECTORS = DetectorsConfig(
    consecutive=2,
    overrides={
        "b": {"psi": MethodConfig(threshold=0.5, clear=0.3, consecutive=1)},
        "c": {"ks": MethodConfig(enabled=False, threshold=0.15, clear=0.08)},
        "d": {"js": MethodConfig(threshold=0.2, clear=0.1, consecutive=3)},
    },
)


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


class ReferenceBook:
    """The book as it was before the array store: one object per state machine in a dict."""

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


@pytest.fixture(autouse=True)
def _default_structlog() -> Iterator[None]:
    """Log with structlog's defaults, whatever an earlier test configured."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


def random_window(rng: np.random.Generator, ts: float, columns: tuple[str, ...]) -> WindowResults:
    """Windows of random segments: NaN scores, small windows, every verdict, every method."""
    k, f = int(rng.integers(1, 5)), len(columns)
    shape = (k, f)

    def scores() -> np.ndarray:
        s = rng.choice(np.array([0.02, 0.05, 0.09, 0.1, 0.12, 0.2, 0.25, 0.3, 0.6, 2.0]), shape)
        s[rng.random(shape) < 0.15] = np.nan
        return s

    def p_values() -> np.ndarray:
        p = rng.choice(np.array([1e-5, 0.005, 0.01, 0.04, 0.5]), shape)
        p[rng.random(shape) < 0.2] = np.nan
        return p

    fixed = [m for m in FIXED_METHODS if rng.random() < 0.8]
    engine = [m for m in ENGINE_METHODS if rng.random() < 0.8]
    n = rng.choice(np.array([MIN - 1, MIN, 1_000]), shape if rng.random() < 0.5 else (k,))
    thresholds = {m: rng.choice(np.array([0.05, 0.1, 0.25]), shape) for m in engine}
    return WindowResults(
        model="m",
        segments=tuple(str(s) for s in rng.choice(np.array(SEGMENTS), k)),
        columns=columns,
        window_end_ts=ts + np.arange(k, dtype=np.float64),
        rows=np.full(k, 1_000, np.int64),
        n=n.astype(np.int64),
        missing_rate=np.zeros(shape),
        scores={m: scores() for m in (*engine, *fixed)},
        p_values={m: p_values() for m in (*engine, *fixed) if m != "js"},
        thresholds=thresholds,
        clears={m: t / 2 for m, t in thresholds.items()},
        verdicts={m: rng.integers(SKIP, SEVERE + 1, shape).astype(np.int8) for m in engine},
    )


def logged(events: list[MutableMapping[str, Any]]) -> str:
    """Captured log events, comparable (NaN included)."""
    return repr(events)


def assert_same(book: DecisionBook, ref: ReferenceBook, rng: np.random.Generator) -> None:
    """Every read of the two books agrees, order included."""
    assert repr(book.states()) == repr(ref.states())
    asked = [str(s) for s in rng.choice(np.array([*SEGMENTS, "nowhere"]), 3)]
    assert repr(book.states(asked)) == repr(ref.states(asked))
    assert repr(book.states(set(asked))) == repr(ref.states(set(asked)))
    assert list(book.transition_counts().items()) == list(ref.transition_counts().items())
    assert list(book.skipped_counts().items()) == list(ref.skipped_counts().items())
    assert json.dumps(book.state_dict()) == json.dumps(ref.state_dict())


def run_side_by_side(
    seed: int, batches: int, columns: tuple[str, ...] = COLUMNS, restores: bool = True
) -> int:
    """Feed both books the same random stream (with evictions and restores); transitions."""
    rng = np.random.default_rng(seed)
    book = DecisionBook("m", DETECTORS, min_samples=MIN)
    ref = ReferenceBook("m", DETECTORS, min_samples=MIN)
    seen = 0
    for i in range(batches):
        results = random_window(rng, 10.0 * i, columns)
        with capture_logs() as mine:
            got = book.observe(results)
        with capture_logs() as theirs:
            want = ref.observe(results)
        assert repr(got) == repr(want)
        assert logged(mine) == logged(theirs)
        seen += len(got)
        if rng.random() < 0.1:
            gone = [str(s) for s in rng.choice(np.array(SEGMENTS), 2)]
            with capture_logs() as mine:
                got = book.forget_segments(gone, 10.0 * i + 5)
            with capture_logs() as theirs:
                want = ref.forget_segments(gone, 10.0 * i + 5)
            assert repr(got) == repr(want)
            assert logged(mine) == logged(theirs)
        if rng.random() < 0.1 and restores:
            restored = DecisionBook("m", DETECTORS, min_samples=MIN)
            restored.load_state_dict(json.loads(json.dumps(book.state_dict())))
            book = restored
            ref._unknown_methods.clear()  # a restored book is a new one: it tells again
        assert_same(book, ref, rng)
    return seen


@pytest.mark.parametrize("seed", range(4))
def test_random_streams_match_the_object_per_state_machine_book(seed: int) -> None:
    """Transitions, logs, states, counts and checkpoints equal the reference's, in order."""
    assert run_side_by_side(seed, batches=120) > 0


def test_a_column_named_twice_in_one_window_steps_its_machine_twice() -> None:
    """Results naming a column twice advance its state machine once per occurrence."""
    assert run_side_by_side(7, batches=60, columns=("a", "b", "a")) > 0


def test_columns_and_methods_arriving_later_get_their_own_state() -> None:
    """New columns and methods after the first windows extend every segment's arrays."""
    rng = np.random.default_rng(11)
    book = DecisionBook("m", DETECTORS, min_samples=MIN)
    ref = ReferenceBook("m", DETECTORS, min_samples=MIN)
    for i, columns in enumerate([("a",), ("a", "b"), ("c", "a", "b", "d"), ("b",)] * 10):
        results = random_window(rng, 10.0 * i, columns)
        assert repr(book.observe(results)) == repr(ref.observe(results))
        assert_same(book, ref, rng)
    assert {s.column for s in book.states()} == {"a", "b", "c", "d"}


def test_a_restored_checkpoint_keeps_the_first_position_of_a_repeated_entry() -> None:
    """A checkpoint listing one state machine twice keeps the last values at the first place."""
    book = DecisionBook("m", DETECTORS, min_samples=MIN)
    rng = np.random.default_rng(3)
    for i in range(30):
        book.observe(random_window(rng, 10.0 * i, COLUMNS))
    state = book.state_dict()
    first, second = state["entries"][0], state["entries"][1]
    state["entries"].append({**first, "streak": 41, "state": "pending"})
    restored = DecisionBook("m", DETECTORS, min_samples=MIN)
    restored.load_state_dict(state)
    entries = restored.state_dict()["entries"]
    assert entries[0] == {**first, "streak": 41, "state": "pending"}
    assert entries[1] == second
    assert len(entries) == len(state["entries"]) - 1


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2),
            st.sampled_from([SKIP, CLEAR, BAND, BREACH, SEVERE]),
            st.sampled_from([math.nan, 0.05, 0.1, 0.2, 0.3, 0.6]),
            st.sampled_from([math.nan, 0.001, 0.5]),
            st.sampled_from([MIN - 1, 1_000]),
        ),
        max_size=40,
    )
)
def test_any_verdict_sequence_matches_the_reference(
    steps: list[tuple[int, int, float, float, int]],
) -> None:
    """Any sequence of windows (engine verdicts on psi, fixed ks) gives the same result."""
    book = DecisionBook("m", DETECTORS, min_samples=MIN)
    ref = ReferenceBook("m", DETECTORS, min_samples=MIN)
    for i, (segment, code, score, p, n) in enumerate(steps):
        results = WindowResults(
            model="m",
            segments=(SEGMENTS[segment],),
            columns=("a", "b"),
            window_end_ts=np.array([float(i)]),
            rows=np.array([n], np.int64),
            n=np.array([n], np.int64),
            missing_rate=np.zeros((1, 2)),
            scores={"psi": np.full((1, 2), score), "ks": np.full((1, 2), score)},
            p_values={"ks": np.full((1, 2), p)},
            thresholds={"psi": np.full((1, 2), 0.25)},
            clears={"psi": np.full((1, 2), 0.1)},
            verdicts={"psi": np.full((1, 2), code, np.int8)},
        )
        assert repr(book.observe(results)) == repr(ref.observe(results))
    assert repr(book.states()) == repr(ref.states())
    assert json.dumps(book.state_dict()) == json.dumps(ref.state_dict())


def test_creation_numbers_are_renumbered_without_changing_the_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Running out of creation numbers (evictions leave gaps) keeps every order intact."""
    monkeypatch.setattr(decision_store, "SEQ_LIMIT", 200)
    assert run_side_by_side(5, batches=150, restores=False) > 0


def test_windows_past_two_billion_values_keep_their_exact_size() -> None:
    """A window size past 2**31 - 1 is kept exactly (the segment's sizes widen to int64)."""
    rng = np.random.default_rng(13)
    book = DecisionBook("m", DETECTORS, min_samples=MIN)
    ref = ReferenceBook("m", DETECTORS, min_samples=MIN)
    huge = 2**31 + 7
    for i in range(40):
        results = random_window(rng, 10.0 * i, COLUMNS)
        if i % 3 == 0:
            results = dataclasses.replace(results, n=np.where(results.n == 1_000, huge, results.n))
        assert repr(book.observe(results)) == repr(ref.observe(results))
        assert_same(book, ref, rng)
    assert huge in {s.n for s in book.states()}
    restored = DecisionBook("m", DETECTORS, min_samples=MIN)
    restored.load_state_dict(book.state_dict())
    assert json.dumps(restored.state_dict()) == json.dumps(ref.state_dict())
