"""The compact layouts behind memory at scale hold exactly what the plain ones did.

int32 panes (widened before they could overflow), the array store of the latest scores,
the state API's rows as arrays, and windows scored together against one by one.
"""

from __future__ import annotations

import math

import numpy as np
import orjson

from detectors.binning import Binner
from detectors.engine import DriftEngine
from detectors.profile import build_profile
from monitor.config import DetectorsConfig, WindowsConfig
from monitor.emit.state_api import LiveState
from monitor.engine.decision import DecisionBook
from monitor.engine.evaluate import Evaluator, segment_references
from monitor.engine.results import LatestResults, WindowResults
from monitor.engine.windows import COUNT_DTYPE, Windows

RNG = np.random.default_rng(5)
PROFILE = build_profile(
    {"x": RNG.normal(size=3000), "c": RNG.choice(np.array(["a", "b", "c"], object), 3000)},
    categorical=["c"],
)
BINNER = Binner(PROFILE.features)
Cell = tuple[float, float, int, float]
"""A latest score: score, p-value, n, window end."""


def _stream(n: int, n_segments: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    seg = rng.integers(0, n_segments, n)
    X = np.column_stack([rng.normal(size=n), rng.integers(0, 4, n).astype(np.float64)])
    X[rng.random(n) < 0.05, 0] = np.nan
    return seg, X, 1_000.0 + np.arange(n) * 0.01


def test_count_windows_equal_a_plain_int64_count_per_segment() -> None:
    """Every closed window's counts equal an int64 bincount of its segment's events."""
    seg, X, ts = _stream(5_000, 7)
    windows = Windows(BINNER, WindowsConfig(size_events=300))
    closed = [
        windows.add(seg[lo : lo + 613], X[lo : lo + 613], ts[lo : lo + 613])
        for lo in range(0, 5_000, 613)
    ]
    assert windows.state_dict()["panes"].dtype == np.int64
    slots = BINNER.flat_slots(X)  # (F, n)
    seen: dict[int, int] = {}
    for batch in closed:
        assert batch.counts.dtype == np.int64
        for s, counts in zip(batch.segments.tolist(), batch.counts, strict=True):
            rows = np.flatnonzero(seg == s)
            k = seen.get(s, 0)
            mine = rows[k * 300 : (k + 1) * 300]
            seen[s] = k + 1
            expected = np.bincount(slots[:, mine].ravel(), minlength=counts.size)
            np.testing.assert_array_equal(counts.ravel(), expected)
    assert sum(seen.values()) == sum(len(b) for b in closed) > 0


def test_panes_widen_to_int64_before_a_window_could_overflow() -> None:
    """A window past 2**31 - 1 events keeps exact counts: the panes widen first."""
    big = int(np.iinfo(COUNT_DTYPE).max) - 5
    windows = Windows(BINNER, WindowsConfig(size_events=big + 20), n_segments=1)
    state = windows.state_dict()
    state["panes"][0, 0, 0, 3] = big  # every event so far in one bin of feature 0 ...
    state["panes"][0, 0, 1, 1] = big  # ... and of feature 1
    state["pane_rows"][0, 0] = big
    windows.load_state_dict(state)
    assert windows.state_dict()["panes"].dtype == np.int64
    seg, X, ts = _stream(20, 1)
    closed = windows.add(seg, X, ts)
    assert len(closed) == 1
    counts = closed.counts[0]
    assert int(counts[0].sum()) == int(counts[1].sum()) == big + 20 > np.iinfo(np.int32).max
    assert int(counts[0, 3]) >= big


def test_checkpointed_panes_round_trip_through_the_compact_dtype() -> None:
    """state_dict -> load_state_dict -> state_dict is the identity (int64 both times)."""
    seg, X, ts = _stream(2_000, 5)
    windows = Windows(BINNER, WindowsConfig(size_events=700, mode="sliding", panes=2))
    windows.add(seg, X, ts)
    first = windows.state_dict()
    again = Windows(BINNER, WindowsConfig(size_events=700, mode="sliding", panes=2))
    again.load_state_dict(first)
    second = again.state_dict()
    for key in ("panes", "pane_rows", "head", "completed"):
        np.testing.assert_array_equal(first[key], second[key])
        assert second[key].dtype == np.int64


def _results(segments: tuple[str, ...], seed: int, columns: tuple[str, ...]) -> WindowResults:
    rng = np.random.default_rng(seed)
    k, f = len(segments), len(columns)

    def scores() -> np.ndarray:
        out = rng.random((k, f))
        out[rng.random((k, f)) < 0.3] = np.nan
        return out

    return WindowResults(
        model="m",
        segments=segments,
        columns=columns,
        window_end_ts=np.arange(k, dtype=np.float64) + seed,
        rows=np.full(k, 500, np.int64),
        n=rng.integers(0, 500, (k, f)),
        missing_rate=np.where(rng.random((k, f)) < 0.5, np.nan, 0.1),
        scores={"psi": scores(), "ks": scores()},
        p_values={"ks": rng.random((k, f))},
    )


def _per_cell(batches: list[WindowResults]) -> dict[tuple[str, str, str], Cell]:
    """The store's contract, one cell at a time: the latest non-NaN score wins."""
    out: dict[tuple[str, str, str], Cell] = {}
    for r in batches:
        for row, segment in enumerate(r.segments):
            for method, scores in r.scores.items():
                p = r.p_values.get(method)
                for j, column in enumerate(r.columns):
                    if not math.isnan(scores[row, j]):
                        out[(segment, column, method)] = (
                            float(scores[row, j]),
                            float(p[row, j]) if p is not None else math.nan,
                            int(r.n[row, j]),
                            float(r.window_end_ts[row]),
                        )
    return out


def test_latest_scores_keep_the_last_non_nan_score_of_every_cell() -> None:
    """The array store answers as a per-cell dict of the same records would."""
    batches = [
        _results(("s1", "s2", "s1"), 1, ("a", "b", "c")),
        _results(("s2", "s3"), 2, ("a", "b", "c")),
        _results(("s1",), 3, ("c", "d")),  # other columns (label side) for s1
    ]
    store = LatestResults("m")
    for r in batches:
        store.record(r)
    got = {
        (s.segment, s.column, s.method): (s.score, s.p_value, s.n, s.window_end_ts)
        for s in store.scores()
    }
    expected = _per_cell(batches)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        np.testing.assert_equal(got[key], value)
    assert {s.segment for s in store.scores({"s3"})} == {"s3"}
    store.forget_segments({"s1"})
    assert all(s.segment != "s1" for s in store.scores())


def test_state_bytes_equal_the_serialised_document() -> None:
    """json_bytes, serialised a segment at a time, is the document's own JSON."""
    results = LatestResults("m")
    book = DecisionBook("m", DetectorsConfig(), min_samples=100)
    state = LiveState(results, book, clock=lambda: 123.0)
    for r in (_results(("s1", "s2"), 1, ("a", "b")), _results(("s2", "s3"), 2, ("a", "b"))):
        results.record(r)
        book.observe(r)
    state.refresh()
    document = state.document()
    assert len(document["rows"]) > 0
    assert state.json_bytes() == orjson.dumps(document)
    rows = state.segment_rows()["s2"]
    assert list(rows) == [rows[i] for i in range(len(rows))]
    assert all(r["segment"] == "s2" for r in rows)


def test_windows_scored_together_equal_windows_scored_one_by_one() -> None:
    """One vectorized score over k windows gives each window's own scores."""
    engine = DriftEngine(BINNER)
    ref = engine.calibrate_profiles()
    seg, X, ts = _stream(6_000, 6)
    closed = Windows(BINNER, WindowsConfig(size_events=900)).add(seg, X, ts)
    assert len(closed) >= 4
    together = engine.score(closed.counts, [ref])
    for i in range(len(closed)):
        alone = engine.score(closed.counts[i : i + 1], [ref])
        for method, scores in together.score.items():
            np.testing.assert_array_equal(scores[i], alone.score[method][0])
            np.testing.assert_array_equal(together.verdict[method][i], alone.verdict[method][0])


def test_own_references_score_as_with_every_reference_given() -> None:
    """Passing the engine only the references a batch uses changes no score."""
    evaluator = Evaluator("m", BINNER, DetectorsConfig(), min_samples=50)
    seg, X, ts = _stream(8_000, 6)
    own = segment_references(evaluator.engine, seg[:3_000], X[:3_000], 6, 50)
    for s in (1, 4):
        evaluator.set_segment_reference(s, own[s])
    closed = Windows(BINNER, WindowsConfig(size_events=600)).add(seg[3_000:], X[3_000:], ts[3_000:])
    assert {1, 4} <= set(closed.segments.tolist())
    got = evaluator.evaluate(closed, tuple(f"s{i}" for i in range(6)))
    which = [{1: 1, 4: 2}.get(s, 0) for s in closed.segments.tolist()]
    expected = evaluator.engine.score(closed.counts, [evaluator.pooled, own[1], own[4]], which)
    width = BINNER.n_features
    for method, scores in expected.score.items():
        np.testing.assert_array_equal(got.scores[method][:, :width], scores)
        np.testing.assert_array_equal(got.verdicts[method][:, :width], expected.verdict[method])
