"""The demo stream's north episodes: a correlation flip that keeps every marginal, and
label swaps that move only the confidently disputed share."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from scipy import stats

from detectors.label_noise import ConfidentThresholds
from monitor.ingest import demo_stream
from monitor.ingest.demo_source import DemoSource
from monitor.ingest.demo_stream import (
    EPISODE_SEGMENT,
    SURE_SAFE,
    UNSURE,
    DemoBatch,
    DemoStream,
    tie_exponential,
)

NEVER = 10**9
EVENTS = 30_000
FLIP_AT = 15_000
STILL = {"feature_shift_at": NEVER, "prediction_shift_at": NEVER, "concept_shift_at": NEVER}


def _pair(batch: DemoBatch, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Age and months employed of ``rows``, where both are present."""
    age, tenure = batch.numeric["age"][rows], batch.numeric["months_employed"][rows]
    present = ~(np.isnan(age) | np.isnan(tenure))
    return age[present], tenure[present]


def test_the_module_examples_run() -> None:
    """The docstring examples of the demo stream hold."""
    result = doctest.testmod(demo_stream)
    assert result.attempted >= 2 and result.failed == 0


@pytest.mark.parametrize("rho", [0.8, -0.8])
def test_a_tied_exponential_stays_exponential(rho: float) -> None:
    """The copula keeps the exponential law (KS against scipy's) and takes the partner's sign."""
    rng = np.random.default_rng(1)
    partner, draws = rng.standard_normal(20_000), rng.exponential(60.0, 20_000)
    tied = tie_exponential(draws, partner, rho, 60.0)
    assert stats.kstest(tied, stats.expon(scale=60.0).cdf).pvalue > 0.01
    assert np.sign(stats.spearmanr(partner, tied).statistic) == np.sign(rho)
    assert abs(stats.spearmanr(partner, tied).statistic) > 0.7


def test_the_correlation_flip_keeps_each_features_distribution() -> None:
    """North's age/tenure tie flips sign; marginals (KS), scores, labels and others stay."""
    flipped = DemoStream(
        seed=3, pair_correlation=0.8, correlation_flip_at=FLIP_AT, **STILL
    ).next_batch(EVENTS)
    tied = DemoStream(seed=3, pair_correlation=0.8, **STILL).next_batch(EVENTS)
    index = np.arange(EVENTS)
    north = flipped.segment == EPISODE_SEGMENT
    before, after = north & (index < FLIP_AT), north & (index >= FLIP_AT)
    for name in ("age", "months_employed"):
        values = flipped.numeric[name]
        a, b = values[before], values[after]
        assert stats.ks_2samp(a[~np.isnan(a)], b[~np.isnan(b)]).pvalue > 0.01, name
    assert stats.spearmanr(*_pair(flipped, before)).statistic > 0.6
    assert stats.spearmanr(*_pair(flipped, after)).statistic < -0.6
    assert stats.spearmanr(*_pair(flipped, ~north & (index >= FLIP_AT))).statistic > 0.6
    assert np.array_equal(flipped.prediction, tied.prediction)
    assert np.array_equal(flipped.label, tied.label)
    assert np.array_equal(flipped.numeric["age"], tied.numeric["age"], equal_nan=True)


def test_label_noise_swaps_the_intended_labels() -> None:
    """Episode labels swap unsure 1->0 with sure 0->1: only the disputed share rises."""
    at, end, share = 5_000, 25_000, 0.16
    clean = DemoStream(seed=4, **STILL).next_batch(EVENTS)
    noisy = DemoStream(
        seed=4, label_noise_at=at, label_noise_end=end, label_noise_share=share, **STILL
    ).next_batch(EVENTS)
    assert np.array_equal(clean.prediction, noisy.prediction)
    index = np.arange(EVENTS)
    episode = (noisy.segment == EPISODE_SEGMENT) & (index >= at) & (index < end)
    changed = clean.label != noisy.label
    assert not np.any(changed & ~episode)
    to_zero, to_one = changed & (noisy.label == 0), changed & (noisy.label == 1)
    pairs = round(share * int(episode.sum()) / 2)
    assert int(to_zero.sum()) == int(to_one.sum()) == pairs
    p = noisy.prediction
    assert np.all((p[to_zero] >= UNSURE[0]) & (p[to_zero] < UNSURE[1]))
    assert np.all(p[to_one] <= SURE_SAFE)
    assert noisy.label[episode].sum() == clean.label[episode].sum()
    errors = (p >= 0.5).astype(np.int64)
    assert np.sum(errors[episode] != noisy.label[episode]) == np.sum(
        errors[episode] != clean.label[episode]
    )
    thresholds = ConfidentThresholds.fit(p[~episode], clean.label[~episode])
    disputed = [
        int(thresholds.margins(p[episode], labels[episode]).suspicious.sum())
        for labels in (clean.label, noisy.label)
    ]
    assert disputed[1] - disputed[0] == pairs


def test_bad_episode_settings_are_refused() -> None:
    """Out-of-range correlation or share, or source-owned stream options: ValueError."""
    with pytest.raises(ValueError, match="pair_correlation"):
        DemoStream(pair_correlation=1.0)
    with pytest.raises(ValueError, match="label_noise_share"):
        DemoStream(label_noise_share=1.5)
    with pytest.raises(ValueError, match=r"\['seed'\]"):
        DemoSource(10, stream_options={"seed": 3})
