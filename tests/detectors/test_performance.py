"""CBPE-style estimated performance: calibration, metrics and alerts against oracles."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize
from scipy import stats as sps

from detectors.perf_calibration import ScoreCalibration, isotonic_fit
from detectors.perf_metrics import PERFORMANCE_METRICS, metrics_from_counts
from detectors.performance import PerformanceDetector, PerformanceEstimator
from detectors.rules import BREACH, SKIP


def _stream(
    rng: np.random.Generator, n: int, a: float = 2.0, b: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated scores p ~ Beta(a, b) and labels y ~ Bernoulli(p)."""
    p = rng.beta(a, b, n)
    return p, (rng.random(n) < p).astype(np.int64)


@pytest.fixture(scope="module")
def estimator() -> PerformanceEstimator:
    p, y = _stream(np.random.default_rng(7), 20_000)
    return PerformanceEstimator.fit(p, y, n_bins=20)


# ------------------------------------------------------------------ calibration


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 30))
def test_isotonic_fit_matches_scipy(seed: int, size: int) -> None:
    """The pool-adjacent-violators fit equals scipy's weighted isotonic regression."""
    rng = np.random.default_rng(seed)
    rates, weights = rng.random(size), rng.integers(1, 50, size).astype(float)
    want = optimize.isotonic_regression(rates, weights=weights).x
    np.testing.assert_allclose(isotonic_fit(rates, weights), want, rtol=1e-12, atol=1e-12)


def test_isotonic_fit_fills_empty_bins_monotonically() -> None:
    """Bins without weight take a neighbour's fitted value, keeping the fit monotone."""
    fit = isotonic_fit(np.array([0.0, 0.3, 0.0, 0.1, 0.0]), np.array([0.0, 2.0, 0.0, 2.0, 0.0]))
    assert fit.tolist() == [0.2, 0.2, 0.2, 0.2, 0.2]


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.72])
def test_calibration_threshold_is_an_edge_and_fit_is_scipy_isotonic(threshold: float) -> None:
    """The threshold is an edge no bin straddles; calibration is scipy's isotonic fit."""
    p, y = _stream(np.random.default_rng(1), 5_000, 1.0, 3.0)
    cal = ScoreCalibration.fit(p, y, threshold=threshold, n_bins=12)
    assert threshold in cal.edges.tolist()
    bins, ok = cal.bin_of(p)
    assert ok.all()
    np.testing.assert_array_equal(cal.positive_bins[bins], p >= threshold)
    counts = np.bincount(bins, minlength=cal.n_bins)
    np.testing.assert_array_equal(counts, cal.reference_counts)
    rates = np.bincount(bins, weights=y, minlength=cal.n_bins) / counts
    want = optimize.isotonic_regression(rates, weights=counts.astype(float)).x
    np.testing.assert_allclose(cal.calibrated, want, rtol=1e-12)


def test_estimator_round_trips_through_json(estimator: PerformanceEstimator) -> None:
    """to_dict survives JSON, and the rebuilt estimator evaluates identically."""
    rebuilt = PerformanceEstimator.from_dict(json.loads(json.dumps(estimator.to_dict())))
    rng = np.random.default_rng(3)
    counts = estimator.accumulate_scores(rng.integers(0, 3, 3_000), rng.random(3_000), 3)
    a, b = estimator.evaluate(counts), rebuilt.evaluate(counts)
    np.testing.assert_array_equal(a.statistic, b.statistic)
    np.testing.assert_array_equal(a.verdict, b.verdict)


# ------------------------------------------------------------------ metrics


def test_realized_metrics_match_raw_pairs_and_pairwise_auc(
    estimator: PerformanceEstimator,
) -> None:
    """Realized metrics equal the raw pairs'; AUC equals pairwise counts and Mann-Whitney U."""
    rng = np.random.default_rng(11)
    p, y = _stream(rng, 600)
    result = estimator.realized(estimator.accumulate_outcomes(np.zeros(600, int), p, y, 1))
    pred = p >= 0.5
    tp, fp = np.sum(pred & (y == 1)), np.sum(pred & (y == 0))
    fn = np.sum(~pred & (y == 1))
    r = result.realized
    assert r.accuracy[0] == np.mean(pred == (y == 1))
    assert r.precision[0] == tp / (tp + fp) and r.recall[0] == tp / (tp + fn)
    assert r.f1[0] == pytest.approx(2 * tp / (2 * tp + fp + fn), rel=1e-12)
    bins = estimator.calibration.bin_of(p)[0]
    pos, neg = bins[y == 1], bins[y == 0]
    pairwise = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    assert r.roc_auc[0] == pytest.approx(pairwise / (pos.size * neg.size), rel=1e-12)
    u = sps.mannwhitneyu(pos, neg).statistic
    assert r.roc_auc[0] == pytest.approx(u / (pos.size * neg.size), rel=1e-12)


def test_realized_auc_approaches_raw_auc_with_fine_bins() -> None:
    """With fine bins the binned AUC is within a bin's share of scipy's AUC on raw scores."""
    rng = np.random.default_rng(5)
    p, y = _stream(rng, 4_000)
    est = PerformanceEstimator.fit(p, y, n_bins=200)
    got = est.realized(est.accumulate_outcomes(np.zeros(4_000, int), p, y, 1)).realized
    raw = sps.mannwhitneyu(p[y == 1], p[y == 0]).statistic / (y.sum() * (y.size - y.sum()))
    assert abs(got.roc_auc[0] - raw) < 0.005


def test_metrics_undefined_are_nan() -> None:
    """No predicted positive gives NaN precision; one class only gives NaN AUC."""
    m = metrics_from_counts(np.array([[3.0, 0.0]]), np.array([[2.0, 0.0]]), np.array([False, True]))
    assert np.isnan(m.precision[0]) and m.recall[0] == 0.0 and m.accuracy[0] == 0.4
    m = metrics_from_counts(np.array([[0.0, 0.0]]), np.array([[2.0, 1.0]]), np.array([False, True]))
    assert np.isnan(m.roc_auc[0]) and np.isnan(m.recall[0])


# ------------------------------------------------------------------ estimate vs realized


@pytest.mark.parametrize(("a", "b"), [(2.0, 2.0), (0.5, 0.5)])
def test_estimate_matches_realized_within_sampling_error(a: float, b: float) -> None:
    """On calibrated streams the estimate is within its sampling error of realized."""
    rng = np.random.default_rng(int(a * 10))
    ref_p, ref_y = _stream(rng, 20_000, a, b)
    est = PerformanceEstimator.fit(ref_p, ref_y)
    windows, size = 40, 2_000
    seg = np.repeat(np.arange(windows), size)
    p, y = _stream(rng, windows * size, a, b)
    outcome = est.realized(est.accumulate_outcomes(seg, p, y, windows))
    estimated = est.evaluate(est.accumulate_scores(seg, p, windows)).estimated
    np.testing.assert_allclose(outcome.estimated.accuracy, estimated.accuracy)
    hit = np.maximum(p, 1 - p)
    sd = np.sqrt(np.bincount(seg, weights=hit * (1 - hit))) / size
    z = (estimated.accuracy - outcome.realized.accuracy) / sd
    assert abs(z.mean()) < 4 / np.sqrt(windows)
    assert 0.6 < z.std() < 1.4 and np.abs(z).max() < 4.5
    for metric in PERFORMANCE_METRICS:
        gap = estimated.metric(metric) - outcome.realized.metric(metric)
        assert np.abs(gap).mean() < 0.03, metric


# ------------------------------------------------------------------ alerts


def test_stationary_false_alarm_rate_matches_alpha() -> None:
    """At alpha = 1% the drop test fires on about 1% of stationary windows of 1,000."""
    rng = np.random.default_rng(21)
    fired = total = 0
    for _ in range(3):
        est = PerformanceEstimator.fit(*_stream(rng, 20_000), alpha=0.01)
        truth = np.diff(sps.beta.cdf(est.calibration.edges, 2.0, 2.0))
        counts = rng.multinomial(1_000, truth / truth.sum(), size=10_000)
        result = est.evaluate(np.c_[counts, np.zeros(len(counts), dtype=np.int64)])
        fired += int(result.drift.sum())
        total += len(counts)
    assert 0.004 < fired / total < 0.02


def test_drop_and_lower_bound_breach(estimator: PerformanceEstimator) -> None:
    """A confidence drop breaches, a lower bound breaches, and small windows SKIP."""
    rng = np.random.default_rng(8)
    seg = np.repeat([0, 1, 2], [2_000, 2_000, 100])
    scores = np.concatenate([rng.beta(2, 2, 2_000), 0.4 + 0.2 * rng.random(2_000), rng.random(100)])
    result = estimator.evaluate(estimator.accumulate_scores(seg, scores, 3))
    assert result.verdict.tolist()[1:] == [BREACH, SKIP]
    assert result.verdict[0] < BREACH and result.p_value[1] < 1e-6
    bounded = PerformanceEstimator(
        estimator.calibration, lower_bound=min(1.0, estimator.reference_value + 0.05)
    )
    assert bounded.evaluate(bounded.accumulate_scores(seg, scores, 3)).verdict[0] == BREACH


def test_invalid_scores_and_labels_are_counted_not_dropped(
    estimator: PerformanceEstimator,
) -> None:
    """Invalid scores and labels are counted per segment; valid values beside them too."""
    scores = np.array([0.2, np.nan, 0.9, np.inf, -0.1, 1.5, 0.7, 0.0, 1.0])
    seg = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1])
    counts = estimator.accumulate_scores(seg, scores, 2)
    assert counts[:, -1].tolist() == [1, 3]
    assert counts[:, :-1].sum(axis=1).tolist() == [2, 3]
    labels = np.array([1, 0, 0.5, 1, 0, 1, 2, None, 0], dtype=object)
    outcome = estimator.accumulate_outcomes(seg, scores, labels, 2)
    assert outcome[:, -1].tolist() == [2, 5]
    assert outcome[:, :-1].sum(axis=1).tolist() == [1, 1]
    decoded = np.array([0.3, None, "high", 0.8], dtype=object)
    assert estimator.accumulate_scores([0, 0, 0, 0], decoded, 1)[0, -1] == 2


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 60))
def test_statistics_are_additive(seed: int, cut: int) -> None:
    """Statistics of a batch are the sum of its two parts' (panes sum into windows)."""
    rng = np.random.default_rng(seed)
    est = _SMALL
    seg, p, y = rng.integers(0, 3, 60), rng.random(60), rng.integers(0, 2, 60)
    p[rng.random(60) < 0.1] = np.nan
    head, tail = slice(None, cut), slice(cut, None)
    np.testing.assert_array_equal(
        est.accumulate_scores(seg, p, 3),
        est.accumulate_scores(seg[head], p[head], 3) + est.accumulate_scores(seg[tail], p[tail], 3),
    )
    np.testing.assert_array_equal(
        est.accumulate_outcomes(seg, p, y, 3),
        est.accumulate_outcomes(seg[head], p[head], y[head], 3)
        + est.accumulate_outcomes(seg[tail], p[tail], y[tail], 3),
    )


_SMALL = PerformanceEstimator.fit(
    *_stream(np.random.default_rng(0), 2_000), threshold=0.5, n_bins=6
)


def test_detector_state_round_trip() -> None:
    """The detector's counts restore exactly and it rejects a state of another shape."""
    detector = PerformanceDetector(_SMALL, n_segments=2)
    detector.update([0, 1, 1], [0.1, 0.6, np.nan])
    detector.update_labels([1], [0.7], [1])
    other = PerformanceDetector(_SMALL, n_segments=2)
    other.load_state_dict(detector.state_dict())
    np.testing.assert_array_equal(other.score_counts, detector.score_counts)
    np.testing.assert_array_equal(other.outcome_counts, detector.outcome_counts)
    with pytest.raises(ValueError, match="do not fit"):
        PerformanceDetector(_SMALL, n_segments=3).load_state_dict(detector.state_dict())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metric": "auc"}, "unknown metric"),
        ({"alpha": 0.7}, "alpha"),
        ({"lower_bound": 1.2}, "lower_bound"),
        ({"min_samples": 0}, "min_samples"),
        ({"threshold": 1.0}, "threshold"),
        ({"n_bins": 1}, "n_bins"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, object], message: str) -> None:
    """Invalid rules or calibration arguments raise a ValueError naming them."""
    p, y = _stream(np.random.default_rng(0), 500)
    with pytest.raises(ValueError, match=message):
        PerformanceEstimator.fit(p, y, **kwargs)  # type: ignore[arg-type]


def test_one_class_reference_is_refused() -> None:
    """A reference without both classes cannot be calibrated, and says so."""
    with pytest.raises(ValueError, match="each class"):
        ScoreCalibration.fit(np.random.default_rng(0).random(100), np.ones(100))
