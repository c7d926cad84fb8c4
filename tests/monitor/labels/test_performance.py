"""Windowed performance equals metrics computed directly from the same pairs, however batched."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.engine.labels.join import JoinedPairs
from monitor.engine.labels.performance import (
    BINARY_METRICS,
    REGRESSION_METRICS,
    ClosedPerformance,
    PerformanceWindows,
    error_signal,
)


def _pairs(
    segment: list[int] | np.ndarray,
    prediction: list[float] | np.ndarray,
    label: list[float] | np.ndarray,
    group: list[int] | np.ndarray | None = None,
) -> JoinedPairs:
    n = len(segment)
    ts = np.arange(n, dtype=np.float64)
    return JoinedPairs(
        np.asarray(segment, dtype=np.int64),
        np.asarray(prediction, dtype=np.float64),
        np.asarray(label, dtype=np.float64),
        ts,
        ts + 1.0,
        np.full(n, -1, np.int64) if group is None else np.asarray(group, dtype=np.int64),
    )


def _slice(pairs: JoinedPairs, lo: int, hi: int) -> JoinedPairs:
    return JoinedPairs(
        pairs.segment[lo:hi],
        pairs.prediction[lo:hi],
        pairs.label[lo:hi],
        pairs.prediction_ts[lo:hi],
        pairs.label_ts[lo:hi],
        pairs.group[lo:hi],
    )


def _gap(rates: list[float]) -> float:
    return max(rates) - min(rates) if len(rates) >= 2 else math.nan


def _direct_metrics(
    rows: list[tuple[float, float, int]],
    task: str,
    threshold: float,
    n_groups: int,
    min_group_size: int,
) -> dict[str, float]:
    """The metrics of one window's (prediction, label, group) rows, by plain loops."""
    n = len(rows)
    if task == "regression":
        return {
            "mae": sum(abs(y - p) for p, y, _ in rows) / n,
            "rmse": math.sqrt(sum((y - p) ** 2 for p, y, _ in rows) / n),
        }
    tp = fp = tn = fn = 0
    log_loss = brier = 0.0
    per_group = [[0, 0, 0, 0, 0, 0] for _ in range(n_groups)]  # n, pp, tp, fn, fp, tn
    for p, label, g in rows:
        y = 1 if label >= 0.5 else 0
        yhat = 1 if p >= threshold else 0
        tp += y and yhat
        fp += (not y) and yhat
        tn += (not y) and not yhat
        fn += y and not yhat
        q = min(max(p, 1e-15), 1 - 1e-15)
        log_loss -= math.log(q) if y else math.log(1 - q)
        brier += (p - y) ** 2
        if g >= 0:
            cell = per_group[g]
            cell[0] += 1
            cell[1] += yhat
            cell[2] += y and yhat
            cell[3] += y and not yhat
            cell[4] += (not y) and yhat
            cell[5] += (not y) and not yhat
    out = {
        "accuracy": (tp + tn) / n,
        "precision": tp / (tp + fp) if tp + fp else math.nan,
        "recall": tp / (tp + fn) if tp + fn else math.nan,
        "log_loss": log_loss / n,
        "brier": brier / n,
    }
    if n_groups:
        big = [c for c in per_group if c[0] >= min_group_size]
        out["demographic_parity_difference"] = _gap([c[1] / c[0] for c in big])
        out["tpr_gap"] = _gap([c[2] / (c[2] + c[3]) for c in big if c[2] + c[3]])
        out["fpr_gap"] = _gap([c[4] / (c[4] + c[5]) for c in big if c[4] + c[5]])
    return out


def _oracle(
    pairs: JoinedPairs,
    task: str,
    size: int,
    threshold: float = 0.5,
    n_groups: int = 0,
    min_group_size: int = 1,
) -> list[dict[str, Any]]:
    """Windows by plain iteration: one list per segment, closed when it holds size rows."""
    open_rows: dict[int, list[tuple[float, float, int]]] = {}
    done: dict[int, int] = {}
    out = []
    rows = zip(
        pairs.segment.tolist(),
        pairs.prediction.tolist(),
        pairs.label.tolist(),
        pairs.group.tolist(),
        strict=True,
    )
    for i, (s, p, y, g) in enumerate(rows):
        window = open_rows.setdefault(s, [])
        window.append((p, y, g))
        if len(window) == size:
            out.append(
                {
                    "segment": s,
                    "window": done.get(s, 0),
                    "last_pair": i,
                    "metrics": _direct_metrics(window, task, threshold, n_groups, min_group_size),
                }
            )
            done[s] = done.get(s, 0) + 1
            open_rows[s] = []
    return out


def _run(windows: PerformanceWindows, pairs: JoinedPairs, cuts: list[int]) -> list[dict[str, Any]]:
    """Feed ``pairs`` cut at ``cuts``; closed rows with last_pair made global."""
    out = []
    bounds = [0, *sorted(set(cuts)), len(pairs)]
    for lo, hi in itertools.pairwise(bounds):
        closed = windows.add(_slice(pairs, lo, hi))
        for row in range(len(closed)):
            out.append(
                {
                    "segment": int(closed.segment[row]),
                    "window": int(closed.window[row]),
                    "last_pair": int(closed.last_pair[row]) + lo,
                    "n": int(closed.n[row]),
                    "metrics": {k: float(v[row]) for k, v in closed.metrics.items()},
                }
            )
    return out


def _assert_same(got: list[dict[str, Any]], expected: list[dict[str, Any]], size: int) -> None:
    assert [(g["segment"], g["window"], g["last_pair"]) for g in got] == [
        (e["segment"], e["window"], e["last_pair"]) for e in expected
    ]
    for g, e in zip(got, expected, strict=True):
        assert g["n"] == size
        assert g["metrics"].keys() == e["metrics"].keys()
        for name, value in e["metrics"].items():
            np.testing.assert_allclose(
                g["metrics"][name], value, rtol=1e-11, atol=1e-13, equal_nan=True
            )


def _random_pairs(rng: np.random.Generator, n: int, segments: int, groups: int) -> JoinedPairs:
    score = rng.random(n)
    score[rng.random(n) < 0.05] = rng.choice([0.0, 1.0, 0.5])  # clipping and threshold edges
    label = (rng.random(n) < score).astype(np.float64)
    return _pairs(rng.integers(0, segments, n), score, label, rng.integers(-1, groups, n))


@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_binary_metrics_equal_direct_computation(threshold: float) -> None:
    """Accuracy, precision, recall, log loss, Brier and fairness gaps match plain loops."""
    rng = np.random.default_rng(1)
    pairs = _random_pairs(rng, 5000, 4, 3)
    windows = PerformanceWindows("binary", 97, threshold, n_groups=3, min_group_size=10)
    got = _run(windows, pairs, [1, 1234, 1235, 3000])
    expected = _oracle(pairs, "binary", 97, threshold, 3, 10)
    assert len(expected) > 40
    _assert_same(got, expected, 97)
    assert set(got[0]["metrics"]) == {
        *BINARY_METRICS,
        "demographic_parity_difference",
        "tpr_gap",
        "fpr_gap",
    }


def test_regression_metrics_equal_direct_computation() -> None:
    """MAE and RMSE match plain loops; regression windows carry no fairness gaps."""
    rng = np.random.default_rng(2)
    n = 4000
    truth = rng.normal(10, 3, n)
    pairs = _pairs(rng.integers(0, 3, n), truth + rng.normal(0, 1, n), truth, rng.integers(0, 2, n))
    windows = PerformanceWindows("regression", 150, n_groups=2)
    got = _run(windows, pairs, [500, 2222])
    _assert_same(got, _oracle(pairs, "regression", 150), 150)
    assert set(got[0]["metrics"]) == set(REGRESSION_METRICS)


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 120),
    size=st.integers(1, 9),
    segments=st.integers(1, 4),
    task=st.sampled_from(["binary", "regression"]),
    cuts=st.lists(st.integers(0, 120), max_size=8),
)
def test_batching_does_not_change_windows(
    seed: int, n: int, size: int, segments: int, task: str, cuts: list[int]
) -> None:
    """Any cut of the pairs into batches closes the oracle's windows with its metrics."""
    pairs = _random_pairs(np.random.default_rng(seed), n, segments, 2)
    windows = PerformanceWindows(task, size, n_groups=2)  # type: ignore[arg-type]
    got = _run(windows, pairs, [c for c in cuts if c <= n])
    _assert_same(got, _oracle(pairs, task, size, 0.5, 2 if task == "binary" else 0), size)
    open_pairs = np.bincount(pairs.segment, minlength=windows.n_segments) % size
    np.testing.assert_array_equal(windows.open_pairs(), open_pairs)


def test_state_round_trip_continues_identically() -> None:
    """A copy restored from state_dict closes the same windows as the original."""
    rng = np.random.default_rng(3)
    pairs = _random_pairs(rng, 3000, 5, 3)
    a = PerformanceWindows("binary", 64, n_groups=3)
    a.add(_slice(pairs, 0, 1111))
    b = PerformanceWindows("binary", 64, n_groups=3)
    b.load_state_dict(a.state_dict())
    rest = _slice(pairs, 1111, 3000)
    ca, cb = a.add(rest), b.add(rest)
    np.testing.assert_array_equal(ca.segment, cb.segment)
    np.testing.assert_array_equal(ca.window, cb.window)
    for name in ca.metrics:
        np.testing.assert_array_equal(ca.metrics[name], cb.metrics[name])
    with pytest.raises(ValueError, match="performance state was made with"):
        PerformanceWindows("binary", 32, n_groups=3).load_state_dict(a.state_dict())


def test_reset_forgets_open_windows() -> None:
    """After reset, windows are counted from scratch."""
    windows = PerformanceWindows("binary", 3)
    windows.add(_pairs([0, 0], [0.9, 0.1], [1, 0]))
    windows.reset()
    assert len(windows.add(_pairs([0, 0], [0.9, 0.1], [1, 0]))) == 0
    closed = windows.add(_pairs([0], [0.9], [1]))
    assert closed.window.tolist() == [0] and closed.n.tolist() == [3]


def test_undefined_metrics_are_nan() -> None:
    """Precision NaN without predicted positives, recall without positives, gaps with one group."""
    windows = PerformanceWindows("binary", 4, n_groups=2)
    closed = windows.add(_pairs([0] * 4, [0.1, 0.2, 0.3, 0.4], [0, 0, 0, 0], [0, 0, 0, 0]))
    assert len(closed) == 1
    m = {k: float(v[0]) for k, v in closed.metrics.items()}
    assert math.isnan(m["precision"]) and math.isnan(m["recall"])
    assert m["accuracy"] == 1.0
    assert all(math.isnan(m[k]) for k in ("demographic_parity_difference", "tpr_gap", "fpr_gap"))


def test_log_loss_clips_certain_mistakes() -> None:
    """A score of exactly 0 or 1 on the wrong class costs -log(1e-15), not infinity."""
    windows = PerformanceWindows("binary", 2)
    closed = windows.add(_pairs([0, 0], [1.0, 0.0], [0, 1]))
    np.testing.assert_allclose(closed.metrics["log_loss"], [-math.log(1e-15)], rtol=1e-3)
    np.testing.assert_allclose(closed.metrics["brier"], [1.0])


def test_windows_close_in_arrival_order_across_segments() -> None:
    """Rows come in the order of the pairs that closed them, whatever the segment ids."""
    windows = PerformanceWindows("binary", 2)
    closed = windows.add(_pairs([5, 1, 1, 5, 5, 5], [0.9] * 6, [1] * 6))
    assert closed.segment.tolist() == [1, 5, 5]
    assert closed.window.tolist() == [0, 0, 1]
    assert closed.last_pair.tolist() == [2, 3, 5]


def test_empty_batch_keeps_metric_keys() -> None:
    """An empty add closes nothing but still names every metric."""
    closed = PerformanceWindows("binary", 5, n_groups=2).add(JoinedPairs.empty())
    assert isinstance(closed, ClosedPerformance) and len(closed) == 0
    assert set(closed.metrics) == {
        *BINARY_METRICS,
        "demographic_parity_difference",
        "tpr_gap",
        "fpr_gap",
    }


def test_error_signal() -> None:
    """Binary errors are 0/1 misclassifications at the threshold; regression |e| or e^2."""
    pairs = _pairs([0, 0, 0, 0], [0.7, 0.2, 0.5, 0.49], [1, 1, 0, 0])
    np.testing.assert_array_equal(error_signal(pairs, "binary", 0.5), [0, 1, 1, 0])
    np.testing.assert_array_equal(error_signal(pairs, "binary", 0.1), [0, 0, 1, 1])
    reg = _pairs([0, 0], [1.0, 5.0], [3.0, 4.0])
    np.testing.assert_array_equal(error_signal(reg, "regression"), [2.0, 1.0])
    np.testing.assert_array_equal(error_signal(reg, "regression", 0.5, "squared"), [4.0, 1.0])
    with pytest.raises(ValueError, match=r"^regression_error must be"):
        error_signal(reg, "regression", 0.5, "cubed")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"task": "ranking", "size_pairs": 5},
            ValueError,
            "task must be 'binary' or 'regression', got 'ranking'",
        ),
        ({"task": "binary", "size_pairs": 0}, ValueError, "size_pairs must be >= 1"),
        ({"task": "binary", "size_pairs": 2.0}, TypeError, "size_pairs must be an int, got float"),
        ({"task": "binary", "size_pairs": 5, "n_groups": -1}, ValueError, "n_groups must be >= 0"),
        (
            {"task": "binary", "size_pairs": 5, "min_group_size": 0},
            ValueError,
            "min_group_size must be >= 1",
        ),
        (
            {"task": "binary", "size_pairs": 5, "threshold": math.nan},
            ValueError,
            "threshold must be finite",
        ),
    ],
)
def test_constructor_validation(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    """Bad arguments fail in __init__ with an exact message."""
    with pytest.raises(error, match=f"^{message}$"):
        PerformanceWindows(**kwargs)


def test_add_validation() -> None:
    """Negative segments and group codes outside [-1, n_groups) are refused."""
    windows = PerformanceWindows("binary", 5, n_groups=2)
    with pytest.raises(ValueError, match=r"^segment ids must be >= 0, got -1$"):
        windows.add(_pairs([-1], [0.5], [1]))
    with pytest.raises(ValueError, match=r"^group codes must lie in \[-1, 2\), got \[0, 2\]$"):
        windows.add(_pairs([0, 0], [0.5, 0.5], [1, 1], [0, 2]))
