"""Multivariate and embedding drift: power, false alarms and cost against univariate drift.

**Correlation flip.** Six numeric features: a pair with correlation 0.8 (normal and
lognormal marginals), a discrete-ish, a lognormal and two normal ones. From the 3rd
window of 2,000 events the pair's correlation flips to -0.8 (the marginals do not
move). Reported: windows from the flip to the first breach of
``detectors.ReconstructionDrift`` (worst over seeds; target <= 2), and breaches of the
univariate tests (``detectors.DriftDetector``: PSI, KS, chi-square, JS at their default
rules) on the flipped features over the flipped windows (target 0).

**Embedding shift.** 256-float vectors, isotropic and anisotropic reference covariance;
from the 3rd window of 2,000 events a mean shift of 0.1 sigma x sqrt(d) along one random
direction (sigma: the root mean coordinate variance). Windows to the first breach for
each candidate: projection (seeded Gaussian, reference PCA) x statistic (Mahalanobis
distance of the window mean, i.e. Hotelling / linear-kernel MMD; share of drifted
coordinates). A weaker shift (0.03 sigma x sqrt(d)) shows their power apart: the share
of windows that breach.

**False alarms.** Breaches per 1,000 decisions (segment windows) on stationary streams:
the reconstruction error with 10 and 50 mixed features (normal, lognormal, discrete-ish,
heavier lognormal, correlated through latent factors) at windows of 500, 2,000 and
5,000 (``--quick``: not 5,000); embeddings, both statistics, isotropic and anisotropic,
at windows of 500 and 2,000. 5,000 decisions each (``--quick``: 400; embeddings at
2,000 events: half as many).

**Cost** per event (µs, best of N on a shared machine) of ``accumulate`` + ``evaluate``
over a batch of 20,000 events in 10 segments, against ``DriftDetector.update`` on the
same numeric features.

    python -m benchmarks.multivariate_drift [--quick]
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from benchmarks._report import Measurement, best_of, parse_args, report
from detectors.detector import DriftDetector
from detectors.embedding import EmbeddingDrift, EmbeddingReference, Projection, Statistic
from detectors.multivariate import PCAReference, ReconstructionDrift
from detectors.profile import build_profile
from detectors.rules import BREACH, DISTRIBUTION_METHODS

BENCH = "multivariate_drift"
WINDOW = 2_000
CLEAN_WINDOWS = 2
DIM = 256
EMBEDDING_SHIFT = 0.1
WEAK_SHIFT = 0.03
FLIP_FEATURES = ("pair_normal", "pair_lognormal", "discrete", "lognormal", "normal_a", "normal_b")
FLIPPED = FLIP_FEATURES[:2]


def flip_rows(rng: np.random.Generator, n: int, rho: float) -> np.ndarray:
    """Rows of the correlation-flip scenario: the pair has correlation ``rho`` (in its
    Gaussian copula); every marginal is the same whatever ``rho``."""
    z1 = rng.normal(size=n)
    z2 = rho * z1 + np.sqrt(1 - rho**2) * rng.normal(size=n)
    return np.column_stack(
        [
            z1,
            np.exp(0.5 * z2),
            np.round(rng.normal(0, 1.5, n)),
            rng.lognormal(1.0, 0.8, n),
            rng.normal(5.0, 2.0, n),
            rng.normal(-3.0, 0.5, n),
        ]
    )


def mixed_rows(rng: np.random.Generator, n: int, f: int) -> np.ndarray:
    """Stationary rows of ``f`` features tied by three latent factors, with normal,
    lognormal, discrete-ish and heavier lognormal marginals in turn."""
    loadings = np.random.default_rng(123).normal(size=(3, f)) * 0.7
    z = (rng.normal(size=(n, 3)) @ loadings + rng.normal(size=(n, f))) / np.sqrt(
        (loadings**2).sum(axis=0) + 1
    )
    out: np.ndarray = z.copy()
    out[:, 1::4] = np.exp(z[:, 1::4])
    out[:, 2::4] = np.round(z[:, 2::4] * 1.5)
    out[:, 3::4] = np.exp(1.5 * z[:, 3::4])
    return out


@functools.cache
def _basis(anisotropic: bool) -> np.ndarray:
    if not anisotropic:
        return np.eye(DIM)
    rng = np.random.default_rng(7)
    rotation, _ = np.linalg.qr(rng.normal(size=(DIM, DIM)))
    sds = np.geomspace(3.0, 0.03, DIM)
    return np.asarray(sds[:, None] * rotation.T, dtype=np.float64)


@dataclass(frozen=True)
class VectorSource:
    """Gaussian vectors of ``DIM`` floats: isotropic, or with coordinate standard
    deviations spread over two orders of magnitude in a random basis."""

    anisotropic: bool

    def basis(self) -> np.ndarray:
        """``(DIM, DIM)``: rows scaled by the coordinate sds, then rotated."""
        return _basis(self.anisotropic)

    def sigma(self) -> float:
        """Root mean coordinate variance."""
        return float(np.sqrt((self.basis() ** 2).sum() / DIM))

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` vectors."""
        if not self.anisotropic:  # the basis is the identity: skip a (n, DIM) @ (DIM, DIM)
            return rng.normal(size=(n, DIM))
        return np.asarray(rng.normal(size=(n, DIM)) @ self.basis(), dtype=np.float64)


def correlation_flip(seeds: int, drifted_windows: int) -> tuple[int, int, int]:
    """Worst windows-to-detect over seeds, univariate breaches on flipped windows, and
    clean-window breaches of the reconstruction error (should be 0)."""
    worst, univariate, early = 0, 0, 0
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        reference_rows = flip_rows(rng, 20_000, 0.8)
        pca = ReconstructionDrift(PCAReference.fit(reference_rows, FLIP_FEATURES, seed=seed))
        profile = build_profile(dict(zip(FLIP_FEATURES, reference_rows.T, strict=True)))
        univariate_detector = DriftDetector(profile)
        zeros = np.zeros(WINDOW, dtype=np.int64)
        found = None
        for i in range(CLEAN_WINDOWS + drifted_windows):
            rows = flip_rows(rng, WINDOW, 0.8 if i < CLEAN_WINDOWS else -0.8)
            result = pca.evaluate(pca.accumulate(zeros, rows))
            if i < CLEAN_WINDOWS:
                early += int(result.drift.sum())
                continue
            if found is None and result.drift[0]:
                found = i - CLEAN_WINDOWS + 1
            univariate_detector.reset()
            scores = univariate_detector.update(
                zeros, profile.encode(dict(zip(FLIP_FEATURES, rows.T, strict=True)))
            )
            columns = [scores.columns.index(name) for name in FLIPPED]
            for method in DISTRIBUTION_METHODS & set(scores.verdict):
                univariate += int((scores.verdict[method][:, columns] >= BREACH).sum())
        worst = max(worst, found if found is not None else drifted_windows + 1)
    return worst, univariate, early


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=DIM)
    return np.asarray(v / np.linalg.norm(v), dtype=np.float64)


PROJECTIONS: tuple[Projection, ...] = ("gaussian", "pca")
STATISTICS: tuple[Statistic, ...] = ("mahalanobis", "share")
CANDIDATES = tuple((p, s) for p in PROJECTIONS for s in STATISTICS)
PICKED: tuple[Projection, Statistic] = ("gaussian", "mahalanobis")
"""The detector's default: the most power at the weak shift, on both covariances."""


def embedding_power(
    source: VectorSource,
    shift: float,
    seeds: int,
    drifted_windows: int,
    candidates: tuple[tuple[Projection, Statistic], ...] = CANDIDATES,
) -> dict[tuple[Projection, Statistic], tuple[int, float]]:
    """Per candidate: worst windows-to-detect over seeds and the share of drifted windows
    that breach, for a mean shift of ``shift`` sigma x sqrt(d)."""
    out: dict[tuple[Projection, Statistic], tuple[int, float]] = {}
    sigma = source.sigma()
    hits: dict[tuple[Projection, Statistic], list[int]] = {c: [] for c in candidates}
    worst: dict[tuple[Projection, Statistic], int] = dict.fromkeys(candidates, 0)
    for seed in range(seeds):
        rng = np.random.default_rng(100 + seed)
        reference = source.draw(rng, 10_000)
        delta = shift * sigma * np.sqrt(DIM) * _unit(rng)
        windows = [
            source.draw(rng, WINDOW) + (delta if i >= CLEAN_WINDOWS else 0.0)
            for i in range(CLEAN_WINDOWS + drifted_windows)
        ]
        zeros = np.zeros(WINDOW, dtype=np.int64)
        for projection in dict.fromkeys(proj for proj, _ in candidates):
            fitted = EmbeddingReference.fit(reference, projection=projection, seed=seed)
            stats = [
                EmbeddingDrift(fitted).accumulate(zeros, w) for w in windows
            ]  # both statistics share the statistics rows
            for statistic in (stat for proj, stat in candidates if proj == projection):
                detector = EmbeddingDrift(fitted, statistic=statistic)
                flags = [bool(detector.evaluate(s).drift[0]) for s in stats]
                drifted = flags[CLEAN_WINDOWS:]
                first = next((i + 1 for i, f in enumerate(drifted) if f), drifted_windows + 1)
                key = (projection, statistic)
                worst[key] = max(worst[key], first)
                hits[key] += [int(f) for f in drifted]
    for key in candidates:
        out[key] = (worst[key], float(np.mean(hits[key])))
    return out


def reconstruction_false_alarms(f: int, window: int, decisions: int, seed: int) -> float:
    """Breaches per 1,000 stationary decisions (50 segments a round)."""
    rng = np.random.default_rng(seed)
    detector = ReconstructionDrift(PCAReference.fit(mixed_rows(rng, 50_000, f), seed=seed), 50)
    segments = np.repeat(np.arange(50), window)
    breaches = total = 0
    while total < decisions:
        result = detector.evaluate(detector.accumulate(segments, mixed_rows(rng, segments.size, f)))
        breaches += int(result.drift.sum())
        total += 50
    return 1000.0 * breaches / total


def embedding_false_alarms(
    source: VectorSource, window: int, decisions: int, seed: int
) -> dict[Statistic, float]:
    """Breaches per 1,000 stationary decisions (20 segments a round), per statistic."""
    rng = np.random.default_rng(seed)
    fitted = EmbeddingReference.fit(source.draw(rng, 20_000), seed=seed)
    detectors = {s: EmbeddingDrift(fitted, 20, statistic=s) for s in STATISTICS}
    segments = np.repeat(np.arange(20), window)
    breaches: dict[Statistic, int] = dict.fromkeys(STATISTICS, 0)
    total = 0
    while total < decisions:
        stats = detectors["mahalanobis"].accumulate(segments, source.draw(rng, segments.size))
        for statistic, detector in detectors.items():
            breaches[statistic] += int(detector.evaluate(stats).drift.sum())
        total += 20
    return {s: 1000.0 * b / total for s, b in breaches.items()}


def costs(repeats: int) -> dict[str, float]:
    """µs per event of each method on a 20,000-event batch in 10 segments."""
    rng = np.random.default_rng(5)
    n = 20_000
    segments = rng.integers(0, 10, n)
    reference_rows = mixed_rows(rng, 20_000, 10)
    rows = mixed_rows(rng, n, 10)
    profile = build_profile({f"x{i}": reference_rows[:, i] for i in range(10)})
    univariate = DriftDetector(profile, 10)
    pca = ReconstructionDrift(PCAReference.fit(reference_rows), 10)
    vectors = VectorSource(False).draw(rng, n)
    embedding = EmbeddingDrift(EmbeddingReference.fit(vectors[:10_000]), 10)
    as_list = list(vectors[:2_000])

    def run_univariate() -> object:
        univariate.reset()
        return univariate.update(segments, rows)

    per_event = 1e6 / n
    return {
        "univariate": best_of(run_univariate, repeats) * per_event,
        "reconstruction": best_of(lambda: pca.evaluate(pca.accumulate(segments, rows)), repeats)
        * per_event,
        "embedding": best_of(
            lambda: embedding.evaluate(embedding.accumulate(segments, vectors)), repeats
        )
        * per_event,
        "embedding_from_lists": best_of(
            lambda: embedding.accumulate(segments[:2_000], as_list), repeats
        )
        * 1e6
        / 2_000,
    }


def main() -> None:
    """Run and report."""
    args = parse_args(__doc__ or BENCH)
    quick = args.quick
    seeds = 1 if quick else 5
    decisions = 400 if quick else 5_000
    m: list[Measurement] = []

    worst, univariate, early = correlation_flip(seeds, 3)
    m.append(Measurement(BENCH, "corr_flip_windows_to_detect", worst, "win", 2, "lower"))
    m.append(Measurement(BENCH, "corr_flip_univariate_breaches", univariate, "n", 0, "lower"))
    m.append(Measurement(BENCH, "corr_flip_clean_window_breaches", early, "n", 0, "lower"))

    for anisotropic in (False, True):
        source = VectorSource(anisotropic)
        shape = "aniso" if anisotropic else "iso"
        strong = embedding_power(source, EMBEDDING_SHIFT, seeds, 2)
        weak = embedding_power(source, WEAK_SHIFT, seeds, 3)
        for projection, statistic in CANDIDATES:
            name = f"{projection}_{statistic}_{shape}"
            windows, _ = strong[projection, statistic]
            m.append(
                Measurement(BENCH, f"emb_windows_to_detect_{name}", windows, "win", 2, "lower")
            )
            _, power = weak[projection, statistic]
            # The pick (the detector's default) is held to a target; the others are there
            # to compare against.
            target = 0.5 if (projection, statistic) == PICKED else 0.0
            m.append(
                Measurement(BENCH, f"emb_weak_shift_power_{name}", power, "", target, "higher")
            )

    recon_windows = (500, 2_000) if quick else (500, 2_000, 5_000)
    for f in (10, 50):
        for window in recon_windows:
            rate = reconstruction_false_alarms(f, window, decisions, seed=f + window)
            m.append(
                Measurement(BENCH, f"recon_false_alarms_f{f}_w{window}", rate, "/1k", 1, "lower")
            )
    for anisotropic in (False, True):
        shape = "aniso" if anisotropic else "iso"
        for window in (500, 2_000):
            # Half the decisions at the larger window: 256 floats an event are costly.
            count = decisions if window == 500 else decisions // 2
            rates = embedding_false_alarms(VectorSource(anisotropic), window, count, window)
            for statistic, rate in rates.items():
                metric = f"emb_false_alarms_{statistic}_{shape}_w{window}"
                m.append(Measurement(BENCH, metric, rate, "/1k", 1, "lower"))

    cost = costs(3 if quick else 7)
    for method in ("reconstruction", "embedding", "embedding_from_lists"):
        m.append(
            Measurement(
                BENCH,
                f"cost_per_event_{method}",
                cost[method],
                "us",
                20.0,
                "lower",
                baseline=cost["univariate"],
                target_on_value=True,
            )
        )
    report(m)


if __name__ == "__main__":
    main()
