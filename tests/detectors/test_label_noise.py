"""Label-noise signal (confident learning): thresholds, test, ranking, Label Studio tasks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from detectors.label_noise import ConfidentThresholds, LabelNoiseDetector, LabelNoiseTest
from detectors.perf_relabel import could_be_suspicious, label_studio_task
from detectors.rules import BREACH, SKIP


def _pairs(rng: np.random.Generator, n: int, a: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated binary pairs: p ~ Beta(a, a), y ~ Bernoulli(p)."""
    p = rng.beta(a, a, n)
    return p, (rng.random(n) < p).astype(np.int64)


def _brute_force(probs: np.ndarray, labels: np.ndarray, t: np.ndarray) -> list[bool]:
    """The confident-learning rule, pair by pair."""
    out = []
    for row, y in zip(probs, labels, strict=True):
        out.append(any(row[c] >= t[c] and row[c] > row[y] for c in range(len(t)) if c != y))
    return out


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 5))
def test_thresholds_and_suspicion_match_brute_force(seed: int, n_classes: int) -> None:
    """Thresholds are per-class mean self-confidence; suspicion follows the rule exactly."""
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(n_classes, 0.7), 80)
    labels = np.r_[np.arange(n_classes), rng.integers(0, n_classes, 80 - n_classes)]
    ct = ConfidentThresholds.fit(probs, labels, n_classes)
    want = [probs[labels == c, c].mean() for c in range(n_classes)]
    np.testing.assert_allclose(ct.thresholds, want, rtol=1e-12)
    m = ct.margins(probs, labels)
    assert m.suspicious.tolist() == _brute_force(probs, labels, ct.thresholds)
    assert ct.reference_suspicious == int(m.suspicious.sum())
    others = probs.copy()
    others[np.arange(80), labels] = -1
    np.testing.assert_allclose(m.margin, others.max(1) - probs[np.arange(80), labels])


def test_binary_score_equals_two_column_probabilities() -> None:
    """A binary model's positive-class scores behave as the [1 - p, p] matrix."""
    p, y = _pairs(np.random.default_rng(2), 500)
    one = ConfidentThresholds.fit(p, y)
    two = ConfidentThresholds.fit(np.c_[1 - p, p], y)
    np.testing.assert_array_equal(one.thresholds, two.thresholds)
    assert (
        one.margins(p, y).suspicious.tolist() == two.margins(np.c_[1 - p, p], y).suspicious.tolist()
    )


def test_p_value_and_threshold_are_the_beta_binomial_tail() -> None:
    """The p-value is the beta-binomial tail, and share >= threshold iff p <= alpha."""
    test = LabelNoiseTest(ConfidentThresholds(np.array([0.7, 0.7]), 10_000, 800), alpha=1e-3)
    k = np.arange(100, 260)
    result = test.evaluate(np.c_[np.full(k.size, 2_000), k, np.zeros(k.size, dtype=np.int64)])
    # The tail summed from scipy's mass function (its sf, 1 - cdf, loses the far tail).
    pmf = sps.betabinom.pmf(np.arange(2_001), 2_000, 800.5, 9_200.5)
    want = np.cumsum(pmf[::-1])[::-1][k]
    np.testing.assert_allclose(result.p_value, want, rtol=1e-9)
    assert ((result.statistic >= result.threshold) == (want <= 1e-3)).all()
    assert ((result.verdict == BREACH) == (want <= 1e-3)).all()


def _suspicious_rate(t: np.ndarray, a: float) -> float:
    """Exact suspicious rate of Beta(a, a) calibrated binary pairs under thresholds t."""
    mean = 0.5
    hi = max(t[1], 0.5)  # label 0 with p >= t1 (and p > 1 - p)
    lo = min(1 - t[0], 0.5)  # label 1 with 1 - p >= t0 (and 1 - p > p)
    zero = (1 - sps.beta.cdf(hi, a, a)) - mean * (1 - sps.beta.cdf(hi, a + 1, a))
    one = mean * sps.beta.cdf(lo, a + 1, a)
    return float(zero + one)


def test_stationary_false_alarms_stay_within_alpha() -> None:
    """On stationary streams the test fires on at most alpha of windows of 500 to 5,000."""
    rng = np.random.default_rng(4)
    fired = total = 0
    for _ in range(5):
        test = LabelNoiseTest.fit(*_pairs(rng, 20_000), alpha=0.01)
        rate = _suspicious_rate(test.thresholds.thresholds, 0.5)
        for n in (500, 2_000, 5_000):
            k = rng.binomial(n, rate, 4_000)
            result = test.evaluate(np.c_[np.full(k.size, n), k, np.zeros(k.size, dtype=np.int64)])
            fired += int(result.drift.sum())
            total += k.size
    assert 0.001 < fired / total <= 0.012


def test_ten_percent_flips_detected_at_window_2000() -> None:
    """Flipping 10% of one segment's labels is caught in >= 95% of windows of 2,000."""
    rng = np.random.default_rng(5)
    test = LabelNoiseTest.fit(*_pairs(rng, 20_000))
    windows, size = 40, 2_000
    seg = np.repeat(np.arange(2 * windows), size)
    p, y = _pairs(rng, seg.size)
    flip = (seg >= windows) & (rng.random(seg.size) < 0.1)
    result = test.evaluate(test.accumulate(seg, p, np.where(flip, 1 - y, y), 2 * windows))
    assert result.drift[windows:].mean() >= 0.95
    assert not result.drift[:windows].any()


def test_invalid_pairs_counted_and_few_pairs_skip() -> None:
    """Bad probabilities and labels are counted, never scored; few pairs give SKIP."""
    test = LabelNoiseTest(ConfidentThresholds(np.array([0.7, 0.7]), 1_000, 50), min_samples=3)
    p = np.array([0.9, np.nan, 1.2, 0.1, 0.95, 0.2])
    y = np.array([0, 1, 1, 7, 0.5, 0])
    counts = test.accumulate([0, 0, 0, 1, 1, 1], p, y, 2)
    assert counts.tolist() == [[1, 1, 2], [1, 0, 2]]
    assert test.evaluate(counts).verdict.tolist() == [SKIP, SKIP]
    labels = np.array([0, "cat", None], dtype=object)
    assert test.accumulate([0, 0, 0], [0.9, 0.9, 0.9], labels, 1).tolist() == [[1, 1, 2]]


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 4))
def test_most_suspicious_matches_a_sort(seed: int, top_n: int) -> None:
    """The ranking is each segment's suspicious pairs by margin, then row, first top_n."""
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(3), 40)
    labels, seg = rng.integers(0, 3, 40), rng.integers(0, 3, 40)
    test = LabelNoiseTest(ConfidentThresholds(np.array([0.4, 0.4, 0.4]), 100, 10))
    m = test.thresholds.margins(probs, labels)
    want = []
    for s in range(3):
        rows = [i for i in range(40) if seg[i] == s and m.suspicious[i]]
        want += sorted(rows, key=lambda i: (-m.margin[i], i))[:top_n]
    assert test.most_suspicious(seg, probs, labels, top_n).tolist() == want


def test_test_round_trips_through_json() -> None:
    """to_dict survives JSON, and the rebuilt test evaluates identically."""
    test = LabelNoiseTest.fit(*_pairs(np.random.default_rng(6), 2_000), min_samples=10)
    rebuilt = LabelNoiseTest.from_dict(json.loads(json.dumps(test.to_dict())))
    counts = np.array([[1_000, 90, 1], [50, 20, 0]])
    a, b = test.evaluate(counts), rebuilt.evaluate(counts)
    np.testing.assert_array_equal(a.p_value, b.p_value)
    np.testing.assert_array_equal(a.verdict, b.verdict)


def test_detector_accepts_binary_and_multiclass_rows() -> None:
    """Rows are (score, label) for binary models or (probabilities..., label)."""
    binary = LabelNoiseDetector(LabelNoiseTest(ConfidentThresholds(np.array([0.6, 0.6]), 10, 1)))
    assert binary.update([0, 0], [[0.9, 0], [0.2, 0]]).suspicious.tolist() == [1]
    three = ConfidentThresholds(np.array([0.5, 0.5, 0.5]), 10, 1)
    detector = LabelNoiseDetector(LabelNoiseTest(three), n_segments=2)
    result = detector.update([1], [[0.1, 0.8, 0.1, 0]])
    assert result.suspicious.tolist() == [0, 1] and result.n.tolist() == [0, 1]
    with pytest.raises(ValueError, match="shape"):
        detector.update([0], [[0.5, 0.5, 1]])


# ------------------------------------------------------------------ Label Studio


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 4))
def test_could_be_suspicious_is_suspicious_under_some_label(seed: int, n_classes: int) -> None:
    """A prediction can become suspicious exactly when some label makes it so (brute force)."""
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(n_classes, 0.6), 60)
    probs[::7] = np.round(probs[::7], 1)  # ties with the thresholds and between classes
    probs[5] = np.nan
    if n_classes == 2:
        probs[:, 0] = 1.0 - probs[:, 1]  # the matrix a positive-class score stands for
    t = np.round(rng.uniform(0.3, 0.9, n_classes), 1)
    ct = ConfidentThresholds(t, 100, 5)
    want = [
        any(_brute_force(row[None, :], np.array([y]), t)[0] for y in range(n_classes))
        and bool(np.isfinite(row).all())
        for row in probs
    ]
    assert could_be_suspicious(ct, probs).tolist() == want
    if n_classes == 2:
        assert could_be_suspicious(ct, probs[:, 1]).tolist() == want


def test_label_studio_task_is_the_documented_import_format() -> None:
    """The task holds data and one choices pre-annotation, and is strict JSON."""
    task = label_studio_task(
        42,
        {"amount": np.float32(3.5), "note": float("nan"), "tags": np.array([1, 2])},
        [0.1, 0.7, 0.2],
        2,
        choices=["cat", "dog", "bird"],
    )
    assert set(task) == {"data", "predictions"}
    assert task["data"] == {
        "amount": 3.5,
        "note": None,
        "tags": [1, 2],
        "event_id": 42,
        "prediction": [0.1, 0.7, 0.2],
    }
    (prediction,) = task["predictions"]
    assert prediction["score"] == 0.2 and prediction["model_version"] == "driftd"
    (result,) = prediction["result"]
    assert result == {
        "from_name": "label",
        "to_name": "event",
        "type": "choices",
        "value": {"choices": ["bird"]},
    }
    json.dumps(task, allow_nan=False)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((1, {"prediction": 1}, 0.5, 0), "may not be named"),
        ((1, {}, 1.5, 0), "probabilities"),
        ((1, {}, 0.5, 2), "class index"),
        ((1, {}, [0.5, 0.5], True), "class index"),
    ],
)
def test_label_studio_task_refuses_bad_input(args: tuple[object, ...], message: str) -> None:
    """A clashing feature name, a bad probability or a bad label raise a ValueError."""
    with pytest.raises(ValueError, match=message):
        label_studio_task(*args)  # type: ignore[arg-type]
