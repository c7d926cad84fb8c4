"""The decision layer: thresholds, hysteresis, streaks, min samples, FDR and checkpoints."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import false_discovery_control
from structlog.testing import capture_logs

from detectors.rules import BAND, BREACH, CLEAR, SEVERE, SKIP, benjamini_hochberg
from monitor.config import DetectorsConfig, MethodConfig
from monitor.engine.decision import (
    DecisionBook,
    DecisionState,
    Transition,
    dedup_key,
)
from monitor.engine.results import WindowResults
from monitor.errors import CheckpointError

NAN = float("nan")
MIN = 100


@pytest.fixture(autouse=True)
def _default_structlog() -> Iterator[None]:
    """Log with structlog's defaults, whatever an earlier test configured (a closed stream)."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


def window(
    scores: Mapping[str, Sequence[float]],
    p_values: Mapping[str, Sequence[float]] | None = None,
    *,
    columns: Sequence[str] = ("a",),
    segment: str = "eu",
    n: int | Sequence[int] = 1_000,
    ts: float = 0.0,
    model: str = "m",
) -> WindowResults:
    """One closed window of one segment."""
    f = len(columns)
    counts = np.asarray([n] * f if isinstance(n, int) else list(n), dtype=np.int64)
    return WindowResults(
        model=model,
        segments=(segment,),
        columns=tuple(columns),
        window_end_ts=np.array([ts]),
        rows=np.array([int(counts.max())], dtype=np.int64),
        n=counts.reshape(1, f),
        missing_rate=np.zeros((1, f)),
        scores={m: np.asarray(v, dtype=np.float64).reshape(1, f) for m, v in scores.items()},
        p_values={
            m: np.asarray(v, dtype=np.float64).reshape(1, f) for m, v in (p_values or {}).items()
        },
    )


def book(consecutive: int = 2, **kwargs: Any) -> DecisionBook:
    """A book with psi 0.25/0.1, ks 0.15/0.08, chi2 0.2/0.1 and alpha 0.01."""
    return DecisionBook("m", DetectorsConfig(consecutive=consecutive, **kwargs), min_samples=MIN)


def psi(b: DecisionBook, *scores: float, **kw: object) -> list[list[Transition]]:
    """Feed one psi score per window for column ``a``; the transitions of each window."""
    return [b.observe(window({"psi": [s]}, ts=float(i), **kw)) for i, s in enumerate(scores)]  # type: ignore[arg-type]


def state_of(b: DecisionBook, column: str = "a", method: str = "psi") -> DecisionState:
    """The state machine of (eu, column, method)."""
    (found,) = [s for s in b.states() if (s.column, s.method) == (column, method)]
    return found


def flat(steps: list[list[Transition]]) -> list[str]:
    """The transition names, in order."""
    return [t.current for step in steps for t in step]


def test_fires_only_after_consecutive_breaching_windows() -> None:
    """With consecutive=2 the first breach is pending and the second fires."""
    b = book(consecutive=2)
    first, second = psi(b, 0.3, 0.4)
    assert first == []
    assert state_of(b).state == "firing"
    (t,) = second
    assert (t.previous, t.current, t.consecutive) == ("pending", "firing", 2)
    assert (t.score, t.threshold, t.clear, t.n, t.window_end_ts) == (0.4, 0.25, 0.1, 1_000, 1.0)
    assert t.dedup_key == "driftd/m/eu/a/psi" == dedup_key("m", "eu", "a", "psi")
    assert math.isnan(t.p_value)


def test_pending_is_visible_in_states() -> None:
    """One breach of two needed leaves the machine pending, with a streak of 1."""
    b = book(consecutive=2)
    psi(b, 0.3)
    s = state_of(b)
    assert (s.state, s.streak, s.score, s.threshold, s.since_ts) == ("pending", 1, 0.3, 0.25, 0.0)


def test_consecutive_one_fires_straight_from_ok() -> None:
    """With consecutive=1 a single breach fires, from ok."""
    (step,) = psi(book(consecutive=1), 0.3)
    assert [(t.previous, t.current) for t in step] == [("ok", "firing")]


def test_threshold_is_inclusive_and_clear_exclusive() -> None:
    """A score equal to the threshold breaches; a score equal to clear does not clear."""
    b = book(consecutive=1)
    assert flat(psi(b, 0.25, 0.1)) == ["firing"]
    assert state_of(b).state == "firing"


def test_clear_window_resets_a_pending_streak() -> None:
    """A window below clear between two breaches returns pending to ok: nothing fires."""
    b = book(consecutive=2)
    assert flat(psi(b, 0.3, 0.05, 0.3)) == []
    assert (state_of(b).state, state_of(b).streak) == ("pending", 1)


def test_band_window_holds_a_pending_streak() -> None:
    """A window in the band neither advances nor resets the streak: breach, band, breach fires."""
    b = book(consecutive=3)
    steps = psi(b, 0.3, 0.2, 0.3, 0.15)
    assert flat(steps) == []
    assert (state_of(b).state, state_of(b).streak) == ("pending", 2)
    assert flat(psi(b, 0.9)) == ["firing"]


def test_flapping_inside_the_band_causes_no_extra_transitions() -> None:
    """Once firing, scores flapping between clear and above threshold never resolve or refire."""
    b = book(consecutive=2)
    steps = psi(b, 0.3, 0.3, 0.11, 0.24, 0.5, 0.12, 0.26, 0.1, 0.2499)
    assert flat(steps) == ["firing"]
    assert state_of(b).state == "firing"


def test_resolves_below_clear_and_returns_to_ok() -> None:
    """A firing alert resolves on the first window below clear; the machine is ok again."""
    b = book(consecutive=2)
    steps = psi(b, 0.3, 0.3, 0.3, 0.09)
    assert flat(steps) == ["firing", "resolved"]
    (t,) = steps[-1]
    assert (t.previous, t.current, t.score, t.consecutive) == ("firing", "resolved", 0.09, 3)
    s = state_of(b)
    assert (s.state, s.streak, s.since_ts) == ("ok", 0, 3.0)
    assert b.transition_counts() == {
        ("eu", "a", "psi", "firing"): 1,
        ("eu", "a", "psi", "resolved"): 1,
    }
    assert flat(psi(b, 0.3, 0.3)) == ["firing"]


def test_small_windows_leave_the_state_untouched_and_are_counted() -> None:
    """A window with n < min_samples neither advances, resets nor resolves; it is counted."""
    b = book(consecutive=2)
    psi(b, 0.3)
    psi(b, 0.9, 0.0, n=MIN - 1)
    assert (state_of(b).state, state_of(b).streak, state_of(b).score) == ("pending", 1, 0.3)
    assert flat(psi(b, 0.3)) == ["firing"]
    psi(b, 0.0, n=5)
    assert state_of(b).state == "firing"
    assert b.skipped_counts() == {"eu": 3}
    assert flat(psi(b, 0.0, n=MIN)) == ["resolved"]


def test_small_window_creates_no_state() -> None:
    """A segment whose windows are all too small has no state machine at all."""
    b = book()
    psi(b, 0.9, n=1)
    assert b.states() == []


def test_ks_breach_needs_both_effect_size_and_p_value() -> None:
    """KS fires only when D >= threshold and p < ks_alpha; either alone holds the band."""
    b = book(consecutive=1)
    big_d_weak_p = window({"ks": [0.5]}, {"ks": [0.02]})
    small_d_strong_p = window({"ks": [0.1]}, {"ks": [1e-12]})
    both = window({"ks": [0.16]}, {"ks": [0.009]})
    assert b.observe(big_d_weak_p) == []
    assert b.observe(small_d_strong_p) == []
    assert [t.current for t in b.observe(both)] == ["firing"]
    assert b.observe(window({"ks": [0.5]}, {"ks": [0.9]})) == []
    assert [t.current for t in b.observe(window({"ks": [0.07]}, {"ks": [0.9]}))] == ["resolved"]


def test_ks_without_p_value_never_breaches() -> None:
    """A KS score with a NaN (or absent) p-value cannot breach."""
    b = book(consecutive=1)
    assert b.observe(window({"ks": [0.9]}, {"ks": [NAN]})) == []
    assert b.observe(window({"ks": [0.9]})) == []
    assert state_of(b, method="ks").state == "ok"


def test_chi2_breach_also_needs_p_below_the_shared_alpha() -> None:
    """chi2 reuses ks_alpha: an effect above threshold with p >= alpha does not breach."""
    b = book(consecutive=1, ks_alpha=0.05)
    assert b.observe(window({"chi2": [0.3]}, {"chi2": [0.06]})) == []
    assert [t.current for t in b.observe(window({"chi2": [0.3]}, {"chi2": [0.04]}))] == ["firing"]


def test_psi_and_js_ignore_p_values() -> None:
    """PSI and JS breach on the score alone."""
    b = book(consecutive=1)
    steps = b.observe(window({"psi": [0.3], "js": [0.3]}, {"psi": [0.9], "js": [0.9]}))
    assert sorted(t.method for t in steps) == ["js", "psi"]


def test_per_column_overrides_replace_thresholds_and_can_disable() -> None:
    """overrides[column][method] sets that column's thresholds; enabled: false ignores it."""
    b = book(
        consecutive=1,
        overrides={
            "a": {"psi": MethodConfig(threshold=0.5, clear=0.4)},
            "c": {"psi": MethodConfig(enabled=False, threshold=0.5, clear=0.4)},
        },
    )
    steps = b.observe(window({"psi": [0.3, 0.3, 0.9]}, columns=("a", "b", "c")))
    assert [(t.column, t.threshold) for t in steps] == [("b", 0.25)]
    assert {s.column for s in b.states()} == {"a", "b"}
    assert b.method_config("c", "psi") is None
    (t,) = b.observe(window({"psi": [0.6, 0.3, 0.9]}, columns=("a", "b", "c")))
    assert (t.column, t.threshold, t.clear) == ("a", 0.5, 0.4)
    (t,) = b.observe(window({"psi": [0.39, 0.3, 0.9]}, columns=("a", "b", "c")))
    assert (t.column, t.current) == ("a", "resolved")


def test_disabled_methods_and_nan_scores_are_ignored() -> None:
    """A disabled method, an unconfigured method and NaN scores create no state."""
    b = book(consecutive=1, js=MethodConfig(enabled=False, threshold=0.2, clear=0.1))
    steps = b.observe(window({"js": [0.9], "wasserstein": [1.0], "psi": [NAN]}))
    assert steps == []
    assert b.states() == []
    assert b.skipped_counts() == {}


def test_rows_are_processed_in_order() -> None:
    """Two windows of one segment closing together count as two consecutive windows."""
    b = book(consecutive=2)
    results = WindowResults(
        model="m",
        segments=("eu", "eu", "us"),
        columns=("a",),
        window_end_ts=np.array([1.0, 2.0, 2.0]),
        rows=np.array([500, 500, 500]),
        n=np.array([[500], [500], [500]]),
        missing_rate=np.zeros((3, 1)),
        scores={"psi": np.array([[0.3], [0.3], [0.3]])},
        p_values={},
    )
    (t,) = b.observe(results)
    assert (t.segment, t.window_end_ts) == ("eu", 2.0)
    assert {s.segment: s.state for s in b.states()} == {"eu": "firing", "us": "pending"}


def test_results_of_another_model_are_refused() -> None:
    """Feeding another model's results is a programming error."""
    with pytest.raises(ValueError, match="other"):
        book().observe(window({"psi": [0.3]}, model="other"))


def test_benjamini_hochberg_matches_scipy() -> None:
    """Our BH rejections equal false_discovery_control(p) <= q, with NaNs left out."""
    rng = np.random.default_rng(7)
    for _ in range(300):
        m = int(rng.integers(1, 30))
        p = np.where(rng.random(m) < 0.4, rng.random(m) * 0.02, rng.random(m))
        p[rng.random(m) < 0.1] = np.nan
        q = float(rng.choice([0.01, 0.05, 0.1]))
        finite = ~np.isnan(p)
        expected = np.zeros(m, dtype=bool)
        if finite.any():
            expected[finite] = false_discovery_control(p[finite]) <= q
        np.testing.assert_array_equal(benjamini_hochberg(p, q), expected)


def judged(codes: Sequence[int], scores: Sequence[float], threshold: float = 0.05) -> WindowResults:
    """A window the engine already judged: verdict codes and thresholds per column."""
    cols = tuple(f"c{j}" for j in range(len(codes)))
    base = window({"psi": list(scores)}, columns=cols)
    shape = (1, len(codes))
    return dataclasses.replace(
        base,
        thresholds={"psi": np.full(shape, threshold)},
        clears={"psi": np.full(shape, threshold / 2)},
        verdicts={"psi": np.asarray(codes, dtype=np.int8).reshape(shape)},
    )


def test_engine_verdicts_replace_the_config_thresholds() -> None:
    """With verdicts, the book follows them and reports the engine's thresholds."""
    b = book(consecutive=2)
    assert b.observe(judged([BREACH, BAND, CLEAR], [0.06, 0.04, 0.01])) == []
    steps = b.observe(judged([BREACH, BREACH, SKIP], [0.07, 0.06, 0.9]))
    assert [(t.column, t.current, t.threshold, t.clear) for t in steps] == [
        ("c0", "firing", 0.05, 0.025)
    ]
    assert b.skipped_counts() == {"eu": 1}
    (t,) = b.observe(judged([CLEAR, BAND, CLEAR], [0.01, 0.04, 0.01]))
    assert (t.column, t.current) == ("c0", "resolved")


def test_a_severe_breach_fires_without_waiting_for_consecutive_windows() -> None:
    """SEVERE (score >= severe_ratio x threshold) fires in its first window."""
    b = book(consecutive=3)
    (t,) = b.observe(judged([SEVERE, BREACH], [0.2, 0.06]))
    assert (t.column, t.current, t.consecutive) == ("c0", "firing", 1)
    assert state_of(b, column="c1").state == "pending"


def test_transitions_are_logged_with_their_fields() -> None:
    """drift_firing and drift_resolved are logged with model, segment, column, method, score."""
    b = book(consecutive=1)
    with capture_logs() as logs:
        psi(b, 0.3, 0.05)
    events = [e for e in logs if e["event"].startswith("drift_")]
    assert [(e["event"], e["log_level"]) for e in events] == [
        ("drift_firing", "warning"),
        ("drift_resolved", "info"),
    ]
    first = events[0]
    assert {
        k: first[k] for k in ("model", "segment", "column", "method", "score", "threshold")
    } == {
        "model": "m",
        "segment": "eu",
        "column": "a",
        "method": "psi",
        "score": 0.3,
        "threshold": 0.25,
    }
    assert first["p_value"] is None
    assert first["dedup_key"] == "driftd/m/eu/a/psi"


def same_states(a: list[DecisionState], b: list[DecisionState]) -> bool:
    """Equal, with NaN equal to NaN."""

    def norm(s: DecisionState) -> tuple[object, ...]:
        return tuple(
            "nan" if isinstance(v, float) and math.isnan(v) else v for v in vars(s).values()
        )

    return sorted(map(norm, a), key=repr) == sorted(map(norm, b), key=repr)


def test_state_round_trips_through_json() -> None:
    """state_dict is JSON-safe and load_state_dict restores states, counters and behaviour."""
    b = book(consecutive=2)
    psi(b, 0.3, 0.3)
    b.observe(window({"ks": [0.5]}, {"ks": [0.001]}, segment="us"))
    psi(b, 0.3, n=1, segment="apac")
    b.observe(window({"js": [0.3]}, segment="eu"))
    text = json.dumps(b.state_dict(), allow_nan=False)
    restored = book(consecutive=2)
    restored.load_state_dict(json.loads(text))
    assert same_states(restored.states(), b.states())
    assert restored.transition_counts() == b.transition_counts()
    assert restored.skipped_counts() == b.skipped_counts() == {"apac": 1}
    assert flat(psi(restored, 0.05)) == ["resolved"]
    (t,) = restored.observe(window({"ks": [0.5]}, {"ks": [0.001]}, segment="us", ts=9.0))
    assert (t.segment, t.previous, t.consecutive) == ("us", "pending", 2)


def test_load_refuses_another_model_or_malformed_state() -> None:
    """A state of another model, another version, or with broken entries raises CheckpointError."""
    good = book().state_dict()
    with pytest.raises(CheckpointError, match="model"):
        DecisionBook("x", DetectorsConfig(), MIN).load_state_dict(good)
    with pytest.raises(CheckpointError, match="version"):
        book().load_state_dict({**good, "version": 99})
    bad_entry = {"segment": "eu", "column": "a", "method": "psi", "state": "weird"}
    with pytest.raises(CheckpointError, match="malformed"):
        book().load_state_dict({**good, "entries": [bad_entry]})


def test_load_drops_states_of_methods_disabled_since() -> None:
    """A restored firing state for a method now disabled is dropped and logged."""
    b = book(consecutive=1)
    psi(b, 0.3)
    off = book(consecutive=1, psi=MethodConfig(enabled=False, threshold=0.25, clear=0.1))
    with capture_logs() as logs:
        off.load_state_dict(b.state_dict())
    assert off.states() == []
    assert [e["dedup_key"] for e in logs if e["event"] == "drift_state_dropped"] == [
        "driftd/m/eu/a/psi"
    ]


# -- property ----------------------------------------------------------------------

SCORES = st.one_of(
    st.floats(0.0, 1.0),
    st.sampled_from([0.0, 0.08, 0.1, 0.15, 0.25, 0.3, NAN]),
)
P_VALUES = st.one_of(st.floats(0.0, 1.0), st.sampled_from([0.0, 0.01, 0.5, NAN]))
WINDOWS = st.lists(
    st.tuples(SCORES, SCORES, P_VALUES, P_VALUES, st.sampled_from([1_000, 1_000, MIN - 1])),
    max_size=60,
)


def verdict(method: str, score: float, p: float, n: int) -> str:
    """The test's own classification of one window: skip, breach, clear or band."""
    threshold, clear = (0.25, 0.1) if method == "psi" else (0.15, 0.08)
    if math.isnan(score) or n < MIN:
        return "skip"
    if score >= threshold and (method == "psi" or p < 0.01):
        return "breach"
    return "clear" if score < clear else "band"


@settings(max_examples=300, deadline=None)
@given(
    consecutive=st.integers(1, 4),
    method=st.sampled_from(["psi", "ks"]),
    windows=WINDOWS,
)
def test_transitions_alternate_and_need_consecutive_breaches(
    consecutive: int, method: str, windows: list[tuple[float, float, float, float, int]]
) -> None:
    """Per key, transitions alternate firing/resolved and a firing ends `consecutive` breaches."""
    b = book(consecutive=consecutive)
    seen: dict[str, list[tuple[int, str]]] = {"a": [], "b": []}
    for i, (sa, sb, pa, pb, n) in enumerate(windows):
        results = window({method: [sa, sb]}, {method: [pa, pb]}, columns=("a", "b"), n=n, ts=i)
        for t in b.observe(results):
            seen[t.column].append((i, t.current))
    for j, column in enumerate(("a", "b")):
        kinds = [k for _, k in seen[column]]
        assert kinds == ["firing", "resolved"] * (len(kinds) // 2) + ["firing"] * (len(kinds) % 2)
        verdicts = [verdict(method, w[j], w[2 + j], w[4]) for w in windows]
        last_resolve = -1
        for i, kind in seen[column]:
            if kind == "resolved":
                assert verdicts[i] == "clear"
                last_resolve = i
                continue
            decisive = [v for v in verdicts[last_resolve + 1 : i + 1] if v in ("breach", "clear")]
            assert verdicts[i] == "breach"
            assert decisive[-consecutive:] == ["breach"] * consecutive
        # and the converse: a reference machine fires and resolves at exactly these windows
        expected: list[tuple[int, str]] = []
        firing, streak = False, 0
        for i, v in enumerate(verdicts):
            if v == "breach":
                streak += 1
                if not firing and streak >= consecutive:
                    firing = True
                    expected.append((i, "firing"))
            elif v == "clear":
                streak = 0
                if firing:
                    firing = False
                    expected.append((i, "resolved"))
        assert seen[column] == expected
